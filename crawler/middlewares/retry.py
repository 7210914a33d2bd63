"""Retry with classified failures, per-stage backoff policies, Retry-After and a time budget.

Replaces Scrapy's ``RetryMiddleware`` (same position, 550) and keeps its
settings and meta keys: ``RETRY_ENABLED``, ``RETRY_TIMES``,
``RETRY_HTTP_CODES``, ``RETRY_EXCEPTIONS``, ``RETRY_PRIORITY_ADJUST``,
``RETRY_GIVE_UP_LOG_LEVEL``; ``dont_retry``, ``max_retry_times``,
``retry_times``, ``priority_adjust``, ``give_up_log_level``; stats
``retry/count``, ``retry/reason_count/<reason>`` (Scrapy's reason, e.g.
``503 Service Unavailable``, beside ours, ``http_503``) and
``retry/max_reached``.

What it adds:

* every failure is classified (``crawler/failures.py``): transient failures
  are retried, permanent ones (404, 410, 501, invalid URL, ...) never;
* a budget in time: a transient failure is retried until ``RETRY_MAX_ELAPSED``
  seconds have passed since the request's first failed attempt
  (``meta["retry_first_failure"]``).  A retry count (``RETRY_TIMES`` set
  above Scrapy's default priority, ``meta["max_retry_times"]``, a stage's
  ``max_retries``) applies too, as in Scrapy: whichever runs out first;
* a retry is not sent at once: it waits ``RetryPolicy.delay()`` (fixed,
  linear or exponential backoff with jitter and a cap, and at least the
  server's ``Retry-After`` up to ``RETRY_AFTER_MAX``), through
  ``meta["not_before"]`` and the :class:`~crawler.scheduler.GatedScheduler`,
  so the wait holds no concurrency slot;
* list and detail requests can have their own policy (``RETRY_POLICIES``);
* a request given up (a budget ran out, or a permanent failure the spider
  does not handle) goes to the dead-letter queue with its class and reason.
  ``RETRY_ENABLED = False`` means no retries, not no dead letters;
* spider callbacks: :func:`get_retry_request` (also importable as
  ``crawler.retry.get_retry_request``) has the signature of Scrapy's and
  gives a callback's retries the same classification, budgets, backoff and
  dead letters.  Retries made by Scrapy's own ``get_retry_request`` are
  recognised too: they get the backoff (:meth:`RetryMiddleware.process_request`)
  and, when Scrapy's function gives up, a dead letter (from its "Gave up
  retrying" log record, :class:`_ScrapyGiveUpHandler`).
"""

from __future__ import annotations

import logging
import random
import re
import time
import weakref
from collections.abc import Mapping
from typing import Any, Self

from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.http.request import NO_CALLBACK
from scrapy.utils.misc import load_object
from scrapy.utils.python import global_object_name
from scrapy.utils.response import response_status_message

from crawler import defaults
from crawler.backoff import BUDGET_COUNT, BUDGET_TIME, RetryPolicy, parse_retry_after, policy_from_mapping
from crawler.errors import ConfigError
from crawler.failures import TRANSIENT, Classifier, Failure
from crawler.middlewares import give_up
from crawler.scheduler import NOT_BEFORE
from crawler.signals import request_filtered

logger = logging.getLogger(__name__)


def build_classifier(settings: Any) -> Classifier:
    """The failure classifier the settings describe.

    ``RETRY_HTTP_CODES`` replaces the default transient statuses, and
    ``RETRY_EXCEPTIONS`` the default transient exceptions, only when set above
    Scrapy's default priority (a project, profile or ``-s``).  The retry,
    circuit-breaker and adaptive middlewares all build theirs here, so they
    agree on what is transient.
    """
    codes = None
    if settings.getpriority("RETRY_HTTP_CODES") and settings.getpriority("RETRY_HTTP_CODES") > 0:
        codes = [int(c) for c in settings.getlist("RETRY_HTTP_CODES")]
    extra = {name: tuple(rule) for name, rule in (settings.getdict("FAILURE_EXCEPTIONS") or {}).items()}
    # RETRY_EXCEPTIONS overridden: exactly those exceptions are transient, for every component
    retry_exceptions = None
    if (settings.getpriority("RETRY_EXCEPTIONS") or 0) > 0:
        retry_exceptions = [load_object(x) if isinstance(x, str) else x for x in settings.getlist("RETRY_EXCEPTIONS")]
    try:
        return Classifier.from_settings_values(codes, extra or None, retry_exceptions)
    except ValueError as exc:
        raise ConfigError(f"FAILURE_EXCEPTIONS: {exc}") from None



