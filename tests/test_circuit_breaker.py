"""Circuit breaker state machine: fake clock, seeded rng, no reactor."""

import random

import pytest

from crawler.circuit_breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
    Transition,
)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


#: No jitter, no giving up: exact numbers unless a test says otherwise.
EXACT = {"cooldown_jitter": 0.0, "max_trips": 0, "max_open_seconds": 0.0}


def make(seed: int = 0, **overrides) -> tuple[CircuitBreaker, FakeClock, list[Transition]]:
    clock = FakeClock()
    transitions: list[Transition] = []
    config = BreakerConfig(**{**EXACT, **overrides})
    breaker = CircuitBreaker("shop.example", config, clock, random.Random(seed), transitions.append)
    return breaker, clock, transitions


def fail(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        breaker.record_failure()


def summary(transitions: list[Transition]) -> list[tuple[str, str, str]]:
    return [(t.old.value, t.new.value, t.reason) for t in transitions]


def trip_and_wait(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """From CLOSED: trip by consecutive failures, then let the cooldown elapse."""
    fail(breaker, breaker.config.failure_threshold)
    assert breaker.state is OPEN
    clock.now = breaker.retry_at()
    assert breaker.state is HALF_OPEN


# -- CLOSED --------------------------------------------------------------------


def test_starts_closed_and_allows():
    breaker, _, transitions = make()
    assert breaker.state is CLOSED
    assert all(breaker.allow() for _ in range(100))
    assert breaker.retry_at() is None
    assert (breaker.trips, breaker.total_open_seconds, breaker.consecutive_failures) == (0, 0.0, 0)
    assert not breaker.gave_up
    assert transitions == []


def test_state_is_a_str_enum():
    assert BreakerState.HALF_OPEN == "half_open" and OPEN.value == "open" and isinstance(CLOSED, str)


def test_closed_to_open_by_consecutive_failures():
    breaker, clock, transitions = make(failure_threshold=3, cooldown=5.0)
    fail(breaker, 2)
    assert breaker.state is CLOSED and breaker.consecutive_failures == 2 and breaker.allow()
    breaker.record_failure()
    assert breaker.state is OPEN
    assert not breaker.allow()
    assert breaker.retry_at() == clock.now + 5.0
    assert breaker.trips == 1
    assert transitions == [Transition("shop.example", CLOSED, OPEN, "3 consecutive failures", clock.now, 5.0)]


def test_success_resets_the_consecutive_count():
    breaker, _, transitions = make(failure_threshold=3, min_calls=20, window=20)
    for _ in range(5):
        fail(breaker, 2)
        breaker.record_success()
        assert breaker.consecutive_failures == 0
    fail(breaker, 2)
    assert breaker.state is CLOSED and transitions == []


def test_closed_to_open_by_failure_ratio_not_before_min_calls():
    breaker, _, transitions = make(failure_threshold=1000, failure_ratio=0.5, window=10, min_calls=6)
    for outcome in "FSFSF":  # ratio 0.6 but only 5 calls
        breaker.record_failure() if outcome == "F" else breaker.record_success()
    assert breaker.state is CLOSED
    breaker.record_success()  # 3/6 = 0.5, but a success never trips
    assert breaker.state is CLOSED
    breaker.record_failure()  # 4/7
    assert breaker.state is OPEN
    assert summary(transitions) == [("closed", "open", "failure ratio 0.57 over 7")]


def test_ratio_below_threshold_does_not_trip():
    breaker, _, transitions = make(failure_threshold=1000, failure_ratio=0.5, window=10, min_calls=4)
    for _ in range(30):
        breaker.record_success()
        breaker.record_success()
        breaker.record_failure()  # 1/3 < 0.5
    assert breaker.state is CLOSED and transitions == []


def test_ratio_only_counts_the_last_window_outcomes():
    breaker, _, transitions = make(failure_threshold=1000, failure_ratio=0.75, window=4, min_calls=4)
    for _ in range(6):
        breaker.record_success()
    for outcome in "FFS":
        breaker.record_failure() if outcome == "F" else breaker.record_success()
    assert breaker.state is CLOSED  # 2 of the last 4
    breaker.record_failure()  # last 4: F F S F, although only 3 of 10 overall
    assert summary(transitions) == [("closed", "open", "failure ratio 0.75 over 4")]


# -- OPEN -> HALF_OPEN ---------------------------------------------------------


def test_open_to_half_open_after_cooldown_lazily_and_once():
    breaker, clock, transitions = make(failure_threshold=2, cooldown=5.0, cooldown_multiplier=2.0)
    fail(breaker, 2)
    opened_at = clock.now
    clock.advance(4.999)
    assert breaker.state is OPEN and not breaker.allow()
    clock.advance(10.0)  # observed late: the transition still took effect when the cooldown elapsed
    assert breaker.state is HALF_OPEN
    assert breaker.state is HALF_OPEN
    assert breaker.retry_at() is None
    assert transitions[-1] == Transition("shop.example", OPEN, HALF_OPEN, "cooldown elapsed", opened_at + 5.0, None)
    assert len(transitions) == 2


@pytest.mark.parametrize("seed", range(30))
def test_cooldown_jitter_bounds(seed):
    breaker, clock, transitions = make(seed=seed, failure_threshold=1, cooldown=10.0, cooldown_jitter=0.1)
    breaker.record_failure()
    cooldown = transitions[0].cooldown
    assert 9.0 <= cooldown <= 11.0
    assert breaker.retry_at() == pytest.approx(clock.now + cooldown)
    clock.now = breaker.retry_at() - 1e-6
    assert breaker.state is OPEN
    clock.now = breaker.retry_at()
    assert breaker.state is HALF_OPEN


def test_cooldown_jitter_spreads_and_is_deterministic():
    def cooldown(seed: int) -> float:
        breaker, _, transitions = make(seed=seed, failure_threshold=1, cooldown=10.0, cooldown_jitter=0.1)
        breaker.record_failure()
        return transitions[0].cooldown

    values = [cooldown(seed) for seed in range(50)]
    assert len(set(values)) > 40 and min(values) < 9.5 and max(values) > 10.5
    assert values == [cooldown(seed) for seed in range(50)]


# -- HALF_OPEN -----------------------------------------------------------------


@pytest.mark.parametrize("probes", [1, 2, 3])
def test_half_open_allows_exactly_half_open_probes(probes):
    breaker, clock, _ = make(failure_threshold=1, half_open_probes=probes)
    trip_and_wait(breaker, clock)
    assert [breaker.allow() for _ in range(probes + 3)] == [True] * probes + [False] * 3
    breaker.release()  # a probe ended with no verdict (e.g. a permanent failure): its slot is free again
    assert breaker.allow() and not breaker.allow()
    assert breaker.state is HALF_OPEN


def test_half_open_to_closed_on_probe_success():
    breaker, clock, transitions = make(failure_threshold=2, window=4, min_calls=4, failure_ratio=0.5)
    trip_and_wait(breaker, clock)
    assert breaker.allow()
    clock.advance(0.3)
    breaker.record_success()
    assert breaker.state is CLOSED and breaker.allow()
    assert transitions[-1] == Transition("shop.example", HALF_OPEN, CLOSED, "probe succeeded", clock.now, None)
    assert breaker.consecutive_failures == 0
    # the window was reset: one failure after the close is 1/1, but below min_calls
    breaker.record_failure()
    assert breaker.state is CLOSED


def test_half_open_to_open_on_probe_failure_with_growing_capped_cooldown():
    breaker, clock, transitions = make(failure_threshold=1, cooldown=5.0, cooldown_multiplier=2.0, cooldown_max=30.0)
    breaker.record_failure()
    for _ in range(5):
        clock.now = breaker.retry_at()
        assert breaker.allow()
        breaker.record_failure()
        assert breaker.state is OPEN and not breaker.allow()
    opens = [t for t in transitions if t.new is OPEN]
    assert [t.cooldown for t in opens] == [5.0, 10.0, 20.0, 30.0, 30.0, 30.0]
    assert [t.reason for t in opens] == ["1 consecutive failures"] + ["probe failed"] * 5
    assert all(t.old is HALF_OPEN for t in opens[1:])
    assert breaker.trips == 6


def test_grown_cooldown_is_jittered_around_the_capped_value():
    breaker, clock, transitions = make(
        seed=3, failure_threshold=1, cooldown=10.0, cooldown_multiplier=3.0, cooldown_max=50.0, cooldown_jitter=0.2
    )
    breaker.record_failure()
    for _ in range(4):
        clock.now = breaker.retry_at()
        breaker.allow()
        breaker.record_failure()
    bases = [10.0, 30.0, 50.0, 50.0, 50.0]
    for transition, base in zip([t for t in transitions if t.new is OPEN], bases, strict=True):
        assert base * 0.8 <= transition.cooldown <= base * 1.2


def test_cooldown_growth_resets_after_full_recovery():
    breaker, clock, transitions = make(failure_threshold=2, cooldown=5.0, cooldown_multiplier=2.0)
    trip_and_wait(breaker, clock)
    breaker.allow()
    breaker.record_failure()  # re-trip: 10 s
    clock.now = breaker.retry_at()
    breaker.allow()
    breaker.record_success()  # full recovery
    assert breaker.state is CLOSED
    fail(breaker, 2)
    assert [t.cooldown for t in transitions if t.new is OPEN] == [5.0, 10.0, 5.0]
    assert breaker.trips == 3


def test_first_probe_success_closes_when_several_probes_allowed():
    breaker, clock, _ = make(failure_threshold=1, half_open_probes=3)
    trip_and_wait(breaker, clock)
    assert breaker.allow() and breaker.allow()
    breaker.record_success()
    assert breaker.state is CLOSED
    breaker.record_failure()  # the other probe's late outcome counts as a CLOSED outcome
    assert breaker.state is OPEN  # failure_threshold=1


def test_outcome_in_half_open_without_a_probe_in_flight_changes_nothing():
    breaker, clock, transitions = make(failure_threshold=1)
    trip_and_wait(breaker, clock)
    before = len(transitions)
    breaker.record_failure()  # a late outcome of a request sent before the breaker opened
    breaker.record_success()
    breaker.release()
    assert breaker.state is HALF_OPEN and len(transitions) == before
    assert breaker.allow()


# -- late outcomes while OPEN ----------------------------------------------------


def test_late_outcomes_while_open_do_not_change_state():
    breaker, clock, transitions = make(failure_threshold=3, cooldown=8.0)
    fail(breaker, 3)
    retry_at = breaker.retry_at()
    clock.advance(2.0)
    for _ in range(4):
        breaker.record_success()
        breaker.record_failure()
        breaker.record_failure()
    breaker.release()
    assert breaker.state is OPEN and breaker.retry_at() == retry_at and breaker.trips == 1
    assert len(transitions) == 1
    clock.now = retry_at
    assert breaker.state is HALF_OPEN and breaker.allow()
    breaker.record_success()
    assert breaker.state is CLOSED


# -- giving up ---------------------------------------------------------------------


def test_gave_up_after_max_trips():
    breaker, clock, transitions = make(failure_threshold=1, cooldown=1.0, max_trips=3)
    breaker.record_failure()
    for _ in range(2):
        assert not breaker.gave_up
        clock.now = breaker.retry_at()
        breaker.allow()
        breaker.record_failure()
    assert breaker.trips == 3 and breaker.gave_up
    # final: it stays OPEN, lets nothing through, and gives no time to retry at
    clock.advance(10_000.0)
    assert breaker.state is OPEN and not breaker.allow() and breaker.retry_at() is None and breaker.gave_up
    breaker.record_success()
    assert breaker.state is OPEN and breaker.gave_up
    assert len(transitions) == 5  # open, half_open, open, half_open, open: nothing after giving up


def test_total_open_seconds_counts_open_periods_only():
    breaker, clock, _ = make(failure_threshold=1, cooldown=10.0, cooldown_multiplier=1.0)
    breaker.record_failure()
    clock.advance(3.0)
    assert breaker.total_open_seconds == 3.0  # includes the current period
    clock.advance(100.0)
    assert breaker.state is HALF_OPEN
    assert breaker.total_open_seconds == 10.0  # ended when the cooldown elapsed; half-open time is not open time
    breaker.allow()
    breaker.record_failure()
    clock.advance(4.0)
    assert breaker.total_open_seconds == 14.0


def test_gave_up_after_max_open_seconds():
    breaker, clock, transitions = make(
        failure_threshold=1, cooldown=10.0, cooldown_multiplier=1.0, max_open_seconds=25.0
    )
    breaker.record_failure()
    for _ in range(2):
        clock.now = breaker.retry_at()
        breaker.allow()
        breaker.record_failure()
    assert breaker.total_open_seconds == 20.0
    clock.advance(4.9)
    assert not breaker.gave_up and breaker.retry_at() is not None
    clock.advance(0.1)
    assert breaker.gave_up and breaker.total_open_seconds == pytest.approx(25.0)
    assert breaker.retry_at() is None and not breaker.allow()
    clock.advance(60.0)
    assert breaker.state is OPEN and breaker.gave_up  # never half-opens again
    assert breaker.total_open_seconds == pytest.approx(85.0)  # a dead domain stays open
    assert [t.new for t in transitions][-1] is OPEN


def test_gave_up_by_time_does_not_depend_on_when_it_is_observed():
    breaker, clock, _ = make(failure_threshold=1, cooldown=10.0, cooldown_multiplier=1.0, max_open_seconds=25.0)
    breaker.record_failure()
    for _ in range(2):
        clock.now = breaker.retry_at()
        breaker.allow()
        breaker.record_failure()
    clock.advance(1000.0)  # first look long after the third cooldown
    assert breaker.gave_up and breaker.state is OPEN


def test_open_time_below_the_limit_never_gives_up():
    breaker, clock, _ = make(failure_threshold=1, cooldown=10.0, max_open_seconds=30.0)
    breaker.record_failure()
    clock.advance(1000.0)
    assert breaker.state is HALF_OPEN and not breaker.gave_up


def test_default_config_gives_up_only_after_five_minutes_open_however_many_trips():
    """A short outage never ends a domain: only the time open counts by default (RETRY_MAX_ELAPSED's 300 s)."""
    clock = FakeClock()
    breaker = CircuitBreaker("shop.example", BreakerConfig(), clock, random.Random(1))
    fail(breaker, 5)
    for _ in range(8):
        assert not breaker.gave_up
        clock.now = breaker.retry_at()
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.trips == 9 and not breaker.gave_up
    while not breaker.gave_up:
        clock.now = breaker.retry_at() or clock.now + 1
        if breaker.allow():
            breaker.record_failure()
    assert 300 <= breaker.total_open_seconds <= 300 + 30 * 1.1  # within one (capped) cooldown


# -- on_transition ---------------------------------------------------------------


def test_on_transition_once_per_transition_with_reasons():
    breaker, clock, transitions = make(failure_threshold=2, cooldown=5.0, cooldown_multiplier=2.0)
    fail(breaker, 2)
    for _ in range(3):
        breaker.state  # noqa: B018 - looking is what makes the lazy transition
    clock.advance(5.0)
    for _ in range(3):
        breaker.state  # noqa: B018
        breaker.retry_at()
    breaker.allow()
    breaker.record_failure()
    clock.advance(10.0)
    breaker.allow()
    breaker.record_success()
    breaker.record_success()
    assert summary(transitions) == [
        ("closed", "open", "2 consecutive failures"),
        ("open", "half_open", "cooldown elapsed"),
        ("half_open", "open", "probe failed"),
        ("open", "half_open", "cooldown elapsed"),
        ("half_open", "closed", "probe succeeded"),
    ]
    assert [t.cooldown for t in transitions] == [5.0, None, 10.0, None, None]
    assert all(t.key == "shop.example" for t in transitions)
    assert [t.at for t in transitions] == sorted(t.at for t in transitions)


def test_without_on_transition():
    clock = FakeClock()
    breaker = CircuitBreaker("x", BreakerConfig(failure_threshold=1), clock, random.Random(0))
    breaker.record_failure()
    clock.advance(100.0)
    assert breaker.state is HALF_OPEN


# -- config validation -------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": 2.0}, "failure_threshold"),
        ({"failure_ratio": 0.0}, "failure_ratio"),
        ({"failure_ratio": 1.5}, "failure_ratio"),
        ({"window": 0}, "window"),
        ({"min_calls": 0}, "min_calls"),
        ({"min_calls": 21}, "min_calls"),
        ({"cooldown": -1.0}, "cooldown"),
        ({"cooldown": float("nan")}, "cooldown"),
        ({"cooldown_multiplier": 0.5}, "cooldown_multiplier"),
        ({"cooldown_max": 4.0}, "cooldown_max"),
        ({"cooldown_jitter": -0.1}, "cooldown_jitter"),
        ({"cooldown_jitter": 1.0}, "cooldown_jitter"),
        ({"half_open_probes": 0}, "half_open_probes"),
        ({"max_trips": -1}, "max_trips"),
        ({"max_open_seconds": -1.0}, "max_open_seconds"),
        ({"max_open_seconds": "300"}, "max_open_seconds"),
    ],
)
def test_config_validation_names_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"\b{field} must") as info:
        BreakerConfig(**changes)
    assert "\n" not in str(info.value)


