"""One worker thread for blocking database writes, off the reactor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool


class WriterThread:
    """A Twisted thread pool of exactly one thread: one writer at a time, in order.

    Started lazily by the first :meth:`run`.  A reactor shutdown that comes
    before :meth:`stop` (e.g. a forced stop) still runs the queued writes,
    then joins the thread.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool: ThreadPool | None = None
        self._shutdown_trigger: Any = None

    def start(self) -> None:
        if self._pool is not None:
            return
        from twisted.internet import reactor  # the reactor Scrapy installed

        self._pool = ThreadPool(minthreads=1, maxthreads=1, name=self.name)
        self._pool.start()
        self._shutdown_trigger = reactor.addSystemEventTrigger("during", "shutdown", self.stop)

    def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Run ``func(*args, **kwargs)`` on the writer thread; fires with its result."""
        from twisted.internet import reactor

        self.start()
        return deferToThreadPool(reactor, self._pool, func, *args, **kwargs)

    def stop(self) -> None:
        """Run what is queued, then join the thread (idempotent)."""
        if self._shutdown_trigger is not None:
            from twisted.internet import reactor

            try:
                reactor.removeSystemEventTrigger(self._shutdown_trigger)
            except (ValueError, KeyError, TypeError):
                pass  # already fired
            self._shutdown_trigger = None
        pool, self._pool = self._pool, None
        if pool is not None and pool.started:
            pool.stop()


class FlushTimer:
    """Calls ``flush()`` once, ``interval`` seconds after :meth:`arm` (the age limit of a partial batch)."""

    def __init__(self, interval: float, flush: Callable[[], None]) -> None:
        self.interval = interval
        self._flush = flush
        self._call: Any = None

    @property
    def armed(self) -> bool:
        return self._call is not None

    def arm(self) -> None:
        """Start the countdown, unless it is running already."""
        if self._call is None:
            from twisted.internet import reactor

            self._call = reactor.callLater(self.interval, self._fire)

    def cancel(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _fire(self) -> None:
        self._call = None
        self._flush()


def before_shutdown(call: Callable[[], None]) -> Any:
    """Run ``call`` when the reactor starts shutting down, also on a forced stop (a second
    Ctrl-C), which skips ``spider_closed`` and ``engine_stopped``.

    A component hands what it buffered to its :class:`WriterThread` there: the writer's own
    trigger (phase "during", after "before") then runs it before the thread is joined.
    """
    from twisted.internet import reactor

    return reactor.addSystemEventTrigger("before", "shutdown", call)