#: ``request.meta`` key: UNIX time of the request's first failed attempt (the time budget counts from it).
FIRST_FAILURE = "retry_first_failure"
#: ``request.meta`` key: the ``retry_times`` of the last retry this module scheduled.  A request
#: whose ``retry_times`` was bumped by someone else (Scrapy's ``get_retry_request``) lacks it.
RETRY_SCHEDULED = "retry_scheduled"
#: ``request.meta`` key of Scrapy's RetryMiddleware: the give-up log level of one request.
GIVE_UP_LOG_LEVEL = "give_up_log_level"

#: Scrapy 2.19's give-up message, format string and arguments
#: (``scrapy.downloadermiddlewares.retry.get_retry_request``; pinned by tests/test_scrapy_retry_compat.py).
SCRAPY_GIVE_UP_MESSAGE = "Gave up retrying %(request)s (failed %(retry_times)d times): %(reason)s"
#: Ours: the same, plus the classified failure and the budget that ran out.
GIVE_UP_MESSAGE = SCRAPY_GIVE_UP_MESSAGE + " [%(failure)s; %(budget)s]"
RETRY_MESSAGE = (
    "Retrying %(request)s (failed %(retry_times)d times): %(reason)s [%(failure)s; next attempt in %(delay).2fs]"
)
#: A log record attribute marking this module's give-up records (the give-up handler skips them).
_OWN_RECORD = "crawler_retry"

_STATUS_REASON = re.compile(r"^([1-5][0-9]{2})\b")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def _count_is_explicit(settings: Any) -> bool:
    """True when RETRY_TIMES is set above Scrapy's default priority (project, profile, spider, ``-s``)."""
    return (settings.getpriority("RETRY_TIMES") or 0) > 0


