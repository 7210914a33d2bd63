"""Progress and ETA estimation on synthetic timelines: pure, no reactor."""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field

import pytest

from crawler.eta import Estimate, EtaEstimator, Progress, WindowRate

# --- WindowRate ----------------------------------------------------------------


def feed(meter: WindowRate, rates: list[float], start: float = 0.0, count: float = 0.0, dt: float = 1.0):
    """Feed one interval of ``dt`` per rate; return (time, count) at the end."""
    now = start
    if not meter._history:
        meter.update(count, now)
    for rate in rates:
        now += dt
        count += rate * dt
        meter.update(count, now)
    return now, count


def test_window_rate_first_update_only_anchors():
    meter = WindowRate()
    assert meter.update(500, now=3.0) is None
    assert meter.rate is None


def test_window_rate_initialises_from_the_first_interval():
    meter = WindowRate()
    meter.update(0, 0.0)
    assert meter.update(100, 0.5) == pytest.approx(200.0)
    assert not meter.steady


def test_window_rate_is_a_long_average_while_steady():
    # 90/s and 110/s in turn: 3 s alone read 96.7 or 103.3; the stretched window reads ~100.
    meter = WindowRate(3.0)
    feed(meter, [90.0, 110.0] * 20)
    assert meter.steady
    assert meter.rate == pytest.approx(100.0, rel=0.01)
    feed(meter, [90.0] * 1, *meter._history[-1])
    assert meter.rate == pytest.approx(99.5, rel=0.01)  # one more slow second barely moves it


def test_window_rate_follows_a_step_within_its_window():
    meter = WindowRate(3.0)
    now, count = feed(meter, [100.0] * 40)
    now, count = feed(meter, [50.0] * 3, now, count)
    assert meter.rate == pytest.approx(50.0)  # the old rate is forgotten, not averaged in
    assert not meter.steady
    feed(meter, [50.0] * 5, now, count)
    assert meter.steady and meter.rate == pytest.approx(50.0)


def test_window_rate_recent_rate_on_a_ramp():
    meter = WindowRate(3.0)
    feed(meter, [10.0 * n for n in range(1, 9)])  # 10, 20, ... 80/s
    assert not meter.steady
    assert 0.9 * 70.0 <= meter.rate <= 70.0  # the last 3 s (70/s), stretched within the 10% tolerance
    assert meter.recent_rate == pytest.approx(75.0)  # the last 1.5 s: two intervals


def test_window_rate_handles_irregular_intervals():
    meter = WindowRate()
    count, now = 0, 0.0
    meter.update(count, now)
    for dt in (0.3, 1.7, 0.01, 4.0, 0.9, 2.5, 0.05, 1.1, 0.6):
        now += dt
        count += round(50 * dt)
        meter.update(count, now)
    assert meter.rate == pytest.approx(50.0, rel=0.05)


def test_window_rate_ignores_zero_and_negative_intervals():
    meter = WindowRate()
    meter.update(0, 0.0)
    meter.update(100, 1.0)
    assert meter.update(150, 1.0) == pytest.approx(100.0)  # same instant: ignored
    assert meter.update(160, 0.5) == pytest.approx(100.0)  # clock went back: ignored
    assert meter.update(300, 2.0) == pytest.approx(150.0)  # the 200 events land here


def test_window_rate_reanchors_when_the_counter_goes_back():
    meter = WindowRate()
    meter.update(0, 0.0)
    meter.update(100, 1.0)
    assert meter.update(5, 2.0) is None
    assert meter.update(105, 3.0) == pytest.approx(100.0)


def test_window_rate_stall_and_recovery():
    meter = WindowRate(3.0)
    now, count = feed(meter, [100.0] * 20)
    assert meter.update(count, now + 1) is not None  # one quiet second is not a stall yet
    assert meter.update(count, now + 3) is None and meter.stalled
    assert meter.update(count, now + 10) is None
    # Completions resume in the middle of a second: that interval holds dead time, it only anchors.
    assert meter.update(count + 40, now + 11) is None and not meter.stalled
    assert meter.update(count + 120, now + 12) == pytest.approx(80.0)  # the resumed rate, at once


