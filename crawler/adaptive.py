"""Adaptive per-domain concurrency: sense, then judge.  Pure; acting is the glue's job.

Modelled on Crawlee's Snapshotter -> SystemStatus -> AutoscaledPool, but per
domain and AIMD (additive increase, multiplicative decrease), like TCP:

* :class:`DomainSensor` collects one domain's outcomes and in-flight counts
  during an interval and turns them into a :class:`DomainSample`; it keeps
  the latency EWMA and the *baseline* latency (the latency at low load).
* :class:`SystemStatus` judges the crawler process itself (CPU, memory,
  reactor lag) from recent :class:`SystemSample` objects into a
  :class:`SystemVerdict`.
* :class:`Judge` (one per domain) turns a sample and the verdict into a
  :class:`Decision`: the new concurrency limit within :class:`Bounds`.

The glue, per domain: feed ``sensor.record()`` on every response or
failure and ``sensor.observe_in_flight()`` regularly; every interval (about
1 s) *if* ``judge.ready(sensor)`` (enough outcomes, else let the interval run
on), or at once when ``judge.urgent(sensor)`` (a flood of 429/503s), do
``decision = judge.decide(sensor.snapshot(now), status.verdict, bounds)``,
then ``sensor.limit = decision.limit`` and apply it to the downloader slot.
Nothing here imports Scrapy or reads a clock.

What the rules avoid (complaints about other throttles):

* overshoot, then a throughput collapse (Crawlee): growth stops as soon as
  the latency rises above the baseline, i.e. when the site starts queueing,
  before it rejects anything; decreases are multiplicative but never below
  ``Bounds.min`` and are followed by a cooldown instead of a new climb;
* a slower site getting more concurrency: a limit is raised only when the
  domain actually used it (mean in-flight >= 80% of it) and its latency is at
  its own baseline, whatever that baseline is; nothing targets a throughput;
* fast 429/503s ignored (Scrapy's AutoThrottle only looks at latency): the
  share of overload responses is judged on its own, whatever their latency,
  and those responses are kept out of the latency figures.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Literal

#: What became of a request: ``"overload"`` is a 429/503 or any response with
#: Retry-After, ``"timeout"`` a download timeout, ``"error"`` any other failure.
Outcome = Literal["ok", "overload", "timeout", "error"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "overload", "timeout", "error")

Action = Literal["increase", "decrease", "hold"]


# --- sensing: one domain ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainSample:
    """One domain over one interval (latencies in seconds).

    ``count`` responses/failures in all, of which ``ok``, ``overload``,
    ``timeouts`` and ``errors``; ``latency_p50``: median latency of the ok
    ones (None without any); ``latency_ewma``: EWMA of those medians across
    intervals; ``baseline``: the latency at low load (None until known);
    ``in_flight_mean``: mean of the in-flight observations (None without
    any); ``limit``: the concurrency limit in force; ``at``: the time of the
    snapshot; ``duration``: since the previous one (None for the first).
    """

    at: float
    duration: float | None
    count: int
    ok: int
    overload: int
    timeouts: int
    errors: int
    latency_p50: float | None
    latency_ewma: float | None
    baseline: float | None
    in_flight_mean: float | None
    limit: int

    @property
    def overload_share(self) -> float:
        """Share of 429/503 (or Retry-After) outcomes."""
        return self.overload / self.count if self.count else 0.0

    @property
    def timeout_share(self) -> float:
        return self.timeouts / self.count if self.count else 0.0

    @property
    def error_share(self) -> float:
        return self.errors / self.count if self.count else 0.0

    @property
    def latency_ratio(self) -> float | None:
        """Latency EWMA / baseline: 1.0 at low load, higher as the site queues."""
        if self.latency_ewma is None or not self.baseline:
            return None
        return self.latency_ewma / self.baseline

    @property
    def utilization(self) -> float | None:
        """Mean in-flight / limit."""
        if self.in_flight_mean is None or self.limit <= 0:
            return None
        return self.in_flight_mean / self.limit

    @property
    def served_concurrency(self) -> float | None:
        """Requests the site actually had in service on average (Little's law:
        ok responses per second x their median latency); None if unknown."""
        if self.latency_p50 is None or not self.duration or self.duration <= 0:
            return None
        return self.ok / self.duration * self.latency_p50


class DomainSensor:
    """Collect one domain's outcomes per interval; keep its latency EWMA and baseline.

    Latency figures use ``"ok"`` outcomes only: 429/503s are typically fast
    and would hide the queueing, timeouts only measure the timeout setting.
    The EWMA is taken over interval medians: ``ewma += ewma_alpha * (p50 -
    ewma)``.

    Baseline rule (the latency at low load).  Only *clean* intervals count:
    at least ``baseline_min_ok`` ok responses and not a single 429/503 or
    timeout.  Each counts with a weight ``w = min(1, ok / baseline_samples)``
    so that a lucky median of a few responses cannot move it far.

    * Calibration: until ``baseline_samples`` ok responses were seen, the
      baseline is the response-weighted mean of the clean medians and its
      *load* the highest mean in-flight among them.
    * A clean median *below* the baseline pulls it down by ``w * baseline_fall``
      of the gap (the site is faster), and that interval's mean in-flight
      becomes the baseline's load.
    * A clean median *above* it pulls it up by ``w * baseline_rise`` of the
      gap, but only if measured at no more than the baseline's load (+10%):
      the site is slower at the same load, so it is the site and not our own
      queueing.  A permanently slower site is thus adopted within a few
      intervals once the judge has cut the load back to that level (which it
      does, the latency being inflated).
    * Higher-load intervals never raise it (their extra latency is
      queueing), nor do overloaded ones: it cannot ratchet up under overload.

    ``start``: when the first interval began (else the first sample has no
    ``duration``).
    """

    def __init__(
        self,
        limit: int,
        *,
        ewma_alpha: float = 0.5,
        baseline_fall: float = 0.5,
        baseline_rise: float = 0.5,
        baseline_samples: int = 30,
        baseline_min_ok: int = 5,
        start: float | None = None,
    ) -> None:
        if not (0 < ewma_alpha <= 1 and 0 < baseline_fall <= 1 and 0 <= baseline_rise <= 1):
            raise ValueError("ewma_alpha and baseline_fall must be in (0, 1], baseline_rise in [0, 1]")
        if baseline_samples < 1 or baseline_min_ok < 1:
            raise ValueError("baseline_samples and baseline_min_ok must be >= 1")
        #: The concurrency limit in force; the glue sets it after each decision.
        self.limit = limit
        self.ewma_alpha = ewma_alpha
        self.baseline_fall = baseline_fall
        self.baseline_rise = baseline_rise
        self.baseline_samples = baseline_samples
        self.baseline_min_ok = baseline_min_ok
        self.latency_ewma: float | None = None
        self.baseline: float | None = None
        #: Mean in-flight at which the baseline was measured.
        self.baseline_load: float | None = None
        self._calibrated = 0  # ok responses behind the baseline during calibration
        self._last_at: float | None = start
        self._reset()

    def _reset(self) -> None:
        self._counts = dict.fromkeys(OUTCOMES, 0)
        self._latencies: list[float] = []
        self._in_flight_sum = 0
        self._in_flight_n = 0

    @property
    def count(self) -> int:
        """Outcomes recorded in the current interval."""
        return sum(self._counts.values())

    @property
    def overload_count(self) -> int:
        """429/503 outcomes recorded in the current interval."""
        return self._counts["overload"]

    def record(self, latency: float, outcome: Outcome) -> None:
        """Record one finished request: its latency (seconds) and outcome."""
        if outcome not in self._counts:
            raise ValueError(f"unknown outcome {outcome!r}: expected one of {', '.join(OUTCOMES)}")
        self._counts[outcome] += 1
        if outcome == "ok":
            self._latencies.append(max(0.0, latency))

    def observe_in_flight(self, n: int) -> None:
        """Record how many requests to the domain are in flight right now."""
        self._in_flight_sum += n
        self._in_flight_n += 1

    def discard(self, now: float, *, latency: bool = False) -> None:
        """Drop the interval in progress unjudged; the next one starts at ``now``.

        For outcomes that belong to something judged otherwise: an outage the
        domain's circuit breaker reported (the failures of its probes, then the
        first answers once it is back, are not a load the site was under).
        ``latency``: also forget the latency EWMA (not the baseline): the
        latency of a site before an outage, often inflated by the load it was
        under, says nothing about the site that came back, and would hold the
        first intervals "at the knee".
        """
        self._last_at = now
        self._reset()
        if latency:
            self.latency_ewma = None

    def snapshot(self, now: float) -> DomainSample:
        """Close the interval: update EWMA and baseline, return the sample, reset the counters."""
        c = self._counts
        p50 = statistics.median(self._latencies) if self._latencies else None
        in_flight = self._in_flight_sum / self._in_flight_n if self._in_flight_n else None
        if p50 is not None:
            self.latency_ewma = p50 if self.latency_ewma is None else (
                self.latency_ewma + self.ewma_alpha * (p50 - self.latency_ewma)
            )
            clean = c["overload"] == 0 and c["timeout"] == 0 and c["ok"] >= self.baseline_min_ok
            if clean:
                self._update_baseline(p50, in_flight if in_flight is not None else float(self.limit), c["ok"])
        sample = DomainSample(
            at=now,
            duration=None if self._last_at is None else now - self._last_at,
            count=self.count,
            ok=c["ok"],
            overload=c["overload"],
            timeouts=c["timeout"],
            errors=c["error"],
            latency_p50=p50,
            latency_ewma=self.latency_ewma,
            baseline=self.baseline,
            in_flight_mean=in_flight,
            limit=self.limit,
        )
        self._last_at = now
        self._reset()
        return sample

    def _update_baseline(self, median: float, load: float, ok: int) -> None:
        if self.baseline is None or self.baseline_load is None or self._calibrated < self.baseline_samples:
            seen = self._calibrated
            self.baseline = median if self.baseline is None else (self.baseline * seen + median * ok) / (seen + ok)
            self.baseline_load = load if self.baseline_load is None else max(self.baseline_load, load)
            self._calibrated = seen + ok
            return
        weight = min(1.0, ok / self.baseline_samples)
        if median < self.baseline:
            self.baseline += weight * self.baseline_fall * (median - self.baseline)
            self.baseline_load = load
        elif load <= self.baseline_load * 1.1:
            self.baseline += weight * self.baseline_rise * (median - self.baseline)


# --- sensing: the crawler process -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemSample:
    """The crawler process at one moment.

    ``cpu_fraction``: CPU time of the process / wall time over the last
    sampling period (0..1; the reactor thread cannot use more than one core);
    ``rss_bytes``: resident memory; ``reactor_lag``: seconds a timer fired late.
    """

    cpu_fraction: float
    rss_bytes: int
    reactor_lag: float


@dataclass(frozen=True)
class SystemVerdict:
    """``overloaded``: the process cannot take more work (never increase);
    ``memory_high``: memory above the high-water mark (slow the list stage
    first); ``reason``: what was over, for logs; ``cpu_bound``: the process
    is the crawl's bottleneck (its CPU over the limit), so the responses wait
    in its own event loop and their latency says nothing about the site's queue."""

    overloaded: bool = False
    memory_high: bool = False
    reason: str = "ok"
    cpu_bound: bool = False


