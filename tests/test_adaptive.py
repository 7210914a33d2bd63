"""Adaptive per-domain concurrency: sensing and judging, pure, on synthetic timelines."""

from __future__ import annotations

import dataclasses
import random
import statistics
from dataclasses import dataclass, field

import pytest

from crawler.adaptive import (
    AimdConfig,
    Bounds,
    Decision,
    DomainSample,
    DomainSensor,
    Judge,
    SystemSample,
    SystemStatus,
    SystemVerdict,
)

OK = SystemVerdict()
BOUNDS = Bounds(min=1, start=4, max=64)


# --- DomainSensor ---------------------------------------------------------------------------------------------


def feed(sensor: DomainSensor, n: int, latency: float, outcome: str = "ok", in_flight: int | None = None) -> None:
    for _ in range(n):
        sensor.record(latency, outcome)  # type: ignore[arg-type]
    if in_flight is not None:
        sensor.observe_in_flight(in_flight)


def test_sensor_counts_one_interval_and_resets():
    sensor = DomainSensor(limit=8, start=10.0)
    for latency in (0.04, 0.05, 0.06):
        sensor.record(latency, "ok")
    sensor.record(0.001, "overload")
    sensor.record(30.0, "timeout")
    sensor.record(0.2, "error")
    for n in (6, 8, 7):
        sensor.observe_in_flight(n)
    assert sensor.count == 6 and sensor.overload_count == 1
    s = sensor.snapshot(11.0)
    assert (s.count, s.ok, s.overload, s.timeouts, s.errors) == (6, 3, 1, 1, 1)
    assert s.latency_p50 == pytest.approx(0.05)  # ok responses only
    assert s.latency_ewma == pytest.approx(0.05)
    assert s.in_flight_mean == pytest.approx(7.0)
    assert s.limit == 8 and s.at == 11.0 and s.duration == pytest.approx(1.0)
    assert s.overload_share == pytest.approx(1 / 6)
    assert s.utilization == pytest.approx(7 / 8)
    assert s.served_concurrency == pytest.approx(3 * 0.05)
    empty = sensor.snapshot(12.5)
    assert (empty.count, empty.latency_p50, empty.in_flight_mean, empty.duration) == (0, None, None, 1.5)
    assert empty.latency_ewma == pytest.approx(0.05)  # kept across intervals


def test_sensor_without_start_has_no_first_duration():
    assert DomainSensor(limit=1).snapshot(5.0).duration is None


def test_sensor_rejects_unknown_outcomes():
    with pytest.raises(ValueError):
        DomainSensor(limit=1).record(0.1, "teapot")  # type: ignore[arg-type]


def test_latency_ewma_over_interval_medians():
    sensor = DomainSensor(limit=4, ewma_alpha=0.5)
    feed(sensor, 20, 0.1)
    sensor.snapshot(1)
    feed(sensor, 20, 0.2)
    assert sensor.snapshot(2).latency_ewma == pytest.approx(0.15)


def baseline_after(sensor: DomainSensor, intervals: list[tuple[int, float, int, int]]) -> float:
    """Feed (ok count, latency, overloads, in-flight) intervals; return the baseline."""
    t = 0.0
    for ok, latency, overloads, in_flight in intervals:
        feed(sensor, ok, latency, in_flight=in_flight)
        feed(sensor, overloads, 0.002, "overload")
        t += 1
        sensor.snapshot(t)
    assert sensor.baseline is not None
    return sensor.baseline


def test_baseline_calibrates_on_the_first_responses():
    sensor = DomainSensor(limit=2, baseline_samples=30)
    assert sensor.snapshot(0).baseline is None
    # 10 responses at 40 ms, then 20 at 55 ms: a response-weighted mean.
    assert baseline_after(sensor, [(10, 0.040, 0, 2), (20, 0.055, 0, 3)]) == pytest.approx(0.050)
    assert sensor.baseline_load == 3


def test_baseline_follows_a_faster_site_quickly():
    sensor = DomainSensor(limit=6)
    baseline_after(sensor, [(100, 0.100, 0, 6)])
    assert baseline_after(sensor, [(100, 0.050, 0, 8)] * 5) == pytest.approx(0.050, rel=0.05)