def test_window_rate_slow_counter_is_not_a_stall():
    meter = WindowRate(3.0)
    meter.update(0, 0.0)
    for n in range(1, 11):  # one event every 4 s
        meter.update(n, 4.0 * n - 2)
        assert meter.update(n, 4.0 * n) is not None or n == 1
    assert meter.rate == pytest.approx(0.25, rel=0.15)


def test_window_rate_rejects_bad_arguments():
    with pytest.raises(ValueError):
        WindowRate(0)
    with pytest.raises(ValueError):
        WindowRate(10, horizon=5)
    with pytest.raises(ValueError):
        WindowRate(3, tolerance=-0.1)


# --- EtaEstimator: the arithmetic ---------------------------------------------


def snap(now: float, **kw: int | None) -> Progress:
    base: dict[str, int | None] = dict(
        detail_done=0, detail_pending=0, list_done=0, list_pending=0, products_discovered=0
    )
    base.update(kw)
    return Progress(now=now, **base)  # type: ignore[arg-type]


def test_nothing_known_yet():
    est = EtaEstimator().update(snap(0.0, list_pending=1))
    assert est.progress == 0.0
    assert est.eta_seconds is None
    assert est.remaining_list_pages == 2  # page 1, and a next one it may link
    assert est.basis == "extrapolated"


def test_before_anything_ran_the_crawl_is_not_finished():
    est = EtaEstimator().update(snap(0.0))
    assert est.progress == 0.0 and est.eta_seconds is None


def test_total_count_basis():
    eta = EtaEstimator()
    eta.update(
        snap(
            0.0,
            list_done=1,
            list_pending=9,
            products_discovered=12,
            detail_pending=12,
            expected_products=120,
            expected_list_pages=10,
        )
    )
    est = eta.update(
        snap(
            1.0,
            detail_done=30,
            detail_pending=18,
            list_done=4,
            list_pending=6,
            products_discovered=48,
            expected_products=120,
            expected_list_pages=10,
        )
    )
    assert est.basis == "total_count"
    assert est.expected_total == 120
    assert est.remaining_products == 18 + (120 - 48)
    assert est.remaining_list_pages == 6
    assert est.progress == pytest.approx(30 / 120)
    # 30 details + 3 list pages in one second: 33 requests/s; 90 + 6 to go.
    assert est.request_rate == pytest.approx(33.0)
    assert est.eta_seconds == pytest.approx(96 / 33)


def test_total_count_never_below_what_was_discovered():
    est = EtaEstimator().update(snap(0.0, list_done=3, products_discovered=40, detail_pending=40, expected_products=30))
    assert est.expected_total == 40


def test_total_count_without_last_page_estimates_the_list_pages_left():
    est = EtaEstimator().update(
        snap(0.0, list_done=2, list_pending=1, products_discovered=24, detail_pending=24, expected_products=120)
    )
    assert est.remaining_list_pages == 8  # 96 products still to discover at 12 a page


def test_last_page_basis_uses_products_per_list_page():
    est = EtaEstimator().update(
        snap(
            0.0,
            detail_done=10,
            detail_pending=14,
            list_done=2,
            list_pending=8,
            products_discovered=24,
            expected_list_pages=10,
        )
    )
    assert est.basis == "last_page"
    assert est.remaining_list_pages == 8
    assert est.expected_total == 24 + 8 * 12
    assert est.remaining_products == 14 + 8 * 12


def test_extrapolated_basis_adds_one_page_while_the_list_stage_goes_on():
    est = EtaEstimator().update(
        snap(0.0, detail_done=20, detail_pending=16, list_done=3, list_pending=1, products_discovered=36)
    )
    assert est.basis == "extrapolated"
    assert est.remaining_list_pages == 2
    assert est.expected_total == 36 + 24
    est = EtaEstimator().update(
        snap(0.0, detail_done=20, detail_pending=16, list_done=3, list_pending=0, products_discovered=36)
    )
    assert est.remaining_list_pages == 0
    assert est.expected_total == 36


def test_finished_crawl():
    eta = EtaEstimator()
    eta.update(snap(0.0, detail_done=1, list_done=1, detail_pending=5, products_discovered=6, expected_products=10))
    est = eta.update(snap(1.0, detail_done=6, list_done=1, products_discovered=6, expected_products=10))
    assert est.progress == 1.0
    assert est.eta_seconds == 0.0
    assert est.remaining_products == 0 and est.remaining_list_pages == 0
    assert est.expected_total == 6


