"""Per-domain circuit breakers: hold a failing domain's requests, give up on a dead one.

One :class:`~crawler.circuit_breaker.CircuitBreaker` per download slot (the
domain, or ``meta["download_slot"]``).  What counts against it is a host
that is *down*: transient failures (as classified by the retry middleware's
classifier: refused or reset connections, timeouts, 5xx).  A 429, or any
response with ``Retry-After``, means "slow down", not "down": the server
answered, so it counts as health (the adaptive controller paces the domain).

The breaker is a scheduler gate (:class:`~crawler.scheduler.GatedScheduler`,
order 300): while a domain's breaker is open its requests wait in the
scheduler's line ``breaker:<domain>`` until the cooldown ends, holding no
slot and charged no retry, while other domains run at full speed.
Half-open, the scheduler hands out ``half_open_probes`` requests (the probe
is reserved when the request is handed out, so nothing parks it) and holds
the rest until the probes' outcome closes or re-opens the breaker.  Once the
breaker gives up (``max_trips`` trips or ``max_open_seconds`` open in total)
that domain's requests go to the dead-letter queue with reason
``circuit_open``.  Requests that do not come through the scheduler
(``engine.download()``, e.g. robots.txt) are neither held nor counted.

Order 560: after the retry middleware (550) on the way in, before it on the
way out, so it sees every raw outcome.  Settings: ``CIRCUIT_BREAKER_ENABLED``,
``CIRCUIT_BREAKER`` (fields of :class:`~crawler.circuit_breaker.BreakerConfig`).
Stats: ``breaker/trips``, ``breaker/gave_up``, ``breaker/state/<domain>``,
``scheduler/held/breaker``.  Every state change is also sent as the
project signal ``breaker_changed`` (:mod:`crawler.signals`): the adaptive
controller reads an open breaker as an outage, not an overload.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Self

from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Response

from crawler import defaults
from crawler.circuit_breaker import OPEN, BreakerConfig, BreakerRegistry, CircuitBreaker, Transition
from crawler.errors import ConfigError
from crawler.failures import TRANSIENT, Failure
from crawler.middlewares import give_up
from crawler.middlewares.retry import build_classifier
from crawler.pace import says_slow_down
from crawler.scheduler import Hold, require_gated_scheduler
from crawler.signals import breaker_changed

logger = logging.getLogger(__name__)

#: ``request.meta`` key set on requests a breaker let through (to report their outcome once).
ALLOWED = "_breaker_allowed"
CIRCUIT_OPEN = Failure(TRANSIENT, "circuit_open")
#: Order of the breaker among the scheduler's gates.
GATE_ORDER = 300


class CircuitBreakerMiddleware:
    """Downloader middleware wrapping one circuit breaker per download slot."""

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        if not settings.getbool("CIRCUIT_BREAKER_ENABLED", defaults.CIRCUIT_BREAKER_ENABLED):
            raise NotConfigured
        try:
            config = BreakerConfig(**(settings.getdict("CIRCUIT_BREAKER") or {}))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"CIRCUIT_BREAKER: {exc}") from None
        require_gated_scheduler(settings, "CIRCUIT_BREAKER_ENABLED")
        self.crawler = crawler
        self.stats = crawler.stats
        self.classifier = build_classifier(settings)
        self.clock = time.monotonic
        self.rng = random.Random()
        self.breakers = BreakerRegistry(config, self.clock, self.rng, on_transition=self._transition)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        mw = cls(crawler)
        crawler.signals.connect(mw.spider_opened, signal=signals.spider_opened)
        return mw

    def spider_opened(self, spider: Spider) -> None:
        self.crawler.engine.scheduler.add_gate(self, GATE_ORDER)

    def breaker_for(self, request: Request) -> CircuitBreaker:
        return self.breakers.get(self.crawler.engine.downloader.get_slot_key(request))

    # -- scheduler gate ------------------------------------------------------------------
    def hold(self, request: Request, now: float) -> Hold | None:
        """Open: wait until the cooldown ends; half-open with its probes out: wait for their outcome."""
        breaker = self.breaker_for(request)
        if breaker.gave_up or breaker.would_allow():
            return None  # a domain given up on: process_request dead-letters the request
        retry_at = breaker.retry_at()
        until = None if retry_at is None else now + max(0.0, retry_at - self.clock())
        return Hold(f"breaker:{breaker.key}", until)

    def admitted(self, request: Request) -> None:
        breaker = self.breaker_for(request)
        if not breaker.gave_up and breaker.allow():
            request.meta[ALLOWED] = True

    # -- downloader middleware -------------------------------------------------------------
    def process_request(self, request: Request) -> None:
        breaker = self.breaker_for(request)
        if breaker.gave_up:
            request.meta.pop(ALLOWED, None)
            self.stats.inc_value("breaker/gave_up")
            give_up(self.crawler, request, CIRCUIT_OPEN, attempts=int(request.meta.get("retry_times", 0)))
            raise IgnoreRequest(f"circuit open for {breaker.key}: gave up after {breaker.trips} trips")
        return None

    def process_response(self, request: Request, response: Response) -> Response:
        if request.meta.pop(ALLOWED, False):
            breaker = self.breaker_for(request)
            failure = self.classifier.classify_status(response.status)
            slow_down = says_slow_down(response.status, b"Retry-After" in response.headers)
            if failure is not None and failure.transient and not slow_down:
                breaker.record_failure()
            else:
                breaker.record_success()
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        if request.meta.pop(ALLOWED, False):
            breaker = self.breaker_for(request)
            if not isinstance(exception, IgnoreRequest) and self.classifier.classify_exception(exception).transient:
                breaker.record_failure()
            else:
                breaker.release()
        return None

    def _transition(self, t: Transition) -> None:
        self.stats.set_value(f"breaker/state/{t.key}", t.new.value)
        if t.new is OPEN:
            self.stats.inc_value("breaker/trips")
            logger.warning(
                "Circuit breaker for %s: %s -> open for %.1fs (%s)", t.key, t.old.value, t.cooldown or 0, t.reason
            )
        else:
            logger.info("Circuit breaker for %s: %s -> %s (%s)", t.key, t.old.value, t.new.value, t.reason)
        self.crawler.signals.send_catch_log(
            signal=breaker_changed, key=t.key, old=t.old.value, new=t.new.value, reason=t.reason
        )
