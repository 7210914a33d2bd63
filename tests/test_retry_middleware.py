"""The retry middleware keeps the meaning of Scrapy's RetryMiddleware settings and meta keys.

Real Scrapy objects (crawler, requests, responses), no network: the retry
decisions are pure functions of them.  The behaviour against a misbehaving
server is covered by tests/test_resilience.py through the demo shop.
"""

from __future__ import annotations

import logging
import time

import pytest
from scrapy import Request, Spider
from scrapy.http import Response
from scrapy.utils.test import get_crawler
from twisted.internet.error import ConnectionRefusedError as TxConnectionRefused
from twisted.internet.error import TimeoutError as TxTimeoutError

from crawler.middlewares.retry import FIRST_FAILURE, RetryMiddleware
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


# -- the time budget ------------------------------------------------------------------


def fail_for(mw, request, seconds, status=503, download=0.1):
    """Fail ``request`` for ``seconds`` of fake time, then succeed; return what the last call returned."""
    start = mw.clock.now
    while True:
        status_now = status if mw.clock.now - start < seconds else 200
        result = mw.process_response(request, response(request, status_now))
        if isinstance(result, Response):
            return result
        request = result
        mw.clock.now = max(mw.clock.now, request.meta[NOT_BEFORE]) + download


@pytest.mark.parametrize("outage", [10, 60, 200])
def test_a_short_outage_never_dead_letters(outage):
    """Without an explicit RETRY_TIMES, the time budget (300 s) governs, not Scrapy's count."""
    crawler, mw, dead = make({"RETRY_BACKOFF": "exponential", "RETRY_BACKOFF_BASE": 0.5, "RETRY_JITTER": "full"},
                             clock=Clock())
    assert fail_for(mw, Request("http://shop.test/a"), outage).status == 200
    assert dead.seen == []
    assert crawler.stats.get_value("retry/count") > 2  # beyond Scrapy's RETRY_TIMES default


def test_the_time_budget_runs_out_and_the_log_says_so(caplog):
    clock = Clock()
    crawler, mw, dead = make({"RETRY_MAX_ELAPSED": 60, "RETRY_BACKOFF_BASE": 7.0}, clock=clock)
    start = clock.now
    with caplog.at_level(logging.DEBUG, logger="crawler.middlewares.retry"):
        n = retries(mw, Request("http://shop.test/a"))
    assert clock.now - start >= 60
    assert n == 9  # 7 s apart, fails 0.1 s after each: 8 retries, the ninth sent at the deadline
    assert dead.seen == [("http://shop.test/a", "transient", "http_503", n + 1)]
    assert crawler.stats.get_value("retry/budget_exhausted/time") == 1
    assert crawler.stats.get_value("retry/max_reached") == 1
    gave_up = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(gave_up) == 1 and "(failed 10 times): 503 Service Unavailable" in gave_up[0]
    assert "retry time budget exhausted" in gave_up[0] and "max_elapsed 60s" in gave_up[0]


def test_first_failure_time_is_kept_in_meta():
    clock = Clock()
    _, mw, _ = make(clock=clock)
    req = Request("http://shop.test/a")
    first = mw.process_response(req, response(req, 503))
    assert first.meta[FIRST_FAILURE] == clock.now
    clock.now += 42
    second = mw.process_response(first, response(first, 503))
    assert second.meta[FIRST_FAILURE] == first.meta[FIRST_FAILURE]


def test_the_deadline_caps_the_backoff():
    clock = Clock()
    _, mw, _ = make({"RETRY_MAX_ELAPSED": 10, "RETRY_BACKOFF_BASE": 30.0}, clock=clock)
    req = Request("http://shop.test/a", meta={FIRST_FAILURE: clock.now - 4})
    retry = mw.process_response(req, response(req, 503))
    assert retry.meta[NOT_BEFORE] == pytest.approx(clock.now + 6)  # not +30: sent by the deadline