def test_baseline_does_not_ratchet_up_under_overload():
    sensor = DomainSensor(limit=6)
    baseline_after(sensor, [(100, 0.050, 0, 6)])
    # The site queues and rejects: slow ok responses plus 429/503s, for a long time.
    assert baseline_after(sensor, [(120, 0.150, 40, 12)] * 100) == pytest.approx(0.050)
    # Timeouts disqualify an interval too.
    sensor.record(30.0, "timeout")
    assert baseline_after(sensor, [(120, 0.150, 0, 6)]) == pytest.approx(0.050)


def test_baseline_does_not_ratchet_up_with_our_own_queueing():
    sensor = DomainSensor(limit=6)
    baseline_after(sensor, [(100, 0.050, 0, 6)])
    # Higher load, higher latency, no rejection: that is queueing, not a slower site.
    assert baseline_after(sensor, [(120, 0.080, 0, 10)] * 100) == pytest.approx(0.050)


def test_baseline_recovers_when_the_site_is_permanently_slower():
    sensor = DomainSensor(limit=6)
    baseline_after(sensor, [(100, 0.050, 0, 6)])
    # Four times slower at the same (or a lower) load: the site changed.
    assert baseline_after(sensor, [(30, 0.200, 0, 6)] * 15) == pytest.approx(0.200, rel=0.05)


def test_baseline_moves_little_on_a_small_sample():
    sensor = DomainSensor(limit=6, baseline_samples=30)
    baseline_after(sensor, [(100, 0.100, 0, 6)])
    # 6 lucky responses at 40 ms: weight 6/30, half the gap -> 10% of the gap.
    assert baseline_after(sensor, [(6, 0.040, 0, 6)]) == pytest.approx(0.094)


def test_baseline_ignores_intervals_with_too_few_ok_responses():
    sensor = DomainSensor(limit=6, baseline_min_ok=5)
    baseline_after(sensor, [(100, 0.100, 0, 6)])
    assert baseline_after(sensor, [(4, 0.010, 0, 6)]) == pytest.approx(0.100)


# --- SystemStatus -----------------------------------------------------------------------------------------------


def sys_sample(cpu: float = 0.3, rss: int = 100 << 20, lag: float = 0.01) -> SystemSample:
    return SystemSample(cpu_fraction=cpu, rss_bytes=rss, reactor_lag=lag)


def test_system_idle_is_not_overloaded():
    status = SystemStatus(rss_max_bytes=1 << 30)
    for _ in range(5):
        verdict = status.add(sys_sample())
    assert verdict == SystemVerdict(False, False, "ok")
    assert status.verdict is verdict


def test_system_cpu_over_its_limit_makes_it_cpu_bound_not_overloaded():
    status = SystemStatus(cpu_max=0.95, window=5)
    for cpu in (0.3, 0.3, 0.3, 0.99, 0.3):  # one spike in five: 20% <= 40%
        verdict = status.add(sys_sample(cpu=cpu))
    assert not verdict.cpu_bound
    for _ in range(2):  # now 3 of the last 5
        verdict = status.add(sys_sample(cpu=0.99))
    assert verdict.cpu_bound and not verdict.overloaded
    assert "cpu" in verdict.reason and "3/5" in verdict.reason
    for _ in range(3):  # the reactor falls behind as well: that is an overload
        verdict = status.add(sys_sample(cpu=0.99, lag=0.6))
    assert verdict.cpu_bound and verdict.overloaded


def test_system_reactor_lag_overload():
    status = SystemStatus(lag_max=0.25, window=3)
    for _ in range(3):
        verdict = status.add(sys_sample(lag=0.6))
    assert verdict.overloaded and "reactor lag" in verdict.reason


def test_system_memory_high_and_over():
    status = SystemStatus(rss_max_bytes=1000 << 20, window=2, memory_high_ratio=0.8)
    verdict = status.add(sys_sample(rss=850 << 20))
    assert verdict.memory_high and not verdict.overloaded
    assert "memory high" in verdict.reason
    status.add(sys_sample(rss=1100 << 20))
    verdict = status.add(sys_sample(rss=1100 << 20))
    assert verdict.memory_high and verdict.overloaded


