"""The one place requests wait: backoff, paused domains, open breakers, backpressure.

A downloader middleware that sleeps holds a global concurrency slot
(``Downloader.fetch`` counts the request as active before the middlewares
run), and one that sends a request back to the scheduler to wait sends it
through the whole middleware chain again, in a loop, and can park a request
another middleware already let through (a circuit breaker's half-open probe,
which then never reports, and the domain waits for ever).  So every reason
to wait is decided here, when the scheduler hands requests out:
:class:`GatedScheduler` gives the engine only requests that may go now.

Two ways to wait:

* **A request's own time**: ``meta["not_before"]`` (a UNIX time), set by the
  retry middleware for the backoff.  Such requests wait in a time-ordered
  heap; a reactor timer gives them back through the public
  ``crawler.engine.crawl()`` when they are due, which also wakes the engine.
* **Gates**: components register a :class:`Gate` with :meth:`GatedScheduler.add_gate`
  (in their ``spider_opened`` handler, through the public
  ``crawler.engine.scheduler``).  Before a request is handed out, each gate,
  in ``order``, may answer a :class:`Hold`: the request then waits in that
  hold's *line* (one FIFO per ``Hold.key``, e.g. ``"pause:example.com"``)
  until ``Hold.until`` (a UNIX time), or, with ``until=None``, until the gate
  lets the line's first request through.  Lines are served before the
  queue, first request first, each time through the gates again (a line
  may hold for a new reason).  A gate only looks in :meth:`Gate.hold`; what
  it must reserve when a request goes (a half-open breaker's probe) it
  reserves in :meth:`Gate.admitted`, called once every gate let the request
  go, so a reserved probe is never held back by another gate.

Gates in the project: list-stage backpressure (``extensions/backpressure.py``,
order 100), a domain paused by ``Retry-After`` (the adaptive controller, 200),
the circuit breaker (300).

Every request the scheduler holds counts in :meth:`has_pending_requests`,
so the spider stays open.  With ``JOBDIR`` the waiting requests (heap and
lines) go to the disk queue at close, the heap's with their
``not_before``, and wait again after a resume; a ``JOBDIR`` a killed run
left is discarded at start (:mod:`crawler.jobdir`).  :meth:`GatedScheduler.pending_requests`
says what it holds, also after close (what a stopped crawl left).  Stats:
``scheduler/delayed`` (requests put in the heap), ``scheduler/held/<gate
key prefix>`` (requests a gate held), ``scheduler/left_at_close``.

Enable with ``SCHEDULER = "crawler.scheduler.GatedScheduler"`` (the
project default).  Everything else is Scrapy's own :class:`Scheduler`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol

from scrapy import Request, Spider
from scrapy.core.scheduler import Scheduler
from scrapy.utils.job import job_dir
from twisted.internet.defer import Deferred

from crawler.jobdir import discard_if_killed, mark_running, mark_stopped

logger = logging.getLogger(__name__)

#: ``request.meta`` key: UNIX time before which the request must not be downloaded.
NOT_BEFORE = "not_before"
#: ``request.meta`` key of a request a line let go, on its way back through ``engine.crawl()``.
RELEASED = "_scheduler_released"
#: Seconds between checks of lines held without a time, while the engine may be idle.
RECHECK_INTERVAL = 0.5


class Hold(NamedTuple):
    """A gate's answer: the request waits in line ``key`` until ``until`` (UNIX time), or,
    with ``until=None``, until the gate lets the line's first request through."""

    key: str
    until: float | None = None


class Gate(Protocol):
    """Decides whether a request may be handed out now.

    :meth:`hold` only looks (the scheduler may ask again about the same
    request); :meth:`admitted` is called once, when every gate let the request
    go and it is handed to the engine: the place to reserve something (a
    half-open breaker's probe), since nothing can hold the request back after it.
    """

    def hold(self, request: Request, now: float) -> Hold | None:
        """None: the request may go (as far as this gate cares); else where and until when it waits."""
        ...

    def admitted(self, request: Request) -> None:
        """``request`` is handed out now."""
        ...


class _Line:
    __slots__ = ("requests", "until")

    def __init__(self) -> None:
        self.requests: deque[Request] = deque()
        self.until: float | None = None