@pytest.mark.parametrize(
    ("settings", "meta", "budget", "expected"),
    [
        ({"RETRY_TIMES": 3}, {}, "count", 3),  # explicit count, within the time budget: Scrapy's meaning
        ({"RETRY_TIMES": 1000, "RETRY_MAX_ELAPSED": 20}, {}, "time", 3),  # whichever first: the time
        ({}, {"max_retry_times": 2}, "count", 2),
        ({"RETRY_MAX_ELAPSED": 0}, {}, "count", 2),  # no time budget: Scrapy's default count
        ({"RETRY_POLICIES": {"list": {"max_retries": 4}}}, {"stage": "list"}, "count", 4),
        ({"RETRY_POLICIES": {"list": {"max_elapsed": 15}}}, {"stage": "list"}, "time", 3),  # 7.1, 14.2, 15
        ({"RETRY_MAX_ELAPSED": 15, "RETRY_POLICIES": {"list": {"max_elapsed": 0, "max_retries": 5}}},
         {"stage": "list"}, "count", 5),
    ],
)
def test_which_budget_governs(settings, meta, budget, expected):
    crawler, mw, _ = make({"RETRY_BACKOFF_BASE": 7.0, **settings}, clock=Clock())
    assert retries(mw, Request("http://shop.test/a", meta=meta)) == expected
    assert crawler.stats.get_value(f"retry/budget_exhausted/{budget}") == 1


def test_retry_times_at_scrapy_default_priority_is_not_a_count():
    from scrapy.settings import Settings

    from crawler.middlewares.retry import build_policies

    settings = Settings()
    assert build_policies(settings)[0].max_retries is None
    settings.set("RETRY_TIMES", 2, priority="cmdline")
    assert build_policies(settings)[0].max_retries == 2


@pytest.mark.parametrize("value", [-1, "soon", float("inf")])
def test_invalid_time_budget_is_a_config_error(value):
    from crawler.errors import ConfigError

    with pytest.raises(ConfigError, match="RETRY_MAX_ELAPSED"):
        make({"RETRY_MAX_ELAPSED": value})


def test_robots_txt_still_fails_fast_under_the_time_budget():
    from scrapy.http.request import NO_CALLBACK

    _, mw, dead = make({"RETRY_BACKOFF_BASE": 5.0}, clock=Clock())
    robots = Request("http://shop.test/robots.txt", callback=NO_CALLBACK)
    retry = mw.process_response(robots, response(robots, 503))
    assert retry.meta[NOT_BEFORE] - mw.clock.now <= 1.0
    assert retries(mw, robots) == 1
    assert dead.seen == []  # Scrapy's own request: not dead-lettered


# -- drop-in for Scrapy's RetryMiddleware --------------------------------------------


def test_scrapy_reason_keys_beside_ours():
    crawler, mw, _ = make()
    req = Request("http://shop.test/a")
    mw.process_response(req, response(req, 503))
    mw.process_exception(req, TxTimeoutError())
    stats = crawler.stats
    assert stats.get_value("retry/count") == 2
    assert stats.get_value("retry/reason_count/http_503") == 1
    assert stats.get_value("retry/reason_count/503 Service Unavailable") == 1
    assert stats.get_value("retry/reason_count/timeout") == 1
    assert stats.get_value("retry/reason_count/twisted.internet.error.TimeoutError") == 1


def give_up_records(caplog):
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.getMessage().startswith("Gave up retrying")]


@pytest.mark.parametrize(("settings", "meta", "level"), [
    ({}, {}, logging.ERROR),
    ({"RETRY_GIVE_UP_LOG_LEVEL": "WARNING"}, {}, logging.WARNING),
    ({"RETRY_GIVE_UP_LOG_LEVEL": "WARNING"}, {"give_up_log_level": "INFO"}, logging.INFO),
    ({}, {"give_up_log_level": logging.DEBUG}, logging.DEBUG),
])
def test_give_up_log_level_setting_and_meta(caplog, settings, meta, level):
    _, mw, _ = make({"RETRY_TIMES": 0, **settings})
    with caplog.at_level(logging.DEBUG):
        retries(mw, Request("http://shop.test/a", meta=meta))
    assert [lvl for lvl, _ in give_up_records(caplog)] == [level]


def test_invalid_give_up_log_level(caplog):
    from crawler.errors import ConfigError

    with pytest.raises(ConfigError, match="RETRY_GIVE_UP_LOG_LEVEL"):
        make({"RETRY_GIVE_UP_LOG_LEVEL": "LOUD"})
    _, mw, dead = make({"RETRY_TIMES": 0})
    with caplog.at_level(logging.DEBUG):
        retries(mw, Request("http://shop.test/a", meta={"give_up_log_level": "LOUD"}))
    assert [lvl for lvl, _ in give_up_records(caplog)] == [logging.ERROR]  # the setting's, with a warning
    assert any("Invalid meta give_up_log_level" in r.getMessage() for r in caplog.records)
    assert len(dead.seen) == 1  # still dead-lettered


