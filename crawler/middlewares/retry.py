"""Retry with classified failures, per-stage backoff policies and Retry-After.

Replaces Scrapy's ``RetryMiddleware`` (same position, 550) and keeps its
settings and meta keys: ``RETRY_ENABLED``, ``RETRY_TIMES``,
``RETRY_HTTP_CODES``, ``RETRY_EXCEPTIONS``, ``RETRY_PRIORITY_ADJUST``,
``RETRY_GIVE_UP_LOG_LEVEL``; ``dont_retry``, ``max_retry_times``,
``retry_times``, ``priority_adjust``; stats ``retry/count``,
``retry/reason_count/<reason>``, ``retry/max_reached``.

What it adds:

* every failure is classified (``crawler/failures.py``): transient failures
  are retried, permanent ones (404, 410, 501, invalid URL, ...) never;
* a retry is not sent at once: it waits ``RetryPolicy.delay()`` (fixed,
  linear or exponential backoff with jitter and a cap, and at least the
  server's ``Retry-After`` up to ``RETRY_AFTER_MAX``), through
  ``meta["not_before"]`` and the :class:`~crawler.scheduler.DelayedScheduler`,
  so the wait holds no concurrency slot;
* list and detail requests can have their own policy (``RETRY_POLICIES``);
* a request given up (retries exhausted, or a permanent failure the spider
  does not handle) goes to the dead-letter queue with its class and reason.
  ``RETRY_ENABLED = False`` means no retries, not no dead letters.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Self

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.http.request import NO_CALLBACK
from scrapy.utils.misc import load_object

from crawler import defaults
from crawler.backoff import RetryPolicy, parse_retry_after, policy_from_mapping
from crawler.errors import ConfigError
from crawler.failures import Classifier, Failure
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


def build_policies(settings: Any) -> tuple[RetryPolicy, dict[str, RetryPolicy]]:
    """The default retry policy and the per-stage ones (``RETRY_POLICIES``)."""
    try:
        base = RetryPolicy(
            max_retries=settings.getint("RETRY_TIMES"),
            backoff=str(defaults.get(settings, "RETRY_BACKOFF")),
            base=float(defaults.get(settings, "RETRY_BACKOFF_BASE")),
            cap=float(defaults.get(settings, "RETRY_BACKOFF_MAX")),
            jitter=str(defaults.get(settings, "RETRY_JITTER")),
            retry_after_max=float(defaults.get(settings, "RETRY_AFTER_MAX")),
        )
        stages = {
            stage: policy_from_mapping(values, base)
            for stage, values in (settings.getdict("RETRY_POLICIES") or {}).items()
        }
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"retry settings: {exc}") from None
    return base, stages


class RetryMiddleware:
    """Classify, back off without holding a slot, honour Retry-After, dead-letter."""

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        self.crawler = crawler
        self.stats = crawler.stats
        self.classifier = build_classifier(settings)
        self.policy, self.stage_policies = build_policies(settings)
        if not settings.getbool("RETRY_ENABLED"):
            # no retries, but failures are still classified and dead-lettered
            self.policy = self.policy.with_(max_retries=0)
            self.stage_policies = {}
        self.priority_adjust = settings.getint("RETRY_PRIORITY_ADJUST")
        self.give_up_log_level = settings.get("RETRY_GIVE_UP_LOG_LEVEL", "ERROR")
        self.allowed_codes = {int(c) for c in settings.getlist("HTTPERROR_ALLOWED_CODES")}
        self.allow_all_codes = settings.getbool("HTTPERROR_ALLOW_ALL")
        self.rng = random.Random()
        self.clock = time.time

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def policy_for(self, request: Request) -> RetryPolicy:
        policy = self.stage_policies.get(request.meta.get("stage"), self.policy)
        max_retry_times = request.meta.get("max_retry_times")
        if max_retry_times is not None and not self.crawler.settings.getbool("RETRY_ENABLED"):
            max_retry_times = 0
        if max_retry_times is not None:
            policy = policy.with_(max_retries=int(max_retry_times))
        if request.callback is NO_CALLBACK:
            # Scrapy's internal requests (robots.txt): Scrapy's RobotsTxtMiddleware
            # holds every request of the domain, each with a concurrency slot,
            # until robots.txt is settled, so it fails fast (once retried within
            # a second; a robots.txt that cannot be fetched allows everything).
            policy = policy.with_(max_retries=min(policy.max_retries, 1), cap=min(policy.cap, 1.0))
        return policy

    def process_response(self, request: Request, response: Response) -> Request | Response:
        if request.meta.get("dont_retry", False):
            return response
        failure = self.classifier.classify_status(response.status)
        if failure is None:
            return response
        if failure.transient:
            retry_after = parse_retry_after(response.headers.get(b"Retry-After"), self.clock())
            retry = self._retry(request, failure, retry_after)
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
            retry = self._retry(request, failure, None)
            if retry is not None:
                return retry
        give_up(self.crawler, request, failure, attempts=self._attempts(request), exception=exception)
        return None

    # -- internals -------------------------------------------------------------
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

    def _retry(self, request: Request, failure: Failure, retry_after: float | None) -> Request | None:
        policy = self.policy_for(request)
        done = int(request.meta.get("retry_times", 0))
        if not policy.can_retry(done):
            self.stats.inc_value("retry/max_reached")
            logger.log(
                logging.getLevelName(self.give_up_log_level) if isinstance(self.give_up_log_level, str)
                else self.give_up_log_level,
                "Gave up retrying %(request)s (failed %(times)d times): %(reason)s",
                {"request": request, "times": done + 1, "reason": failure.reason},
            )
            return None
        attempt = done + 1
        delay = policy.delay(attempt, self.rng, retry_after)
        retry = request.copy()
        retry.meta["retry_times"] = attempt
        retry.meta[NOT_BEFORE] = self.clock() + delay
        retry.dont_filter = True
        retry.priority = request.priority + int(request.meta.get("priority_adjust", self.priority_adjust))
        self.stats.inc_value("retry/count")
        self.stats.inc_value(f"retry/reason_count/{failure.reason}")
        if retry_after is not None:
            self.stats.inc_value("retry/retry_after")
        logger.debug(
            "Retrying %(request)s in %(delay).2fs (failed %(times)d times): %(reason)s",
            {"request": request, "delay": delay, "times": attempt, "reason": failure.reason},
        )
        return retry
