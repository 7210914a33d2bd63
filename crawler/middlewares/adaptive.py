"""Adaptive per-domain concurrency and pace (sense → judge → act).

Sense: every response or download error of a domain (download slot) is
recorded by its :class:`~crawler.adaptive.DomainSensor` (latency, and
whether it was ok, an overload 429/503, a timeout or another error), with
the number of requests in flight; every ``ADAPTIVE_INTERVAL`` the process is
sampled (CPU, RSS, reactor lag) into :class:`~crawler.adaptive.SystemStatus`.

Judge: per domain, when an interval has enough outcomes (or at once on a
flood of 429/503s), :class:`~crawler.adaptive.Judge` decides the new limit
(AIMD within the crawl profile's bounds).

Act: the limit is the download slot's ``concurrency``; it is re-applied to
the slot on every request when it reaches the downloader (signal
``request_reached_downloader``: its slot exists, its queue has not started
yet), so it survives Scrapy's
idle-slot cleanup (a recreated slot would start from
``CONCURRENT_REQUESTS_PER_DOMAIN``).
``CONCURRENT_REQUESTS_PER_DOMAIN`` caps the maximum and ``DOWNLOAD_DELAY``
is the minimum delay, so those stay hard limits.  A
domain still overloaded at its minimum concurrency gets a growing delay
(up to ``ADAPTIVE_DELAY_MAX``), shrinking back to ``ADAPTIVE_DELAY_MIN``
once it recovers.

Pace: a 429, or any error response with ``Retry-After``, means "slow down"
(:mod:`crawler.pace`): it never lowers the concurrency limit, it pauses the
domain for the ``Retry-After`` (its requests wait in the scheduler's line
``pause:<domain>``: this middleware is a scheduler gate, order 200) and sets
the domain's pace just under the rate the site accepted, probed upward
again every few seconds.  The slot's delay is the larger of the pace's
interval and the AIMD delay.

Outage: an interval in which nearly every request failed, or the
project signal ``breaker_changed`` with a breaker gone ``open``
(:mod:`crawler.signals`), says the site is down: the cuts that led there set
no ceiling and once it answers again the limit doubles back to where it was.

Stats: ``adaptive/concurrency/<domain>``, ``adaptive/delay/<domain>``,
``adaptive/decisions/<action>``, ``adaptive/site_down`` (breakers that
opened, read as outages), ``adaptive/stale_overloads`` (503s of
requests already in flight at the last decrease: not judged again),
``pace/rate/<domain>`` (requests/s, 0 unpaced), ``pace/cuts``,
``pace/stale_slow_downs``, ``pace/pauses``.  Decisions are
logged at DEBUG.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Self
from weakref import WeakSet

import psutil
from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Response
from twisted.internet.task import LoopingCall

from crawler import defaults
from crawler.adaptive import (
    AimdConfig,
    Bounds,
    DomainSensor,
    Judge,
    SystemSample,
    SystemStatus,
)
from crawler.backoff import parse_retry_after
from crawler.errors import ConfigError
from crawler.middlewares.retry import build_classifier
from crawler.pace import Pace, PaceConfig, says_slow_down
from crawler.scheduler import Hold, require_gated_scheduler
from crawler.signals import breaker_changed

logger = logging.getLogger(__name__)

OVERLOAD_STATUSES = frozenset({503})
#: The delay grows only when the overload share is this many times the judge's threshold
#: (a few random 503s at the minimum concurrency are not a reason to crawl slower still).
DELAY_OVERLOAD_FACTOR = 4
#: Order of the pause among the scheduler's gates.
GATE_ORDER = 200


class Domain:
    """The controller state of one download slot."""

    def __init__(
        self, key: str, bounds: Bounds, config: AimdConfig, pace: PaceConfig, delay: float, now: float
    ) -> None:
        self.key = key
        self.sensor = DomainSensor(bounds.start, start=now)
        self.judge = Judge(config)
        self.pace = Pace(pace)
        self.delay = delay
        self.last = now
        #: Requests in flight when the limit was last decreased: their overloads are stale.
        self.in_flight_at_cut: WeakSet[Request] = WeakSet()

    @property
    def slot_delay(self) -> float:
        """The download slot's delay: the AIMD delay or the pace's interval, whichever is longer."""
        return max(self.delay, self.pace.interval)

    def act(self, slot: Any) -> None:
        """Give the download slot (if it exists) this domain's limit and delay."""
        if slot is not None:
            if slot.concurrency != self.sensor.limit:
                slot.concurrency = self.sensor.limit
            if slot.delay != self.slot_delay:
                slot.delay = self.slot_delay


