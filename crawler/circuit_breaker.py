"""Per-domain circuit breaker: a small state machine with an injected clock.

Pure, no Scrapy or Twisted import. ``clock`` is a ``Callable[[], float]``
(seconds, e.g. ``time.monotonic``) and ``rng`` a ``random.Random`` (cooldown jitter).

States::

    CLOSED --(failure_threshold consecutive failures, or failure ratio over the window)--> OPEN
    OPEN --(cooldown elapsed; lazily, on the next look)--> HALF_OPEN
    HALF_OPEN --(a probe succeeded)--> CLOSED          (cooldown growth resets)
    HALF_OPEN --(a probe failed)--> OPEN               (cooldown * cooldown_multiplier, <= cooldown_max)

After ``max_trips`` trips or ``max_open_seconds`` of total open time the breaker
gives up (:attr:`CircuitBreaker.gave_up`): it stays OPEN for good and the glue
dead-letters the domain's requests (reason ``circuit_open``).

Protocol for the glue: ask :meth:`CircuitBreaker.allow` before sending a request;
when a request that was allowed finishes, report exactly one of
:meth:`~CircuitBreaker.record_success` (the server answered), :meth:`~CircuitBreaker.record_failure`
(a *transient* failure) or :meth:`~CircuitBreaker.release` (an outcome that says nothing
about the domain's health, e.g. a permanent failure or an ignored request), so
half-open probe slots are always freed.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, ItemsView
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class BreakerState(StrEnum):
    """State of a circuit breaker (a ``str``: ``"closed"``, ``"open"``, ``"half_open"``)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


@dataclass(frozen=True)
class BreakerConfig:
    """Circuit breaker settings (times in seconds of the injected clock).

    Trips after ``failure_threshold`` consecutive failures, or when over the last
    ``window`` outcomes (at least ``min_calls`` of them) the failure ratio is
    >= ``failure_ratio``. Stays open ``cooldown`` seconds, multiplied by
    ``cooldown_multiplier`` on each re-trip without a full recovery, capped at
    ``cooldown_max``, then jittered by ±``cooldown_jitter`` (a fraction). Lets
    ``half_open_probes`` requests through while half-open. Gives up after
    ``max_trips`` trips or ``max_open_seconds`` of total open time (0 disables either).
    """

    failure_threshold: int = 5
    failure_ratio: float = 0.5
    window: int = 20
    min_calls: int = 10
    cooldown: float = 5.0
    cooldown_multiplier: float = 1.5
    cooldown_max: float = 30.0
    cooldown_jitter: float = 0.1
    half_open_probes: int = 1
    max_trips: int = 0
    max_open_seconds: float = 300.0

    def __post_init__(self) -> None:
        def require(name: str, ok: bool, expected: str) -> None:
            if not ok:
                raise ValueError(f"circuit breaker: {name} must be {expected}, got {getattr(self, name)!r}")

        require("failure_threshold", _is_int(self.failure_threshold) and self.failure_threshold >= 1, "an int >= 1")
        require("failure_ratio", _is_number(self.failure_ratio) and 0 < self.failure_ratio <= 1, "a number in (0, 1]")
        require("window", _is_int(self.window) and self.window >= 1, "an int >= 1")
        require("min_calls", _is_int(self.min_calls) and 1 <= self.min_calls <= self.window, "an int in [1, window]")
        require("cooldown", _is_number(self.cooldown) and self.cooldown >= 0, "a number >= 0")
        multiplier_ok = _is_number(self.cooldown_multiplier) and self.cooldown_multiplier >= 1
        require("cooldown_multiplier", multiplier_ok, "a number >= 1")
        cap_ok = _is_number(self.cooldown_max) and self.cooldown_max >= self.cooldown
        require("cooldown_max", cap_ok, "a number >= cooldown")
        jitter_ok = _is_number(self.cooldown_jitter) and 0 <= self.cooldown_jitter < 1
        require("cooldown_jitter", jitter_ok, "a number in [0, 1)")
        require("half_open_probes", _is_int(self.half_open_probes) and self.half_open_probes >= 1, "an int >= 1")
        require("max_trips", _is_int(self.max_trips) and self.max_trips >= 0, "an int >= 0 (0: never give up)")
        open_ok = _is_number(self.max_open_seconds) and self.max_open_seconds >= 0
        require("max_open_seconds", open_ok, "a number >= 0 (0: never give up)")