# -- get_retry_request in callbacks ----------------------------------------------------


def test_crawler_get_retry_request_backs_off_classifies_and_dead_letters():
    from crawler.retry import get_retry_request

    clock = Clock()
    crawler, mw, dead = make({"RETRY_TIMES": 1}, clock=clock)
    spider = crawler.spider
    spider.crawler = crawler
    req = Request("http://shop.test/a")
    retry = get_retry_request(req, spider=spider, reason="empty page")
    assert retry.meta["retry_times"] == 1 and retry.meta[NOT_BEFORE] >= clock.now + 1.0
    assert crawler.stats.get_value("retry/reason_count/empty page") == 1  # Scrapy's key
    assert crawler.stats.get_value("retry/reason_count/empty_page") == 1  # ours
    assert mw.process_request(retry) is None  # already delayed: goes through
    assert get_retry_request(retry, spider=spider, reason="503 Service Unavailable") is None
    assert dead.seen == [("http://shop.test/a", "transient", "http_503", 2)]
    assert crawler.stats.get_value("retry/budget_exhausted/count") == 1


def test_crawler_get_retry_request_time_budget():
    from crawler.retry import get_retry_request

    clock = Clock()
    crawler, mw, dead = make({"RETRY_MAX_ELAPSED": 30}, clock=clock)
    crawler.spider.crawler = crawler
    req = Request("http://shop.test/a")
    while (retry := get_retry_request(req, spider=crawler.spider, reason=TxTimeoutError())) is not None:
        req = retry
        clock.now = retry.meta[NOT_BEFORE] + 0.1
    assert dead.seen[0][:3] == ("http://shop.test/a", "transient", "timeout")
    assert crawler.stats.get_value("retry/budget_exhausted/time") == 1


def test_scrapy_get_retry_request_gets_our_backoff():
    """A retry made by Scrapy's get_retry_request is delayed when it reaches the downloader."""
    from scrapy.downloadermiddlewares.retry import get_retry_request as scrapy_get_retry_request

    clock = Clock()
    crawler, mw, _ = make(clock=clock)
    crawler.spider.crawler = crawler
    parent = Request("http://shop.test/a")
    retry = scrapy_get_retry_request(parent, spider=crawler.spider, reason="empty")
    delayed = mw.process_request(retry)
    assert isinstance(delayed, Request) and delayed.meta[NOT_BEFORE] >= clock.now + 1.0
    assert delayed.meta[FIRST_FAILURE] == clock.now and crawler.stats.get_value("retry/from_callback") == 1
    assert mw.process_request(delayed) is None  # once
    # a request yielded with a copy of an earlier retry's meta is not a new retry
    follow = Request("http://shop.test/b", meta=dict(delayed.meta))
    assert mw.process_request(follow) is None
    assert mw.process_request(Request("http://shop.test/c")) is None


def test_scrapy_get_retry_request_giving_up_is_dead_lettered():
    from scrapy.downloadermiddlewares.retry import get_retry_request as scrapy_get_retry_request

    crawler, mw, dead = make()
    crawler.spider.crawler = crawler
    other, other_mw, other_dead = make()
    other.spider.crawler = other
    mw.spider_opened(crawler.spider)
    other_mw.spider_opened(other.spider)
    try:
        req = Request("http://shop.test/a", meta={"retry_times": 2})
        assert scrapy_get_retry_request(req, spider=crawler.spider, max_retry_times=2, reason=TxTimeoutError()) is None
        assert dead.seen == [("http://shop.test/a", "transient", "timeout", 3)]
        assert other_dead.seen == []  # another crawler's give-up is not ours
        # our own give-up record is not counted twice
        assert retries(mw, Request("http://shop.test/b", meta={"max_retry_times": 0})) == 0
        assert [d[0] for d in dead.seen] == ["http://shop.test/a", "http://shop.test/b"]
    finally:
        mw.spider_closed(crawler.spider)
        other_mw.spider_closed(other.spider)
    assert not any(type(h).__name__ == "_ScrapyGiveUpHandler" for h in logging.getLogger().handlers)