def test_system_memory_not_judged_without_a_limit():
    verdict = SystemStatus().add(sys_sample(rss=1 << 40))
    assert not verdict.memory_high and not verdict.overloaded


# --- Bounds and config ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [(0, 1, 2), (2, 1, 4), (1, 5, 4), (3, 3, 2)])
def test_bounds_are_validated(args):
    with pytest.raises(ValueError):
        Bounds(*args)


def test_bounds_clamp():
    b = Bounds(2, 4, 10)
    assert (b.clamp(1), b.clamp(5), b.clamp(11)) == (2, 5, 10)


@pytest.mark.parametrize(
    "changes",
    [{"step": 0}, {"overload_factor": 1.0}, {"latency_factor": 0}, {"near_ratio": 2.0, "inflated_ratio": 1.5},
     {"near_ratio": 0.9}, {"overload_share": 1.0}, {"cooldown": -1}, {"utilization": 1.5}],
)
def test_config_is_validated(changes):
    with pytest.raises(ValueError):
        AimdConfig(**changes)


# --- Judge: each rule -------------------------------------------------------------------------------------------


def sample(**kw) -> DomainSample:
    """An interval with 100 ok responses at baseline latency and the limit fully used."""
    base = dict(at=1.0, duration=1.0, count=100, ok=100, overload=0, timeouts=0, errors=0, latency_p50=0.05,
                latency_ewma=0.05, baseline=0.05, in_flight_mean=8.0, limit=8)
    base.update(kw)
    return DomainSample(**base)  # type: ignore[arg-type]


def decide(s: DomainSample, judge: Judge | None = None, system: SystemVerdict = OK,
           bounds: Bounds = BOUNDS) -> Decision:
    return (judge or Judge(AimdConfig(slow_start_fraction=0))).decide(s, system, bounds)


def test_increase_when_all_is_well():
    d = decide(sample())
    assert (d.limit, d.action) == (9, "increase")
    assert d.reason.startswith("increase 8 -> 9")


def test_slow_start_grows_proportionally_until_the_first_decrease():
    judge = Judge()  # slow_start_fraction=0.25
    assert decide(sample(limit=16, in_flight_mean=16), judge).limit == 20
    assert decide(sample(limit=3, in_flight_mean=3), judge).limit == 4  # at least the step
    decide(sample(limit=20, in_flight_mean=20, overload=10), judge)  # congestion: now additive
    for _ in range(2):
        decide(sample(limit=10, in_flight_mean=10), judge)  # cooldown
    assert decide(sample(limit=10, in_flight_mean=10), judge).limit == 11


def test_hold_below_min_samples():
    d = decide(sample(count=9, ok=0, overload=9))
    assert (d.limit, d.action) == (8, "hold")
    assert "too few samples" in d.reason


def test_overload_share_decreases_multiplicatively():
    d = decide(sample(count=100, ok=92, overload=8, duration=None))  # 8% > 2%, significantly, and fast
    assert (d.limit, d.action) == (4, "decrease")
    assert "overload" in d.reason
    assert decide(sample(count=100, ok=98, overload=2, duration=None)).action == "increase"  # 2% is tolerated
    # 3 of 100 is above 2% but within what chance gives (3 standard deviations)
    assert decide(sample(count=100, ok=97, overload=3, duration=None)).action == "increase"


def test_overload_cut_follows_what_the_site_served():
    # Limit 32, but only 60 ok/s at 100 ms were served: ~6 at once -> 3.
    d = decide(sample(limit=32, in_flight_mean=32, count=1060, ok=60, overload=1000, latency_p50=0.1))
    assert d.limit == 3
    assert "served ~6.0" in d.reason


def test_timeouts_decrease():
    d = decide(sample(count=100, ok=95, timeouts=5))
    assert (d.limit, d.action) == (4, "decrease")
    assert "timeouts" in d.reason


def test_latency_inflation_decreases_gently():
    d = decide(sample(latency_ewma=0.08))  # 1.6x baseline
    assert (d.limit, d.action) == (6, "decrease")
    assert "latency inflated" in d.reason