class SystemStatus:
    """Judge the process over its last ``window`` samples, like Crawlee's SystemStatus.

    A resource (CPU > ``cpu_max``, RSS > ``rss_max_bytes``, reactor lag >
    ``lag_max``) is over when the share of the window's samples over its
    limit exceeds ``overload_ratio``.  The system is overloaded when memory
    or the reactor lag is over; the CPU over its limit makes it ``cpu_bound``
    instead: an HTTP crawl whose process is busy still gains from more
    requests in flight (each turn of the event loop serves more responses:
    on ``bench/throughput.py``'s shop, 5 in flight gave 10-15% fewer pages/s
    than 16, at more CPU per page), and the reactor lag says when the loop
    really falls behind.
    ``memory_high`` looks at the latest sample only: RSS at or above
    ``memory_high_ratio`` x ``rss_max_bytes``.  Without ``rss_max_bytes``
    memory is not judged.
    """

    def __init__(
        self,
        cpu_max: float = 0.95,
        rss_max_bytes: int | None = None,
        lag_max: float = 0.25,
        window: int = 5,
        *,
        overload_ratio: float = 0.4,
        memory_high_ratio: float = 0.8,
    ) -> None:
        if window < 1 or not 0 <= overload_ratio < 1:
            raise ValueError("window must be >= 1 and overload_ratio in [0, 1)")
        self.cpu_max = cpu_max
        self.rss_max_bytes = rss_max_bytes
        self.lag_max = lag_max
        self.overload_ratio = overload_ratio
        self.memory_high_ratio = memory_high_ratio
        self._samples: deque[SystemSample] = deque(maxlen=window)
        self.verdict = SystemVerdict()

    def add(self, sample: SystemSample) -> SystemVerdict:
        """Add a sample; return (and keep as :attr:`verdict`) the judgement over the window."""
        self._samples.append(sample)
        n = len(self._samples)
        reasons = []
        checks = [
            ("cpu", lambda s: s.cpu_fraction > self.cpu_max, f"over {self.cpu_max:.0%}"),
            ("reactor lag", lambda s: s.reactor_lag > self.lag_max, f"over {self.lag_max * 1000:.0f} ms"),
        ]
        if self.rss_max_bytes is not None:
            limit = self.rss_max_bytes
            checks.append(("memory", lambda s: s.rss_bytes > limit, f"over {_mb(limit)}"))
        over_limit = []
        for name, over, what in checks:
            hits = sum(1 for s in self._samples if over(s))
            if hits / n > self.overload_ratio:
                over_limit.append(name)
                reasons.append(f"{name} {what} in {hits}/{n} samples")
        cpu_bound = "cpu" in over_limit
        overloaded = any(name != "cpu" for name in over_limit)
        memory_high = (
            self.rss_max_bytes is not None and sample.rss_bytes >= self.memory_high_ratio * self.rss_max_bytes
        )
        if memory_high:
            reasons.append(f"memory high: {_mb(sample.rss_bytes)} >= {self.memory_high_ratio:.0%} of the limit")
        self.verdict = SystemVerdict(overloaded, memory_high, "; ".join(reasons) or "ok", cpu_bound)
        return self.verdict