class AdaptiveConcurrencyMiddleware:
    """Downloader middleware and scheduler gate: per-domain AIMD concurrency, pace and pauses."""

    def __init__(self, crawler: Crawler) -> None:
        s = crawler.settings
        if not s.getbool("ADAPTIVE_ENABLED", defaults.ADAPTIVE_ENABLED):
            raise NotConfigured
        get = lambda name: defaults.get(s, name)  # noqa: E731
        try:
            # CONCURRENT_REQUESTS_PER_DOMAIN and DOWNLOAD_DELAY stay hard limits
            high = min(int(get("ADAPTIVE_CONCURRENCY_MAX")), s.getint("CONCURRENT_REQUESTS_PER_DOMAIN"))
            low = min(int(get("ADAPTIVE_CONCURRENCY_MIN")), high)
            self.bounds = Bounds(low, min(max(int(get("ADAPTIVE_CONCURRENCY_START")), low), high), high)
            self.aimd = AimdConfig(**(s.getdict("ADAPTIVE_AIMD") or {}))
            retry_after_max = float(get("RETRY_AFTER_MAX"))
            self.pace_config = PaceConfig(**{"retry_after_max": retry_after_max, **(s.getdict("ADAPTIVE_PACE") or {})})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"adaptive concurrency settings: {exc}") from None
        self.delay_min = max(float(get("ADAPTIVE_DELAY_MIN")), s.getfloat("DOWNLOAD_DELAY"))
        self.delay_max = max(self.delay_min, float(get("ADAPTIVE_DELAY_MAX")))
        self.interval = float(get("ADAPTIVE_INTERVAL"))
        memory_mb = float(get("ADAPTIVE_MEMORY_LIMIT_MB") or 0)
        self.system = SystemStatus(
            cpu_max=float(get("ADAPTIVE_CPU_MAX")),
            rss_max_bytes=int(memory_mb * 2**20) if memory_mb > 0 else None,
            lag_max=float(get("ADAPTIVE_LAG_MAX")),
        )
        require_gated_scheduler(s, "ADAPTIVE_ENABLED")
        self.crawler = crawler
        self.stats = crawler.stats
        self.classifier = build_classifier(s)
        self.domains: dict[str, Domain] = {}
        self.clock = time.monotonic
        self._process = psutil.Process(os.getpid())
        self._cpu_last: tuple[float, float] | None = None
        self._tick_expected: float | None = None
        self._loop: LoopingCall | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        mw = cls(crawler)
        crawler.signals.connect(mw.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(mw.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(mw.request_reached_downloader, signal=signals.request_reached_downloader)
        crawler.signals.connect(mw.breaker_changed, signal=breaker_changed)
        return mw

    # -- signals -----------------------------------------------------------------
    def spider_opened(self, spider: Spider) -> None:
        self.crawler.engine.scheduler.add_gate(self, GATE_ORDER)
        self._loop = LoopingCall(self.tick)
        self._tick_expected = self.clock() + self.interval  # the first tick is one interval away
        self._loop.start(self.interval, now=False)

    def spider_closed(self, spider: Spider) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def breaker_changed(self, key: str, old: str, new: str, **kwargs: Any) -> None:
        """A domain's circuit breaker opened (the site is down, not overloaded) or closed again.

        See :meth:`Judge.site_down` and :meth:`Judge.site_back`.  Either way the
        outcomes collected so far belong to the outage (the late failures of
        what was in flight, the failed probes): the interval is dropped unjudged.
        """
        if new == "open":
            domain = self._domain(key)
            domain.judge.site_down()
            self.stats.inc_value("adaptive/site_down")
            logger.debug("adaptive %s: the circuit breaker opened: an outage, not an overload", key)
        elif new == "closed" and key in self.domains:
            domain = self.domains[key]
            domain.judge.site_back()
            logger.debug("adaptive %s: the circuit breaker closed: recovering", key)
        else:
            return
        domain.sensor.discard(self.clock(), latency=new == "closed")
        if domain.delay != self.delay_min:
            domain.delay = self.delay_min  # an outage is no reason to space requests out
            self.stats.set_value(f"adaptive/delay/{domain.key}", round(domain.delay, 3))
            domain.act(self._downloader_slot(key))

    # -- scheduler gate ------------------------------------------------------------------
    def hold(self, request: Request, now: float) -> Hold | None:
        """A domain paused by Retry-After: its requests wait in the scheduler until then."""
        domain = self.domains.get(self.crawler.engine.downloader.get_slot_key(request))
        if domain is not None and domain.pace.paused(now):
            return Hold(f"pause:{domain.key}", domain.pace.paused_until)
        return None

    def admitted(self, request: Request) -> None:
        return None

    # -- downloader middleware -----------------------------------------------------
    def request_reached_downloader(self, request: Request, spider: Spider) -> None:
        # The downloader creates a missing slot (with CONCURRENT_REQUESTS_PER_DOMAIN) after the
        # middlewares' process_request, then sends this signal, then starts the slot's queue:
        # applied here, the limit holds for every request, the first one of a slot recreated
        # after the cleanup included (tests/test_adaptive_crawl.py pins that order).
        self._apply(request)

    def _apply(self, request: Request) -> None:
        """Re-applied on every request: survives the downloader's idle-slot cleanup."""
        key, slot = self._slot(request)
        self._domain(key).act(slot)

    def process_response(self, request: Request, response: Response) -> Response:
        status = response.status
        retry_after = response.headers.get(b"Retry-After")
        key, slot = self._slot(request)
        domain = self._domain(key)
        now = time.time()
        if says_slow_down(status, retry_after is not None):
            sent_at = now - float(request.meta.get("download_latency") or 0.0)
            was_paused = domain.pace.paused(now)
            if domain.pace.record_slow_down(now, sent_at, parse_retry_after(retry_after, now)):
                self.stats.inc_value("pace/cuts")
            else:
                self.stats.inc_value("pace/stale_slow_downs")
            if domain.pace.paused(now):
                if not was_paused:
                    self.stats.inc_value("pace/pauses")
                self._pause_downloader(key, domain.pace.paused_until - now)
            self._show_pace(domain)
            return response  # not an outcome for the concurrency limit
        domain.pace.record_ok(now)
        if status in OVERLOAD_STATUSES:
            outcome = "overload"
        else:
            failure = self.classifier.classify_status(status)
            outcome = "error" if failure is not None and failure.transient else "ok"
        self._record(request, domain, slot, outcome)
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        if isinstance(exception, IgnoreRequest):
            return None
        reason = self.classifier.classify_exception(exception).reason
        key, slot = self._slot(request)
        self._record(request, self._domain(key), slot, "timeout" if reason == "timeout" else "error")
        return None

    # -- sensing / judging / acting -------------------------------------------------
    def tick(self) -> None:
        """Every interval: sample the process, probe the paces, judge every domain that is ready."""
        now = self.clock()
        lag = max(0.0, now - self._tick_expected) if self._tick_expected is not None else 0.0
        self._tick_expected = now + self.interval
        self.system.add(SystemSample(self._cpu_fraction(now), self._process.memory_info().rss, lag))
        wall = time.time()
        for domain in self.domains.values():
            rate = domain.pace.rate
            domain.pace.tick(wall)
            if domain.pace.rate != rate:
                self._show_pace(domain)
            slot = self._downloader_slot(domain.key)
            domain.sensor.observe_in_flight(len(slot.transferring) if slot is not None else 0)
            if domain.judge.ready(domain.sensor):
                self._decide(domain, now)

    def _record(self, request: Request, domain: Domain, slot: Any, outcome: str) -> None:
        latency = float(request.meta.get("download_latency") or 0.0)
        if slot is not None:
            # in flight = being transferred; slot.active also counts requests queued in the slot
            domain.sensor.observe_in_flight(len(slot.transferring))
        if outcome == "overload" and request in domain.in_flight_at_cut:
            # sent before the last decrease, which already answered it (like TCP: one decrease
            # per window); counted, it would cut the new limit again for the old one's overload
            self.stats.inc_value("adaptive/stale_overloads")
            return
        domain.sensor.record(latency, outcome)  # type: ignore[arg-type]
        if outcome == "overload" and domain.judge.urgent(domain.sensor):
            self._decide(domain, self.clock())

    def _decide(self, domain: Domain, now: float) -> None:
        sample = domain.sensor.snapshot(now)
        decision = domain.judge.decide(sample, self.system.verdict, self.bounds)
        old_limit, old_delay = domain.sensor.limit, domain.delay
        domain.sensor.limit = decision.limit
        if decision.action == "decrease":
            slot = self._downloader_slot(domain.key)
            # SlotLimitedDownloader counts a request as transferring from the moment it leaves
            # the slot queue: exactly the requests sent under the old limit
            domain.in_flight_at_cut = WeakSet(slot.transferring if slot is not None else ())
        share = max(sample.overload_share - domain.judge.noise, sample.timeout_share)
        # significant overload only: random 503s of a flaky site are not a reason to wait
        overloaded = domain.judge.overloaded(sample) or sample.timeout_share > self.aimd.overload_share
        outage = domain.judge.outage(sample)  # the site is down: no reason to space requests out
        if outage:
            domain.delay = self.delay_min
        elif overloaded and share > DELAY_OVERLOAD_FACTOR * self.aimd.overload_share and (
            decision.limit <= self.bounds.min
        ):
            # still overloaded at the minimum concurrency: space the requests out
            domain.delay = min(self.delay_max, max(0.05, domain.delay * 2))
        elif not overloaded:
            domain.delay = max(self.delay_min, domain.delay / 2 if domain.delay / 2 > 0.01 else 0.0)
        self.stats.inc_value(f"adaptive/decisions/{decision.action}")
        self.stats.set_value(f"adaptive/concurrency/{domain.key}", domain.sensor.limit)
        self.stats.set_value(f"adaptive/delay/{domain.key}", round(domain.delay, 3))
        if decision.limit != old_limit or domain.delay != old_delay:
            logger.debug("adaptive %s: %s (delay %.2fs)", domain.key, decision.reason, domain.delay)
            domain.act(self._downloader_slot(domain.key))

    def _pause_downloader(self, key: str, seconds: float) -> None:
        """Requests already in the slot's queue wait too (our downloader's public ``pause_slot``)."""
        pause_slot = getattr(self.crawler.engine.downloader, "pause_slot", None)
        if pause_slot is not None:
            pause_slot(key, seconds)

    def _show_pace(self, domain: Domain) -> None:
        self.stats.set_value(f"pace/rate/{domain.key}", round(domain.pace.rate or 0.0, 2))
        domain.act(self._downloader_slot(domain.key))

    # -- helpers -------------------------------------------------------------------------
    def _domain(self, key: str) -> Domain:
        domain = self.domains.get(key)
        if domain is None:
            domain = self.domains[key] = Domain(
                key, self.bounds, self.aimd, self.pace_config, self.delay_min, self.clock()
            )
            self.stats.set_value(f"adaptive/concurrency/{key}", domain.sensor.limit)
        return domain

    def _slot(self, request: Request) -> tuple[str, Any]:
        downloader = self.crawler.engine.downloader
        key = downloader.get_slot_key(request)
        return key, downloader.slots.get(key)

    def _downloader_slot(self, key: str) -> Any:
        return self.crawler.engine.downloader.slots.get(key)

    def _cpu_fraction(self, now: float) -> float:
        times = self._process.cpu_times()
        used = times.user + times.system
        last, self._cpu_last = self._cpu_last, (now, used)
        if last is None or now <= last[0]:
            return 0.0
        return (used - last[1]) / (now - last[0])