def test_latency_at_the_knee_holds():
    d = decide(sample(latency_ewma=0.07))  # 1.4x: neither near the baseline nor inflated
    assert (d.limit, d.action) == (8, "hold")
    assert "knee" in d.reason
    assert decide(sample(latency_ewma=0.062)).action == "increase"  # 1.24x: near enough


def test_unused_limit_is_not_raised():
    d = decide(sample(in_flight_mean=6.0))  # 75% of 8
    assert (d.limit, d.action) == (8, "hold")
    assert "not used" in d.reason
    assert decide(sample(in_flight_mean=None)).action == "hold"
    assert decide(sample(in_flight_mean=6.4)).action == "increase"  # 80%


def test_no_baseline_holds():
    assert "baseline" in decide(sample(baseline=None)).reason


def test_errors_block_increases_only():
    d = decide(sample(count=100, ok=80, errors=20))
    assert (d.action, d.limit) == ("hold", 8)
    assert "errors" in d.reason


def test_system_overload_holds_but_never_blocks_a_decrease():
    busy = SystemVerdict(overloaded=True, reason="reactor lag over 250 ms in 3/5 samples")
    d = decide(sample(), system=busy)
    assert (d.action, d.limit) == ("hold", 8)
    assert "system overloaded: reactor lag" in d.reason
    assert decide(sample(count=100, ok=90, overload=10), system=busy).action == "decrease"


CPU_BOUND = SystemVerdict(cpu_bound=True, reason="cpu over 95% in 3/5 samples")


def test_a_cpu_bound_crawler_does_not_read_its_own_queue_as_the_sites():
    inflated = sample(latency_p50=0.12, latency_ewma=0.12)  # 2.4x the baseline
    assert decide(inflated).action == "decrease"
    d = decide(inflated, system=CPU_BOUND)
    assert (d.action, d.limit) == ("increase", 16)  # slow start: doubles while the crawler is the bottleneck
    assert "the crawler's CPU is the bottleneck" in d.reason
    knee = sample(latency_ewma=0.07)  # 1.4x: between near and inflated
    assert decide(knee).action == "hold"
    assert decide(knee, system=CPU_BOUND).action == "increase"


def test_a_cpu_bound_crawler_doubles_in_slow_start_only():
    judge = Judge()
    assert decide(sample(limit=4, in_flight_mean=4), judge, system=CPU_BOUND).limit == 8
    assert decide(sample(limit=8), judge, system=CPU_BOUND).limit == 16
    assert decide(sample(limit=16, in_flight_mean=16), judge).limit == 20  # not cpu bound: a quarter
    decide(sample(limit=20, in_flight_mean=20, count=100, ok=90, overload=10), judge)  # a cut: congested
    for _ in range(2):
        decide(sample(limit=10, in_flight_mean=10), judge, system=CPU_BOUND)  # cooldown
    assert decide(sample(limit=10, in_flight_mean=10), judge, system=CPU_BOUND).limit == 11


def test_a_cpu_bound_crawler_still_backs_off_on_overload_and_timeouts():
    assert decide(sample(count=100, ok=90, overload=10), system=CPU_BOUND).action == "decrease"
    assert decide(sample(count=100, ok=90, timeouts=10), system=CPU_BOUND).action == "decrease"
    lagging = SystemVerdict(overloaded=True, cpu_bound=True, reason="cpu ...; reactor lag ...")
    assert decide(sample(), system=lagging).action == "hold"


def test_cooldown_after_a_decrease():
    judge = Judge(AimdConfig(cooldown=2))
    assert decide(sample(latency_ewma=0.1), judge).limit == 6
    # Two intervals without an increase, nor a latency-based decrease (the EWMA lags).
    for _ in range(2):
        d = decide(sample(limit=6, in_flight_mean=6, latency_ewma=0.09), judge)
        assert (d.action, d.limit) == ("hold", 6)
        assert "cooldown" in d.reason
    assert decide(sample(limit=6, in_flight_mean=6), judge).action == "increase"


def test_fresh_overload_decreases_during_a_cooldown():
    judge = Judge()
    decide(sample(limit=32, in_flight_mean=32, count=1000, ok=500, overload=500, duration=None), judge)
    d = decide(sample(limit=16, in_flight_mean=16, count=1000, ok=500, overload=500, duration=None), judge)
    assert (d.action, d.limit) == ("decrease", 8)
    assert judge.cooldown_left == 2  # restarted