def _mb(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


# --- judging ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bounds:
    """Concurrency limits of a domain: ``1 <= min <= start <= max``."""

    min: int
    start: int
    max: int

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.start <= self.max:
            raise ValueError(f"bounds need 1 <= min <= start <= max, got {self.min}, {self.start}, {self.max}")

    def clamp(self, limit: int) -> int:
        return max(self.min, min(self.max, limit))


@dataclass(frozen=True)
class AimdConfig:
    """Constants of :class:`Judge` (shares are fractions of the interval's requests).

    * ``step``: additive increase per interval.
    * ``slow_start_fraction``: until the first decrease (no ceiling known
      yet) the step is ``max(step, floor(limit * slow_start_fraction))``.
    * ``overload_factor``: multiplicative decrease on overload or timeouts;
      ``latency_factor``: on latency inflation (a gentler signal).
    * ``overload_share``: overload (or timeout) share above which to decrease;
      for 429/503s, the share above the judge's ``noise`` (what the domain
      answers even at the minimum limit, learnt there with weight
      ``noise_learning``): a flaky site's random 503s are not overload.
    * ``error_share``: other-failure share above which not to increase.
    * ``inflated_ratio``: decrease when latency EWMA > this x baseline;
      ``near_ratio``: increase only when it is <= this x baseline (between the
      two: hold, the site is at its knee).
    * ``utilization``: increase only when mean in-flight >= this x limit.
    * ``cooldown``: intervals after a decrease without increasing, nor
      decreasing again except for a fresh overload share.
    * ``ceiling_memory``: after an overload/timeout decrease from limit ``X``,
      increases stop at ``X - 1`` for this many intervals (then ``X`` is
      probed again); 0: no memory.
    * ``min_samples``: fewer outcomes in an interval: hold.
    * ``significance``: an overload share above the noise must also be this
      many standard deviations above the count the noise explains (a
      binomial spread, with the noise taken as at least ``overload_share``):
      ten outcomes of a site with 10% random 503s often hold three.
    * ``outage_share``: an interval where at least this share of the
      requests failed (429/503, timeouts, errors) is an outage, not an
      overload: the site is down whatever the load.  The last limit that
      held without a decrease is remembered, and once the domain is healthy
      again the limit doubles back to it (below a ceiling that overloaded),
      then probes additively: an outage costs seconds, not minutes.  The
      ``outage_tail`` intervals after an outage interval still see its last
      failures: their cuts set no ceiling and keep the recovery target.
    """

    step: int = 1
    slow_start_fraction: float = 0.25
    overload_factor: float = 0.5
    latency_factor: float = 0.75
    overload_share: float = 0.02
    noise_learning: float = 0.5
    error_share: float = 0.10
    inflated_ratio: float = 1.5
    near_ratio: float = 1.25
    utilization: float = 0.8
    cooldown: int = 2
    ceiling_memory: int = 30
    min_samples: int = 10
    significance: float = 3.0
    outage_share: float = 0.9
    outage_tail: int = 3

    def __post_init__(self) -> None:
        if self.step < 1 or self.slow_start_fraction < 0:
            raise ValueError("step must be >= 1 and slow_start_fraction >= 0")
        if not (0 < self.overload_factor < 1 and 0 < self.latency_factor < 1):
            raise ValueError("decrease factors must be in (0, 1)")
        if not 1 <= self.near_ratio <= self.inflated_ratio:
            raise ValueError("need 1 <= near_ratio <= inflated_ratio")
        if not (0 <= self.overload_share < 1 and 0 <= self.error_share < 1 and 0 <= self.utilization <= 1):
            raise ValueError("shares and utilization must be fractions")
        if not 0 <= self.noise_learning <= 1:
            raise ValueError("noise_learning must be a fraction")
        if self.cooldown < 0 or self.ceiling_memory < 0 or self.min_samples < 0:
            raise ValueError("cooldown, ceiling_memory and min_samples must be >= 0")
        if self.significance < 0 or not 0 < self.outage_share <= 1:
            raise ValueError("significance must be >= 0 and outage_share in (0, 1]")


@dataclass(frozen=True)
class Decision:
    """The limit to apply, whether it went up, down or stayed, and why (for DEBUG logs)."""

    limit: int
    action: Action
    reason: str


class Judge:
    """AIMD decisions for ONE domain (it keeps the domain's cooldown and slow-start state).

    Rules, first match wins (``L`` is the sample's limit, clamped to bounds):

    1. fewer than ``min_samples`` outcomes: hold;
    2. overload share > ``overload_share``: decrease to ``overload_factor`` x
       L, or x the concurrency the site actually served if lower (even
       during a cooldown: the signal is fresh and unambiguous);
    3. during a cooldown: hold (timeouts arrive late and the latency EWMA
       lags, both would still reflect the load before the last cut);
    4. timeout share > ``overload_share``: decrease by ``overload_factor``;
    5. latency EWMA > ``inflated_ratio`` x baseline: decrease by ``latency_factor``;
    6. system overloaded, error share > ``error_share``, no baseline yet,
       latency above ``near_ratio`` x baseline, mean in-flight below
       ``utilization`` x L, or L at ``bounds.max``: hold;
    7. otherwise increase by ``step`` (by ``slow_start_fraction`` of L while
       no decrease has happened yet, by L while the system is also
       ``cpu_bound``), but for ``ceiling_memory`` intervals
       after an overload/timeout decrease from X, not beyond X - 1.

    While the system is ``cpu_bound`` the latency rules (5, and the knee of
    6) are skipped: the crawler's own event loop is the queue the responses
    wait in, and the site sees no more requests per second than the process
    can handle, however many are in flight.  Overloads and timeouts still cut.

    Decreases round up (``ceil``) but always lose at least 1; every result is
    clamped to bounds.
    """

    def __init__(self, config: AimdConfig | None = None) -> None:
        self.config = config or AimdConfig()
        #: Intervals left in the cooldown after the last decrease.
        self.cooldown_left = 0
        #: True once a decrease happened: slow start is over.
        self.congested = False
        #: The limit that last overloaded the domain (429/503/timeouts), while remembered.
        self.ceiling: int | None = None
        self._ceiling_age = 0
        #: The 429/503 share the domain shows even at the minimum limit: errors that come
        #: whatever the load (a flaky site), not overload.  Learnt at the minimum limit,
        #: forgotten wherever the share is lower; only the share above it is judged.
        self.noise = 0.0
        #: Where the limit doubles back to: the last limit that held before an outage, or the
        #: limit a cut took that the noise learnt later explains.
        self.recovery_target: int | None = None
        self._last_good: int | None = None
        #: (overload, count, limit) of the last overload cut, until the noise explains it or not.
        self._last_overload: tuple[int, int, int] | None = None
        self._since_outage = 10**9

    def decide(self, sample: DomainSample, system: SystemVerdict, bounds: Bounds) -> Decision:
        """Judge one interval of one domain."""
        c = self.config
        current = sample.limit
        limit = bounds.clamp(current)
        in_cooldown = self.cooldown_left > 0
        if in_cooldown:
            self.cooldown_left -= 1
        if self.ceiling is not None:
            self._ceiling_age += 1
            if self._ceiling_age > c.ceiling_memory:
                self.ceiling = None

        new, why, cut, overloaded, overload_cut = limit, "", False, False, False
        ratio = sample.latency_ratio
        outage = self.outage(sample)
        if sample.count < c.min_samples:
            why = f"too few samples ({sample.count} < {c.min_samples})"
        elif self._overloaded(sample.overload, sample.count):
            # Halve what the site actually served, if that is less than the limit: one
            # step down from a limit far above capacity, instead of one per interval.
            served = sample.served_concurrency
            base = limit if served is None else max(1, min(limit, math.ceil(served)))
            new, cut, overloaded = self._cut(limit, c.overload_factor, bounds, base), True, True
            overload_cut = True
            why = f"overload: {sample.overload}/{sample.count} 429/503 ({sample.overload_share:.1%})"
            if self.noise:
                why += f", {self.noise:.1%} of them seen even at the minimum"
            if base < limit:
                why += f", the site served ~{served:.1f} at once"
        elif in_cooldown:
            why = f"cooldown after a decrease ({self.cooldown_left + 1} intervals left)"
        elif sample.timeout_share > c.overload_share:
            new, cut, overloaded = self._cut(limit, c.overload_factor, bounds), True, True
            why = f"timeouts: {sample.timeouts}/{sample.count} ({sample.timeout_share:.1%})"
        elif ratio is not None and ratio > c.inflated_ratio and not system.cpu_bound:
            new, cut = self._cut(limit, c.latency_factor, bounds), True
            why = f"latency inflated: {_ms(sample.latency_ewma)} = {ratio:.2f}x baseline {_ms(sample.baseline)}"
        elif system.overloaded:
            why = f"system overloaded: {system.reason}"
        elif sample.error_share > c.error_share:
            why = f"errors: {sample.errors}/{sample.count} ({sample.error_share:.1%})"
        elif ratio is None:
            why = "no latency baseline yet"
        elif ratio > c.near_ratio and not system.cpu_bound:
            why = f"latency {ratio:.2f}x baseline: at the knee"
        elif sample.utilization is None or sample.utilization < c.utilization:
            used = "unknown" if sample.in_flight_mean is None else f"{sample.in_flight_mean:.1f}"
            why = f"limit not used: mean in flight {used} of {limit}"
        elif limit >= bounds.max:
            why = f"at max ({bounds.max})"
        elif self.ceiling is not None and limit >= self.ceiling - 1:
            left = c.ceiling_memory - self._ceiling_age + 1
            why = f"just below {self.ceiling}, which overloaded the site (probed again in {left} intervals)"
        else:
            step = c.step if self.congested else max(c.step, math.floor(limit * c.slow_start_fraction))
            if system.cpu_bound and not self.congested:
                # the crawler is the bottleneck: the site gets no more requests per second
                # however many are in flight, so slow start doubles
                step = max(step, limit)
            recovering = self.recovery_target is not None and limit < self.recovery_target
            if recovering:
                step = max(step, min(limit, self.recovery_target - limit))  # double back to the earlier limit
            new = bounds.clamp(limit + step)
            if self.ceiling is not None:
                new = min(new, self.ceiling - 1)
            why = f"latency {ratio:.2f}x baseline, {sample.in_flight_mean:.1f} in flight"
            if system.cpu_bound and ratio > c.near_ratio:
                why += " (the crawler's CPU is the bottleneck: the latency is its own queue)"
            if recovering:
                why += f", recovering towards {self.recovery_target}"

        if sample.count >= c.min_samples and not outage and (
            limit <= bounds.min or sample.overload_share < self.noise
        ):
            self.noise += c.noise_learning * (sample.overload_share - self.noise)
        if overload_cut:
            self._last_overload = (sample.overload, sample.count, limit)
        elif self._last_overload is not None and not self._overloaded(*self._last_overload[:2]):
            # the noise learnt since explains the share that cut the limit: it was no overload
            _, _, was = self._last_overload
            self._last_overload = None
            if self.ceiling == was:
                self.ceiling = None
            self.recovery_target = max(self.recovery_target or 0, was)
            self.congested = False
            why += f"; the 429/503s that cut {was} were noise: back to it"
        self._since_outage = 0 if outage else self._since_outage + 1
        tail = self._since_outage <= c.outage_tail  # the outage's last failures, not the load
        if outage:
            self.site_down()  # the site is down, whatever the load
        elif not cut and sample.count >= c.min_samples and new >= limit and self.recovery_target is None:
            self._last_good = limit
        if self.recovery_target is not None and new >= self.recovery_target:
            self.recovery_target = None
        if cut:
            self.congested = True
            self.cooldown_left = c.cooldown
            if new == limit:
                why += f" (at min {bounds.min})"
        if overloaded and not tail:
            self.recovery_target = None  # overloaded again: the earlier limit is too much now
            if c.ceiling_memory > 0:
                self.ceiling, self._ceiling_age = limit, 0
        if new != current and new == limit:
            why += f"; limit {current} clamped to bounds [{bounds.min}, {bounds.max}]"
        action: Action = "increase" if new > current else "decrease" if new < current else "hold"
        return Decision(new, action, f"{action} {current} -> {new}: {why}" if new != current else f"hold {new}: {why}")

    def site_down(self) -> None:
        """The domain is down: an outage interval, or its circuit breaker opened.

        The overload cuts that led into it set no ceiling (a site that fails
        every request says nothing about its capacity), and once it answers
        again the limit doubles back to the last limit that held.  The
        failures of the requests still in flight count as the outage's tail.
        The breaker's word is needed because it holds the domain's requests:
        the samples of an outage may never fill an interval in which
        ``outage_share`` of the requests failed (the cuts on the way down are
        each judged on their first ten outcomes).
        """
        if self.recovery_target is None and self._last_good is not None:
            self.recovery_target = self._last_good
        self.ceiling, self._last_overload = None, None
        self._since_outage = 0

    def site_back(self) -> None:
        """The domain answers again after :meth:`site_down` (its breaker closed): recover at once.

        The cooldown of the cuts on the way into the outage is over (it
        waits for the effect of a cut on a loaded site; the site was down),
        so the next interval may start doubling back to the recovery target.
        """
        self.cooldown_left = 0
        self._since_outage = 0

    def outage(self, sample: DomainSample) -> bool:
        """The site was down in this interval: at least ``outage_share`` of enough requests failed.

        Not a sign of load: the noise is not learnt from it, and the glue should not grow a delay.
        """
        failed = sample.overload + sample.timeouts + sample.errors
        return sample.count >= self.config.min_samples and failed >= self.config.outage_share * sample.count

    def ready(self, sensor: DomainSensor) -> bool:
        """True when the interval in progress has ``min_samples`` outcomes.

        The glue should only close an interval (snapshot + decide) when ready,
        so that a slow domain at a low limit accumulates a longer interval
        instead of being held forever by the minimum-sample rule.
        """
        return sensor.count >= self.config.min_samples

    def urgent(self, sensor: DomainSensor) -> bool:
        """True when the interval in progress already calls for an overload decrease.

        The glue may check this as responses arrive and snapshot and decide at
        once, rather than let a flood of 429/503s run to the end of the interval.
        """
        count = sensor.count
        return count >= max(1, self.config.min_samples) and self._overloaded(sensor.overload_count, count)

    def overloaded(self, sample: DomainSample) -> bool:
        """Significantly more 429/503s in ``sample`` than the learnt noise explains."""
        return self._overloaded(sample.overload, sample.count)

    def _overloaded(self, overload: int, count: int) -> bool:
        """More 429/503s than the learnt noise explains: above it by the share and significantly."""
        if not count:
            return False
        c = self.config
        if overload / count - self.noise <= c.overload_share:
            return False
        noise = min(max(self.noise, c.overload_share), 1.0)  # never a zero spread: a prior of the threshold
        return overload - count * noise > c.significance * math.sqrt(count * noise * (1 - noise))

    @staticmethod
    def _cut(limit: int, factor: float, bounds: Bounds, base: int | None = None) -> int:
        """``ceil(base * factor)`` (base: the limit), at least 1 below the limit, within bounds."""
        return bounds.clamp(min(limit - 1, math.ceil((limit if base is None else base) * factor)))


def _ms(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds * 1000:.0f} ms"
