"""Scrapy 2.19's own RetryMiddleware tests, run against ours.

Ported from scrapy/scrapy ``tests/test_downloadermiddleware_retry.py`` (the
version of Scrapy 2.19: its ``retry.py`` is identical to the installed one).
Each deviation is a documented choice, marked ``# DEVIATION:`` where it is
asserted:

* a retry is not sent at once: it is a copy with ``meta["not_before"]``
  (the backoff; :class:`~crawler.scheduler.DelayedScheduler` holds it);
* a DNS "not found" (``CannotResolveHostError("foo")``) is permanent here,
  not retried (only temporary DNS failures are): the tests that used it as a
  generic retryable error use a timeout instead;
* configuration is by settings (``RETRY_TIMES``), not by poking
  ``mw.max_retry_times``;
* our records go to the ``crawler.middlewares.retry`` logger, and a give-up
  message is Scrapy's followed by ``[<class> <reason>; <budget that ran out>]``;
* without an explicit count (``RETRY_TIMES`` above Scrapy's default
  priority, meta ``max_retry_times``, the ``max_retry_times`` argument) the
  time budget ``RETRY_MAX_ELAPSED`` governs instead of Scrapy's 2 retries;
* :func:`crawler.retry.get_retry_request` dead-letters what it gives up and
  also counts our classified reason (``retry/reason_count/unspecified`` is
  both names at once).

The last section pins the Scrapy behaviour the project relies on to treat
callbacks that call Scrapy's own ``get_retry_request``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from scrapy.downloadermiddlewares.retry import get_retry_request as scrapy_get_retry_request
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadTimeoutError,
    IgnoreRequest,
)
from scrapy.http import Request, Response
from scrapy.settings.default_settings import RETRY_EXCEPTIONS
from scrapy.spiders import Spider
from scrapy.utils.spider import DefaultSpider
from scrapy.utils.test import get_crawler
from twisted.internet.error import ConnectError, ConnectionDone, ConnectionLost

from crawler.middlewares.retry import SCRAPY_GIVE_UP_MESSAGE, RetryMiddleware
from crawler.retry import get_retry_request
from crawler.scheduler import NOT_BEFORE
from crawler.signals import request_dead_lettered

OUR_LOGGER = "crawler.middlewares.retry"


def build(settings: dict[str, Any] | None = None) -> RetryMiddleware:
    crawler = get_crawler(DefaultSpider, settings or {})
    crawler.spider = crawler._create_spider()
    return RetryMiddleware.from_crawler(crawler)


def gave_up(caplog: pytest.LogCaptureFixture, level: int, request: Request, times: int, reason: str) -> bool:
    # DEVIATION: our logger; Scrapy's message is the start of ours
    prefix = f"Gave up retrying {request} (failed {times} times): {reason}"
    return any(
        r.name == OUR_LOGGER and r.levelno == level and r.getMessage().startswith(prefix) for r in caplog.records
    )


def retried(caplog: pytest.LogCaptureFixture, request: Request, times: int, reason: str) -> bool:
    prefix = f"Retrying {request} (failed {times} times): {reason}"
    return any(
        r.name == OUR_LOGGER and r.levelno == logging.DEBUG and r.getMessage().startswith(prefix)
        for r in caplog.records
    )


def assert_delayed(request: Any) -> None:
    # DEVIATION: returned with a backoff time, not to be sent at once
    assert isinstance(request, Request)
    assert isinstance(request.meta[NOT_BEFORE], float)


class TestRetry:
    def setup_method(self):
        # DEVIATION: Scrapy sets mw.max_retry_times = 2 after building it
        self.mw = build({"RETRY_TIMES": 2})
        self.crawler = self.mw.crawler

    def test_priority_adjust(self):
        req = Request("http://www.scrapytest.org/503")
        rsp = Response("http://www.scrapytest.org/503", body=b"", status=503)
        req2 = self.mw.process_response(req, rsp)
        assert isinstance(req2, Request)
        assert req2.priority < req.priority

    def test_404(self):
        req = Request("http://www.scrapytest.org/404")
        rsp = Response("http://www.scrapytest.org/404", body=b"", status=404)
        assert self.mw.process_response(req, rsp) is rsp

    def test_dont_retry(self):
        req = Request("http://www.scrapytest.org/503", meta={"dont_retry": True})
        rsp = Response("http://www.scrapytest.org/503", body=b"", status=503)
        assert self.mw.process_response(req, rsp) is rsp

        req = Request("http://www.scrapytest.org/503", meta={"dont_retry": False})
        rsp = Response("http://www.scrapytest.org/503", body=b"", status=503)
        req2 = self.mw.process_response(req, rsp)
        assert_delayed(req2)
        assert req2.meta["retry_times"] == 1

    def test_dont_retry_exc(self):
        req = Request("http://www.scrapytest.org/503", meta={"dont_retry": True})
        assert self.mw.process_exception(req, CannotResolveHostError()) is None

    def test_503(self):
        req = Request("http://www.scrapytest.org/503")
        rsp = Response("http://www.scrapytest.org/503", body=b"", status=503)
        req2 = self.mw.process_response(req, rsp)
        assert_delayed(req2)
        assert req2.meta["retry_times"] == 1
        req3 = self.mw.process_response(req2, rsp)
        assert_delayed(req3)
        assert req3.meta["retry_times"] == 2
        assert self.mw.process_response(req3, rsp) is rsp

        stats = self.crawler.stats
        assert stats.get_value("retry/max_reached") == 1
        assert stats.get_value("retry/reason_count/503 Service Unavailable") == 2
        assert stats.get_value("retry/count") == 2
        assert stats.get_value("retry/reason_count/http_503") == 2  # ours, beside Scrapy's

    def test_give_up_log_level_setting(self, caplog: pytest.LogCaptureFixture) -> None:
        mw = build({"RETRY_GIVE_UP_LOG_LEVEL": "WARNING", "RETRY_TIMES": 0})
        req = Request("http://example.com/503")
        rsp = Response("http://example.com/503", body=b"", status=503)
        with caplog.at_level(logging.WARNING):
            assert mw.process_response(req, rsp) is rsp
        assert gave_up(caplog, logging.WARNING, req, 1, "503 Service Unavailable")

    def test_give_up_log_level_meta(self, caplog: pytest.LogCaptureFixture) -> None:
        mw = build({"RETRY_TIMES": 0})
        req = Request("http://example.com/503", meta={"give_up_log_level": "WARNING"})
        rsp = Response("http://example.com/503", body=b"", status=503)
        with caplog.at_level(logging.WARNING):
            assert mw.process_response(req, rsp) is rsp
        assert gave_up(caplog, logging.WARNING, req, 1, "503 Service Unavailable")

    def test_twistederrors(self):
        exceptions = [
            ConnectError, ConnectionDone, ConnectionLost, DownloadTimeoutError, DownloadConnectionRefusedError,
        ]
        for exc in exceptions:
            req = Request(f"http://www.scrapytest.org/{exc.__name__}")
            self._test_retry_exception(req, exc("foo"))

        stats = self.crawler.stats
        assert stats.get_value("retry/max_reached") == len(exceptions)
        assert stats.get_value("retry/count") == len(exceptions) * 2
        assert stats.get_value("retry/reason_count/scrapy.exceptions.DownloadTimeoutError") == 2

    def test_unknown_host_is_permanent(self):
        # DEVIATION: Scrapy retries CannotResolveHostError("foo") like the others; a name that
        # does not resolve fails again, so it is dead-lettered at once. A temporary DNS failure is retried.
        req = Request("http://www.scrapytest.org/CannotResolveHostError")
        assert self.mw.process_exception(req, CannotResolveHostError("foo")) is None
        self._test_retry_exception(req, CannotResolveHostError("Temporary failure in name resolution"))
        assert self.crawler.stats.get_value("retry/reason_count/scrapy.exceptions.CannotResolveHostError") == 2

    def test_exception_to_retry_added(self):
        exc = ValueError
        mw = build({"RETRY_EXCEPTIONS": [*RETRY_EXCEPTIONS, exc], "RETRY_TIMES": 2})
        req = Request(f"http://www.scrapytest.org/{exc.__name__}")
        self._test_retry_exception(req, exc("foo"), mw)

    def _test_retry_exception(self, req: Request, exception: Exception, mw: RetryMiddleware | None = None) -> None:
        mw = mw or self.mw
        req2 = mw.process_exception(req, exception)
        assert_delayed(req2)
        assert req2.meta["retry_times"] == 1
        req3 = mw.process_exception(req2, exception)
        assert_delayed(req3)
        assert req3.meta["retry_times"] == 2
        assert mw.process_exception(req3, exception) is None


# DEVIATION: Scrapy's tests use CannotResolveHostError("foo"), permanent here; a timeout is transient in both.
RETRYABLE = DownloadTimeoutError("foo")


class TestMaxRetryTimes:
    invalid_url = "http://www.scrapytest.org/invalid_url"

    def get_middleware(self, settings: dict[str, Any] | None = None) -> RetryMiddleware:
        return build(settings)

    def test_with_settings_zero(self):
        self._test_retry(Request(self.invalid_url), RETRYABLE, 0, self.get_middleware({"RETRY_TIMES": 0}))

    def test_with_metakey_zero(self):
        req = Request(self.invalid_url, meta={"max_retry_times": 0})
        self._test_retry(req, RETRYABLE, 0, self.get_middleware())

    def test_without_metakey(self):
        self._test_retry(Request(self.invalid_url), RETRYABLE, 5, self.get_middleware({"RETRY_TIMES": 5}))

    def test_with_metakey_greater(self):
        middleware = self.get_middleware({"RETRY_TIMES": 2})
        self._test_retry(Request(self.invalid_url, meta={"max_retry_times": 3}), RETRYABLE, 3, middleware)
        self._test_retry(Request(self.invalid_url), RETRYABLE, 2, middleware)

    def test_with_metakey_lesser(self):
        middleware = self.get_middleware({"RETRY_TIMES": 5})
        self._test_retry(Request(self.invalid_url, meta={"max_retry_times": 4}), RETRYABLE, 4, middleware)
        self._test_retry(Request(self.invalid_url), RETRYABLE, 5, middleware)

    def test_with_dont_retry(self):
        req = Request(self.invalid_url, meta={"max_retry_times": 4, "dont_retry": True})
        self._test_retry(req, RETRYABLE, 0, self.get_middleware())

    def test_without_a_count_the_time_budget_governs(self):
        # DEVIATION: Scrapy would stop after its default RETRY_TIMES (2); here RETRY_MAX_ELAPSED does
        middleware = self.get_middleware({"RETRY_MAX_ELAPSED": 60})
        now = [1000.0]
        middleware.clock = lambda: now[0]
        req = Request(self.invalid_url)
        for _ in range(10):
            req = middleware.process_exception(req, RETRYABLE)
            assert isinstance(req, Request)
            now[0] += 5
        assert req.meta["retry_times"] == 10
        now[0] += 20  # 70 s after the first failure
        assert middleware.process_exception(req, RETRYABLE) is None
        assert middleware.crawler.stats.get_value("retry/budget_exhausted/time") == 1

    def _test_retry(self, req: Request, exception: Exception, max_retry_times: int, middleware: RetryMiddleware):
        for _ in range(max_retry_times):
            result = middleware.process_exception(req, exception)
            assert_delayed(result)
            req = result
        assert middleware.process_exception(req, exception) is None


class TestGetRetryRequest:
    """Scrapy's tests of ``get_retry_request``, against ``crawler.retry.get_retry_request``."""

    @staticmethod
    def get_spider(settings: dict[str, Any] | None = None) -> Spider:
        crawler = get_crawler(Spider, settings or {})
        return crawler._create_spider("foo")

    def test_basic_usage(self, caplog: pytest.LogCaptureFixture) -> None:
        request = Request("https://example.com")
        spider = self.get_spider()
        with caplog.at_level(logging.DEBUG):
            new_request = get_retry_request(request, spider=spider)
        assert_delayed(new_request)
        assert new_request != request
        assert new_request.dont_filter
        assert new_request.meta["retry_times"] == 1
        assert new_request.priority == -1
        for stat in ("retry/count", "retry/reason_count/unspecified"):
            assert spider.crawler.stats.get_value(stat) == 1
        assert retried(caplog, request, 1, "unspecified")

    def test_max_retries_reached(self, caplog: pytest.LogCaptureFixture) -> None:
        request = Request("https://example.com")
        spider = self.get_spider()
        dead: list[Request] = []
        spider.crawler.signals.connect(lambda request, **kw: dead.append(request), signal=request_dead_lettered,
                                       weak=False)
        with caplog.at_level(logging.DEBUG):
            new_request = get_retry_request(request, spider=spider, max_retry_times=0)
        assert new_request is None
        assert spider.crawler.stats.get_value("retry/max_reached") == 1
        assert gave_up(caplog, logging.ERROR, request, 1, "unspecified")
        assert dead == [request]  # DEVIATION (an addition): dead-lettered

    def test_one_retry(self, caplog: pytest.LogCaptureFixture) -> None:
        request = Request("https://example.com")
        spider = self.get_spider()
        with caplog.at_level(logging.DEBUG):
            new_request = get_retry_request(request, spider=spider, max_retry_times=1)
        assert_delayed(new_request)
        assert new_request.dont_filter
        assert new_request.meta["retry_times"] == 1
        assert new_request.priority == -1
        for stat in ("retry/count", "retry/reason_count/unspecified"):
            assert spider.crawler.stats.get_value(stat) == 1
        assert retried(caplog, request, 1, "unspecified")

    def test_two_retries(self, caplog: pytest.LogCaptureFixture) -> None:
        spider = self.get_spider()
        request = Request("https://example.com")
        new_request: Any = request
        max_retry_times = 2
        for index in range(max_retry_times):
            caplog.clear()
            with caplog.at_level(logging.DEBUG):
                new_request = get_retry_request(new_request, spider=spider, max_retry_times=max_retry_times)
            assert_delayed(new_request)
            assert new_request.dont_filter
            expected_retry_times = index + 1
            assert new_request.meta["retry_times"] == expected_retry_times
            assert new_request.priority == -expected_retry_times
            for stat in ("retry/count", "retry/reason_count/unspecified"):
                assert spider.crawler.stats.get_value(stat) == expected_retry_times
            assert retried(caplog, request, expected_retry_times, "unspecified")
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            new_request = get_retry_request(new_request, spider=spider, max_retry_times=max_retry_times)
        assert new_request is None
        assert spider.crawler.stats.get_value("retry/max_reached") == 1
        assert gave_up(caplog, logging.ERROR, request, max_retry_times + 1, "unspecified")

    def test_no_spider(self):
        with pytest.raises(TypeError):
            get_retry_request(Request("https://example.com"))  # type: ignore[call-arg]

    def test_max_retry_times_setting(self):
        spider = self.get_spider({"RETRY_TIMES": 0})
        assert get_retry_request(Request("https://example.com"), spider=spider) is None

    def test_max_retry_times_meta(self):
        spider = self.get_spider({"RETRY_TIMES": 1})
        request = Request("https://example.com", meta={"max_retry_times": 0})
        assert get_retry_request(request, spider=spider) is None

    def test_max_retry_times_argument(self):
        spider = self.get_spider({"RETRY_TIMES": 1})
        request = Request("https://example.com", meta={"max_retry_times": 1})
        assert get_retry_request(request, spider=spider, max_retry_times=0) is None

    def test_priority_adjust_setting(self):
        spider = self.get_spider({"RETRY_PRIORITY_ADJUST": 1})
        new_request = get_retry_request(Request("https://example.com"), spider=spider)
        assert new_request
        assert new_request.priority == 1

    def test_priority_adjust_argument(self):
        spider = self.get_spider({"RETRY_PRIORITY_ADJUST": 2})
        new_request = get_retry_request(Request("https://example.com"), spider=spider, priority_adjust=1)
        assert new_request
        assert new_request.priority == 1

    def test_log_extra_retry_success(self, caplog: pytest.LogCaptureFixture) -> None:
        spider = self.get_spider()
        with caplog.at_level(logging.DEBUG):
            get_retry_request(Request("https://example.com"), spider=spider)
        assert any(getattr(r, "spider", None) is spider for r in caplog.records)

    def test_log_extra_retries_exceeded(self, caplog: pytest.LogCaptureFixture) -> None:
        spider = self.get_spider()
        with caplog.at_level(logging.DEBUG):
            get_retry_request(Request("https://example.com"), spider=spider, max_retry_times=0)
        assert any(getattr(r, "spider", None) is spider for r in caplog.records)

    def test_reason_string(self, caplog: pytest.LogCaptureFixture) -> None:
        request = Request("https://example.com")
        spider = self.get_spider()
        with caplog.at_level(logging.DEBUG):
            get_retry_request(request, spider=spider, reason="because")
        for stat in ("retry/count", "retry/reason_count/because"):
            assert spider.crawler.stats.get_value(stat) == 1
        assert retried(caplog, request, 1, "because")

    @pytest.mark.parametrize(
        ("reason", "key", "ours"),
        [
            (NotImplementedError(), "builtins.NotImplementedError", "error_NotImplementedError"),
            (NotImplementedError, "builtins.NotImplementedError", "error_NotImplementedError"),
            (IgnoreRequest(), "scrapy.exceptions.IgnoreRequest", "ignored"),
            (IgnoreRequest, "scrapy.exceptions.IgnoreRequest", "ignored"),
        ],
    )
    def test_reason_exception(self, caplog: pytest.LogCaptureFixture, reason: Any, key: str, ours: str) -> None:
        """Scrapy's test_reason_builtin_exception(_class) and test_reason_custom_exception(_class)."""
        request = Request("https://example.com")
        spider = self.get_spider()
        with caplog.at_level(logging.DEBUG):
            get_retry_request(request, spider=spider, reason=reason)
        assert spider.crawler.stats.get_value(f"retry/reason_count/{key}") == 1
        assert spider.crawler.stats.get_value(f"retry/reason_count/{ours}") == 1  # ours, classified
        # Scrapy logs str(reason) of what it was given; we log the exception's class name
        assert retried(caplog, request, 1, key)

    def test_custom_logger(self, caplog: pytest.LogCaptureFixture) -> None:
        logger = logging.getLogger("custom-logger")
        request = Request("https://example.com")
        spider = self.get_spider()
        with caplog.at_level(logging.DEBUG):
            get_retry_request(request, spider=spider, reason="because", logger=logger)
        assert any(
            r.name == "custom-logger" and r.getMessage().startswith(f"Retrying {request} (failed 1 times): because")
            for r in caplog.records
        )

    def test_give_up_log_level_default(self, caplog: pytest.LogCaptureFixture) -> None:
        request = Request("https://example.com")
        with caplog.at_level(logging.ERROR):
            get_retry_request(request, spider=self.get_spider(), max_retry_times=0)
        assert gave_up(caplog, logging.ERROR, request, 1, "unspecified")

    @pytest.mark.parametrize("level", ["WARNING", logging.WARNING])
    def test_give_up_log_level_argument(self, caplog: pytest.LogCaptureFixture, level: Any) -> None:
        request = Request("https://example.com")
        with caplog.at_level(logging.WARNING):
            get_retry_request(request, spider=self.get_spider(), max_retry_times=0, give_up_log_level=level)
        assert gave_up(caplog, logging.WARNING, request, 1, "unspecified")

    def test_give_up_log_level_setting(self, caplog: pytest.LogCaptureFixture) -> None:
        request = Request("https://example.com")
        spider = self.get_spider({"RETRY_GIVE_UP_LOG_LEVEL": "WARNING"})
        with caplog.at_level(logging.WARNING):
            get_retry_request(request, spider=spider, max_retry_times=0)
        assert gave_up(caplog, logging.WARNING, request, 1, "unspecified")

    def test_give_up_log_level_invalid(self):
        with pytest.raises(ValueError, match="Invalid give-up log level"):
            get_retry_request(
                Request("https://example.com"), spider=self.get_spider(), max_retry_times=0,
                give_up_log_level="NOT_A_LEVEL",
            )

    def test_custom_stats_key(self):
        spider = self.get_spider()
        request = Request("https://example.com")
        get_retry_request(request, spider=spider, reason="because", stats_base_key="custom_retry")
        for stat in ("custom_retry/count", "custom_retry/reason_count/because"):
            assert spider.crawler.stats.get_value(stat) == 1


