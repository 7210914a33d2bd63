"""The retry middleware keeps the meaning of Scrapy's RetryMiddleware settings and meta keys.

Real Scrapy objects (crawler, requests, responses), no network: the retry
decisions are pure functions of them.  The behaviour against a misbehaving
server is covered by tests/test_resilience.py through the demo shop.
"""

from __future__ import annotations

import time

import pytest
from scrapy import Request, Spider
from scrapy.http import Response
from scrapy.utils.test import get_crawler
from twisted.internet.error import ConnectionRefusedError as TxConnectionRefused
from twisted.internet.error import TimeoutError as TxTimeoutError

from crawler.middlewares.retry import RetryMiddleware
from crawler.scheduler import NOT_BEFORE
from crawler.signals import request_dead_lettered

BASE = {"RETRY_BACKOFF": "fixed", "RETRY_BACKOFF_BASE": 1.0, "RETRY_JITTER": "none"}


class DeadLetters:
    def __init__(self, crawler):
        self.seen = []
        crawler.signals.connect(self.record, signal=request_dead_lettered)

    def record(self, request, **kwargs):
        self.seen.append((request.url, kwargs["failure_class"], kwargs["reason"], kwargs["attempts"]))


class Clock:
    """A fake ``time.time``: the tests move it."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(settings: dict | None = None, clock: Clock | None = None):
    crawler = get_crawler(Spider, {**BASE, **(settings or {})})
    crawler.spider = Spider("test")
    crawler.stats.open_spider()
    mw = RetryMiddleware.from_crawler(crawler)
    if clock is not None:
        mw.clock = clock
    return crawler, mw, DeadLetters(crawler)


def response(request: Request, status: int, headers: dict | None = None) -> Response:
    return Response(request.url, status=status, headers=headers or {}, request=request)


def retries(mw, request, status=503, download=0.1):
    """Fail ``request`` with ``status`` until the middleware gives up; return the number of retries.

    With a fake clock (``mw.clock``), time moves as in a crawl: each retry is
    sent when due (``not_before``) and fails ``download`` seconds later.
    """
    n = 0
    while True:
        result = mw.process_response(request, response(request, status))
        if isinstance(result, Response):
            return n
        n += 1
        assert n < 10_000, "never gives up"
        request = result
        if isinstance(mw.clock, Clock):
            mw.clock.now = max(mw.clock.now, request.meta[NOT_BEFORE]) + download


def test_transient_status_is_retried_later_not_now():
    crawler, mw, dead = make({"RETRY_TIMES": 2})
    req = Request("http://shop.test/a", meta={"stage": "detail"})
    before = time.time()
    retry = mw.process_response(req, response(req, 503))
    assert isinstance(retry, Request) and retry.dont_filter
    assert retry.meta["retry_times"] == 1
    assert retry.meta[NOT_BEFORE] >= before + 1.0  # fixed 1 s backoff, waits in the scheduler
    assert crawler.stats.get_value("retry/count") == 1
    assert crawler.stats.get_value("retry/reason_count/http_503") == 1
    assert dead.seen == []


def test_retry_times_bounds_the_retries_and_gives_up_to_the_dlq():
    crawler, mw, dead = make({"RETRY_TIMES": 3})
    assert retries(mw, Request("http://shop.test/a")) == 3
    assert crawler.stats.get_value("retry/max_reached") == 1
    assert dead.seen == [("http://shop.test/a", "transient", "http_503", 4)]


def test_retry_enabled_false_means_no_retry_but_still_a_dead_letter():
    _, mw, dead = make({"RETRY_ENABLED": False, "RETRY_TIMES": 5})
    assert retries(mw, Request("http://shop.test/a")) == 0
    assert dead.seen == [("http://shop.test/a", "transient", "http_503", 1)]


def test_meta_max_retry_times_overrides_the_setting():
    _, mw, _ = make({"RETRY_TIMES": 5})
    assert retries(mw, Request("http://shop.test/a", meta={"max_retry_times": 1})) == 1


def test_meta_retry_times_is_the_count_so_far():
    _, mw, dead = make({"RETRY_TIMES": 3})
    assert retries(mw, Request("http://shop.test/a", meta={"retry_times": 2})) == 1
    assert dead.seen[0][3] == 4


def test_meta_dont_retry_passes_the_response_through():
    crawler, mw, dead = make()
    req = Request("http://shop.test/a", meta={"dont_retry": True})
    assert mw.process_response(req, response(req, 503)).status == 503
    assert crawler.stats.get_value("retry/count") is None


@pytest.mark.parametrize(("settings", "meta", "expected"), [({}, {}, -1), ({"RETRY_PRIORITY_ADJUST": 3}, {}, 3),
                                                            ({}, {"priority_adjust": 7}, 7)])
def test_priority_adjust(settings, meta, expected):
    _, mw, _ = make(settings)
    req = Request("http://shop.test/a", priority=10, meta=meta)
    assert mw.process_response(req, response(req, 503)).priority == 10 + expected


def test_retry_http_codes_replaces_the_transient_statuses():
    _, mw, dead = make({"RETRY_HTTP_CODES": [502], "RETRY_TIMES": 2})
    assert retries(mw, Request("http://shop.test/a"), status=503) == 0
    assert dead.seen == [("http://shop.test/a", "permanent", "http_503", 1)]
    assert retries(mw, Request("http://shop.test/b"), status=502) == 2


def test_permanent_status_is_never_retried():
    _, mw, dead = make()
    for status in (404, 410, 501):
        assert retries(mw, Request(f"http://shop.test/{status}"), status=status) == 0
    assert [d[2] for d in dead.seen] == ["http_404", "http_410", "http_501"]


def test_a_status_the_spider_handles_is_not_dead_lettered():
    _, mw, dead = make()
    req = Request("http://shop.test/a", meta={"handle_httpstatus_list": [404]})
    assert mw.process_response(req, response(req, 404)).status == 404
    assert dead.seen == []


def test_retry_after_is_honoured_up_to_the_maximum():
    _, mw, _ = make({"RETRY_AFTER_MAX": 30})
    req = Request("http://shop.test/a")
    now = time.time()
    retry = mw.process_response(req, response(req, 429, {"Retry-After": "7"}))
    assert retry.meta[NOT_BEFORE] >= now + 7
    retry = mw.process_response(req, response(req, 429, {"Retry-After": "3600"}))
    assert now + 30 <= retry.meta[NOT_BEFORE] < now + 32


def test_exceptions_are_classified():
    _, mw, dead = make()
    req = Request("http://shop.test/a")
    assert isinstance(mw.process_exception(req, TxTimeoutError()), Request)
    assert mw.process_exception(req, ValueError("Missing scheme in request url: x")) is None
    assert dead.seen == [("http://shop.test/a", "permanent", "invalid_url", 1)]


def test_retry_exceptions_restricts_the_retried_exceptions():
    _, mw, dead = make({"RETRY_EXCEPTIONS": ["twisted.internet.error.TimeoutError"]})
    req = Request("http://shop.test/a")
    assert isinstance(mw.process_exception(req, TxTimeoutError()), Request)
    assert mw.process_exception(req, TxConnectionRefused()) is None
    assert dead.seen == [("http://shop.test/a", "permanent", "connection_refused", 1)]


def test_stage_policies():
    _, mw, _ = make({"RETRY_TIMES": 1, "RETRY_POLICIES": {"list": {"max_retries": 4}}})
    assert retries(mw, Request("http://shop.test/l", meta={"stage": "list"})) == 4
    assert retries(mw, Request("http://shop.test/d", meta={"stage": "detail"})) == 1


def test_every_component_builds_the_same_classifier_from_retry_exceptions():
    """Retry, circuit breaker and adaptive controller agree on what RETRY_EXCEPTIONS makes transient."""
    from scrapy.settings import Settings

    from crawler.middlewares.retry import build_classifier

    settings = Settings()
    settings.set("RETRY_EXCEPTIONS", ["twisted.internet.error.TimeoutError"], priority="cmdline")
    classifier = build_classifier(settings)
    assert classifier.classify_exception(TxTimeoutError()).transient
    refused = classifier.classify_exception(TxConnectionRefused())
    assert not refused.transient and refused.reason == "connection_refused"
    assert build_classifier(Settings()).classify_exception(TxConnectionRefused()).transient
    import crawler.middlewares.adaptive as adaptive
    import crawler.middlewares.circuit_breaker as breaker

    assert adaptive.build_classifier is build_classifier and breaker.build_classifier is build_classifier
