"""A domain's pace: requests per second under a rate limit, and Retry-After pauses.

Pure, no Scrapy or Twisted import; every call is given the time.

A 429, or any response carrying ``Retry-After``, says "slow down", not
"down" (:func:`says_slow_down`).  The concurrency limit cannot answer it: a
rate limiter counts requests per second, and at one request in flight a
fast site is still asked far more often than it allows.  So a domain has a
pace as well as a concurrency limit:

* **Pause**: ``Retry-After`` pauses the whole domain until then (capped at
  ``PaceConfig.retry_after_max``), not just the one request.
* **Cut**: a fresh slow-down (a request sent after the last cut; older ones
  answer for the rate before it, like TCP's one decrease per window) sets
  the rate to ``backoff`` x the rate the site *accepted* (ok answers per
  second of unpaused time over the last ``window`` seconds; that is what
  the limiter lets through, whatever we sent), or x the current rate if lower.
* **Probe**: every ``probe_interval`` seconds without a fresh slow-down the
  rate grows by ``probe_step`` (a share), so the crawl settles just under
  what the site allows; it stops growing at ``headroom`` x the accepted rate
  (when something else, the concurrency limit, holds the crawl back), and
  after ``release_after`` seconds without a slow-down the pace is dropped.

The glue turns :attr:`Pace.interval` into the download slot's delay and
holds the domain's requests in the scheduler until :attr:`Pace.paused_until`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

#: Statuses that ask the client to slow down.
SLOW_DOWN_STATUSES = frozenset({429})


def says_slow_down(status: int, has_retry_after: bool) -> bool:
    """A 429, or any response with ``Retry-After``: the server is up and asks for less."""
    return status in SLOW_DOWN_STATUSES or (has_retry_after and status >= 400)


@dataclass(frozen=True)
class PaceConfig:
    """Constants of :class:`Pace` (times in seconds, rates in requests per second)."""

    backoff: float = 0.9
    window: float = 5.0
    probe_step: float = 0.05
    probe_interval: float = 1.0
    headroom: float = 1.5
    release_after: float = 120.0
    min_rate: float = 0.05
    retry_after_max: float = 120.0

    def __post_init__(self) -> None:
        if not 0 < self.backoff < 1:
            raise ValueError(f"pace: backoff must be in (0, 1), got {self.backoff!r}")
        if self.window <= 0 or self.probe_interval <= 0 or self.min_rate <= 0:
            raise ValueError("pace: window, probe_interval and min_rate must be > 0")
        if self.probe_step < 0 or self.headroom < 1 or self.release_after < 0 or self.retry_after_max < 0:
            raise ValueError("pace: need probe_step >= 0, headroom >= 1, release_after >= 0, retry_after_max >= 0")


class Pace:
    """The pace of one domain; see the module docstring."""

    def __init__(self, config: PaceConfig | None = None) -> None:
        self.config = config or PaceConfig()
        #: Requests per second allowed; None: not paced.
        self.rate: float | None = None
        #: Time until which the domain is paused (0: not paused).
        self.paused_until = 0.0
        #: Slow-downs that cut the rate, and those that answered for an older rate.
        self.cuts = 0
        self.stale = 0
        self._ok: deque[float] = deque()
        self._pauses: deque[tuple[float, float]] = deque()
        self._cut_at = float("-inf")
        self._last_slow_down = float("-inf")
        self._probed_at = 0.0
        self._first: float | None = None

    @property
    def interval(self) -> float:
        """Seconds between requests (0: unpaced)."""
        return 1.0 / self.rate if self.rate else 0.0

    def paused(self, now: float) -> bool:
        return now < self.paused_until

    def record_ok(self, now: float) -> None:
        """A response that did not ask to slow down."""
        if self._first is None:
            self._first = now
        self._ok.append(now)
        self._trim(now)

    def record_slow_down(self, now: float, sent_at: float, retry_after: float | None) -> bool:
        """A 429 or Retry-After answer to a request sent at ``sent_at``; True if it cut the rate."""
        if self._first is None:
            self._first = now
        if retry_after is not None and retry_after > 0:
            until = now + min(retry_after, self.config.retry_after_max)
            if until > self.paused_until:
                start = max(now, self.paused_until)
                self._pauses.append((start, until))
                self.paused_until = until
        self._last_slow_down = now
        if sent_at < self._cut_at:
            self.stale += 1
            return False
        basis = self.accepted_rate(now)
        if self.rate is not None:
            basis = min(basis, self.rate)
        self.rate = max(self.config.min_rate, self.config.backoff * basis)
        self.cuts += 1
        self._cut_at = now
        self._probed_at = max(now, self.paused_until)
        return True

    def tick(self, now: float) -> None:
        """Probe upward (call about every second)."""
        self._trim(now)
        if self.rate is None or self.paused(now):
            return
        if now - self._last_slow_down >= self.config.release_after:
            self.rate = None
            return
        if now - self._probed_at < self.config.probe_interval:
            return
        self._probed_at = now
        ceiling = self.config.headroom * self.accepted_rate(now)
        if self.rate < ceiling:
            self.rate = min(ceiling, self.rate * (1 + self.config.probe_step))

    def accepted_rate(self, now: float) -> float:
        """Ok answers per second of unpaused time over the last ``window`` seconds (at least 1 s)."""
        self._trim(now)
        start = now - self.config.window
        if self._first is not None:
            start = max(start, self._first)
        paused = sum(max(0.0, min(end, now) - max(begin, start)) for begin, end in self._pauses)
        active = max(1.0, now - start - paused)
        return len(self._ok) / active

    def _trim(self, now: float) -> None:
        start = now - self.config.window
        while self._ok and self._ok[0] < start:
            self._ok.popleft()
        while self._pauses and self._pauses[0][1] < start:
            self._pauses.popleft()
