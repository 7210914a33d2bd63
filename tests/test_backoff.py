"""Retry policy and Retry-After parsing: pure, seeded randomness, no reactor."""

import calendar
import random

import pytest

from crawler.backoff import BUDGET_COUNT, BUDGET_TIME, RetryPolicy, parse_retry_after, policy_from_mapping

DATE = "Wed, 21 Oct 2015 07:28:00 GMT"
DATE_TS = float(calendar.timegm((2015, 10, 21, 7, 28, 0)))


def delays(policy: RetryPolicy, n: int, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [policy.backoff_delay(attempt, rng) for attempt in range(1, n + 1)]


# -- backoff sequences ---------------------------------------------------------


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        ("fixed", [2.0, 2.0, 2.0, 2.0, 2.0]),
        ("linear", [2.0, 4.0, 6.0, 8.0, 10.0]),
        ("exponential", [2.0, 4.0, 8.0, 16.0, 32.0]),
    ],
)
def test_sequences_without_jitter(backoff, expected):
    policy = RetryPolicy(backoff=backoff, base=2.0, cap=1000.0, jitter="none")
    assert delays(policy, 5) == expected


def test_cap_applies_before_jitter():
    policy = RetryPolicy(backoff="exponential", base=1.0, cap=10.0, jitter="none")
    assert delays(policy, 7) == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    linear = RetryPolicy(backoff="linear", base=3.0, cap=7.0, jitter="none")
    assert delays(linear, 4) == [3.0, 6.0, 7.0, 7.0]
    jittered = RetryPolicy(backoff="exponential", base=1.0, cap=10.0, jitter="full")
    assert all(0.0 <= d <= 10.0 for d in delays(jittered, 50))


def test_huge_attempt_does_not_overflow():
    policy = RetryPolicy(backoff="exponential", base=1.0, cap=60.0, jitter="none")
    assert policy.backoff_delay(10_000, random.Random(0)) == 60.0


def test_defaults():
    policy = RetryPolicy()
    assert (policy.max_retries, policy.backoff, policy.base, policy.cap, policy.jitter, policy.retry_after_max) == (
        5,
        "exponential",
        1.0,
        60.0,
        "full",
        300.0,
    )


@pytest.mark.parametrize("backoff", ["fixed", "linear", "exponential"])
def test_full_jitter_bounds(backoff):
    policy = RetryPolicy(backoff=backoff, base=1.5, cap=20.0, jitter="full")
    raw = RetryPolicy(backoff=backoff, base=1.5, cap=20.0, jitter="none")
    rng = random.Random(42)
    for attempt in range(1, 9):
        top = raw.backoff_delay(attempt, rng)
        draws = [policy.backoff_delay(attempt, rng) for _ in range(500)]
        assert all(0.0 <= d <= top for d in draws)
        assert min(draws) < top * 0.1 and max(draws) > top * 0.9  # actually spread over the range


@pytest.mark.parametrize("backoff", ["fixed", "linear", "exponential"])
def test_equal_jitter_bounds(backoff):
    policy = RetryPolicy(backoff=backoff, base=1.5, cap=20.0, jitter="equal")
    raw = RetryPolicy(backoff=backoff, base=1.5, cap=20.0, jitter="none")
    rng = random.Random(7)
    for attempt in range(1, 9):
        top = raw.backoff_delay(attempt, rng)
        draws = [policy.backoff_delay(attempt, rng) for _ in range(500)]
        assert all(top / 2 <= d <= top for d in draws)
        assert min(draws) < top * 0.55 and max(draws) > top * 0.95


def test_seeded_rng_is_deterministic():
    policy = RetryPolicy(jitter="full")
    assert delays(policy, 10, seed=123) == delays(policy, 10, seed=123)
    assert delays(policy, 10, seed=123) != delays(policy, 10, seed=124)


def test_attempt_must_be_positive():
    with pytest.raises(ValueError, match="attempt"):
        RetryPolicy().backoff_delay(0, random.Random(0))


# -- Retry-After ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("  7 \t", 7.0),
        ("1.5", 1.5),
        (b"30", 30.0),
        (b" 2.25 ", 2.25),
    ],
)
def test_retry_after_seconds(value, expected):
    assert parse_retry_after(value, now=DATE_TS) == expected


def test_retry_after_http_date_in_the_future():
    assert parse_retry_after(DATE, now=DATE_TS - 90) == 90.0
    assert parse_retry_after(DATE.encode(), now=DATE_TS - 0.5) == 0.5
    assert parse_retry_after(f"  {DATE}  ", now=DATE_TS - 1) == 1.0