# -- registry ----------------------------------------------------------------------


def test_registry_creates_breakers_on_first_use_and_snapshots():
    clock = FakeClock()
    transitions: list[Transition] = []
    config = BreakerConfig(**{**EXACT, "failure_threshold": 2, "cooldown": 4.0})
    registry = BreakerRegistry(config, clock, random.Random(0), transitions.append)
    assert len(registry) == 0 and registry.snapshot() == {}
    a = registry.get("a.example")
    assert registry.get("a.example") is a and "a.example" in registry and "b.example" not in registry
    b = registry.get("b.example")
    fail(a, 2)
    b.record_failure()
    clock.advance(1.5)
    assert [key for key, _ in registry.items()] == ["a.example", "b.example"]
    assert registry.snapshot() == {
        "a.example": {"state": "open", "trips": 1, "total_open_seconds": 1.5, "gave_up": False},
        "b.example": {"state": "closed", "trips": 0, "total_open_seconds": 0.0, "gave_up": False},
    }
    assert [(t.key, t.new) for t in transitions] == [("a.example", OPEN)]
    clock.advance(10.0)
    assert registry.snapshot()["a.example"]["state"] == "half_open"
    assert [(t.key, t.new) for t in transitions] == [("a.example", OPEN), ("a.example", HALF_OPEN)]
