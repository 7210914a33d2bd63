"""Crawl progress, ETA and per-stage timings; a one-line progress report in the log.

:class:`ProgressReporter` is the Scrapy glue around the pure estimator of
:mod:`crawler.eta`.  Every ``PROGRESS_INTERVAL`` seconds it builds a
:class:`~crawler.eta.Progress` snapshot:

* ``detail_done``: products with an outcome (the accounting extension's
  saved + rejected + dead_lettered + duplicates + filtered);
* ``detail_pending``: products still scheduled or in flight (the accounting
  extension's ``outstanding()``);
* ``list_done`` / ``list_pending``: this extension's own list-stage counters;
* ``detail_fetched`` / ``detail_fetch_pending``: its detail-stage counters
  (downloads ended / scheduled or downloading), which the rate is measured
  on (products committed arrive in store batches);
* ``in_flight``: requests transferring in the downloader's slots now, and
  ``latency``: the mean download latency of the responses of the last
  :data:`RECENT_SECONDS` (at least the last :data:`RECENT_LEAST`, at most
  the last :data:`RECENT_LATENCIES`: a mean over a longer past lags a site
  that starts to queue, or still holds the queue before an outage), and
  ``concurrency``: the limits of the slots downloading now, and
  ``concurrency_max``: the highest limits the adaptive controller may give
  them (``ADAPTIVE_CONCURRENCY_MAX``, at most
  ``CONCURRENT_REQUESTS_PER_DOMAIN``; the latter alone without the
  controller), in all at most ``CONCURRENT_REQUESTS`` (for the rate *now*,
  by Little's law, and the next step of a ramp, while the rate changes: see
  :mod:`crawler.eta`);
* ``products_discovered``, ``expected_products``, ``expected_list_pages``:
  from the stats (``products/discovered``, ``catalog/expected_products``,
  ``catalog/expected_list_pages``); the products earlier runs ended
  (``products/carried``: an incremental run's stored products, a resumed
  run's finished ones) are not this run's work, so they are taken off the
  expected products;

feeds it to :class:`~crawler.eta.EtaEstimator` and publishes the estimate as
the stats ``progress/fraction``, ``progress/eta_seconds`` (None while
unknown), ``progress/detail_rate``, ``progress/list_rate`` (completions per
second), ``progress/expected_total``, ``progress/basis`` and
``progress/updated_at`` (when that estimate was made, a UTC datetime).
Without the accounting extension the detail stage's own counters stand in.

Per-stage counters, for every request with a ``meta["stage"]``:

* ``stages/<stage>/started``: first scheduling (``request_scheduled``); a
  retry or a parked copy carries the meta marker and is not counted again;
* ``stages/<stage>/finished``: the request ended, once: its response came
  back from the downloader (``response_received``), or it was given up
  (``crawler.signals.request_dead_lettered``), ignored by a policy
  (``crawler.signals.request_filtered``) or dropped by the dupefilter
  (``request_dropped``);
* ``stages/<stage>/mean_seconds``, ``stages/<stage>/p95_seconds``: the
  download latency (``meta["download_latency"]``) of the stage's last
  :data:`RESERVOIR_SIZE` responses.

Every ``LOGSTATS_INTERVAL`` seconds (Scrapy's setting; this extension
replaces Scrapy's ``LogStats``, which the project disables) one line is
logged, and a last one when the spider closes::

    Crawled 1320 pages (at 3120 pages/min), scraped 1200 items (at 2890 items/min);
    progress 42.0% (1260/3000 products), ETA 0:00:17; concurrency 127.0.0.1=8; open breakers: none

(one line in the log).  Like ``LogStats`` it sets ``responses_per_minute``
and ``items_per_minute`` at close.  Settings: ``PROGRESS_ENABLED``,
``PROGRESS_INTERVAL``, ``PROGRESS_RATE_WINDOW``, ``LOGSTATS_INTERVAL``
(``PROGRESS_HALF_LIFE``, the half-life of the old decayed rate, is no longer
used: a warning says so if it is set).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Self

from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.utils.asyncio import create_looping_call

from crawler import defaults
from crawler import signals as crawler_signals
from crawler.errors import ConfigError
from crawler.eta import HORIZON, Estimate, EtaEstimator, Progress
from extensions.accounting import ProductAccounting

logger = logging.getLogger(__name__)

#: Latencies kept per stage for ``mean_seconds`` and ``p95_seconds`` (the most recent ones).
RESERVOIR_SIZE = 10_000
#: The ``latency`` of a snapshot: the mean of the responses (any stage) of the last RECENT_SECONDS,
#: at least the last RECENT_LEAST of them, at most the last RECENT_LATENCIES.
RECENT_SECONDS = 1.0
RECENT_LEAST = 10
RECENT_LATENCIES = 100
#: ``request.meta`` keys: the crawl's token once the request is counted as started / finished.
#: (A leading ``_``: the dead-letter queue does not store them.)
STARTED = "_progress_started"
FINISHED = "_progress_finished"
#: Accounting outcomes that end a product (``extensions/accounting.py``).
DONE_TERMS = ("saved", "rejected", "dead_lettered", "duplicates", "filtered", "failed")
#: Breaker state that is not worth reporting (``crawler.circuit_breaker``).
CLOSED = "closed"


# -- pure helpers ------------------------------------------------------------------
class LatencyReservoir:
    """The last ``size`` values of a series, with their mean and percentiles."""

    def __init__(self, size: int = RESERVOIR_SIZE) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size!r}")
        self._values: deque[float] = deque(maxlen=size)
        self._sorted: list[float] | None = None

    def __len__(self) -> int:
        return len(self._values)

    def add(self, value: float) -> None:
        self._values.append(float(value))
        self._sorted = None

    def mean(self) -> float | None:
        """Mean of the values kept, None if there are none."""
        return math.fsum(self._values) / len(self._values) if self._values else None

    def percentile(self, q: float) -> float | None:
        """Nearest-rank ``q``-th percentile (0 < q <= 100) of the values kept, None if there are none."""
        if not 0 < q <= 100:
            raise ValueError(f"q must be in (0, 100], got {q!r}")
        if not self._values:
            return None
        if self._sorted is None:
            self._sorted = sorted(self._values)
        return self._sorted[max(0, math.ceil(q / 100 * len(self._sorted)) - 1)]


def format_duration(seconds: float | None) -> str:
    """``h:mm:ss`` (hours not capped), rounded to the second; ``"unknown"`` for None, NaN or infinity."""
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def by_domain(stats: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """``{rest: value}`` of every stat ``<prefix><rest>`` (non-empty rest), sorted by rest."""
    return {
        key[len(prefix) :]: stats[key]
        for key in sorted(k for k in stats if isinstance(k, str) and k.startswith(prefix) and len(k) > len(prefix))
    }


def breaker_state(value: Any) -> Any:
    """A ``breaker/state/<domain>`` stat as its string (a ``BreakerState`` enum or already its value)."""
    return getattr(value, "value", value)


def open_breakers(stats: Mapping[str, Any]) -> list[str]:
    """Domains whose circuit breaker is not closed, as ``domain (state)``."""
    return [
        f"{domain} ({breaker_state(state)})"
        for domain, state in by_domain(stats, "breaker/state/").items()
        if breaker_state(state) != CLOSED
    ]


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def progress_line(
    *,
    pages: int,
    pages_per_min: float,
    items: int,
    items_per_min: float,
    fraction: float | None,
    eta_seconds: float | None,
    done: int,
    expected: int | None,
    basis: str | None,
    concurrency: Mapping[str, Any],
    breakers: Iterable[str],
) -> str:
    """The one-line progress report (see the module docstring)."""
    percent = "unknown" if fraction is None else f"{100 * fraction:.1f}%"
    if not expected:
        total = "?"
    else:
        total = f"~{expected}" if basis == "extrapolated" else str(expected)
    domains = ", ".join(f"{domain}={_number(limit)}" for domain, limit in concurrency.items()) or "n/a"
    breakers_text = ", ".join(breakers) or "none"
    return (
        f"Crawled {pages} pages (at {pages_per_min:.0f} pages/min), "
        f"scraped {items} items (at {items_per_min:.0f} items/min); "
        f"progress {percent} ({done}/{total} products), ETA {format_duration(eta_seconds)}; "
        f"concurrency {domains}; open breakers: {breakers_text}"
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def _ceiling(settings: Any) -> tuple[int, int] | None:
    """The highest concurrency limit of a slot, and of all slots together (None if the settings do not say).

    A slot's: the adaptive controller's ``ADAPTIVE_CONCURRENCY_MAX``, at most
    ``CONCURRENT_REQUESTS_PER_DOMAIN`` (the latter alone without the
    controller); all slots': ``CONCURRENT_REQUESTS``.
    """
    try:
        per_slot = settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN")
        if settings.getbool("ADAPTIVE_ENABLED", defaults.ADAPTIVE_ENABLED):
            per_slot = min(int(defaults.get(settings, "ADAPTIVE_CONCURRENCY_MAX")), per_slot)
        in_all = settings.getint("CONCURRENT_REQUESTS")
    except (TypeError, ValueError):
        return None
    return (per_slot, in_all) if per_slot > 0 and in_all > 0 else None


def _expected_products(stats: Any) -> int | None:
    """The site's stated product count less the products earlier runs ended (``products/carried``)."""
    expected = _int_or_none(stats.get_value("catalog/expected_products"))
    if expected is None:
        return None
    return max(0, expected - (_int_or_none(stats.get_value("products/carried")) or 0))