def test_retry_after_http_date_in_the_past_is_zero():
    assert parse_retry_after(DATE, now=DATE_TS + 3600) == 0.0
    assert parse_retry_after(DATE, now=DATE_TS) == 0.0


def test_retry_after_obsolete_date_formats():
    assert parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", now=DATE_TS - 10) == 10.0  # RFC 850
    assert parse_retry_after("Wed Oct 21 07:28:00 2015", now=DATE_TS - 10) == 10.0  # asctime, no zone: UTC


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", b"", "soon", "-5", "-1.5", "1e3", "nan", "inf", "12abc", "1.", ".5"]
    + ["Wed, 99 Foo 2015 07:28:00 GMT", "Wed, 21 Oct 2015", b"\xff\xfe"],
)
def test_retry_after_garbage_is_none(value):
    assert parse_retry_after(value, now=DATE_TS) is None


# -- delay() and Retry-After -----------------------------------------------------


def test_delay_honours_retry_after_up_to_retry_after_max():
    policy = RetryPolicy(backoff="fixed", base=2.0, jitter="none", retry_after_max=100.0)
    rng = random.Random(0)
    assert policy.delay(1, rng) == 2.0
    assert policy.delay(1, rng, retry_after=None) == 2.0
    assert policy.delay(1, rng, retry_after=30.0) == 30.0
    assert policy.delay(1, rng, retry_after=1.0) == 2.0  # backoff is longer: keep it
    assert policy.delay(1, rng, retry_after=0.0) == 2.0
    assert policy.delay(1, rng, retry_after=5000.0) == 100.0  # capped


def test_delay_with_jitter_is_at_least_retry_after():
    policy = RetryPolicy(jitter="full", retry_after_max=300.0)
    rng = random.Random(5)
    assert all(policy.delay(3, rng, retry_after=12.0) >= 12.0 for _ in range(200))


def test_delay_from_parsed_header():
    policy = RetryPolicy(backoff="fixed", base=1.0, jitter="none")
    assert policy.delay(1, random.Random(0), parse_retry_after(DATE, now=DATE_TS - 45)) == 45.0


# -- can_retry, with_, validation ------------------------------------------------


def test_can_retry():
    policy = RetryPolicy(max_retries=2)
    assert [policy.can_retry(n) for n in range(4)] == [True, True, False, False]
    assert not RetryPolicy(max_retries=0).can_retry(0)


def test_with_makes_a_validated_copy():
    policy = RetryPolicy()
    single = policy.with_(max_retries=1)
    assert single.max_retries == 1 and policy.max_retries == 5
    assert single == RetryPolicy(max_retries=1)
    with pytest.raises(ValueError, match="max_retries"):
        policy.with_(max_retries=-1)


def test_policy_is_immutable_and_hashable():
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.max_retries = 3  # type: ignore[misc]
    assert len({RetryPolicy(), RetryPolicy()}) == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 2.5}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"backoff": "fibonacci"}, "backoff"),
        ({"jitter": "half"}, "jitter"),
        ({"base": -1.0}, "base"),
        ({"base": "1"}, "base"),
        ({"cap": -0.1}, "cap"),
        ({"cap": float("nan")}, "cap"),
        ({"retry_after_max": -5}, "retry_after_max"),
    ],
)
def test_validation_errors_name_the_field(changes, field):
    with pytest.raises(ValueError, match=field) as info:
        RetryPolicy(**changes)
    assert "\n" not in str(info.value)


def test_zero_values_are_valid():
    policy = RetryPolicy(max_retries=0, base=0.0, cap=0.0, retry_after_max=0.0)
    assert policy.delay(1, random.Random(0), retry_after=60.0) == 0.0


# -- policy_from_mapping ---------------------------------------------------------


def test_policy_from_mapping_per_stage():
    default = RetryPolicy(max_retries=3, base=0.5)
    settings = {"list": {"max_retries": 8, "cap": 120.0}, "detail": {"backoff": "linear", "jitter": "equal"}}
    policies = {stage: policy_from_mapping(values, default) for stage, values in settings.items()}
    assert policies["list"] == RetryPolicy(max_retries=8, base=0.5, cap=120.0)
    assert policies["detail"] == RetryPolicy(max_retries=3, base=0.5, backoff="linear", jitter="equal")
    assert policy_from_mapping({}, default) == default