class TestScrapyBehaviourWeRelyOn:
    """What the middleware assumes of Scrapy 2.19's own ``get_retry_request``."""

    @staticmethod
    def get_spider() -> Spider:
        return get_crawler(Spider)._create_spider("foo")

    def test_a_retry_is_a_copy_with_retry_times_bumped_and_no_backoff(self):
        spider = self.get_spider()
        parent = Request("https://example.com", meta={"retry_times": 1, "retry_scheduled": 1, "x": 1})
        retry = scrapy_get_retry_request(parent, spider=spider)
        assert retry is not None and retry.meta["retry_times"] == 2
        assert retry.meta["retry_scheduled"] == 1 and retry.meta["x"] == 1  # meta copied: our mark is stale
        assert NOT_BEFORE not in retry.meta

    def test_giving_up_logs_the_request_and_the_spider(self, caplog: pytest.LogCaptureFixture) -> None:
        spider = self.get_spider()
        request = Request("https://example.com", meta={"retry_times": 2})
        with caplog.at_level(logging.DEBUG):
            assert scrapy_get_retry_request(request, spider=spider, max_retry_times=2, reason="empty") is None
        (record,) = [r for r in caplog.records if r.msg == SCRAPY_GIVE_UP_MESSAGE]
        assert record.args == {"request": request, "retry_times": 3, "reason": "empty"}
        assert record.spider is spider  # type: ignore[attr-defined]
        assert record.name == "scrapy.downloadermiddlewares.retry" and record.levelno == logging.ERROR
        assert spider.crawler.stats.get_value("retry/max_reached") == 1