def test_stalled_crawl_has_no_eta():
    eta = EtaEstimator()
    state = dict(detail_done=10, detail_pending=10, list_done=1, products_discovered=20)
    eta.update(snap(0.0, **state))
    est = eta.update(snap(100.0, **state))
    assert est.eta_seconds is None


def test_list_weight_counts_list_requests_as_more_work():
    # Only details ran so far (10/s); 10 list pages are left and nothing else.
    state = dict(
        detail_pending=0,
        list_done=1,
        list_pending=10,
        products_discovered=11,
        expected_products=11,
        expected_list_pages=11,
    )
    plain, heavy = EtaEstimator(), EtaEstimator(list_weight=2.0)
    for eta in (plain, heavy):
        eta.update(snap(0.0, detail_done=1, **state))
    assert plain.update(snap(1.0, detail_done=11, **state)).eta_seconds == pytest.approx(1.0)
    assert heavy.update(snap(1.0, detail_done=11, **state)).eta_seconds == pytest.approx(2.0)


def test_progress_is_clamped():
    est = EtaEstimator().update(
        snap(0.0, detail_done=50, detail_pending=1, list_done=1, products_discovered=40, expected_products=40)
    )
    assert est.progress == 1.0


# --- EtaEstimator on simulated crawls -----------------------------------------


