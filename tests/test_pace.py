"""The pace of a domain under a rate limit: pure, on synthetic timelines."""

from __future__ import annotations

import pytest

from crawler.pace import Pace, PaceConfig, says_slow_down


def feed_ok(pace: Pace, start: float, end: float, rate: float) -> float:
    """Ok answers at ``rate`` per second from ``start`` to ``end``; returns ``end``."""
    t = start
    while t < end:
        pace.record_ok(t)
        t += 1 / rate
    return end


def test_429_and_retry_after_say_slow_down_but_503_alone_does_not():
    assert says_slow_down(429, False)
    assert says_slow_down(503, True)
    assert not says_slow_down(503, False)
    assert not says_slow_down(200, True)  # a Retry-After on a success is no request to slow down


def test_unpaced_until_the_first_slow_down():
    pace = Pace()
    feed_ok(pace, 0, 10, 50)
    pace.tick(10)
    assert pace.rate is None and pace.interval == 0


def test_a_slow_down_cuts_to_just_under_the_accepted_rate():
    pace = Pace(PaceConfig(backoff=0.9, window=5))
    now = feed_ok(pace, 0, 10, 20)  # the site let 20/s through
    assert pace.record_slow_down(now, sent_at=now - 0.01, retry_after=None)
    assert pace.rate == pytest.approx(18, rel=0.05)
    assert pace.interval == pytest.approx(1 / 18, rel=0.05)


def test_slow_downs_of_requests_sent_before_the_cut_are_stale():
    pace = Pace()
    now = feed_ok(pace, 0, 10, 20)
    assert pace.record_slow_down(now, now - 0.01, None)
    rate = pace.rate
    assert not pace.record_slow_down(now + 0.05, sent_at=now - 0.02, retry_after=None)
    assert pace.rate == rate and pace.stale == 1
    # a request sent after the cut that is refused again: a fresh signal, cut again
    assert pace.record_slow_down(now + 1, sent_at=now + 0.5, retry_after=None)
    assert pace.rate < rate


def test_retry_after_pauses_the_domain_and_the_pause_is_not_counted_as_idle_time():
    pace = Pace(PaceConfig(window=5))
    now = feed_ok(pace, 0, 3, 20)
    pace.record_slow_down(now, now, retry_after=2)
    assert pace.paused(now + 1.9) and not pace.paused(now + 2.0)
    assert pace.paused_until == pytest.approx(now + 2)
    # during the pause nothing is answered; the accepted rate ignores the paused time
    assert pace.accepted_rate(now + 2) == pytest.approx(20, rel=0.1)


def test_retry_after_is_capped():
    pace = Pace(PaceConfig(retry_after_max=10))
    pace.record_slow_down(100, 100, retry_after=3600)
    assert pace.paused_until == 110


def test_probing_climbs_back_every_interval_up_to_headroom():
    config = PaceConfig(backoff=0.5, probe_step=0.1, probe_interval=2, headroom=1.5, window=5)
    pace = Pace(config)
    now = feed_ok(pace, 0, 5, 20)
    pace.record_slow_down(now, now, None)
    assert pace.rate == pytest.approx(10, rel=0.05)
    rates = []
    for second in range(1, 30):
        t = now + second
        feed_ok(pace, t - 1, t, pace.rate)  # the site accepts what we send
        pace.tick(t)
        rates.append(pace.rate)
    assert rates[0] == pytest.approx(10, rel=0.05)  # not before probe_interval
    assert rates[-1] > 15  # climbed
    assert all(b >= a for a, b in zip(rates, rates[1:], strict=False))


def test_probing_stops_when_the_crawl_does_not_use_the_pace():
    pace = Pace(PaceConfig(backoff=0.9, probe_step=0.5, probe_interval=1, headroom=1.5, window=5))
    now = feed_ok(pace, 0, 5, 4)  # something else holds the crawl at 4/s
    pace.record_slow_down(now, now, None)
    rates = []
    for second in range(1, 20):
        feed_ok(pace, now + second - 1, now + second, 4)
        pace.tick(now + second)
        rates.append(pace.rate)
    assert max(rates) <= 1.5 * 4 * 1.05


def test_the_pace_is_dropped_after_a_long_quiet_time():
    pace = Pace(PaceConfig(release_after=30))
    now = feed_ok(pace, 0, 5, 20)
    pace.record_slow_down(now, now, None)
    pace.tick(now + 29)
    assert pace.rate is not None
    pace.tick(now + 30)
    assert pace.rate is None


def test_bad_config_is_a_value_error():
    with pytest.raises(ValueError, match="backoff"):
        PaceConfig(backoff=1.5)
    with pytest.raises(ValueError):
        PaceConfig(window=0)
