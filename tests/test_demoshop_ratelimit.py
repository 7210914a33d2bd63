"""The demo shop's per-client rate limit: the token bucket (fake clock) and a served shop on loopback."""

from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from demoshop.__main__ import _parser
from demoshop.capacity import CapacityModel
from demoshop.catalogue import Catalogue
from demoshop.faults import FaultConfig, Outage, build_interceptors
from demoshop.pages import ShopPages, page_url
from demoshop.process import ShopProcess
from demoshop.ratelimit import RateLimiter, TokenBucket, retry_after_date, retry_after_seconds
from tests.test_demoshop_faults import concurrent_fetches, fetch, read_log

IMF_FIXDATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                         r"\d{4} \d\d:\d\d:\d\d GMT$")  # fmt: skip


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeRequest:
    """Just enough of a request for :meth:`RateLimiter.intercept` to decide (it must not answer here)."""

    def getClientAddress(self) -> object:  # noqa: N802 (Twisted's name)
        raise AssertionError("robots.txt must not reach the bucket")


# --- the token bucket --------------------------------------------------------------------------------------------


def test_a_full_bucket_admits_a_burst_then_refuses_with_the_wait() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.1)
    assert bucket.take(0.04) == pytest.approx(0.06)


def test_refill_is_continuous_and_capped_at_the_burst() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    for _ in range(3):
        bucket.take(0.0)
    assert bucket.take(0.1) == 0.0  # one token back after 1 / rate
    assert bucket.take(0.15) == pytest.approx(0.05)
    assert bucket.take(1000.0) == 0.0  # a long pause refills only up to the burst
    assert [bucket.take(1000.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(0.1)]


def test_refused_requests_are_not_charged() -> None:
    bucket = TokenBucket(rate=1, burst=1, now=0.0)
    assert bucket.take(0.0) == 0.0
    waits = [bucket.take(t / 10) for t in range(1, 10) for _ in range(5)]  # 45 refusals in the first second
    assert all(w > 0 for w in waits) and waits[0] == pytest.approx(0.9) and waits[-1] == pytest.approx(0.1)
    assert bucket.take(1.0) == 0.0  # the token comes when it would have without them
    assert bucket.take(1.0) == pytest.approx(1.0)


def test_bad_buckets_are_rejected() -> None:
    for rate, burst in ((0, 1), (-1, 1), (1, 0.5), (float("inf"), 1)):
        with pytest.raises(ValueError):
            TokenBucket(rate, burst, 0.0)
    with pytest.raises(ValueError):
        RateLimiter(5, retry_after_format="both")


def test_limiter_keeps_a_bucket_per_client_and_defaults_the_burst_to_one_second() -> None:
    clock = FakeClock()
    limiter = RateLimiter(20, clock=clock)
    assert limiter.burst == 20 and RateLimiter(0.5).burst == 1 and RateLimiter(4, burst=2).burst == 2
    assert all(limiter.wait("127.0.0.1") == 0.0 for _ in range(20))
    assert limiter.wait("127.0.0.1") == pytest.approx(0.05)
    assert limiter.wait("127.0.0.9") == 0.0  # another client, its own full bucket
    clock.now += 0.05
    assert limiter.wait("127.0.0.1") == 0.0


def test_retry_after_seconds_round_up_to_at_least_one() -> None:
    assert [retry_after_seconds(w) for w in (0.0, 0.05, 0.999, 1.0, 1.001, 2.5)] == ["1", "1", "1", "1", "2", "3"]
    clock = FakeClock()
    limiter = RateLimiter(0.4, burst=1, clock=clock)  # a token every 2.5 s
    limiter.wait("a")
    clock.now += 0.3
    assert limiter.retry_after(limiter.wait("a")) == "3"  # 2.2 s to go


def test_retry_after_date_is_an_imf_fixdate_no_earlier_than_the_token() -> None:
    value = retry_after_date(4.0, 1_000_000.25)
    assert IMF_FIXDATE.match(value), value
    assert parsedate_to_datetime(value).timestamp() == 1_000_005  # 1_000_004.25 rounded up
    assert parsedate_to_datetime(retry_after_date(2.0, 1_000_000.0)).timestamp() == 1_000_002
    clock = FakeClock()
    limiter = RateLimiter(0.25, burst=1, retry_after_format="date", clock=clock, wall_clock=lambda: 1_700_000_000.5)
    limiter.wait("a")
    clock.now += 1.0
    value = limiter.retry_after(limiter.wait("a"))  # 3 s to go
    assert IMF_FIXDATE.match(value) and parsedate_to_datetime(value).timestamp() == 1_700_000_004


def test_robots_txt_is_neither_limited_nor_charged() -> None:
    limiter = RateLimiter(1, burst=1)
    assert limiter.intercept(FakeRequest(), "/robots.txt") is False  # type: ignore[arg-type]
    assert limiter.buckets == {}


def test_flags_and_chain_order() -> None:
    options = _parser("serve").parse_args(["--rate", "20", "--outage", "1:2", "--capacity", "6"])
    config = FaultConfig.from_options(options)
    assert (config.rate, config.rate_burst, config.retry_after_format) == (20.0, None, "seconds")
    catalogue = Catalogue(12, 1)
    chain = build_interceptors(config, catalogue, ShopPages(catalogue), reactor=None)
    assert [type(i) for i in chain] == [Outage, RateLimiter, CapacityModel]
    assert (chain[1].rate, chain[1].burst) == (20.0, 20.0)
    options = _parser("serve").parse_args(["--rate", "2.5", "--rate-burst", "4", "--retry-after-format", "date"])
    assert FaultConfig.from_options(options).rate_burst == 4.0
    for args in (["--rate", "-1"], ["--rate-burst", "0.5"], ["--retry-after-format", "both"]):
        with pytest.raises(SystemExit):
            _parser("serve").parse_args(args)
    shop = ShopProcess(rate=20, rate_burst=5, retry_after_format="date", extra_args=["--capacity", "2"])
    assert shop.extra_args == ("--capacity", "2", "--rate", "20.0", "--rate-burst", "5.0",
                               "--retry-after-format", "date")  # fmt: skip


# --- a served shop -----------------------------------------------------------------------------------------------


def test_a_burst_of_twice_the_rate_gets_429_for_the_excess(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    rate = 10
    with ShopProcess(products=24, seed=1, request_log=log, rate=rate) as shop:
        assert fetch(shop.url, "/robots.txt").outcome == "ok"  # not charged
        started = time.monotonic()
        results = [fetch(shop.url, page_url(1 + n % 2)) for n in range(2 * rate)]
        elapsed = time.monotonic() - started
        assert [r.outcome for r in results[:rate]] == ["ok"] * rate  # the full bucket
        refused = [r for r in results if r.outcome != "ok"]
        refilled = int(elapsed * rate) + 1  # tokens that may have come back during the burst
        assert rate - refilled <= len(refused) <= rate
        assert all(r.outcome == "429" and r.headers["Retry-After"] == "1" for r in refused)
        assert all(r.elapsed < 0.2 for r in refused)
        time.sleep(1.0)  # as told
        assert fetch(shop.url, page_url(1)).outcome == "ok"
        lines = read_log(log, count=2 * rate + 2)
    assert len(lines) == 2 * rate + 2
    assert sum(1 for e in lines if e.get("fault") == "rate_limited") == len(refused)
    assert all(e["status"] == 429 for e in lines if e.get("fault") == "rate_limited")


def test_refused_before_a_worker_is_taken_with_a_date(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    with ShopProcess(
        products=24,
        seed=1,
        request_log=log,
        rate=1,
        retry_after_format="date",
        extra_args=["--capacity", "1", "--queue", "1", "--latency", "0.3"],
    ) as shop:
        results = sorted(concurrent_fetches(shop.url, [page_url(1), page_url(2)]), key=lambda r: r.elapsed)
        refused, served = results
        assert (refused.outcome, served.outcome) == ("429", "ok")
        assert refused.elapsed < 0.2  # not queued behind the worker
        assert 0.25 <= served.elapsed < 0.7
        value = refused.headers["Retry-After"]
        assert IMF_FIXDATE.match(value), value
        assert parsedate_to_datetime(value).timestamp() >= time.time() + 0.2  # the token is ~0.7 s away
        lines = read_log(log, count=2)
    assert sorted(e.get("fault", "-") for e in lines) == ["-", "rate_limited"]
