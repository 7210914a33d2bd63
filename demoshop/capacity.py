"""Capacity model of the demo shop: a server with C workers, a FIFO queue of Q and a service time L.

At most ``capacity`` requests are served at once and each takes ``latency``
seconds (the response is delayed with ``reactor.callLater``; nothing blocks).  Up
to ``queue`` more wait, first in first out; their latency grows by the wait
(logged as ``"queued"``).  A request arriving when ``capacity + queue`` are in the
system gets the overload status at once (429 with ``Retry-After: 1``, or 503),
tagged ``"overload"``.  A request leaves the system when its response is finished
or its connection is lost.  ``capacity`` 0 means unlimited workers: every
response is just delayed by ``latency``.  ``/robots.txt`` bypasses the model.

With C workers and service time L the throughput ceiling is C / L requests/s
(C=6, L=0.05: 120/s), which is what an adaptive concurrency controller should find.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from demoshop.faults import NEVER_FAULTED, answer, path_of

if TYPE_CHECKING:
    from twisted.web.server import Request

_WAITING, _SERVING, _LEFT = "waiting", "serving", "left"


class _Visit:
    """One request in the system."""

    __slots__ = ("request", "target", "arrived", "state", "timer")

    def __init__(self, request: Request, target: str, arrived: float) -> None:
        self.request = request
        self.target = target
        self.arrived = arrived
        self.state = _WAITING
        self.timer: Any = None


class CapacityModel:
    """The interceptor; :meth:`bind` gives it the rest of the chain to run after the service time."""

    def __init__(self, capacity: int, queue: int, latency: float, overload_status: int, reactor: Any) -> None:
        if capacity < 0 or queue < 0 or latency < 0:
            raise ValueError("capacity, queue and latency must be >= 0")
        self.capacity = capacity
        self.queue = queue
        self.latency = latency
        self.overload_status = overload_status
        self.reactor = reactor
        self.serving = 0
        self.waiting: deque[_Visit] = deque()
        self._proceed: Callable[[Request, str], None] | None = None

    def bind(self, proceed: Callable[[Request, str], None]) -> None:
        self._proceed = proceed

    @property
    def in_system(self) -> int:
        return self.serving + len(self.waiting)

    def intercept(self, request: Request, target: str) -> bool:
        if path_of(target) == NEVER_FAULTED:
            return False
        visit = _Visit(request, target, self.reactor.seconds())
        if self.capacity == 0 or self.serving < self.capacity:
            self._serve(visit)
        elif len(self.waiting) < self.queue:
            self.waiting.append(visit)
        else:
            headers = [(b"retry-after", b"1")] if self.overload_status == 429 else []
            answer(request, self.overload_status, "overload", headers)
            return True
        request.notifyFinish().addBoth(self._left, visit)
        return True

    def _serve(self, visit: _Visit, queued: bool = False) -> None:
        visit.state = _SERVING
        self.serving += 1
        if queued:
            visit.request.shop_queued = max(0.0, self.reactor.seconds() - visit.arrived)
        visit.timer = self.reactor.callLater(self.latency, self._served, visit)

    def _served(self, visit: _Visit) -> None:
        visit.timer = None
        if visit.state != _SERVING:
            return
        assert self._proceed is not None, "CapacityModel used outside a ShopResource"
        try:
            self._proceed(visit.request, visit.target)
        except Exception:  # never leave a request (and its worker) hanging
            request = visit.request
            if not request.finished and not request._disconnected:
                if not request.startedWriting:
                    answer(request, 500, "error")
                else:
                    request.transport.abortConnection()
            raise

    def _left(self, _: Any, visit: _Visit) -> None:
        """The response is finished or the connection lost: free the worker or the queue place."""
        state, visit.state = visit.state, _LEFT
        if state == _WAITING:
            self.waiting.remove(visit)
        elif state == _SERVING:
            if visit.timer is not None and visit.timer.active():
                visit.timer.cancel()
            visit.timer = None
            self.serving -= 1
            while self.waiting and (self.capacity == 0 or self.serving < self.capacity):
                self._serve(self.waiting.popleft(), queued=True)