def _max_elapsed(value: Any, name: str) -> float | None:
    """A time budget setting: seconds > 0, or 0/None for none."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"invalid setting {name}={value!r}: expected seconds >= 0 (0: no time budget)") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise ConfigError(f"invalid setting {name}={value!r}: expected seconds >= 0 (0: no time budget)")
    return seconds or None


def build_policies(settings: Any) -> tuple[RetryPolicy, dict[str, RetryPolicy]]:
    """The default retry policy and the per-stage ones (``RETRY_POLICIES``).

    The time budget is ``RETRY_MAX_ELAPSED`` (a stage's ``max_elapsed``).  The
    count budget is ``RETRY_TIMES`` only when it is set explicitly (above
    Scrapy's default priority) or when there is no time budget
    (``RETRY_MAX_ELAPSED = 0``); a stage's ``max_retries`` always applies.
    """
    max_elapsed = _max_elapsed(defaults.get(settings, "RETRY_MAX_ELAPSED"), "RETRY_MAX_ELAPSED")
    count = settings.getint("RETRY_TIMES") if _count_is_explicit(settings) or max_elapsed is None else None
    try:
        base = RetryPolicy(
            max_retries=count,
            max_elapsed=max_elapsed,
            backoff=str(defaults.get(settings, "RETRY_BACKOFF")),
            base=float(defaults.get(settings, "RETRY_BACKOFF_BASE")),
            cap=float(defaults.get(settings, "RETRY_BACKOFF_MAX")),
            jitter=str(defaults.get(settings, "RETRY_JITTER")),
            retry_after_max=float(defaults.get(settings, "RETRY_AFTER_MAX")),
        )
        stages = {}
        for stage, values in (settings.getdict("RETRY_POLICIES") or {}).items():
            values = dict(values)
            if "max_elapsed" in values:
                values["max_elapsed"] = _max_elapsed(values["max_elapsed"], f"RETRY_POLICIES[{stage!r}].max_elapsed")
            stages[stage] = policy_from_mapping(values, base)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"retry settings: {exc}") from None
    return base, stages


def _log_level(value: Any) -> int | None:
    """A logging level from a name (``"WARNING"``) or a number; None if it is neither."""
    if isinstance(value, str):
        level = logging.getLevelName(value.upper())
        return level if isinstance(level, int) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def stock_reason(reason: Any) -> str:
    """The reason as Scrapy names it in ``retry/reason_count/<reason>``.

    A status: ``response_status_message`` (``503 Service Unavailable``); an
    exception or exception class: its qualified class name
    (``twisted.internet.error.TimeoutError``); anything else: ``str()``.
    """
    if isinstance(reason, int) and not isinstance(reason, bool):
        return response_status_message(reason)
    if isinstance(reason, type) and issubclass(reason, BaseException):
        return global_object_name(reason)
    if isinstance(reason, BaseException):
        return global_object_name(reason.__class__)
    return str(reason)


def _budget_text(policy: RetryPolicy, budget: str, done: int, elapsed: float) -> str:
    if budget == BUDGET_TIME:
        return (
            f"retry time budget exhausted: {elapsed:.1f}s since the first failure, max_elapsed {policy.max_elapsed:g}s"
        )
    return f"retry count budget exhausted: {done} of max {policy.max_retries} retries"


class RetryMiddleware:
    """Classify, back off without holding a slot, honour Retry-After, budget in count and time, dead-letter."""

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        self.crawler = crawler
        self.stats = crawler.stats
        self.enabled = settings.getbool("RETRY_ENABLED")
        self.classifier = build_classifier(settings)
        #: the policies get_retry_request uses (RETRY_ENABLED concerns this middleware only, as in Scrapy)
        self.spider_policy, self.spider_stage_policies = build_policies(settings)
        self.policy, self.stage_policies = self.spider_policy, self.spider_stage_policies
        if not self.enabled:
            # no retries, but failures are still classified and dead-lettered
            self.policy = self.policy.with_(max_retries=0)
            self.stage_policies = {}
        self.priority_adjust = settings.getint("RETRY_PRIORITY_ADJUST")
        self.give_up_log_level = settings.get("RETRY_GIVE_UP_LOG_LEVEL", "ERROR")
        level = _log_level(self.give_up_log_level)
        if level is None:
            raise ConfigError(
                f"invalid setting RETRY_GIVE_UP_LOG_LEVEL={self.give_up_log_level!r}: expected a log level"
            )
        self._give_up_level = level
        self.allowed_codes = {int(c) for c in settings.getlist("HTTPERROR_ALLOWED_CODES")}
        self.allow_all_codes = settings.getbool("HTTPERROR_ALLOW_ALL")
        self.rng = random.Random()
        self.clock = time.time
        self._handler: _ScrapyGiveUpHandler | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        mw = cls(crawler)
        _INSTANCES[crawler] = mw  # what get_retry_request uses
        crawler.signals.connect(mw.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(mw.spider_closed, signal=signals.spider_closed)
        return mw

    @classmethod
    def of(cls, crawler: Crawler) -> RetryMiddleware:
        """The crawler's retry middleware; one built from its settings if it has none enabled."""
        mw = _INSTANCES.get(crawler)
        if mw is None:
            mw = _INSTANCES[crawler] = RetryMiddleware(crawler)
        return mw

    # -- Scrapy's get_retry_request in callbacks ------------------------------------
    def spider_opened(self, spider: Spider) -> None:
        """Start dead-lettering what Scrapy's ``get_retry_request`` gives up in this crawl's callbacks."""
        if self._handler is None:
            self._handler = _ScrapyGiveUpHandler(self)
            logging.getLogger().addHandler(self._handler)

    def spider_closed(self, spider: Spider) -> None:
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler = None

    def process_request(self, request: Request) -> Request | None:
        """Delay a retry made by Scrapy's ``get_retry_request`` in a callback: it gets our backoff.

        Such a request has ``retry_times`` bumped but not :data:`RETRY_SCHEDULED`
        (a request yielded with a copy of ``response.meta`` keeps both equal).
        It goes back to the scheduler with ``meta["not_before"]``; its first
        failure is its parent's, or now.
        """
        meta = request.meta
        times = meta.get("retry_times")
        if not isinstance(times, int) or times < 1 or meta.get(RETRY_SCHEDULED) == times:
            return None
        now = self.clock()
        first = _time_or(meta.get(FIRST_FAILURE), now)
        policy = self.policy_for(request, spider_retry=True)
        delay = policy.delay(times, self.rng, remaining=policy.remaining(now - first))
        retry = request.copy()
        retry.meta[RETRY_SCHEDULED] = times
        retry.meta[FIRST_FAILURE] = first
        retry.meta[NOT_BEFORE] = now + delay
        self.stats.inc_value("retry/from_callback")
        logger.debug(
            "Delaying %(request)s, retried by its callback, by %(delay).2fs", {"request": request, "delay": delay}
        )
        return retry

    def spider_gave_up(self, request: Request, reason: Any, retry_times: int) -> None:
        """Scrapy's ``get_retry_request`` gave ``request`` up in a callback: dead-letter it."""
        failure = self.spider_failure(reason)
        self.stats.inc_value(f"retry/budget_exhausted/{BUDGET_COUNT}")
        exception = reason if isinstance(reason, BaseException) else None
        give_up(self.crawler, request, failure, attempts=retry_times, exception=exception)

    def spider_failure(self, reason: Any) -> Failure:
        """The failure a callback names when it asks for a retry (always transient: the spider wants a retry).

        An exception is classified for its reason (``timeout``); a string
        starting with a status (``"503 Service Unavailable"``) is
        ``http_503``; any other string is its snake_case form (``"empty"``).
        """
        if isinstance(reason, type) and issubclass(reason, BaseException):
            return Failure(TRANSIENT, f"error_{reason.__name__}")
        if isinstance(reason, BaseException):
            return Failure(TRANSIENT, self.classifier.classify_exception(reason).reason)
        text = str(reason)
        status = _STATUS_REASON.match(text)
        if status:
            return Failure(TRANSIENT, f"http_{status.group(1)}")
        return Failure(TRANSIENT, _NOT_SLUG.sub("_", text.lower()).strip("_")[:60] or "unspecified")

    # -- policies -------------------------------------------------------------
    def policy_for(
        self, request: Request, max_retry_times: int | None = None, *, spider_retry: bool = False
    ) -> RetryPolicy:
        """The policy of ``request``: its stage's, with a ``max_retry_times`` (argument, else meta) as count budget."""
        default, stages = (self.spider_policy, self.spider_stage_policies) if spider_retry else (
            self.policy, self.stage_policies)
        policy = stages.get(request.meta.get("stage"), default)
        if max_retry_times is None:
            max_retry_times = request.meta.get("max_retry_times")
        if max_retry_times is not None:
            policy = policy.with_(max_retries=int(max_retry_times) if self.enabled or spider_retry else 0)
        if request.callback is NO_CALLBACK:
            # Scrapy's internal requests (robots.txt): Scrapy's RobotsTxtMiddleware
            # holds every request of the domain, each with a concurrency slot,
            # until robots.txt is settled, so it fails fast (once retried within
            # a second; a robots.txt that cannot be fetched allows everything).
            count = 1 if policy.max_retries is None else min(policy.max_retries, 1)
            policy = policy.with_(max_retries=count, cap=min(policy.cap, 1.0), max_elapsed=None)
        return policy

    # -- downloader middleware ---------------------------------------------------
    def process_response(self, request: Request, response: Response) -> Request | Response:
        if request.meta.get("dont_retry", False):
            return response
        failure = self.classifier.classify_status(response.status)
        if failure is None:
            return response
        if failure.transient:
            retry_after = parse_retry_after(response.headers.get(b"Retry-After"), self.clock())
            retry = self.retry(request, failure, response_status_message(response.status), retry_after=retry_after)
            if retry is not None:
                return retry
        if not self._spider_handles(request, response.status):
            give_up(self.crawler, request, failure, attempts=self._attempts(request), status=response.status)
        return response

    def process_exception(self, request: Request, exception: Exception) -> Request | None:
        if isinstance(exception, IgnoreRequest):
            # a decision (robots.txt, offsite, a domain given up), not a download failure
            self.crawler.signals.send_catch_log(signal=request_filtered, request=request, reason=str(exception))
            return None
        failure = self.classifier.classify_exception(exception)
        if failure.transient and not request.meta.get("dont_retry", False):
            retry = self.retry(request, failure, stock_reason(exception))
            if retry is not None:
                return retry
        give_up(self.crawler, request, failure, attempts=self._attempts(request), exception=exception)
        return None

    # -- the decision ----------------------------------------------------------------
    def retry(
        self,
        request: Request,
        failure: Failure,
        reason: str,
        *,
        retry_after: float | None = None,
        max_retry_times: int | None = None,
        priority_adjust: int | None = None,
        give_up_log_level: int | None = None,
        log: logging.Logger = logger,
        stats_base_key: str = "retry",
        spider_retry: bool = False,
        spider: Spider | None = None,
    ) -> Request | None:
        """A delayed copy of ``request`` to retry it after ``failure``, or None when a budget ran out.

        ``reason`` is Scrapy's name of the failure (``503 Service Unavailable``),
        counted in ``<stats_base_key>/reason_count/`` beside ``failure.reason``.
        Does not dead-letter: the caller does, when it gives up.
        """
        policy = self.policy_for(request, max_retry_times, spider_retry=spider_retry)
        now = self.clock()
        first = _time_or(request.meta.get(FIRST_FAILURE), now)
        elapsed = max(0.0, now - first)
        done = int(request.meta.get("retry_times", 0))
        budget = policy.exhausted(done, elapsed)
        failure_text = f"{failure.kind} {failure.reason}"
        args = {"request": request, "retry_times": done + 1, "reason": reason, "failure": failure_text}
        extra = {"spider": spider if spider is not None else self.crawler.spider, _OWN_RECORD: True}
        if budget is not None:
            self.stats.inc_value(f"{stats_base_key}/max_reached")
            self.stats.inc_value(f"{stats_base_key}/budget_exhausted/{budget}")
            level = give_up_log_level if give_up_log_level is not None else self._meta_give_up_level(request)
            budget_text = _budget_text(policy, budget, done, elapsed)
            log.log(level, GIVE_UP_MESSAGE, {**args, "budget": budget_text}, extra=extra)
            return None
        attempt = done + 1
        delay = policy.delay(attempt, self.rng, retry_after, remaining=policy.remaining(elapsed))
        retry = request.copy()
        retry.meta["retry_times"] = attempt
        retry.meta[RETRY_SCHEDULED] = attempt
        retry.meta[FIRST_FAILURE] = first
        retry.meta[NOT_BEFORE] = now + delay
        retry.dont_filter = True
        if priority_adjust is None:
            priority_adjust = int(request.meta.get("priority_adjust", self.priority_adjust))
        retry.priority = request.priority + priority_adjust
        self.stats.inc_value(f"{stats_base_key}/count")
        self.stats.inc_value(f"{stats_base_key}/reason_count/{failure.reason}")
        if reason != failure.reason:  # Scrapy's name, for dashboards built on the stock middleware
            self.stats.inc_value(f"{stats_base_key}/reason_count/{reason}")
        if retry_after is not None:
            self.stats.inc_value(f"{stats_base_key}/retry_after")
        log.debug(RETRY_MESSAGE, {**args, "retry_times": attempt, "delay": delay}, extra=extra)
        return retry

    # -- internals -------------------------------------------------------------
    def _meta_give_up_level(self, request: Request) -> int:
        value = request.meta.get(GIVE_UP_LOG_LEVEL)
        if value is None:
            return self._give_up_level
        level = _log_level(value)
        if level is None:
            # Scrapy raises ValueError here; in a downloader middleware that would turn the
            # give-up into an unrelated exception and lose the dead letter
            logger.warning(
                "Invalid meta give_up_log_level %r of %s: using %s",
                value,
                request,
                self.give_up_log_level,
                extra={"request": request},
            )
            return self._give_up_level
        return level

    @staticmethod
    def _attempts(request: Request) -> int:
        return int(request.meta.get("retry_times", 0)) + 1

    def _spider_handles(self, request: Request, status: int) -> bool:
        """True when the spider asked for responses with this status (HttpErrorMiddleware's rules)."""
        meta = request.meta
        if meta.get("handle_httpstatus_all") or self.allow_all_codes:
            return True
        if "handle_httpstatus_list" in meta:
            return status in meta["handle_httpstatus_list"]
        spider = self.crawler.spider
        return status in getattr(spider, "handle_httpstatus_list", ()) or status in self.allowed_codes


#: The middleware of each crawler (built by Scrapy, or by :meth:`RetryMiddleware.of` when not enabled).
_INSTANCES: weakref.WeakKeyDictionary[Crawler, RetryMiddleware] = weakref.WeakKeyDictionary()


def _time_or(value: Any, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


class _ScrapyGiveUpHandler(logging.Handler):
    """Dead-letters the requests Scrapy's ``get_retry_request`` gives up in one crawler's callbacks.

    Scrapy's function returns None and logs ``"Gave up retrying %(request)s
    ..."`` with the request in the record's arguments and ``extra={"spider":
    spider}``: that record is the only trace of which request was given up.
    Installed on the root logger while the spider is open, so a custom
    ``logger=`` that propagates is seen too.
    """

    def __init__(self, mw: RetryMiddleware) -> None:
        super().__init__(logging.NOTSET)
        self.mw = mw

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg != SCRAPY_GIVE_UP_MESSAGE or getattr(record, _OWN_RECORD, False):
            return
        args = record.args
        if not isinstance(args, Mapping):
            return
        request = args.get("request")
        spider = getattr(record, "spider", None)
        if not isinstance(request, Request) or getattr(spider, "crawler", None) is not self.mw.crawler:
            return
        retry_times = args.get("retry_times")
        self.mw.spider_gave_up(request, args.get("reason"), retry_times if isinstance(retry_times, int) else 1)


def get_retry_request(
    request: Request,
    *,
    spider: Spider,
    reason: str | Exception | type[Exception] = "unspecified",
    max_retry_times: int | None = None,
    priority_adjust: int | None = None,
    logger: logging.Logger = logger,
    give_up_log_level: int | str | None = None,
    stats_base_key: str = "retry",
) -> Request | None:
    """Scrapy's ``get_retry_request`` with this project's retries: call it from a callback the same way.

    Returns a copy of ``request`` to retry, delayed by the backoff
    (``meta["not_before"]``), or None when a budget ran out, in which case
    ``request`` is also dead-lettered (with the reason classified: an
    exception as the downloader's would be, ``"503 ..."`` as ``http_503``,
    another string in snake_case).  The budgets are the middleware's: the
    time budget, and a count when ``max_retry_times`` (argument, else meta),
    an explicit ``RETRY_TIMES`` or the stage's ``max_retries`` gives one.
    As in Scrapy, ``RETRY_ENABLED`` does not apply here.  The give-up level
    is ``give_up_log_level``, else ``meta["give_up_log_level"]``, else
    ``RETRY_GIVE_UP_LOG_LEVEL``; an invalid argument is a ValueError.
    """
    mw = RetryMiddleware.of(spider.crawler)
    if callable(reason):  # an exception class, as Scrapy accepts
        reason = reason()
    level = None
    if give_up_log_level is not None:
        level = _log_level(give_up_log_level)
        if level is None:
            raise ValueError(f"Invalid give-up log level: {give_up_log_level!r}")
    failure = mw.spider_failure(reason)
    retry = mw.retry(
        request, failure, stock_reason(reason), max_retry_times=max_retry_times, priority_adjust=priority_adjust,
        give_up_log_level=level, log=logger, stats_base_key=stats_base_key, spider_retry=True, spider=spider,
    )
    if retry is None:
        exception = reason if isinstance(reason, BaseException) else None
        give_up(mw.crawler, request, failure, attempts=mw._attempts(request), exception=exception)
    return retry
