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

Rates come from :class:`RateMeter`, a time-decayed average started at the
first completion, which is the cumulative average early on and an EWMA later
(see its docstring), so the ETA is usable after two snapshots and still
follows a rate change within a few half-lives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

#: How :attr:`Estimate.expected_total` was obtained.
Basis = Literal["total_count", "last_page", "extrapolated"]


class RateMeter:
    """Event rate (per second) of a monotonically growing counter.

    ``update(count, now)`` may be called at irregular times.  The rate is a
    time-decayed average: with ``d = 0.5 ** (dt / half_life)`` for each new
    interval ``dt`` holding ``dc`` events, ``N = N*d + dc``, ``T = T*d + dt``
    and ``rate = N / T``.  That is an EWMA of the per-interval rates weighted
    by interval length, bias-corrected: the first interval sets the rate
    exactly (no warm-up from 0), and while the elapsed time is small against
    ``half_life`` it is the plain cumulative average since the first update;
    later, older intervals lose half their weight every ``half_life``.

    The first update only anchors the counter.  An update that does not move
    the clock forward (``dt <= 0``) is deferred: its events are counted in the
    next interval.  A counter that goes backwards re-anchors the meter.
    """

    def __init__(self, half_life: float) -> None:
        if not half_life > 0:
            raise ValueError(f"half_life must be > 0, got {half_life!r}")
        self.half_life = float(half_life)
        self._last_count: float | None = None
        self._last_time = 0.0
        self._events = 0.0
        self._seconds = 0.0

    @property
    def rate(self) -> float | None:
        """Events per second, or None before the first interval."""
        return self._events / self._seconds if self._seconds > 0 else None

    def update(self, total_count: float, now: float) -> float | None:
        """Feed the counter's value at time ``now`` (seconds); return :attr:`rate`."""
        if self._last_count is None:
            self._last_count, self._last_time = total_count, now
            return None
        if total_count < self._last_count:
            self._last_count, self._last_time = total_count, now
            return self.rate
        dt = now - self._last_time
        if dt <= 0:
            return self.rate
        decay = 0.5 ** (dt / self.half_life)
        self._events = self._events * decay + (total_count - self._last_count)
        self._seconds = self._seconds * decay + dt
        self._last_count, self._last_time = total_count, now
        return self.rate


@dataclass(frozen=True)
class Progress:
    """A snapshot of the crawl counters at time ``now`` (seconds).

    ``detail_done``/``list_done``: requests of each stage finished, whatever
    the outcome; ``detail_pending``/``list_pending``: requests scheduled or
    in flight; ``products_discovered``: detail requests created so far;
    ``expected_products``: the product total announced by the site;
    ``expected_list_pages``: the last list page number announced.
    """

    now: float
    detail_done: int
    detail_pending: int
    list_done: int
    list_pending: int
    products_discovered: int
    expected_products: int | None = None
    expected_list_pages: int | None = None


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

    Once nothing is pending (and something was done) the crawl is over:
    progress 1.0, ETA 0, and ``expected_total`` is what was discovered.
    """

    def __init__(self, half_life: float = 10.0, *, list_weight: float = 1.0) -> None:
        if not list_weight >= 0:
            raise ValueError(f"list_weight must be >= 0, got {list_weight!r}")
        self.list_weight = float(list_weight)
        self._work = RateMeter(half_life)
        self._detail = RateMeter(half_life)
        self._list = RateMeter(half_life)
        self.last: Estimate | None = None

    def update(self, snapshot: Progress) -> Estimate:
        """Account for ``snapshot`` (times must not go backwards) and estimate."""
        s = snapshot
        work_done = s.detail_done + self.list_weight * s.list_done
        # Meters start at the first completion: the idle start-up is not a rate.
        if work_done > 0:
            self._work.update(work_done, s.now)
        if s.detail_done > 0:
            self._detail.update(s.detail_done, s.now)
        if s.list_done > 0:
            self._list.update(s.list_done, s.now)
        work_rate = self._work.rate
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
        eta: float | None = None
        if undiscovered is not None and work_rate:
            eta = (remaining_products + self.list_weight * pages) / work_rate
        progress = min(1.0, max(0.0, s.detail_done / expected)) if expected > 0 else 0.0
        self.last = Estimate(progress, eta, remaining_products, pages, *rates, expected, self._basis(s))
        return self.last

    @staticmethod
    def _basis(s: Progress) -> Basis:
        if s.expected_products is not None:
            return "total_count"
        if s.expected_list_pages is not None:
            return "last_page"
        return "extrapolated"
