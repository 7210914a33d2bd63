"""Retry policy as an immutable value, and Retry-After parsing.

Pure, no Scrapy or Twisted import; randomness is injected (``random.Random``)
so delays are reproducible in tests. Modelled on ``urllib3.util.retry.Retry``:
a policy is a frozen value, per-request overrides make a new one (:meth:`RetryPolicy.with_`).
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

BACKOFFS = ("fixed", "linear", "exponential")
JITTERS = ("full", "equal", "none")

_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_retry_after(value: str | bytes | None, now: float) -> float | None:
    """Seconds to wait from ``now`` (unix time) per a Retry-After header value.

    Accepts delta-seconds (``"120"``, ``"1.5"``) or an HTTP-date; a date in the
    past gives 0.0. None, empty, negative or unparsable values give None.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = value.strip()
    if not value:
        return None
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # Python < 3.10 returned None for garbage
        return None
    if when.tzinfo is None:  # "-0000": UTC with no source zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _require_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"retry policy: {name} must be a number >= 0, got {value!r}")


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry, and how long to wait before each retry.

    ``backoff``: ``fixed`` (base), ``linear`` (base*attempt) or ``exponential``
    (base*2**(attempt-1)), capped at ``cap`` seconds, then ``jitter``: ``full``
    (uniform(0, d)), ``equal`` (d/2 + uniform(0, d/2)) or ``none``. A server's
    Retry-After is honoured up to ``retry_after_max`` seconds.
    """

    max_retries: int = 5
    backoff: str = "exponential"
    base: float = 1.0
    cap: float = 60.0
    jitter: str = "full"
    retry_after_max: float = 300.0

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"retry policy: max_retries must be an int >= 0, got {self.max_retries!r}")
        if self.backoff not in BACKOFFS:
            raise ValueError(f"retry policy: backoff must be one of {', '.join(BACKOFFS)}, got {self.backoff!r}")
        if self.jitter not in JITTERS:
            raise ValueError(f"retry policy: jitter must be one of {', '.join(JITTERS)}, got {self.jitter!r}")
        for name in ("base", "cap", "retry_after_max"):
            _require_number(name, getattr(self, name))

    def backoff_delay(self, attempt: int, rng: random.Random) -> float:
        """Delay before retry number ``attempt`` (1 = the first retry), capped, then jittered."""
        if attempt < 1:
            raise ValueError(f"retry policy: attempt must be >= 1, got {attempt!r}")
        if self.backoff == "fixed":
            raw = self.base
        elif self.backoff == "linear":
            raw = self.base * attempt
        else:  # exponential; the exponent is bounded so huge attempts cannot overflow
            raw = self.base * 2.0 ** min(attempt - 1, 1000)
        raw = min(raw, self.cap)
        if self.jitter == "full":
            return rng.uniform(0.0, raw)
        if self.jitter == "equal":
            return raw / 2 + rng.uniform(0.0, raw / 2)
        return raw

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """The backoff delay, but at least ``min(retry_after, retry_after_max)`` when the server sent one."""
        delay = self.backoff_delay(attempt, rng)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_max))
        return delay

    def can_retry(self, retries_done: int) -> bool:
        """True if another retry is allowed after ``retries_done`` retries."""
        return retries_done < self.max_retries

    def with_(self, **changes: Any) -> RetryPolicy:
        """A copy with some fields changed (validated), e.g. ``policy.with_(max_retries=1)``."""
        return dataclasses.replace(self, **changes)


_FIELDS = tuple(f.name for f in dataclasses.fields(RetryPolicy))


def policy_from_mapping(d: Mapping[str, Any], default: RetryPolicy) -> RetryPolicy:
    """``default`` with the fields named in ``d`` replaced; an unknown key is a ValueError.

    For settings like ``RETRY_POLICIES = {"list": {"max_retries": 8}, "detail": {...}}``.
    """
    for key in d:
        if key not in _FIELDS:
            raise ValueError(f"retry policy: unknown key {key!r} (known: {', '.join(_FIELDS)})")
    return default.with_(**d)
