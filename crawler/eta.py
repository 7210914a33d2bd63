"""Crawl progress and ETA: pure arithmetic on periodic progress snapshots.

No Scrapy, no clock: every call is given the time, so the estimators are
tested on synthetic timelines.  The Scrapy glue builds a :class:`Progress`
from the crawl stats every second or so and feeds it to
:class:`EtaEstimator`.

Model
-----
The crawl has two stages sharing one concurrency budget: list pages (each
yields about a page's worth of detail requests) and detail pages (one per
product).  The remaining work is

* the detail requests already scheduled or in flight, plus
* the products still expected from list pages not fetched yet (the
  ``basis`` says how that number was obtained), plus
* those list pages themselves.

Both stages are served by the same downloader slots, so the ETA is *all
remaining requests / the total request completion rate*, not a sum or a max
of per-stage ETAs: the per-stage rates just mirror how the scheduler splits
the shared budget at the moment (all list pages first, or details first), and
switch abruptly when a stage runs dry, whereas the total rate stays steady.
``list_weight`` weights a list request against a detail request (1.0: the
same cost) on both sides of the division, should list pages be markedly
heavier or lighter to fetch.

The stage that limits the crawl is the download: the store's backlog is
bounded (item processing waits for the writer, which backs up into the
downloader), so a slow store shows up as a slower download rate, and what is
fetched but not yet committed at the end is one flush away.  So the rate is
measured on *download* completions (``detail_fetched`` and ``list_done``),
not on products committed, which arrive in store batches (every
``STORE_FLUSH_INTERVAL``, 2 s): a rate over a few seconds of those would
jump by half from one batch to the next.  Without ``detail_fetched`` the
committed count stands in.

Which rate
----------
The old estimator divided by a decayed average with a 10 s half-life.  On a
crawl whose concurrency ramps from 4 to 16 over its first seconds that
average still remembers the slow start long after, and the ETA was 2.3x too
long at 10% progress, 1.5x at 50%; after an outage the dead time dragged the
rate down for half a minute.  Now (:class:`WindowRate`):

* **The rate over the longest recent window in which it was steady.**  The
  rate over the last ``window`` seconds (3 s) is the reference; the window is
  stretched back, sample by sample, up to ``horizon`` (60 s), as long as the
  rate over the longer window stays within ``tolerance`` (10%) of the
  reference.  On a steady crawl that is a long, quiet average (its error is
  at most the tolerance plus the noise of 3 s, and in practice the noise of
  60 s); after a change it is the recent rate only, so the ETA follows a
  change within about ``window`` seconds instead of several half-lives.
* **A ramp: the current rate, and the controller's next step.**  While the
  rate is not steady (the window above is shorter than twice ``window``: a
  ramp, a step, the first seconds), even 3 s lag a rising rate by 1.5 s,
  which on the ramp above is 25% at 10% progress.  Then the estimate is the
  crawl's rate *now* by Little's law, requests in flight / mean latency
  (``in_flight``, ``latency``): the adaptive controller raises the
  concurrency limit, the downloader fills it within one latency, and
  completions follow (so the limit in force counts, ``concurrency``, up to 2x
  what is in flight: the controller raises it a step ahead of what is in
  flight).  That figure is kept within a factor of 2 of the rate over the
  last half window (which it replaces when ``in_flight`` or ``latency`` is
  unknown), since it does not see time spent outside the downloader (retry
  back-off, a slot waiting for list pages).
* **A ramp goes on.**  The rate now is still short while the ramp goes on:
  the controller raises the limit once a second (by a quarter in its slow
  start: 4, 5, 6, 7, 8, 10, 12, 15, 16), and whether a snapshot catches the
  limit just raised (ahead of what is in flight) or after the downloader
  filled it is chance.  On the ramping benchmark the 10% mark fell at a
  limit of 12 of 16: 1-4% off when the limit was caught just raised to 15,
  26-30% long (in 9 runs of 13) when 12 were in flight under a limit of 12.
  So while the limit is rising, one more second of its growth counts
  (``RAMP_LOOKAHEAD``: the controller's next step), never beyond the
  highest limit the controller may set (``concurrency_max``; unknown: no
  step counts) nor beyond 2x what is in flight.  The growth is measured
  over 2 s (``RAMP_SPAN``): a snapshot a hair after one tick and before the
  next would see none over 1 s.  Extrapolating further would overshoot
  wherever the ramp stops, which it cannot know.
* **A site that queues: what completes.**  When the site is at capacity,
  more requests in flight only wait longer, and the mean latency of the
  last responses lags that queue: on the steady benchmark the controller,
  still in slow start, took the limit to 10 on a shop of 6 workers, and
  10 in flight / 0.068 s read 147/s while the shop served 113/s (the ETA
  24% short at 10% progress).  So when ``latency`` is more than
  ``QUEUEING`` (10%) above its lowest of the last ``horizon`` seconds, the
  estimate is the rate measured over the shortest recent span that holds
  ``LATEST_EVENTS`` (50) completions, from one snapshot interval up to half
  a window: the half window alone lagged a limit that had just doubled back
  to 10 after an outage (at 50% progress: 9.2 s estimated, 7.1 s actual,
  in 4 of 6 runs), while a site at capacity completes at a steady pace,
  so one second of 117 completions is rate enough.
* **An outage: dead time is not a rate.**  When nothing has completed for
  ``stall`` seconds (3 s, or five mean intervals between completions on a
  slow crawl), the crawl is stalled: the ETA is unknown (None) rather than
  huge, and the meter forgets its history.  When completions resume, the
  first interval (which holds part of the dead time) only anchors the
  meter, so one interval later the rate is the resumed rate, not an average
  dragged down by the outage.  An outage still to come cannot be foreseen:
  an ETA made before it is short by the outage's length.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

#: How :attr:`Estimate.expected_total` was obtained.
Basis = Literal["total_count", "last_page", "extrapolated"]

#: Defaults of :class:`WindowRate` (``window`` is the ``PROGRESS_RATE_WINDOW`` setting).
WINDOW = 3.0
HORIZON = 60.0
TOLERANCE = 0.10
STALL_SECONDS = 3.0
STALL_INTERVALS = 5.0
#: Little's-law rate kept within this factor of the measured recent rate.
LITTLE_BOUND = 2.0
#: While ramping, the concurrency limit counts up to this factor of the requests in flight.
RAMP_AHEAD = 2.0
#: A limit that grew over the last RAMP_SPAN seconds counts RAMP_LOOKAHEAD seconds more of that growth.
RAMP_SPAN = 2.0
RAMP_LOOKAHEAD = 1.0
#: Latency above this factor of its lowest (over the horizon): the site queues.
QUEUEING = 1.10
#: Events the shortest span of :attr:`WindowRate.latest_rate` must hold (its counting noise).
LATEST_EVENTS = 50


class WindowRate:
    """Event rate (per second) of a monotonically growing counter, over an adaptive recent window.

    ``update(count, now)`` may be called at irregular times.  :attr:`rate`
    is the rate over the longest window ending now, at most ``horizon``
    seconds long, over which the rate stayed within ``tolerance`` of the
    rate over the last ``window`` seconds (see the module docstring);
    :attr:`steady` says whether that window is at least twice ``window``
    (else the rate changed lately); :attr:`recent_rate` is the rate over the
    last ``window / 2`` seconds (at least one interval); :attr:`latest_rate`
    the rate over the shortest recent span (from one interval up to
    ``window / 2``) that holds at least ``LATEST_EVENTS`` events.

    The first update only anchors the counter.  An update that does not move
    the clock forward (``dt <= 0``) is ignored (its events are counted in the
    next interval).  A counter that goes backwards re-anchors the meter.  No
    event for ``max(stall_seconds, stall_intervals / rate)`` seconds is a
    stall: :attr:`rate` is None and the history is dropped until an update
    shows events again, which only anchors the meter (its interval holds dead
    time).
    """

    def __init__(
        self,
        window: float = WINDOW,
        *,
        horizon: float = HORIZON,
        tolerance: float = TOLERANCE,
        stall_seconds: float = STALL_SECONDS,
        stall_intervals: float = STALL_INTERVALS,
    ) -> None:
        if not window > 0:
            raise ValueError(f"window must be > 0, got {window!r}")
        if not horizon >= window:
            raise ValueError(f"horizon must be >= window, got {horizon!r}")
        if not tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
        self.window = float(window)
        self.horizon = float(horizon)
        self.tolerance = float(tolerance)
        self.stall_seconds = float(stall_seconds)
        self.stall_intervals = float(stall_intervals)
        self._history: deque[tuple[float, float]] = deque()  # (time, count), oldest first
        self._last_event = 0.0
        self._stalled = False
        self.rate: float | None = None
        self.recent_rate: float | None = None
        self.latest_rate: float | None = None
        self.steady = False

    @property
    def stalled(self) -> bool:
        """No event for the stall time (and none since)."""
        return self._stalled

    def update(self, total_count: float, now: float) -> float | None:
        """Feed the counter's value at time ``now`` (seconds); return :attr:`rate`."""
        history = self._history
        if not history or total_count < history[-1][1]:
            self._anchor(total_count, now)
            return None
        last_time, last_count = history[-1]
        if now <= last_time:
            return self.rate
        moved = total_count > last_count
        if self._stalled:
            self._anchor(total_count, now)
            self._stalled = not moved
            return None
        if moved:
            self._last_event = now
        elif now - self._last_event >= self._stall_time():
            self._anchor(total_count, now)
            self._stalled = True
            return None
        history.append((now, total_count))
        while len(history) > 2 and now - history[1][0] >= self.horizon:
            history.popleft()
        self._measure(now, total_count)
        return self.rate

    def _stall_time(self) -> float:
        if self.rate:
            return max(self.stall_seconds, self.stall_intervals / self.rate)
        return self.stall_seconds

    def _anchor(self, count: float, now: float) -> None:
        self._history.clear()
        self._history.append((now, count))
        self._last_event = now
        self.rate = self.recent_rate = self.latest_rate = None
        self.steady = False

    def _since(self, seconds: float, now: float) -> int:
        """Index of the newest sample at least ``seconds`` old (the oldest one if none is)."""
        history = self._history
        index = len(history) - 2
        while index > 0 and now - history[index][0] < seconds:
            index -= 1
        return index

    def _measure(self, now: float, count: float) -> None:
        history = self._history
        start = self._since(self.window, now)
        reference = (count - history[start][1]) / (now - history[start][0])
        # Stretch back block by block (each at least ``window`` long): a block off by more than
        # the tolerance ends the window, so a change is not averaged in, however long ago.
        block_time, block_count = history[start]
        first = start
        for index in range(start - 1, -1, -1):
            then, then_count = history[index]
            if block_time - then < self.window:
                continue  # too short to judge: decided with the older samples
            block = (block_count - then_count) / (block_time - then)
            if abs(block - reference) > self.tolerance * reference:
                break
            first, block_time, block_count = index, then, then_count
        oldest, oldest_count = history[first]
        self.rate = (count - oldest_count) / (now - oldest)
        self.steady = now - oldest >= 2 * self.window
        short = self._since(self.window / 2, now)
        self.recent_rate = (count - history[short][1]) / (now - history[short][0])
        latest = len(history) - 2
        while latest > short and count - history[latest][1] < LATEST_EVENTS:
            latest -= 1
        self.latest_rate = (count - history[latest][1]) / (now - history[latest][0])