# -- the extension ---------------------------------------------------------------
class StageCounters:
    """Started/finished counts and latencies of one stage."""

    __slots__ = ("started", "finished", "latencies")

    def __init__(self) -> None:
        self.started = 0
        self.finished = 0
        self.latencies = LatencyReservoir()

    @property
    def pending(self) -> int:
        return max(0, self.started - self.finished)


class ProgressReporter:
    """Progress, ETA and per-stage stats every ``PROGRESS_INTERVAL``; a progress line every ``LOGSTATS_INTERVAL``."""

    def __init__(self, crawler: Crawler, interval: float, log_interval: float, window: float) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.interval = interval
        self.log_interval = log_interval
        self.estimator = EtaEstimator(window)
        self.stages: dict[str, StageCounters] = {}
        self.recent_latencies: deque[tuple[float, float]] = deque(maxlen=RECENT_LATENCIES)  # (time, latency)
        self.concurrency_ceiling: tuple[int, int] | None = None  # (per slot, in all): see _ceiling()
        self.clock: Callable[[], float] = time.monotonic
        self.token = uuid.uuid4().hex[:12]  # marks the requests of this crawl
        self.estimate: Estimate | None = None
        self._accounting: Any = None
        self._opened_at: float | None = None
        self._last_log: tuple[float, int, int] | None = None  # (time, pages, items)
        self._loops: list[Any] = []

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not settings.getbool("PROGRESS_ENABLED", defaults.PROGRESS_ENABLED):
            raise NotConfigured
        try:
            interval = float(defaults.get(settings, "PROGRESS_INTERVAL"))
            window = float(defaults.get(settings, "PROGRESS_RATE_WINDOW"))
            log_interval = settings.getfloat("LOGSTATS_INTERVAL")
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"progress settings: {exc}") from None
        if interval < 0 or log_interval < 0 or not 0 < window <= HORIZON:
            raise ConfigError(
                "progress settings: PROGRESS_INTERVAL and LOGSTATS_INTERVAL must be >= 0 (0: off), "
                f"PROGRESS_RATE_WINDOW in (0, {HORIZON:g}] (got {interval!r}, {log_interval!r}, {window!r})"
            )
        if settings.get("PROGRESS_HALF_LIFE") is not None:
            logger.warning("PROGRESS_HALF_LIFE is no longer used: the ETA's rate window is PROGRESS_RATE_WINDOW")
        ext = cls(crawler, interval, log_interval, window)
        ext.concurrency_ceiling = _ceiling(settings)
        connect = crawler.signals.connect
        connect(ext.spider_opened, signal=signals.spider_opened)
        connect(ext.spider_closed, signal=signals.spider_closed)
        connect(ext.request_scheduled, signal=signals.request_scheduled)
        connect(ext.request_dropped, signal=signals.request_dropped)
        connect(ext.response_received, signal=signals.response_received)
        connect(ext.request_dead_lettered, signal=crawler_signals.request_dead_lettered)
        connect(ext.request_filtered, signal=crawler_signals.request_filtered)
        return ext

    # -- signals -------------------------------------------------------------------
    def spider_opened(self, spider: Spider) -> None:
        self._accounting = self.crawler.get_extension(ProductAccounting)
        now = self.clock()
        self._opened_at = now
        self._last_log = (now, 0, 0)
        for period, func in ((self.interval, self.update), (self.log_interval, self.log)):
            if period > 0:
                loop = create_looping_call(func)
                loop.start(period, now=False)
                self._loops.append(loop)

    def spider_closed(self, spider: Spider, reason: str) -> None:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
        # A finished crawl has nothing pending by definition (the engine went idle).
        self.update(finished=reason == "finished")
        self._final_rates()
        if self.log_interval > 0:
            logger.info("Progress at close (%s): %s", reason, self._line(final=True))

    def request_scheduled(self, request: Request, spider: Spider | None = None) -> None:
        stage = request.meta.get("stage")
        if not isinstance(stage, str) or request.meta.get(STARTED) == self.token:
            return
        request.meta[STARTED] = self.token
        self._stage(stage).started += 1
        self.stats.inc_value(f"stages/{stage}/started")

    def request_dropped(self, request: Request, spider: Spider | None = None) -> None:
        self._finish(request)

    def response_received(self, response: Response, request: Request, spider: Spider | None = None) -> None:
        stage = request.meta.get("stage")
        if not isinstance(stage, str):
            return
        latency = request.meta.get("download_latency")
        if isinstance(latency, (int, float)) and not isinstance(latency, bool) and math.isfinite(latency):
            self._stage(stage).latencies.add(max(0.0, float(latency)))
            self.recent_latencies.append((self.clock(), max(0.0, float(latency))))
        self._finish(request)

    def request_dead_lettered(self, request: Request, **kwargs: Any) -> None:
        self._finish(request)

    def request_filtered(self, request: Request, **kwargs: Any) -> None:
        self._finish(request)

    # -- progress ----------------------------------------------------------------------
    def snapshot(self, now: float, finished: bool = False) -> Progress:
        """The :class:`Progress` of the crawl now (``finished``: nothing is pending)."""
        stats = self.stats
        lists = self.stages.get("list") or StageCounters()
        fetches = self.stages.get("detail") or StageCounters()
        accounting = self._accounting
        if accounting is not None:
            detail_done = accounting.ended(DONE_TERMS)
            detail_pending = accounting.outstanding()
            discovered = accounting.count("discovered")
        else:
            details = self.stages.get("detail") or StageCounters()
            detail_done, detail_pending = details.finished, details.pending
            discovered = _int_or_none(stats.get_value("products/discovered")) or details.started
        in_flight, concurrency, concurrency_max = self._downloading()
        return Progress(
            now=now,
            detail_done=detail_done,
            detail_pending=0 if finished else detail_pending,
            list_done=lists.finished,
            list_pending=0 if finished else lists.pending,
            products_discovered=discovered,
            expected_products=_expected_products(stats),
            expected_list_pages=_int_or_none(stats.get_value("catalog/expected_list_pages")),
            detail_fetched=fetches.finished,
            detail_fetch_pending=0 if finished else fetches.pending,
            in_flight=in_flight,
            concurrency=concurrency,
            concurrency_max=concurrency_max,
            latency=self._recent_latency(now),
        )

    def update(self, finished: bool = False) -> Estimate:
        """Feed a snapshot to the estimator and publish the estimate and the stage stats."""
        estimate = self.estimate = self.estimator.update(self.snapshot(self.clock(), finished))
        set_value = self.stats.set_value
        set_value("progress/fraction", round(estimate.progress, 4))
        eta = estimate.eta_seconds
        set_value("progress/eta_seconds", round(eta, 1) if eta is not None and math.isfinite(eta) else None)
        set_value("progress/detail_rate", round(estimate.detail_rate, 2))
        set_value("progress/list_rate", round(estimate.list_rate, 2))
        set_value("progress/expected_total", estimate.expected_total)
        set_value("progress/basis", estimate.basis)
        set_value("progress/updated_at", datetime.now(UTC))
        for stage, counters in self.stages.items():
            mean, p95 = counters.latencies.mean(), counters.latencies.percentile(95)
            if mean is not None and p95 is not None:
                set_value(f"stages/{stage}/mean_seconds", round(mean, 4))
                set_value(f"stages/{stage}/p95_seconds", round(p95, 4))
        return estimate

    # -- the progress line -----------------------------------------------------------------
    def log(self) -> None:
        self.update()
        logger.info("%s", self._line())

    def _line(self, final: bool = False) -> str:
        stats = self.stats.get_stats()
        now = self.clock()
        pages = int(stats.get("response_received_count", 0) or 0)
        items = int(stats.get("item_scraped_count", 0) or 0)
        since, pages0, items0 = (self._opened_at or now, 0, 0) if final or self._last_log is None else self._last_log
        minutes = (now - since) / 60
        self._last_log = (now, pages, items)
        estimate = self.estimate
        return progress_line(
            pages=pages,
            pages_per_min=(pages - pages0) / minutes if minutes > 0 else 0.0,
            items=items,
            items_per_min=(items - items0) / minutes if minutes > 0 else 0.0,
            fraction=estimate.progress if estimate else None,
            eta_seconds=estimate.eta_seconds if estimate else None,
            done=self._done(),
            expected=estimate.expected_total if estimate else None,
            basis=estimate.basis if estimate else None,
            concurrency=by_domain(stats, "adaptive/concurrency/"),
            breakers=open_breakers(stats),
        )

    def _final_rates(self) -> None:
        """``responses_per_minute`` / ``items_per_minute`` over the whole crawl, as Scrapy's LogStats sets them."""
        elapsed = self.stats.get_value("elapsed_time_seconds")
        if not isinstance(elapsed, (int, float)) or elapsed <= 0:
            return
        minutes = elapsed / 60
        self.stats.set_value("responses_per_minute", self.stats.get_value("response_received_count", 0) / minutes)
        self.stats.set_value("items_per_minute", self.stats.get_value("item_scraped_count", 0) / minutes)

    # -- internals ---------------------------------------------------------------------------
    def _done(self) -> int:
        if self._accounting is not None:
            return self._accounting.ended(DONE_TERMS)
        details = self.stages.get("detail")
        return details.finished if details else 0

    def _recent_latency(self, now: float) -> float | None:
        """Mean latency of the last :data:`RECENT_SECONDS`' responses (at least the last :data:`RECENT_LEAST`)."""
        latencies = self.recent_latencies
        if not latencies:
            return None
        recent = [latency for at, latency in latencies if now - at <= RECENT_SECONDS]
        if len(recent) < RECENT_LEAST:
            recent = [latency for _, latency in list(latencies)[-RECENT_LEAST:]]
        return math.fsum(recent) / len(recent)

    def _downloading(self) -> tuple[int | None, int | None, int | None]:
        """Requests transferring in the downloader's slots now, those slots' concurrency limits, and
        the highest limits the controller may give them (None without an engine or unknown)."""
        try:
            downloader = self.crawler.engine.downloader  # type: ignore[union-attr]
            slots = [slot for slot in downloader.slots.values() if slot.transferring]
        except AttributeError:
            return None, None, None
        try:
            limits = [int(slot.concurrency) for slot in slots]
        except (AttributeError, TypeError, ValueError):
            return sum(len(slot.transferring) for slot in slots), None, None
        concurrency = sum(limits)
        concurrency_max = None
        if self.concurrency_ceiling is not None:
            per_slot, in_all = self.concurrency_ceiling
            concurrency_max = max(concurrency, min(sum(max(limit, per_slot) for limit in limits), in_all))
        return sum(len(slot.transferring) for slot in slots), concurrency, concurrency_max

    def _stage(self, stage: str) -> StageCounters:
        counters = self.stages.get(stage)
        if counters is None:
            counters = self.stages[stage] = StageCounters()
        return counters

    def _finish(self, request: Request | None) -> None:
        """Count ``request`` finished, once, if this crawl counted it started."""
        if request is None:
            return
        meta = request.meta
        stage = meta.get("stage")
        if not isinstance(stage, str) or meta.get(STARTED) != self.token or meta.get(FINISHED) == self.token:
            return
        meta[FINISHED] = self.token
        self._stage(stage).finished += 1
        self.stats.inc_value(f"stages/{stage}/finished")
