"""A scheduler that can hold requests until a time: backoff and parking without a slot.

A downloader middleware that sleeps holds a global concurrency slot
(``Downloader.fetch`` counts the request as active before the middlewares
run).  Instead, the retry and circuit-breaker middlewares return a copy of
the request with ``meta["not_before"]`` (a UNIX time); this scheduler keeps
such requests in a time-ordered heap, outside Scrapy's queues, and hands
them back when they are due.  While they wait they occupy no downloader
slot, other requests keep flowing, and the spider stays open
(:meth:`has_pending_requests` counts them).

When the earliest waiting request comes due, a reactor timer gives it back
through the public ``crawler.engine.crawl()``, which also wakes the engine
(otherwise it would only poll on its 5-second heartbeat).  With ``JOBDIR``
the waiting requests are written to the disk queue at close, keeping their
``not_before``, and wait again after a resume.

Enable with ``SCHEDULER = "crawler.scheduler.DelayedScheduler"`` (the
project default).  Everything else is Scrapy's own :class:`Scheduler`.
"""

from __future__ import annotations

import heapq
import itertools
import time
from typing import Any

from scrapy import Request, Spider
from scrapy.core.scheduler import Scheduler
from twisted.internet.defer import Deferred

#: ``request.meta`` key: UNIX time before which the request must not be downloaded.
NOT_BEFORE = "not_before"


class DelayedScheduler(Scheduler):
    """Scrapy's scheduler plus a heap of requests that must wait until ``meta["not_before"]``."""

    clock = staticmethod(time.time)

    def open(self, spider: Spider) -> Deferred[None] | None:
        self._waiting: list[tuple[float, int, Request]] = []
        self._order = itertools.count()
        self._timer: Any = None
        self._timer_due: float | None = None
        return super().open(spider)

    def close(self, reason: str) -> Deferred[None] | None:
        self._cancel_timer()
        if self.dqs is not None:
            # JOBDIR: waiting requests go to the disk queue with their not_before
            for _, _, request in self._waiting:
                if not self._dqpush(request):
                    self.stats.inc_value("scheduler/delayed/lost_at_close")
            self._waiting.clear()
        return super().close(reason)

    def enqueue_request(self, request: Request) -> bool:
        due = request.meta.get(NOT_BEFORE)
        if due is None:
            return super().enqueue_request(request)
        # A delayed request is a copy of one the dupefilter has seen (a retry,
        # a parked request): it is never filtered.
        if due > self.clock():
            self._wait(request, due)
        else:
            self._push(request)
        return True

    def next_request(self) -> Request | None:
        while True:
            request = super().next_request()
            if request is None:
                return None
            due = request.meta.get(NOT_BEFORE)
            if due is None or due <= self.clock():
                return request
            self._wait(request, due)  # back from a JOBDIR disk queue, not due yet

    def has_pending_requests(self) -> bool:
        return bool(self._waiting) or super().has_pending_requests()

    def __len__(self) -> int:
        return super().__len__() + len(self._waiting)

    @property
    def waiting(self) -> int:
        """Requests waiting for their ``not_before`` time."""
        return len(self._waiting)

    def next_due(self) -> float | None:
        """UNIX time the earliest waiting request comes due, if any."""
        return self._waiting[0][0] if self._waiting else None

    # -- internals -------------------------------------------------------------
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
        """Make sure a timer fires when the earliest waiting request is due."""
        if not self._waiting:
            self._cancel_timer()
            return
        due = self._waiting[0][0]
        if self._timer is not None and self._timer.active() and self._timer_due is not None and self._timer_due <= due:
            return
        self._cancel_timer()
        from twisted.internet import reactor

        self._timer_due = due
        self._timer = reactor.callLater(max(0.0, due - self.clock()), self._release)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._timer_due = None

    def _release(self) -> None:
        """Hand every due request back to the engine, then re-arm for the next one."""
        self._timer = None
        self._timer_due = None
        now = self.clock()
        engine = self.crawler.engine if self.crawler is not None else None
        while self._waiting and self._waiting[0][0] <= now:
            _, _, request = heapq.heappop(self._waiting)
            if engine is not None and engine.spider is not None:
                engine.crawl(request)  # back through enqueue_request (due: pushed), wakes the engine
            else:
                self._push(request)
        self._arm()
