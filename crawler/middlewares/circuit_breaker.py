"""Per-domain circuit breakers: park a failing domain's requests, give up on a dead one.

One :class:`~crawler.circuit_breaker.CircuitBreaker` per download slot (the
domain, or ``meta["download_slot"]``).  Transient failures (as classified by
the retry middleware's classifier) count against it; any other answer of the
server counts as health.  While a domain's breaker is open its requests are
**parked**: sent back to the scheduler with ``meta["not_before"]`` set to the
end of the cooldown, not dropped and not charged a retry, holding no slot
(:class:`~crawler.scheduler.DelayedScheduler`), while other domains run at
full speed.  Half-open, a few probes go through; their outcome closes or
re-opens it.  Once the breaker gives up (``max_trips`` trips or
``max_open_seconds`` open in total) that domain's parked and new requests go
to the dead-letter queue with reason ``circuit_open``.

Order 560: after the retry middleware (550) on the way in, before it on the
way out, so it sees every raw outcome.  Settings: ``CIRCUIT_BREAKER_ENABLED``,
``CIRCUIT_BREAKER`` (fields of :class:`~crawler.circuit_breaker.BreakerConfig`),
``CIRCUIT_BREAKER_RECHECK``.  Stats: ``breaker/trips``, ``breaker/parked``,
``breaker/gave_up``, ``breaker/state/<domain>``.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Self

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Response

from crawler import defaults
from crawler.circuit_breaker import OPEN, BreakerConfig, BreakerRegistry, CircuitBreaker, Transition
from crawler.errors import ConfigError
from crawler.failures import TRANSIENT, Failure
from crawler.middlewares import give_up
from crawler.middlewares.retry import build_classifier
from crawler.scheduler import NOT_BEFORE

logger = logging.getLogger(__name__)

#: ``request.meta`` key set on requests a breaker let through (to report their outcome once).
ALLOWED = "_breaker_allowed"
CIRCUIT_OPEN = Failure(TRANSIENT, "circuit_open")


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
        self.crawler = crawler
        self.stats = crawler.stats
        self.classifier = build_classifier(settings)
        self.recheck = float(defaults.get(settings, "CIRCUIT_BREAKER_RECHECK"))
        self.clock = time.monotonic
        self.rng = random.Random()
        self.breakers = BreakerRegistry(config, self.clock, self.rng, on_transition=self._transition)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def breaker_for(self, request: Request) -> CircuitBreaker:
        return self.breakers.get(self.crawler.engine.downloader.get_slot_key(request))

    def process_request(self, request: Request) -> Request | None:
        breaker = self.breaker_for(request)
        if breaker.gave_up:
            self.stats.inc_value("breaker/gave_up")
            give_up(self.crawler, request, CIRCUIT_OPEN, attempts=int(request.meta.get("retry_times", 0)))
            raise IgnoreRequest(f"circuit open for {breaker.key}: gave up after {breaker.trips} trips")
        if breaker.allow():
            request.meta[ALLOWED] = True
            return None
        # Park: back to the scheduler until the cooldown ends (no slot held, no retry charged).
        retry_at = breaker.retry_at()
        wait = (retry_at - self.clock()) if retry_at is not None else 0.0
        wait += self.recheck * (0.5 + self.rng.random())  # spread the parked requests out
        parked = request.replace(dont_filter=True)
        parked.meta[NOT_BEFORE] = time.time() + wait
        parked.meta.pop(ALLOWED, None)
        self.stats.inc_value("breaker/parked")
        return parked

    def process_response(self, request: Request, response: Response) -> Response:
        if request.meta.pop(ALLOWED, False):
            breaker = self.breaker_for(request)
            failure = self.classifier.classify_status(response.status)
            if failure is not None and failure.transient:
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