class GatedScheduler(Scheduler):
    """Scrapy's scheduler, plus a heap of requests waiting for ``meta["not_before"]`` and
    gates that hold requests in lines; see the module docstring."""

    clock = staticmethod(time.time)

    @classmethod
    def from_crawler(cls, crawler: Any) -> Any:
        jobdir = job_dir(crawler.settings)
        if jobdir and discard_if_killed(jobdir):  # before Scrapy reads the queue and the seen-set
            logger.warning(
                "JOBDIR %s: the last run with it was killed (its queue and seen-set are inconsistent):"
                " both discarded; the crawl frontier resumes the run",
                jobdir,
            )
            crawler.stats.set_value("scheduler/jobdir_discarded", 1)
        return super().from_crawler(crawler)

    def open(self, spider: Spider) -> Deferred[None] | None:
        self._waiting: list[tuple[float, int, Request]] = []
        self._order = itertools.count()
        self._timer: Any = None
        self._timer_due: float | None = None
        self._gates: list[tuple[int, int, Gate]] = []
        self._lines: dict[str, _Line] = {}
        self._recheck: Any = None
        self._left: list[Request] | None = None
        self._jobdir = job_dir(self.crawler.settings) if self.crawler is not None else None
        if self._jobdir:
            mark_running(self._jobdir)
        return super().open(spider)

    def close(self, reason: str) -> Deferred[None] | None:
        self._cancel_timer()
        if self._recheck is not None and self._recheck.active():
            self._recheck.cancel()
        left = list(self._all_waiting())
        while (request := self.mqs.pop()) is not None:
            left.append(request)  # the memory queue: not kept after close
        if self.dqs is not None:
            # JOBDIR: waiting requests go to the disk queue (the heap's keep their not_before)
            for request in left:
                request.meta.pop(RELEASED, None)
                if not self._dqpush(request):
                    self.stats.inc_value("scheduler/delayed/lost_at_close")
            left = _read_back(self.dqs)  # what the disk queue holds for the next run
        self._waiting.clear()
        self._lines.clear()
        self._left = left
        self.stats.set_value("scheduler/left_at_close", len(left))
        closed = super().close(reason)  # writes the JOBDIR queue's index
        if self._jobdir:
            mark_stopped(self._jobdir)
        return closed

    # -- public API -------------------------------------------------------------------
    def add_gate(self, gate: Gate, order: int) -> None:
        """Consult ``gate`` before handing out a request; lower ``order`` first."""
        self._gates.append((order, next(self._order), gate))
        self._gates.sort(key=lambda entry: entry[:2])

    @property
    def waiting(self) -> int:
        """Requests waiting: for their ``not_before`` time, or in a gate's line."""
        return len(self._waiting) + sum(len(line.requests) for line in self._lines.values())

    def pending_requests(self) -> list[Request]:
        """Every request the scheduler holds: queued, waiting for its time or in a gate's line.

        After :meth:`close`, the requests it held when it closed (with ``JOBDIR``: those on
        disk for the next run), so the ledger can say what a stopped crawl left pending.
        Before close it reads Scrapy's queues by popping and pushing back: for a look, not
        for a hot path.
        """
        if self._left is not None:
            return list(self._left)
        return [*self._all_waiting(), *self._queued()]

    def next_due(self) -> float | None:
        """UNIX time the earliest waiting request comes due, if any."""
        dues = [self._waiting[0][0]] if self._waiting else []
        dues += [line.until for line in self._lines.values() if line.requests and line.until is not None]
        return min(dues) if dues else None

    # -- Scrapy's scheduler interface ------------------------------------------------------
    def enqueue_request(self, request: Request) -> bool:
        if request.meta.pop(RELEASED, False):
            self._push(request)  # back from a line or the heap: already counted and filtered
            return True
        due = request.meta.get(NOT_BEFORE)
        if due is None:
            return super().enqueue_request(request)
        # A delayed request is a copy of one the dupefilter has seen (a retry): never filtered.
        if due > self.clock():
            self._wait(request, due)
        else:
            self._push(request)
        return True

    def next_request(self) -> Request | None:
        now = self.clock()
        for key in list(self._lines):
            line = self._lines[key]
            while line.requests and (line.until is None or line.until <= now):
                request = line.requests.popleft()
                if self._admit(request, now, current=key):
                    self._drop_if_empty(key)
                    return request
                if line.requests and line.requests[0] is request:
                    break  # the same gate holds this line again
            self._drop_if_empty(key)
        while True:
            request = super().next_request()
            if request is None:
                return None
            due = request.meta.get(NOT_BEFORE)
            if due is not None and due > now:
                self._wait(request, due)  # back from a JOBDIR disk queue, not due yet
                continue
            if self._admit(request, now):
                return request

    def has_pending_requests(self) -> bool:
        return bool(self._waiting) or any(line.requests for line in self._lines.values()) or (
            super().has_pending_requests()
        )

    def __len__(self) -> int:
        return super().__len__() + self.waiting

    # -- internals -------------------------------------------------------------------------
    def _queued(self) -> list[Request]:
        """The requests in Scrapy's queues (memory, then disk)."""
        return [request for queue in (self.mqs, self.dqs) if queue is not None for request in _read_back(queue)]

    def _all_waiting(self) -> Iterator[Request]:
        for _, _, request in self._waiting:
            yield request
        for line in self._lines.values():
            yield from line.requests

    def _holding(self, request: Request, now: float) -> Hold | None:
        """The first gate's hold on ``request``, or None if every gate lets it go."""
        for _, _, gate in self._gates:
            hold = gate.hold(request, now)
            if hold is not None:
                return hold
        return None

    def _admit(self, request: Request, now: float, current: str | None = None) -> bool:
        """True if every gate lets ``request`` go; else it joins the line of the gate holding it."""
        hold = self._holding(request, now)
        if hold is not None:
            line = self._lines.get(hold.key)
            if line is None:
                line = self._lines[hold.key] = _Line()
            line.until = hold.until
            if hold.key == current:
                line.requests.appendleft(request)  # keeps its place at the head
            else:
                line.requests.append(request)
                self.stats.inc_value(f"scheduler/held/{hold.key.split(':', 1)[0]}")
            self._arm_lines(hold.until)
            return False
        for _, _, gate in self._gates:
            gate.admitted(request)
        return True

    def _drop_if_empty(self, key: str) -> None:
        line = self._lines.get(key)
        if line is not None and not line.requests:
            del self._lines[key]

    def _push(self, request: Request) -> None:
        if self._dqpush(request):
            self.stats.inc_value("scheduler/enqueued/disk")
        else:
            self._mqpush(request)
            self.stats.inc_value("scheduler/enqueued/memory")
        self.stats.inc_value("scheduler/enqueued")

    def _wait(self, request: Request, due: float) -> None:
        heapq.heappush(self._waiting, (due, next(self._order), request))
        self.stats.inc_value("scheduler/delayed")
        self._arm()

    def _arm(self) -> None:
        """Make sure a timer fires when the earliest waiting request or timed line is due."""
        due = self.next_due()
        if due is None:
            self._cancel_timer()
            return
        if self._timer is not None and self._timer.active() and self._timer_due is not None and self._timer_due <= due:
            return
        self._cancel_timer()
        from twisted.internet import reactor

        self._timer_due = due
        self._timer = reactor.callLater(max(0.0, due - self.clock()), self._release)

    def _arm_lines(self, until: float | None) -> None:
        if until is not None:
            self._arm()
            return
        if self._recheck is None or not self._recheck.active():
            from twisted.internet import reactor

            self._recheck = reactor.callLater(RECHECK_INTERVAL, self._recheck_lines)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._timer_due = None

    def _wake(self, request: Request) -> None:
        """Hand ``request`` back through ``engine.crawl()``, which wakes the engine."""
        engine = self.crawler.engine if self.crawler is not None else None
        if engine is not None and engine.spider is not None:
            request.meta[RELEASED] = True
            engine.crawl(request)
        else:
            self._push(request)

    def _release(self) -> None:
        """Hand every due request back to the engine, wake it for due lines, re-arm."""
        self._timer = None
        self._timer_due = None
        now = self.clock()
        while self._waiting and self._waiting[0][0] <= now:
            _, _, request = heapq.heappop(self._waiting)
            self._wake(request)
        for key, line in list(self._lines.items()):
            if line.requests and line.until is not None and line.until <= now:
                # the line is served before the queue; waking the engine with its head suffices
                self._wake(line.requests.popleft())
                self._drop_if_empty(key)
        self._arm()

    def _recheck_lines(self) -> None:
        """Lines held without a time: wake the engine when the gates would let a head through."""
        self._recheck = None
        now = self.clock()
        for key, line in list(self._lines.items()):
            if line.requests and line.until is None and self._holding(line.requests[0], now) is None:
                self._wake(line.requests.popleft())
                self._drop_if_empty(key)
        if any(line.requests and line.until is None for line in self._lines.values()):
            self._arm_lines(None)


def _read_back(queue: Any) -> list[Request]:
    """Every request in one of Scrapy's queues, in order, popped and pushed back."""
    taken: list[Request] = []
    while (request := queue.pop()) is not None:
        taken.append(request)
    for request in taken:
        queue.push(request)
    return taken


def require_gated_scheduler(settings: Any, component: str) -> None:
    """A one-line ConfigError unless ``SCHEDULER`` is a :class:`GatedScheduler` (``component`` needs its gates)."""
    from scrapy.utils.misc import load_object

    from crawler.errors import ConfigError

    scheduler = settings.get("SCHEDULER")
    try:
        cls = load_object(scheduler) if isinstance(scheduler, str) else scheduler
    except (ImportError, NameError, ValueError, AttributeError):
        return  # Scrapy reports a SCHEDULER it cannot load itself
    if not (isinstance(cls, type) and issubclass(cls, GatedScheduler)):
        raise ConfigError(
            f"{component} needs SCHEDULER = 'crawler.scheduler.GatedScheduler' (or a subclass), got {scheduler!r}"
        )
