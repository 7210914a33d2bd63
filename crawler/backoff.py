"""Retry policy as an immutable value, and Retry-After parsing.

Pure, no Scrapy or Twisted import; randomness is injected (``random.Random``)
and times are explicit arguments, so delays and budgets are reproducible in
tests. Modelled on ``urllib3.util.retry.Retry``: a policy is a frozen value,
per-request overrides make a new one (:meth:`RetryPolicy.with_`).
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
#: The budget that ran out (:meth:`RetryPolicy.exhausted`): the number of retries ...
BUDGET_COUNT = "count"
#: ... or the time since the first failed attempt.
BUDGET_TIME = "time"

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
    """How long to keep retrying, and how long to wait before each retry.

    Two budgets, each optional, and a retry needs both: ``max_retries``
    (retries after the first attempt; None: no count limit) and
    ``max_elapsed`` (seconds since the first failed attempt; None: no time
    limit).  At least one must be set; when both are, whichever runs out
    first ends the retries (:meth:`exhausted`).

    ``backoff``: ``fixed`` (base), ``linear`` (base*attempt) or ``exponential``
    (base*2**(attempt-1)), capped at ``cap`` seconds, then ``jitter``: ``full``
    (uniform(0, d)), ``equal`` (d/2 + uniform(0, d/2)) or ``none``. A server's
    Retry-After is honoured up to ``retry_after_max`` seconds.
    """

    max_retries: int | None = 5
    backoff: str = "exponential"
    base: float = 1.0
    cap: float = 60.0
    jitter: str = "full"
    retry_after_max: float = 300.0
    max_elapsed: float | None = None

    def __post_init__(self) -> None:
        retries = self.max_retries
        if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or retries < 0):
            raise ValueError(f"retry policy: max_retries must be an int >= 0 or None, got {retries!r}")
        if self.backoff not in BACKOFFS:
            raise ValueError(f"retry policy: backoff must be one of {', '.join(BACKOFFS)}, got {self.backoff!r}")
        if self.jitter not in JITTERS:
            raise ValueError(f"retry policy: jitter must be one of {', '.join(JITTERS)}, got {self.jitter!r}")
        for name in ("base", "cap", "retry_after_max"):
            _require_number(name, getattr(self, name))
        elapsed = self.max_elapsed
        if elapsed is not None:
            _require_number("max_elapsed", elapsed)
            if elapsed == 0 or elapsed == float("inf"):
                raise ValueError(f"retry policy: max_elapsed must be > 0 and finite, or None, got {elapsed!r}")
        if retries is None and elapsed is None:
            raise ValueError("retry policy: max_retries and max_elapsed are both None (retries without end)")

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

    def delay(
        self, attempt: int, rng: random.Random, retry_after: float | None = None, *, remaining: float | None = None
    ) -> float:
        """The delay before retry ``attempt``.

        The backoff delay, shortened to ``remaining`` (seconds left of the
        time budget, :meth:`remaining`) so the retry is sent before the
        budget runs out; then at least ``min(retry_after, retry_after_max)``
        when the server sent a Retry-After (politeness wins over the budget:
        such a retry may come after it, and if it fails it is the last).
        """
        delay = self.backoff_delay(attempt, rng)
        if remaining is not None:
            delay = min(delay, max(0.0, remaining))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_max))
        return delay

    def exhausted(self, retries_done: int, elapsed: float = 0.0) -> str | None:
        """The budget that has run out after ``retries_done`` retries, ``elapsed`` seconds after the first failure.

        :data:`BUDGET_COUNT`, :data:`BUDGET_TIME` (the count is checked
        first), or None while another retry is allowed.  A failure exactly at
        ``max_elapsed`` is past the budget.
        """
        if self.max_retries is not None and retries_done >= self.max_retries:
            return BUDGET_COUNT
        if self.max_elapsed is not None and elapsed >= self.max_elapsed:
            return BUDGET_TIME
        return None

    def can_retry(self, retries_done: int, elapsed: float = 0.0) -> bool:
        """True if another retry is allowed after ``retries_done`` retries, ``elapsed`` s after the first failure."""
        return self.exhausted(retries_done, elapsed) is None

    def remaining(self, elapsed: float) -> float | None:
        """Seconds left of the time budget ``elapsed`` seconds after the first failure (>= 0), None without one."""
        if self.max_elapsed is None:
            return None
        return max(0.0, self.max_elapsed - elapsed)

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