@dataclass(frozen=True)
class Progress:
    """A snapshot of the crawl counters at time ``now`` (seconds).

    ``detail_done``/``list_done``: requests of each stage finished, whatever
    the outcome (``detail_done``: products ended, i.e. committed, rejected,
    dead-lettered...); ``detail_pending``/``list_pending``: requests
    scheduled or in flight (``detail_pending``: products not ended yet);
    ``products_discovered``: detail requests created so far;
    ``expected_products``: the product total announced by the site;
    ``expected_list_pages``: the last list page number announced.

    Optional, for the rate (see the module docstring): ``detail_fetched``:
    detail requests whose download ended (response, dead letter, filtered,
    dropped), and ``detail_fetch_pending``: those scheduled or downloading
    (both None: ``detail_done`` and ``detail_pending`` stand in);
    ``in_flight``: requests being downloaded now; ``latency``: recent mean
    download latency in seconds; ``concurrency``: the concurrency limit in
    force on the slots downloading now (the adaptive controller's);
    ``concurrency_max``: the highest limit the controller may give those
    slots (the ceiling of a ramp).
    """

    now: float
    detail_done: int
    detail_pending: int
    list_done: int
    list_pending: int
    products_discovered: int
    expected_products: int | None = None
    expected_list_pages: int | None = None
    detail_fetched: int | None = None
    detail_fetch_pending: int | None = None
    in_flight: int | None = None
    latency: float | None = None
    concurrency: int | None = None
    concurrency_max: int | None = None