@dataclass(frozen=True)
class Transition:
    """A state change of the breaker for ``key``.

    ``at``: clock time the change took effect (for the lazy OPEN -> HALF_OPEN, the
    moment the cooldown elapsed). ``cooldown``: seconds it stays open (new state OPEN), else None.
    """

    key: str
    old: BreakerState
    new: BreakerState
    reason: str
    at: float
    cooldown: float | None = None


class CircuitBreaker:
    """The circuit breaker of one domain (``key``); see the module docstring."""

    def __init__(
        self,
        key: str,
        config: BreakerConfig,
        clock: Callable[[], float],
        rng: random.Random,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self.key = key
        self.config = config
        self._clock = clock
        self._rng = rng
        self._on_transition = on_transition
        self._state = CLOSED
        self._window: deque[bool] = deque(maxlen=config.window)  # True = failure
        self._consecutive_failures = 0
        self._trips = 0
        self._streak = 0  # trips since the last full recovery
        self._cooldown_base = 0.0  # un-jittered cooldown of the last trip
        self._opened_at = 0.0
        self._open_until = 0.0
        self._past_open_seconds = 0.0  # finished open periods
        self._probes = 0  # probes in flight while half-open
        self._dead = False

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.key!r} {self.state.value} trips={self._trips}>"

    # -- queries -------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """Current state; an OPEN breaker whose cooldown elapsed becomes HALF_OPEN here."""
        self._refresh(self._clock())
        return self._state

    @property
    def gave_up(self) -> bool:
        """True once ``max_trips`` trips or ``max_open_seconds`` open time are reached (final)."""
        self._refresh(self._clock())
        return self._dead

    @property
    def trips(self) -> int:
        """How many times the breaker opened."""
        return self._trips

    @property
    def consecutive_failures(self) -> int:
        """Failures recorded since the last success (reset when the breaker closes)."""
        return self._consecutive_failures

    @property
    def total_open_seconds(self) -> float:
        """Total time spent OPEN, including the current open period."""
        now = self._clock()
        self._refresh(now)
        return self._open_seconds(now)

    def allow(self) -> bool:
        """May a request be sent now? While HALF_OPEN a yes takes one of ``half_open_probes`` slots."""
        self._refresh(self._clock())
        if self._dead or self._state is OPEN:
            return False
        if self._state is CLOSED:
            return True
        if self._probes < self.config.half_open_probes:
            self._probes += 1
            return True
        return False

    def would_allow(self) -> bool:
        """Would :meth:`allow` say yes now?  Only looks: takes no probe slot."""
        self._refresh(self._clock())
        if self._dead or self._state is OPEN:
            return False
        return self._state is CLOSED or self._probes < self.config.half_open_probes

    def retry_at(self) -> float | None:
        """Clock time at which an OPEN breaker lets probes through; None if not open or gave up."""
        self._refresh(self._clock())
        if self._state is OPEN and not self._dead:
            return self._open_until
        return None

    # -- outcomes ------------------------------------------------------------

    def record_success(self) -> None:
        """The server answered. Half-open: closes the breaker; closed: resets the consecutive count."""
        now = self._clock()
        self._refresh(now)
        self._window.append(False)
        self._consecutive_failures = 0
        if self._state is HALF_OPEN and self._probes > 0:
            self._close(now)

    def record_failure(self) -> None:
        """A transient failure. Closed: may trip; half-open: re-opens with a longer cooldown.

        While OPEN (late outcomes of requests sent before it opened) it is only counted.
        """
        now = self._clock()
        self._refresh(now)
        self._window.append(True)
        self._consecutive_failures += 1
        if self._state is CLOSED:
            cfg = self.config
            failures = sum(self._window)
            if self._consecutive_failures >= cfg.failure_threshold:
                self._trip(f"{self._consecutive_failures} consecutive failures", now)
            elif len(self._window) >= cfg.min_calls and failures / len(self._window) >= cfg.failure_ratio:
                self._trip(f"failure ratio {failures / len(self._window):.2f} over {len(self._window)}", now)
        elif self._state is HALF_OPEN and self._probes > 0:
            self._trip("probe failed", now)

    def release(self) -> None:
        """An allowed request ended without a health verdict: free its half-open probe slot."""
        self._refresh(self._clock())
        if self._state is HALF_OPEN and self._probes > 0:
            self._probes -= 1

    # -- internals -----------------------------------------------------------

    def _open_seconds(self, now: float) -> float:
        if self._state is not OPEN:
            return self._past_open_seconds
        end = now if self._dead else min(now, self._open_until)
        return self._past_open_seconds + max(0.0, end - self._opened_at)

    def _refresh(self, now: float) -> None:
        """Apply what the passing of time decides: giving up, or the end of the cooldown."""
        if self._state is not OPEN or self._dead:
            return
        limit = self.config.max_open_seconds
        if limit and self._open_seconds(now) >= limit:
            self._dead = True
        elif now >= self._open_until:
            self._past_open_seconds += self._open_until - self._opened_at
            self._state = HALF_OPEN
            self._probes = 0
            self._emit(OPEN, HALF_OPEN, "cooldown elapsed", self._open_until)

    def _trip(self, reason: str, now: float) -> None:
        cfg = self.config
        old = self._state
        self._trips += 1
        self._streak += 1
        if self._streak == 1:
            self._cooldown_base = cfg.cooldown
        else:
            self._cooldown_base = min(self._cooldown_base * cfg.cooldown_multiplier, cfg.cooldown_max)
        cooldown = self._cooldown_base
        if cfg.cooldown_jitter:
            cooldown *= 1 + self._rng.uniform(-cfg.cooldown_jitter, cfg.cooldown_jitter)
        self._state = OPEN
        self._opened_at = now
        self._open_until = now + cooldown
        self._probes = 0
        if cfg.max_trips and self._trips >= cfg.max_trips:
            self._dead = True
        self._emit(old, OPEN, reason, now, cooldown)

    def _close(self, now: float) -> None:
        self._state = CLOSED
        self._window.clear()
        self._consecutive_failures = 0
        self._streak = 0
        self._probes = 0
        self._emit(HALF_OPEN, CLOSED, "probe succeeded", now)

    def _emit(
        self, old: BreakerState, new: BreakerState, reason: str, at: float, cooldown: float | None = None
    ) -> None:
        if self._on_transition is not None:
            self._on_transition(Transition(self.key, old, new, reason, at, cooldown))


class BreakerRegistry:
    """One :class:`CircuitBreaker` per key (domain), created on first use, sharing config, clock and rng."""

    def __init__(
        self,
        config: BreakerConfig,
        clock: Callable[[], float],
        rng: random.Random,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._rng = rng
        self._on_transition = on_transition
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, key: str) -> CircuitBreaker:
        """The breaker for ``key``, created CLOSED on first use."""
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(key, self.config, self._clock, self._rng, self._on_transition)
            self._breakers[key] = breaker
        return breaker

    def items(self) -> ItemsView[str, CircuitBreaker]:
        """(key, breaker) pairs of the breakers created so far."""
        return self._breakers.items()

    def __len__(self) -> int:
        return len(self._breakers)

    def __contains__(self, key: object) -> bool:
        return key in self._breakers

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """``{key: {"state", "trips", "total_open_seconds", "gave_up"}}``, JSON-ready, for stats."""
        return {
            key: {
                "state": breaker.state.value,
                "trips": breaker.trips,
                "total_open_seconds": breaker.total_open_seconds,
                "gave_up": breaker.gave_up,
            }
            for key, breaker in self._breakers.items()
        }