def test_ceiling_memory_stops_short_of_the_limit_that_overloaded():
    judge = Judge(AimdConfig(cooldown=0, ceiling_memory=5, slow_start_fraction=0))
    decide(sample(limit=8, overload=10), judge)  # 8 overloaded -> 4
    limits = []
    limit = 4
    for _ in range(8):
        limit = decide(sample(limit=limit, in_flight_mean=limit), judge).limit
        limits.append(limit)
    assert limits == [5, 6, 7, 7, 7, 8, 9, 10]  # 7 until 8 is forgotten, 5 intervals on
    assert judge.ceiling is None


def test_never_below_min_nor_above_max():
    bounds = Bounds(min=3, start=4, max=10)
    d = decide(sample(limit=4, in_flight_mean=4, overload=50), bounds=bounds)
    assert (d.limit, d.action) == (3, "decrease")
    d = decide(sample(limit=3, in_flight_mean=3, overload=50), bounds=bounds)
    assert (d.limit, d.action) == (3, "hold")
    assert "at min 3" in d.reason
    d = decide(sample(limit=3, in_flight_mean=3, latency_ewma=0.2), bounds=bounds)
    assert (d.limit, d.action) == (3, "hold")
    assert "at min 3" in d.reason
    d = decide(sample(limit=10, in_flight_mean=10), bounds=bounds)
    assert (d.limit, d.action) == (10, "hold")
    assert "at max" in d.reason


def test_limits_outside_the_bounds_are_clamped():
    bounds = Bounds(min=3, start=4, max=10)
    d = decide(sample(limit=20, in_flight_mean=20), bounds=bounds)
    assert (d.limit, d.action) == (10, "decrease")
    assert "clamped" in d.reason
    d = decide(sample(limit=1, in_flight_mean=1, count=5), bounds=bounds)
    assert (d.limit, d.action) == (3, "increase")


def test_decreases_lose_at_least_one():
    assert decide(sample(limit=2, in_flight_mean=2, latency_ewma=0.1)).limit == 1
    assert decide(sample(limit=3, in_flight_mean=3, overload=50)).limit == 2


def test_ready_once_the_interval_has_enough_samples():
    judge, sensor = Judge(AimdConfig(min_samples=3)), DomainSensor(limit=1)
    feed(sensor, 2, 0.2)
    assert not judge.ready(sensor)
    feed(sensor, 1, 0.2)
    assert judge.ready(sensor)


def test_urgent_when_the_interval_already_shows_overload():
    judge = Judge()
    sensor = DomainSensor(limit=8)
    feed(sensor, 5, 0.05)
    feed(sensor, 4, 0.001, "overload")
    assert not judge.urgent(sensor)  # 9 < min_samples
    feed(sensor, 1, 0.001, "overload")
    assert judge.urgent(sensor)
    sensor.snapshot(1.0)
    assert not judge.urgent(sensor)


# --- closed loop on a simulated shop ----------------------------------------------------------------------------


@dataclass
class Shop:
    """A shop with ``servers`` workers and a queue of ``queue`` more, under a closed loop.

    With ``n`` requests in flight: ``min(n, servers + queue)`` are accepted and
    served at ``servers / service`` per second with latency ``service *
    max(1, accepted / servers)``; each of the other ``n - accepted`` gets a
    503 every ``reject`` seconds (rejections are fast, and retried at once).
    Latencies get per-response noise (lognormal, ``noise``) and a per-second
    drift (``wobble``).
    """

    service: float = 0.05
    servers: int = 6
    queue: int = 6
    reject: float = 0.005
    noise: float = 0.1
    wobble: float = 0.0
    demand: int = 10**6  # requests the crawler has for this domain at any time

    def capacity(self) -> float:
        return self.servers / self.service