@dataclass
class Crawl:
    """A discrete-event two-stage crawl: N slots, a priority queue, jittered latency."""

    products: int = 3000
    per_page: int = 12
    concurrency: int = 16
    latency: float = 0.145  # 16 / 0.145 = 110 requests/s
    enumerate_pages: bool = True  # page 1 yields every list page (else a "next" chain)
    announce_total: bool = True
    announce_last: bool = True
    list_first: bool = False  # front-loaded list stage instead of details first
    slow_factor: float = 1.0  # latency multiplier from ``slow_at`` on
    slow_at: float = float("inf")
    wobble: float = 0.0  # each second's latencies scaled by uniform(1 - wobble, 1 + wobble)
    ramp_from: int | None = None  # concurrency grows linearly from this to ``concurrency`` ...
    ramp_seconds: float = 0.0  # ... over these first seconds (the adaptive controller's ramp)
    outage: tuple[float, float] | None = None  # (start, length): nothing completes meanwhile
    little: bool = True  # snapshots carry in_flight and latency
    in_flight_lag: float = 0.0  # in_flight as sampled lags the limit by this many seconds (a real sampler does)
    report_limit: bool = False  # snapshots carry the concurrency limit in force
    report_max: bool = False  # snapshots carry the controller's ceiling (``concurrency``)
    steps: tuple[int, ...] | None = None  # the limit by controller tick (instead of ramp_from): steps[k] after k ticks
    tick: float = 0.5  # the controller ticks at tick, tick + period, ... (its phase against the snapshots)
    period: float = 1.0
    capacity: int | None = None  # the site serves this many at once; the rest wait (latency grows)
    seed: int = 7
    snapshots: list[Progress] = field(default_factory=list)
    end: float = 0.0

    def run(self, every: float = 1.0) -> Crawl:
        rng = random.Random(self.seed)
        second = [1 + self.wobble * rng.uniform(-1, 1) for _ in range(10_000)]
        pages = -(-self.products // self.per_page)
        queue: list[tuple[int, int, str, int]] = []
        seq = 0

        def push(kind: str, page: int) -> None:
            nonlocal seq
            seq += 1
            prio = (0 if kind == "list" else 1) if self.list_first else (1 if kind == "list" else 0)
            heapq.heappush(queue, (prio, seq, kind, page))

        push("list", 1)
        running: list[tuple[float, int, str, int]] = []
        done = {"list": 0, "detail": 0}
        pending = {"list": 1, "detail": 0}
        discovered = 0
        expected_products = expected_pages = None
        now, next_snap = 0.0, every
        latencies: list[float] = []

        def limit(at: float) -> int:
            if self.steps is not None:
                ticks = math.floor((at - self.tick) / self.period) + 1 if at >= self.tick else 0
                return self.steps[min(ticks, len(self.steps) - 1)]
            if self.ramp_from is None or at >= self.ramp_seconds:
                return self.concurrency
            return round(self.ramp_from + (self.concurrency - self.ramp_from) * at / self.ramp_seconds)

        while queue or running:
            while queue and len(running) < limit(now):
                _, s, kind, page = heapq.heappop(queue)
                lat = self.latency * rng.uniform(0.7, 1.3) * second[int(now)]
                lat *= self.slow_factor if now >= self.slow_at else 1.0
                if self.capacity is not None:  # a queue at the site: the wait grows with what is in flight
                    lat *= max(1.0, (len(running) + 1) / self.capacity)
                end = now + lat
                if self.outage and end >= self.outage[0] and now < sum(self.outage):
                    end = sum(self.outage) + lat  # failed during the outage, retried after it
                else:
                    latencies.append(lat)
                heapq.heappush(running, (end, s, kind, page))
            finish, _, kind, page = heapq.heappop(running)
            while next_snap <= finish:
                recent = latencies[-100:]
                self.snapshots.append(Progress(
                    next_snap, done["detail"], pending["detail"], done["list"], pending["list"], discovered,
                    expected_products, expected_pages,
                    in_flight=min(len(running) + 1, limit(max(0.0, next_snap - self.in_flight_lag)))
                    if self.little else None,
                    latency=sum(recent) / len(recent) if self.little and recent else None,
                    concurrency=limit(next_snap) if self.report_limit else None,
                    concurrency_max=self.concurrency if self.report_max else None,
                ))  # fmt: skip
                next_snap += every
            now = finish
            done[kind] += 1
            pending[kind] -= 1
            if kind == "list":
                found = min(self.per_page, self.products - (page - 1) * self.per_page)
                discovered += found
                pending["detail"] += found
                for _ in range(found):
                    push("detail", page)
                following = range(2, pages + 1) if page == 1 and self.enumerate_pages else ()
                if not self.enumerate_pages and page < pages:
                    following = [page + 1]
                for number in following:
                    pending["list"] += 1
                    push("list", number)
                if page == 1:
                    expected_products = self.products if self.announce_total else None
                    expected_pages = pages if self.announce_last else None
        self.end = now
        return self


def checkpoints(crawl: Crawl, marks=(0.10, 0.25, 0.50, 0.75), window: float = 3.0):
    """(mark, estimate, actual remaining) at the first snapshot reaching each progress mark."""
    eta = EtaEstimator(window)
    out: list[tuple[float, Estimate, float]] = []
    todo = list(marks)
    for s in crawl.snapshots:
        est = eta.update(s)
        while todo and s.detail_done / crawl.products >= todo[0]:
            out.append((todo.pop(0), est, crawl.end - s.now))
    assert not todo
    return out


def relative_errors(crawl: Crawl, **kw) -> list[float]:
    errors = []
    for _, est, actual in checkpoints(crawl, **kw):
        assert est.eta_seconds is not None
        errors.append(abs(est.eta_seconds - actual) / actual)
    return errors


@pytest.mark.parametrize("list_first", [False, True], ids=["details-first", "list-front-loaded"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_steady_shop_eta_within_15_percent(list_first: bool, seed: int):
    crawl = Crawl(list_first=list_first, seed=seed).run()
    assert 27 < crawl.end < 33  # ~3,250 requests at ~110/s
    errors = relative_errors(crawl)
    assert max(errors) <= 0.10, errors  # the benchmark allows 0.15


@pytest.mark.parametrize("list_first", [False, True], ids=["details-first", "list-front-loaded"])
@pytest.mark.parametrize("seed", [4, 5, 6, 7, 8])
def test_wobbly_shop_eta_within_15_percent(list_first: bool, seed: int):
    # Throughput varies by up to +-10% from one second to the next (GC, database flushes...).
    # (At 10% only ~3 s are known, so much more random wobble is unpredictable by any estimator.)
    crawl = Crawl(list_first=list_first, seed=seed, wobble=0.1).run()
    errors = relative_errors(crawl)
    assert max(errors) <= 0.15, errors


def test_steady_shop_progress_tracks_details():
    crawl = Crawl().run()
    for mark, est, _ in checkpoints(crawl):
        assert est.basis == "total_count"
        assert est.expected_total == 3000
        assert mark <= est.progress < mark + 0.05


def test_steady_shop_with_last_page_only():
    crawl = Crawl(announce_total=False).run()
    for _, est, _ in checkpoints(crawl):
        assert est.basis == "last_page"
        assert abs(est.expected_total - 3000) <= 12  # the last page is not full
    assert max(relative_errors(crawl)) <= 0.10


def errors_over_time(crawl: Crawl, times, window: float = 3.0) -> dict[float, float | None]:
    """Relative ETA error at each of ``times`` (None: no ETA then)."""
    eta = EtaEstimator(window)
    out: dict[float, float | None] = {}
    for s in crawl.snapshots:
        est = eta.update(s)
        if s.now in times:
            actual = crawl.end - s.now
            out[s.now] = None if est.eta_seconds is None else abs(est.eta_seconds - actual) / actual
    return out


def test_eta_follows_a_slowdown_within_its_window():
    # 6,000 products; from t=25 s every request takes twice as long.
    crawl = Crawl(products=6000, slow_at=25.0, slow_factor=2.0).run()
    errors = errors_over_time(crawl, (24.0, 30.0, 40.0, 50.0))
    # Before the change nothing can foresee it; a few seconds after it the ETA uses the new rate.
    assert errors[24.0] > 0.3
    assert all(e is not None and e < 0.06 for t, e in errors.items() if t >= 30), errors


#: The ramp of the bench: the balanced profile's controller took 4 to 16 in about 6 s on a shop with 0.2 s latency.
RAMP = dict(products=1800, latency=0.2, concurrency=16, ramp_from=4, ramp_seconds=6.0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ramping_crawl_eta_within_25_percent(seed: int):
    # Shop latency 0.2 s; the concurrency grows from 4 (20 requests/s) to 16 (80/s) over the first 6 s,
    # so at 10% progress (5 s) the crawl runs at 3/4 of its final rate: the rate now (Little's law) is
    # needed; a rate over any past window is lower still.  (The old estimator: 57-61% off at 10%.)
    crawl = Crawl(seed=seed, **RAMP).run()  # type: ignore[arg-type]
    assert 25 < crawl.end < 30
    errors = relative_errors(crawl)
    assert max(errors) <= 0.25, errors
    assert max(errors[1:]) <= 0.10, errors  # from 25% on the ramp is over


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ramping_crawl_with_a_lagging_in_flight_sample_counts_the_limit(seed: int):
    # A real sample of the requests in flight trails the limit the controller just raised (seen on
    # the ramping bench: 12 in flight under a limit of 15 at 10% progress, 28-30% long).  The limit in
    # force says where the rate is going within one latency.
    lagging = Crawl(seed=seed, in_flight_lag=1.5, **RAMP).run()  # type: ignore[arg-type]
    with_limit = Crawl(seed=seed, in_flight_lag=1.5, report_limit=True, **RAMP).run()  # type: ignore[arg-type]
    assert relative_errors(lagging)[0] > 0.25  # 43-49% long at 10% progress
    assert max(relative_errors(with_limit)) <= 0.20, relative_errors(with_limit)  # 12-17%


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ramping_crawl_without_in_flight_figures(seed: int):
    # The Little's-law figure missing: the rate over the last 1.5 s, a second behind the ramp, so
    # 33-36% long at 10% progress; from 25% on the ramp is over and it is as good.  (Old: 19-21% at 25%.)
    crawl = Crawl(seed=seed, little=False, **RAMP).run()  # type: ignore[arg-type]
    errors = relative_errors(crawl)
    assert max(errors) <= 0.40, errors
    assert max(errors[1:]) <= 0.10, errors


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_outage_eta_recovers_when_the_outage_ends(seed: int):
    # 3,000 products at 110 requests/s; nothing completes from 12 s to 22 s.
    crawl = Crawl(seed=seed, outage=(12.0, 10.0)).run()
    assert 36 < crawl.end < 44
    eta = EtaEstimator()
    for s in crawl.snapshots:
        est = eta.update(s)
        actual = crawl.end - s.now
        if 16.0 <= s.now <= 22.0:
            assert est.eta_seconds is None  # stalled: unknown rather than huge
        elif s.now >= 25.0 and actual > 2.0:  # from 3 s after the outage (~55% progress) on
            assert est.eta_seconds is not None
            assert abs(est.eta_seconds - actual) / actual <= 0.15, (s.now, est.eta_seconds, actual)
    # Marks before the outage cannot foresee it: short by its 10 s.
    (mark, est, actual), *_ = checkpoints(crawl, marks=(0.25,))
    assert est.eta_seconds is not None and actual - 10.0 - 2.0 < est.eta_seconds < actual - 10.0 + 2.0


def test_discovered_total_grows_with_a_next_page_chain():
    # Neither a total nor a last page: one list page at a time, 40 pages.
    crawl = Crawl(products=480, enumerate_pages=False, announce_total=False, announce_last=False, latency=0.1).run(
        every=0.5
    )
    eta = EtaEstimator()
    totals, progress = [], []
    for s in crawl.snapshots:
        est = eta.update(s)
        assert est.basis == "extrapolated"
        assert 0.0 <= est.progress <= 1.0
        assert est.expected_total >= s.products_discovered
        totals.append(est.expected_total)
        progress.append(est.progress)
    assert totals[-1] == 480 or progress[-1] > 0.9
    assert totals == sorted(totals)  # only grows as list pages arrive
    last = Progress(crawl.end + 1, 480, 0, 40, 0, 480)
    final = eta.update(last)
    assert final.progress == 1.0 and final.eta_seconds == 0.0 and final.expected_total == 480


def test_changing_announced_total_is_followed():
    eta = EtaEstimator()
    common = dict(detail_pending=20, list_done=5, list_pending=5, products_discovered=60)
    eta.update(snap(0.0, detail_done=0, expected_products=120, **common))
    a = eta.update(snap(1.0, detail_done=40, expected_products=120, **common))
    b = eta.update(snap(2.0, detail_done=80, expected_products=240, **common))
    assert a.expected_total == 120 and b.expected_total == 240
    assert b.progress == pytest.approx(80 / 240)
    assert b.remaining_products == 20 + 180


#: The balanced profile's controller in slow start (a quarter more each tick), as on the ramping bench.
SLOW_START = (4, 5, 6, 7, 8, 10, 12, 15, 16)


def slow_start_errors(seed: int, tick: float, **kw) -> list[float]:
    crawl = Crawl(seed=seed, steps=SLOW_START, tick=tick, report_limit=True, **{**RAMP, "ramp_from": None, **kw})
    return relative_errors(crawl.run())  # type: ignore[arg-type]


@pytest.mark.parametrize("tick", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ramping_crawl_counts_the_next_step_of_a_rising_limit(seed: int, tick: float):
    # The controller raises the limit once a second; when the snapshot comes after the downloader
    # filled the limit just raised, in flight = limit and the rate now is one step behind where the
    # ramp goes (the ramping bench: 12 in flight under a limit of 12 at 10% progress, 26-30% long in
    # 9 runs of 13; 1-4% in the others, which caught the limit just raised to 15).  The next step
    # counts, up to the controller's ceiling.
    without_ceiling = slow_start_errors(seed, tick)
    errors = slow_start_errors(seed, tick, report_max=True)
    assert max(errors) <= 0.15, errors
    assert max(errors[1:]) <= 0.10, errors
    if tick < 0.5:  # the limit a tick old at the snapshots: in flight has caught up with it
        assert without_ceiling[0] > 0.25, without_ceiling  # no ceiling known: no step counted


def test_next_step_never_beyond_the_ceiling():
    eta = EtaEstimator()
    common = dict(detail_pending=800, list_done=10, list_pending=0, products_discovered=1000, latency=0.2)
    eta.update(snap(0.0, detail_done=0, in_flight=8, concurrency=8, concurrency_max=16, **common))
    eta.update(snap(1.0, detail_done=40, in_flight=8, concurrency=8, concurrency_max=16, **common))
    # the limit doubled in 2 s: the next step would be 16 x 1.41, the ceiling is 16
    est = eta.update(snap(2.0, detail_done=80, in_flight=16, concurrency=16, concurrency_max=16, **common))
    assert est.request_rate == pytest.approx(80.0)  # 16 / 0.2 s
    # no ceiling known: only what is in flight counts
    eta = EtaEstimator()
    eta.update(snap(0.0, detail_done=0, in_flight=8, concurrency=8, **common))
    eta.update(snap(1.0, detail_done=40, in_flight=8, concurrency=8, **common))
    est = eta.update(snap(2.0, detail_done=80, in_flight=12, concurrency=12, **common))
    assert est.request_rate == pytest.approx(60.0)


@pytest.mark.parametrize("tick", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_site_at_capacity_more_in_flight_is_not_more_rate(seed: int, tick: float):
    # The steady bench: a shop of 6 workers (0.05 s: 120/s) and a controller still in slow start,
    # which overshoots to 10 in flight; the requests past 6 wait.  The mean latency of the last
    # responses lags that queue (the bench: 10 / 0.068 s read 147/s while the shop served 113/s,
    # 24% short at 10% progress; here 18% when the raise to 10 comes just before the 10% snapshot).
    # A latency over 10% above its lowest is a queue: then the rate is what was measured.
    crawl = Crawl(
        seed=seed, products=3000, latency=0.05, capacity=6, concurrency=10, steps=(5, 6, 8, 10),
        tick=tick, report_limit=True, report_max=True,
    ).run()  # fmt: skip
    errors = relative_errors(crawl)
    assert max(errors) <= 0.05, errors


@pytest.mark.parametrize("tick", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_after_an_outage_the_rate_of_a_queueing_site_is_what_completes_now(seed: int, tick: float):
    # The outage bench: the shop's 6 workers, the limit at 10 before a 10 s outage, at 1 during it,
    # then doubling back 2, 4, 8, 10 once the site answers.  At 10 the site queues, so the rate is
    # the one measured; over the last 2 s it still held the seconds at 4 and 8 (the bench: 9.2 s
    # estimated against 7.1 s actual, 27-29% in 4 of 6 runs).  The shortest span with 50
    # completions is the rate now.
    steps = (5, 6, 8, 10) + (10,) * 4 + (1,) * 11 + (2, 4, 8) + (10,) * 30
    crawl = Crawl(
        seed=seed, products=1800, latency=0.05, capacity=6, concurrency=10, steps=steps, tick=tick,
        report_limit=True, report_max=True, outage=(8.0, 10.0),
    ).run()  # fmt: skip
    errors = relative_errors(crawl, marks=(0.60, 0.75))  # the marks after the ramp back
    assert max(errors) <= 0.05, errors


def test_window_rate_latest_rate_is_the_shortest_span_with_enough_events():
    meter = WindowRate(3.0)
    now, count = feed(meter, [20.0] * 5 + [120.0])
    assert meter.latest_rate == pytest.approx(120.0)  # one interval holds 120 >= 50 events
    assert meter.recent_rate == pytest.approx(70.0)  # the last 1.5 s: two intervals
    feed(meter, [30.0], now, count)
    assert meter.latest_rate == pytest.approx(75.0)  # 30 < 50: two intervals
    meter = WindowRate(3.0)
    feed(meter, [10.0] * 6)
    assert meter.latest_rate == meter.recent_rate == pytest.approx(10.0)  # never longer than the recent span


def test_next_step_counts_between_two_ticks():
    # The controller ticks every second or so, not in step with the snapshots: the limit raised to 12
    # a hair before the snapshot at 6 s, and to 15 a hair after the one at 7 s.  At 7 s the limit did
    # not move for a second, yet the ramp goes on: its growth is measured over 2 s.
    eta = EtaEstimator()
    common = dict(detail_pending=800, list_done=10, list_pending=0, products_discovered=1000, latency=0.2)
    for now, done, limit in ((4.0, 0, 8), (5.0, 50, 10), (6.0, 110, 12), (7.0, 170, 12)):  # limit / 0.2 s a second
        est = eta.update(snap(now, detail_done=done, in_flight=limit, concurrency=limit, concurrency_max=16, **common))
    assert est.request_rate == pytest.approx(12 * (12 / 10) ** 0.5 / 0.2)  # 12 x 1.095: 65.7/s, not 60