@dataclass(frozen=True)
class Estimate:
    """What :meth:`EtaEstimator.update` concluded from one snapshot.

    ``progress``: detail pages done / ``expected_total``, in [0, 1] (1.0 once
    nothing is pending).  ``eta_seconds``: time to finish the remaining
    detail and list requests, None while unknown (no rate measured yet, no
    products-per-page figure yet, or a stalled crawl).  ``remaining_products``:
    detail requests pending plus products expected from unfetched list pages.
    ``remaining_list_pages``: list requests still to finish.  ``detail_rate``,
    ``list_rate``, ``request_rate``: completions per second of each stage and
    of the weighted total (0.0 until measured).  ``expected_total``: the best
    estimate of the number of products.  ``basis``: where it comes from.
    """

    progress: float
    eta_seconds: float | None
    remaining_products: int
    remaining_list_pages: int
    detail_rate: float
    list_rate: float
    request_rate: float
    expected_total: int
    basis: Basis


class EtaEstimator:
    """Turn periodic :class:`Progress` snapshots into :class:`Estimate` objects.

    ``expected_total`` is, by ``basis``:

    * ``"total_count"`` (the site announced its product count):
      ``max(expected_products, products_discovered)``;
    * ``"last_page"`` (it announced the last page number): discovered +
      unfetched list pages x observed products per list page;
    * ``"extrapolated"`` (neither): discovered + (pending list pages, plus one
      more while any is pending since a list page may link a next one) x
      observed products per list page.

    The ETA divides the remaining download requests by the request rate of
    :class:`WindowRate` (``window`` seconds, the ``PROGRESS_RATE_WINDOW``
    setting) while it is steady, else by the rate now (Little's law, plus one
    more step of a rising concurrency limit; the rate measured while the site
    queues: see the module docstring).  Once nothing is pending (and
    something was done) the crawl is over: progress 1.0, ETA 0, and
    ``expected_total`` is what was discovered.
    """

    def __init__(self, window: float = WINDOW, *, list_weight: float = 1.0, horizon: float = HORIZON) -> None:
        if not list_weight >= 0:
            raise ValueError(f"list_weight must be >= 0, got {list_weight!r}")
        self.list_weight = float(list_weight)
        self._work = WindowRate(window, horizon=horizon)
        self._detail = WindowRate(window, horizon=horizon)
        self._list = WindowRate(window, horizon=horizon)
        self.horizon = float(horizon)
        self.last: Estimate | None = None
        self._limits: deque[tuple[float, int]] = deque()  # (time, concurrency limit), the last RAMP_SPAN
        self._latencies: deque[tuple[float, float]] = deque()  # (time, latency), the last horizon

    def update(self, snapshot: Progress) -> Estimate:
        """Account for ``snapshot`` (times must not go backwards) and estimate."""
        s = snapshot
        fetched = s.detail_done if s.detail_fetched is None else s.detail_fetched
        work_done = fetched + self.list_weight * s.list_done
        # Meters start at the first completion: the idle start-up is not a rate.
        if work_done > 0:
            self._work.update(work_done, s.now)
        if fetched > 0:
            self._detail.update(fetched, s.now)
        if s.list_done > 0:
            self._list.update(s.list_done, s.now)
        work_rate = self._rate(s)
        rates = (self._detail.rate or 0.0, self._list.rate or 0.0, work_rate or 0.0)

        if s.detail_pending == 0 and s.list_pending == 0 and s.detail_done + s.list_done > 0:
            basis = self._basis(s)
            self.last = Estimate(1.0, 0.0, 0, 0, *rates, expected_total=s.products_discovered, basis=basis)
            return self.last

        per_page = s.products_discovered / s.list_done if s.list_done > 0 else None
        undiscovered: float | None
        if s.expected_products is not None:
            expected = max(s.expected_products, s.products_discovered)
            undiscovered = expected - s.products_discovered
            if s.expected_list_pages is not None:
                pages = max(s.expected_list_pages - s.list_done, s.list_pending)
            elif per_page:
                pages = max(math.ceil(undiscovered / per_page), s.list_pending)
            else:
                pages = s.list_pending
        else:
            if s.expected_list_pages is not None:
                pages = max(s.expected_list_pages - s.list_done, s.list_pending)
            else:
                pages = s.list_pending + (1 if s.list_pending > 0 else 0)
            undiscovered = pages * per_page if per_page is not None else None
            expected = s.products_discovered + round(undiscovered or 0)

        remaining_products = s.detail_pending + round(undiscovered or 0)
        to_fetch = s.detail_pending if s.detail_fetch_pending is None else s.detail_fetch_pending
        eta: float | None = None
        if undiscovered is not None and work_rate:
            eta = (to_fetch + round(undiscovered) + self.list_weight * pages) / work_rate
        progress = min(1.0, max(0.0, s.detail_done / expected)) if expected > 0 else 0.0
        self.last = Estimate(progress, eta, remaining_products, pages, *rates, expected, self._basis(s))
        return self.last

    def _rate(self, s: Progress) -> float | None:
        """The request rate the ETA divides by: steady, or now (see the module docstring)."""
        meter = self._work
        growth = self._limit_growth(s)
        lowest = self._lowest_latency(s)
        if meter.rate is None or meter.steady:
            return meter.rate
        recent = meter.recent_rate or 0.0
        if s.in_flight is None or not s.latency or s.latency <= 0 or not recent:
            return recent or meter.rate
        if lowest is not None and s.latency > QUEUEING * lowest:
            # the site queues: more in flight is not more completions, what completes now is the rate
            return meter.latest_rate or recent
        busy = float(s.in_flight)
        if s.concurrency is not None and s.concurrency > busy:
            # a ramp raises the limit a step ahead of what is in flight, which fills it within
            # one latency: count the limit, but not beyond one slow-start step ahead
            busy = min(float(s.concurrency), busy * RAMP_AHEAD)
        if growth > 1.0 and s.concurrency is not None and s.concurrency_max is not None:
            # the limit is rising: count its next step, up to the controller's ceiling
            step = min(s.concurrency * growth**RAMP_LOOKAHEAD, float(s.concurrency_max), s.in_flight * RAMP_AHEAD)
            busy = max(busy, step)
        now = busy / s.latency
        return min(max(now, recent / LITTLE_BOUND), recent * LITTLE_BOUND)

    def _limit_growth(self, s: Progress) -> float:
        """Growth factor per second of the concurrency limit over the last :data:`RAMP_SPAN` seconds (1.0: none)."""
        limits = self._limits
        if not s.concurrency or s.concurrency <= 0:
            limits.clear()  # nothing downloading: no ramp to follow
            return 1.0
        if not limits or s.now > limits[-1][0]:
            limits.append((s.now, s.concurrency))
        while len(limits) > 2 and s.now - limits[1][0] >= RAMP_SPAN:
            limits.popleft()  # keep the newest limit at least RAMP_SPAN old
        then, before = limits[0]
        if s.now - then < RAMP_SPAN / 2:
            return 1.0  # too short to tell
        return max(1.0, (s.concurrency / before) ** (1.0 / (s.now - then)))

    def _lowest_latency(self, s: Progress) -> float | None:
        """The lowest ``latency`` of the snapshots of the last ``horizon`` seconds that had requests in flight."""
        latencies = self._latencies
        if s.latency and s.latency > 0 and s.in_flight and (not latencies or s.now > latencies[-1][0]):
            latencies.append((s.now, s.latency))
        while latencies and s.now - latencies[0][0] > self.horizon:
            latencies.popleft()
        return min(latency for _, latency in latencies) if latencies else None

    @staticmethod
    def _basis(s: Progress) -> Basis:
        if s.expected_products is not None:
            return "total_count"
        if s.expected_list_pages is not None:
            return "last_page"
        return "extrapolated"
