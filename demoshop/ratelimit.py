"""Per-client rate limit of the demo shop: a token bucket per remote address, 429 with an honest Retry-After.

Each client (the request's remote address) has a bucket of ``burst`` tokens,
full at its first request and refilled at ``rate`` tokens per second up to
``burst``.  A request takes one token; a request that finds less than one is
answered at once with 429 Too Many Requests, tagged ``"rate_limited"``, and
takes nothing: a refused request does not push the client's next token further
away (as nginx ``limit_req`` rejects without charging).  Its ``Retry-After`` is
the time until the client's bucket holds a token again: whole seconds rounded
up (at least 1), or an HTTP date (RFC 7231 IMF-fixdate) no earlier than that
moment.  ``/robots.txt`` is neither limited nor charged.

:class:`TokenBucket` and :class:`RateLimiter`'s decisions are pure (injected
clocks); only :meth:`RateLimiter.intercept` touches a request.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING

from demoshop.faults import NEVER_FAULTED, answer, path_of

if TYPE_CHECKING:
    from twisted.web.server import Request

RETRY_AFTER_FORMATS = ("seconds", "date")
FAULT = "rate_limited"
#: Tokens short of one that still count as one: a client pacing itself exactly at the rate is not refused
#: for a float rounding error (100.05 - 100.0 is a hair under 0.05).
_EPSILON = 1e-9


class TokenBucket:
    """``burst`` tokens, refilled continuously at ``rate`` per second; full when created."""

    __slots__ = ("rate", "burst", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if not rate > 0 or not burst >= 1 or math.isinf(rate) or math.isinf(burst):
            raise ValueError(f"need rate > 0 and burst >= 1 (finite), got rate={rate!r}, burst={burst!r}")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def take(self, now: float) -> float:
        """Take a token at ``now``: 0.0 when one was taken, else the seconds until one is there (nothing taken)."""
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        if self.tokens >= 1.0 - _EPSILON:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def retry_after_seconds(wait: float) -> str:
    """``wait`` seconds as a ``Retry-After`` delta: rounded up, at least 1."""
    return str(max(1, math.ceil(wait)))


def retry_after_date(wait: float, now: float) -> str:
    """An IMF-fixdate no earlier than ``now + wait`` (wall-clock seconds; dates have 1 s resolution)."""
    return formatdate(math.ceil(now + wait), usegmt=True)


class RateLimiter:
    """The interceptor: one :class:`TokenBucket` per client address.

    ``clock`` (monotonic seconds) drives the buckets, ``wall_clock`` (epoch
    seconds) the HTTP dates.  ``burst`` None means ``max(1, rate)`` (one second's worth).
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        retry_after_format: str = "seconds",
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if retry_after_format not in RETRY_AFTER_FORMATS:
            raise ValueError(f"retry_after_format must be one of {', '.join(RETRY_AFTER_FORMATS)}")
        self.rate = rate
        self.burst = max(1.0, rate) if burst is None else burst
        TokenBucket(self.rate, self.burst, 0.0)  # validates rate and burst now, not at the first request
        self.retry_after_format = retry_after_format
        self.clock = clock
        self.wall_clock = wall_clock
        self.buckets: dict[str, TokenBucket] = {}

    def wait(self, client: str) -> float:
        """Admit a request of ``client`` (0.0, a token taken) or refuse it: the seconds until it may retry."""
        now = self.clock()
        bucket = self.buckets.get(client)
        if bucket is None:
            bucket = self.buckets[client] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)

    def retry_after(self, wait: float) -> str:
        """The ``Retry-After`` value of a refusal whose client may retry in ``wait`` seconds."""
        if self.retry_after_format == "date":
            return retry_after_date(wait, self.wall_clock())
        return retry_after_seconds(wait)

    def intercept(self, request: Request, target: str) -> bool:
        if path_of(target) == NEVER_FAULTED:
            return False
        address = request.getClientAddress()
        wait = self.wait(getattr(address, "host", None) or str(address))
        if wait <= 0.0:
            return False
        answer(request, 429, FAULT, [(b"retry-after", self.retry_after(wait).encode())])
        return True