@dataclass
class Run:
    limits: list[int] = field(default_factory=list)  # limit in force, per interval
    ok: list[float] = field(default_factory=list)
    overload: list[float] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def settled(self, skip: int) -> tuple[list[int], float, float]:
        """Limits, goodput (ok/s) and overload share from interval ``skip`` on."""
        ok, over = sum(self.ok[skip:]), sum(self.overload[skip:])
        return self.limits[skip:], ok / len(self.ok[skip:]), over / (ok + over)


def simulate(shop: Shop, start: int, intervals: int = 60, seed: int = 1, slices: int = 10,
             change: dict | None = None, change_at: int = 10**9, bounds: Bounds | None = None) -> Run:
    """Drive the sensor + judge like the glue would: 1 s intervals of ``slices`` steps.

    Each step the shop serves the crawler at the current limit; the glue
    records outcomes and in-flight counts, and decides early when the judge
    says the interval is ``urgent``; otherwise at the end of each interval.
    """
    rng = random.Random(seed)
    bounds = bounds or Bounds(1, start, 64)
    sensor, judge = DomainSensor(start, start=0.0), Judge()
    run = Run()
    step = 1.0 / slices
    carry_ok = carry_over = 0.0
    for i in range(intervals):
        if i == change_at:
            shop = dataclasses.replace(shop, **(change or {}))
        drift = 1 + shop.wobble * rng.uniform(-1, 1)
        run.limits.append(sensor.limit)
        ok_total = over_total = 0
        for j in range(slices):
            n = min(sensor.limit, shop.demand)
            accepted = min(n, shop.servers + shop.queue)
            service = shop.service * drift
            carry_ok += min(accepted, shop.servers) / service * step
            carry_over += (n - accepted) / shop.reject * step
            ok, over = int(carry_ok), int(carry_over)
            carry_ok -= ok
            carry_over -= over
            latency = service * max(1.0, accepted / shop.servers)
            for _ in range(ok):
                sensor.record(latency * rng.lognormvariate(0, shop.noise), "ok")
            for _ in range(over):
                sensor.record(0.002, "overload")
            sensor.observe_in_flight(n)
            ok_total, over_total = ok_total + ok, over_total + over
            now = i + (j + 1) * step
            if (j == slices - 1 and judge.ready(sensor)) or judge.urgent(sensor):
                decision = judge.decide(sensor.snapshot(now), OK, bounds)
                sensor.limit = decision.limit
                run.decisions.append(decision)
        run.ok.append(ok_total)
        run.overload.append(over_total)
    return run


FAST, SLOW = Shop(service=0.05), Shop(service=0.2)  # the same 6 + 6 slots; 120 and 30 requests/s


@pytest.mark.parametrize("shop", [FAST, SLOW], ids=["50ms", "200ms"])
@pytest.mark.parametrize("start", [2, 32])
def test_settles_near_capacity_without_being_told(shop: Shop, start: int):
    run = simulate(shop, start)
    limits, goodput, overload = run.settled(skip=10)
    assert all(6 <= limit <= 12 for limit in limits), limits
    assert goodput >= 0.9 * shop.capacity()
    assert overload <= 0.02
    if start == 2:
        assert run.settled(skip=0)[2] <= 0.02  # never overshoots into rejections


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("shop", [FAST, SLOW], ids=["50ms", "200ms"])
@pytest.mark.parametrize("start", [2, 32])
def test_settles_on_a_noisy_shop(shop: Shop, start: int, seed: int):
    noisy = dataclasses.replace(shop, noise=0.3, wobble=0.15)
    limits, goodput, overload = simulate(noisy, start, seed=seed).settled(skip=10)
    assert 6 <= statistics.mean(limits) <= 12 and min(limits) >= 4 and max(limits) <= 13, limits
    assert goodput >= 0.9 * shop.capacity()
    assert overload <= 0.02


@pytest.mark.parametrize("start", [2, 8, 32])
def test_a_slower_shop_gets_no_higher_limit(start: int):
    fast = [statistics.mean(simulate(FAST, start, seed=s).settled(10)[0]) for s in range(5)]
    slow = [statistics.mean(simulate(SLOW, start, seed=s).settled(10)[0]) for s in range(5)]
    assert statistics.mean(slow) <= statistics.mean(fast) + 0.25, (fast, slow)