def test_policy_from_mapping_unknown_key():
    with pytest.raises(ValueError, match="max_retry_times") as info:
        policy_from_mapping({"max_retries": 2, "max_retry_times": 3}, RetryPolicy())
    assert "\n" not in str(info.value)


def test_policy_from_mapping_validates_values():
    with pytest.raises(ValueError, match="jitter"):
        policy_from_mapping({"jitter": "lots"}, RetryPolicy())


# -- budgets: count and time ---------------------------------------------------------


def test_time_budget_alone():
    policy = RetryPolicy(max_retries=None, max_elapsed=300.0)
    assert policy.exhausted(0, elapsed=0.0) is None
    assert policy.exhausted(10_000, elapsed=299.9) is None  # no count limit
    assert policy.exhausted(3, elapsed=300.0) == BUDGET_TIME  # at the budget: past it
    assert policy.exhausted(3, elapsed=301.0) == BUDGET_TIME
    assert policy.can_retry(50, 10.0) and not policy.can_retry(1, 300.0)


def test_count_budget_alone_is_scrapy_s():
    policy = RetryPolicy(max_retries=2)
    assert policy.max_elapsed is None
    assert [policy.exhausted(n, elapsed=1e9) for n in range(4)] == [None, None, BUDGET_COUNT, BUDGET_COUNT]


def test_both_budgets_whichever_runs_out_first():
    policy = RetryPolicy(max_retries=3, max_elapsed=60.0)
    assert policy.exhausted(3, elapsed=1.0) == BUDGET_COUNT
    assert policy.exhausted(1, elapsed=60.0) == BUDGET_TIME
    assert policy.exhausted(3, elapsed=60.0) == BUDGET_COUNT  # both: the count is named
    assert policy.exhausted(2, elapsed=59.0) is None


def test_remaining():
    policy = RetryPolicy(max_retries=None, max_elapsed=100.0)
    assert policy.remaining(30.0) == 70.0
    assert policy.remaining(150.0) == 0.0
    assert RetryPolicy().remaining(30.0) is None


def test_delay_is_shortened_to_the_time_left_but_not_below_retry_after():
    policy = RetryPolicy(max_retries=None, max_elapsed=100.0, backoff="fixed", base=30.0, jitter="none")
    rng = random.Random(0)
    assert policy.delay(1, rng, remaining=policy.remaining(10.0)) == 30.0
    assert policy.delay(1, rng, remaining=policy.remaining(90.0)) == 10.0  # sent at the deadline
    assert policy.delay(1, rng, remaining=policy.remaining(120.0)) == 0.0
    # the server's Retry-After wins over the budget (politeness); that attempt is the last if it fails
    assert policy.delay(1, rng, retry_after=20.0, remaining=5.0) == 20.0
    assert policy.delay(1, rng, remaining=None) == 30.0


def test_a_short_outage_fits_the_time_budget():
    """Failures every backoff delay (capped at 30 s) for 60 s never exhaust a 300 s budget."""
    policy = RetryPolicy(max_retries=None, max_elapsed=300.0, base=0.5, cap=30.0, jitter="full")
    rng = random.Random(1)
    now, retries = 0.0, 0
    while now < 60.0:
        assert policy.exhausted(retries, now) is None
        retries += 1
        now += policy.delay(retries, rng, remaining=policy.remaining(now)) + 0.05
    assert retries > 5  # more than Scrapy's count would have allowed


def test_time_budget_ends_retries_at_the_deadline():
    policy = RetryPolicy(max_retries=None, max_elapsed=300.0, base=0.5, cap=30.0, jitter="full")
    rng = random.Random(2)
    now, retries = 0.0, 0
    while policy.exhausted(retries, now) is None:
        retries += 1
        now += policy.delay(retries, rng, remaining=policy.remaining(now))
    assert policy.exhausted(retries, now) == BUDGET_TIME
    assert now == pytest.approx(300.0)  # the last retry was sent at the deadline, not after


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_retries": None}, "both None"),
        ({"max_elapsed": 0}, "max_elapsed"),
        ({"max_elapsed": -1.0}, "max_elapsed"),
        ({"max_elapsed": float("inf")}, "max_elapsed"),
        ({"max_elapsed": "60"}, "max_elapsed"),
    ],
)
def test_budget_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**changes)


def test_budgets_from_mapping():
    default = RetryPolicy(max_retries=None, max_elapsed=300.0)
    assert policy_from_mapping({"max_elapsed": 900.0}, default).max_elapsed == 900.0
    both = policy_from_mapping({"max_retries": 10}, default)
    assert (both.max_retries, both.max_elapsed) == (10, 300.0)