def test_unused_concurrency_is_not_raised():
    run = simulate(dataclasses.replace(FAST, demand=3), start=2)
    assert max(run.limits) <= 4  # 3 in flight of 4 is under 80%


def test_a_shop_without_a_queue_is_probed_rarely():
    # 503 as soon as more than 6 are in flight: no latency warning at all.
    limits, goodput, overload = simulate(dataclasses.replace(FAST, queue=0), start=2, intervals=120).settled(10)
    assert goodput >= 0.9 * FAST.capacity()
    assert overload <= 0.02
    assert max(limits) <= 7


def test_recovers_from_a_permanent_slowdown():
    # At interval 30 every request takes 4x longer (capacity 30/s); the baseline must follow.
    run = simulate(FAST, start=2, intervals=120, change={"service": 0.2}, change_at=30)
    assert min(run.limits[30:]) < 6  # cut back while the latency looked inflated
    limits, goodput, overload = run.settled(skip=90)
    assert all(6 <= limit <= 12 for limit in limits), run.limits
    assert goodput >= 0.9 * SLOW.capacity()


def test_random_503s_of_a_flaky_site_are_learnt_as_noise_not_overload():
    """9% of 503s whatever the load: cut at first, learn them at the minimum, grow again."""
    judge, bounds = Judge(), Bounds(1, 4, 16)
    limit, limits = 4, []
    for _ in range(60):
        s = sample(limit=limit, in_flight_mean=limit, count=100, ok=91, overload=9)
        limit = judge.decide(s, OK, bounds).limit
        limits.append(limit)
    assert min(limits) == 1  # taken for overload at first
    assert judge.noise == pytest.approx(0.09, abs=0.01)
    assert limits[-1] >= 8, limits  # then recognised as noise: the limit grows again


def test_a_few_random_503s_are_within_chance_and_never_cut():
    """5 of 100 503s: above the 2% share, but within what chance gives; nothing to learn."""
    judge, bounds = Judge(), Bounds(1, 4, 16)
    limit, limits = 4, []
    for _ in range(30):
        s = sample(limit=limit, in_flight_mean=limit, count=100, ok=95, overload=5)
        limit = judge.decide(s, OK, bounds).limit
        limits.append(limit)
    assert min(limits) >= 4 and limits[-1] == 16, limits


def test_overload_above_the_learnt_noise_still_cuts():
    judge = Judge()
    judge.noise = 0.05
    d = judge.decide(sample(limit=8, in_flight_mean=8, count=100, ok=70, overload=30), OK, Bounds(1, 4, 16))
    assert d.action == "decrease" and "seen even at the minimum" in d.reason
    assert Judge().decide(sample(count=100, ok=91, overload=9), OK, BOUNDS).action == "decrease"  # no noise yet


def test_noise_is_forgotten_when_the_site_recovers():
    judge = Judge()
    judge.noise = 0.2
    for _ in range(6):
        judge.decide(sample(limit=8, in_flight_mean=8), OK, Bounds(1, 4, 16))
    assert judge.noise < 0.01


def test_after_an_outage_the_limit_doubles_back_to_where_it_was():
    """Recovery: an outage cuts the limit to the minimum; once the site answers again the
    limit returns to its level before the outage within a few intervals, not one step each."""
    judge, bounds = Judge(AimdConfig(ceiling_memory=0)), Bounds(1, 4, 16)
    limit = 12
    for _ in range(5):  # healthy at 12
        limit = judge.decide(sample(limit=limit, in_flight_mean=limit * 0.5), OK, bounds).limit
    assert limit == 12
    for _ in range(8):  # the site is down: every request fails
        limit = judge.decide(sample(limit=limit, in_flight_mean=limit, count=20, ok=0, overload=20), OK, bounds).limit
    assert limit == 1
    after = []
    for _ in range(8):
        limit = judge.decide(sample(limit=limit, in_flight_mean=limit), OK, bounds).limit
        after.append(limit)
    assert after.index(12) <= 2 + 4, after  # the cooldown, then 1 -> 2 -> 4 -> 8 -> 12
    assert judge.noise < 0.05  # the outage was not learnt as noise


def test_the_overloads_leading_into_and_out_of_an_outage_set_no_ceiling():
    """An outage rarely starts cleanly: an interval or two are partly failed before every
    request fails, and some after.  Those cuts are the outage, not the site's capacity."""
    judge, bounds = Judge(), Bounds(1, 4, 16)
    limit = 10
    for _ in range(5):
        limit = judge.decide(sample(limit=limit, in_flight_mean=limit * 0.5), OK, bounds).limit
    timeline = [(10, 4), (10, 6)] + [(10, 10)] * 5 + [(22, 3)]  # (count, failed): in, down, out
    for count, failed in timeline:
        s = sample(limit=limit, in_flight_mean=limit, count=count, ok=count - failed, overload=failed)
        limit = judge.decide(s, OK, bounds).limit
    assert limit == 1 and judge.ceiling is None
    after = []
    for _ in range(10):
        limit = judge.decide(sample(limit=limit, in_flight_mean=limit), OK, bounds).limit
        after.append(limit)
    assert 10 in after[:7], after


def test_a_site_down_that_no_interval_shows_is_an_outage_once_its_breaker_opens():
    """The breaker holds a down domain's requests, so no interval may ever be mostly failures:
    the cuts on the way down are each judged on their first ten outcomes (2/14, 6/10, 8/10,
    8/10 in a benchmark crawl), then nothing more arrives.  Without a word from the breaker
    the last cut (from 2) became a ceiling and held the limit at 1 for ceiling_memory
    intervals after the site was back; once told, the limit doubles back to where it was."""

    def run(breaker_opens: bool, breaker_closes: bool = False) -> list[int]:
        judge, bounds = Judge(), Bounds(1, 4, 16)
        limit = 4
        for _ in range(8):  # slow start to 10, healthy there (the site's knee)
            s = sample(limit=limit, in_flight_mean=limit * 0.9, latency_ewma=0.05 if limit < 10 else 0.07)
            limit = judge.decide(s, OK, bounds).limit
        assert limit == 10
        for count, failed in [(14, 2), (10, 6), (10, 8), (10, 8)]:  # urgent cuts, each on its first outcomes
            s = sample(limit=limit, in_flight_mean=limit, count=count, ok=count - failed, overload=failed)
            s = dataclasses.replace(s, duration=None)  # judged at once: what the site served is unknown
            limit = judge.decide(s, OK, bounds).limit
        assert limit == 1
        if breaker_opens:
            judge.site_down()
        if breaker_closes:
            judge.site_back()
        after = []
        for _ in range(12):  # back up: every request answered
            limit = judge.decide(sample(limit=limit, in_flight_mean=limit), OK, bounds).limit
            after.append(limit)
        return after

    assert run(breaker_opens=False) == [1] * 12  # stuck below the "ceiling" of 2 it learnt on the way down
    after = run(breaker_opens=True)
    assert 10 in after[:6], after
    tail = after[after.index(10):]
    assert all(b - a <= 1 for a, b in zip(tail, tail[1:], strict=False)), after  # then it probes one step at a time
    # told that the site is back (the breaker closed), it does not sit out the cooldown of the
    # cuts on the way down, which waits for a loaded site to drain: the site was down
    assert after[:2] == [1, 1], after
    assert run(breaker_opens=True, breaker_closes=True)[:4] == [2, 4, 8, 10]


def test_sensor_discard_drops_the_interval_in_progress():
    sensor = DomainSensor(4, start=0.0)
    feed(sensor, 6, 0.05, "overload")
    feed(sensor, 3, 0.05)
    sensor.discard(10.0)
    assert sensor.count == 0
    feed(sensor, 12, 0.05)
    s = sensor.snapshot(11.0)
    assert (s.count, s.ok, s.overload, s.duration) == (12, 12, 0, 1.0)
    assert s.latency_ewma == pytest.approx(0.05)
    feed(sensor, 12, 0.2)
    sensor.snapshot(12.0)
    assert sensor.latency_ewma > 0.1
    baseline = sensor.baseline
    sensor.discard(13.0, latency=True)  # a site back from an outage: its latency before is forgotten
    assert sensor.baseline == baseline is not None  # the baseline is kept
    feed(sensor, 12, 0.05)
    assert sensor.snapshot(14.0).latency_ewma == pytest.approx(0.05)
