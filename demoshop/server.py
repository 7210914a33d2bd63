"""Twisted web server of the demo shop: resource, site, request log.

A request first goes through the ordered ``interceptors`` (objects with
``intercept(request, target) -> bool``, ``target`` being the request's path and
``?query`` if any; True means the interceptor answered, or will answer, the
request itself), then to :class:`demoshop.pages.ShopPages`.  An interceptor with
a ``bind(proceed)`` method is given ``proceed(request, target)``, which runs the
rest of the chain and the pages later (to delay a response).  The request log's
``"path"`` is the target too (so list pages of different queries are told apart).
Every request, intercepted or not, is written to the request log: when it is
finished, or, if its connection is lost first (reset, hang, truncation, the
client giving up), at that moment (status 0 unless a status line was sent, and
``"lost": true``).  Interceptors tag a request with ``shop_fault`` (logged as
``"fault"``) and ``shop_queued`` (seconds, logged as ``"queued"`` when > 0).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import IO, TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from twisted.internet.task import LoopingCall
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from demoshop.catalogue import Catalogue
from demoshop.pages import ShopPages

if TYPE_CHECKING:
    from demoshop.faults import FaultConfig

REQUEST_LOG_FLUSH_INTERVAL = 0.5


def request_target(request: Request) -> str:
    """The path and ``?query`` of ``request`` (an absolute-form URI is reduced to them)."""
    uri = request.uri
    if not uri.startswith(b"/"):
        parts = urlsplit(uri.decode("latin-1"))
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return uri.partition(b"#")[0].decode("latin-1")


class Interceptor(Protocol):
    """Consulted before the pages; returns True when it has taken over the request."""

    def intercept(self, request: Request, target: str) -> bool: ...


class ShopRequest(Request):
    """A :class:`Request` that carries the fault tags and logs itself when its connection is lost first."""

    #: Kind of the injected fault ("503", "hang", "reset", "outage", "overload", "gone", ...), or None.
    shop_fault: str | None = None
    #: Seconds the request waited in the capacity model's queue.
    shop_queued: float = 0.0

    def connectionLost(self, reason: Any) -> None:
        finished = self.finished
        site = getattr(self, "site", None)  # set when the request was processed
        super().connectionLost(reason)
        if not finished and isinstance(site, ShopSite) and site.request_log is not None:
            site.request_log.record(self, lost=True)


class RequestLog:
    """JSON-lines log of answered requests, buffered and flushed by :meth:`flush`."""

    def __init__(self, path: str) -> None:
        self._file: IO[str] | None = open(path, "a", encoding="utf-8")
        self._lines: list[str] = []

    def record(self, request: Request, lost: bool = False) -> None:
        """Buffer the log line of a finished request (or of one whose connection was lost)."""
        method = request.method.decode("latin-1")
        path = request_target(request)
        status = request.code
        extra = ""
        fault = getattr(request, "shop_fault", None)
        if fault is not None:
            extra += f', "fault": {json.dumps(fault)}'
        queued = getattr(request, "shop_queued", 0.0)
        if queued > 0:
            extra += f', "queued": {queued:.6f}'
        if lost:
            extra += ', "lost": true'
            if not request.startedWriting:
                status = 0
        self._lines.append(
            f'{{"t": {time.time():.6f}, "method": {json.dumps(method)}, "path": {json.dumps(path)}, '
            f'"status": {status}, "bytes": {request.sentLength}{extra}}}\n'
        )

    def record_line(self, entry: dict[str, Any]) -> None:
        """Buffer a line that is not about a :class:`Request` (e.g. a dead-host connection)."""
        self._lines.append(json.dumps({"t": round(time.time(), 6), **entry}) + "\n")

    def flush(self) -> None:
        """Write the buffered lines to the file."""
        if self._lines and self._file is not None:
            self._file.write("".join(self._lines))
            self._file.flush()
            self._lines.clear()

    def close(self) -> None:
        """Flush and close the file."""
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None


class ShopResource(Resource):
    """The one resource of the shop: interceptors first, then the pages."""

    isLeaf = True

    def __init__(self, pages: ShopPages, interceptors: Sequence[Interceptor] = ()) -> None:
        super().__init__()
        self.pages = pages
        self.interceptors = list(interceptors)
        for position, interceptor in enumerate(self.interceptors):
            bind: Callable[[Callable[[Request, str], None]], None] | None = getattr(interceptor, "bind", None)
            if bind is not None:
                bind(partial(self.proceed, start=position + 1))

    def render(self, request: Request) -> bytes | int:
        target = request_target(request)
        for interceptor in self.interceptors:
            if interceptor.intercept(request, target):
                return NOT_DONE_YET
        return self.page_body(request, target)

    def proceed(self, request: Request, target: str, start: int = 0) -> None:
        """Run the interceptors from ``start`` on, then answer from the pages and finish the request."""
        for interceptor in self.interceptors[start:]:
            if interceptor.intercept(request, target):
                return
        body = self.page_body(request, target)
        request.setHeader(b"content-length", b"%d" % len(body))
        request.write(body)
        request.finish()

    def page_body(self, request: Request, target: str) -> bytes:
        """Set the status and headers of the page at ``target``; returns its body."""
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"allow", b"GET, HEAD")
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"Method not allowed\n"
        response = self.pages.respond(target)
        request.setResponseCode(response.status)
        request.setHeader(b"content-type", response.content_type)
        if response.location is not None:
            request.setHeader(b"location", response.location)
        return response.body


class ShopSite(Site):
    """A :class:`Site` whose access log is the optional JSON request log."""

    noisy = False

    def __init__(self, resource: Resource, request_log: RequestLog | None = None) -> None:
        super().__init__(resource, requestFactory=ShopRequest)
        self.request_log = request_log

    def log(self, request: Request) -> None:
        if self.request_log is not None:
            self.request_log.record(request)


def make_site(
    catalogue: Catalogue,
    interceptors: Sequence[Interceptor] = (),
    request_log: RequestLog | None = None,
    pages: ShopPages | None = None,
) -> ShopSite:
    """The shop's site over ``catalogue`` (or over ``pages``)."""
    return ShopSite(ShopResource(pages or ShopPages(catalogue), interceptors), request_log)


def base_url(host: str, port: int) -> str:
    """``http://host:port/`` (IPv6 hosts in brackets)."""
    shown_host = f"[{host}]" if ":" in host else host
    return f"http://{shown_host}:{port}/"


def serve(
    catalogue: Catalogue,
    host: str = "127.0.0.1",
    port: int = 0,
    request_log_path: str | None = None,
    interceptors: Sequence[Interceptor] = (),
    faults: FaultConfig | None = None,
    grow_every: int = 1,
    new: int = 0,
) -> None:
    """Listen, print the base URL on stdout, run until SIGTERM/SIGINT.

    ``faults`` configures the fault interceptors, the capacity model and the dead
    host (see :mod:`demoshop.faults`); they come before ``interceptors``.  With a
    dead host, a second line ``dead: http://<dead host>:<port>/`` follows the URL.
    A growing catalogue (``catalogue.grow``) adds a product after every
    ``grow_every``-th list-page request, ``new`` of its products listed from the start
    (see :class:`demoshop.pages.ShopPages`).
    """
    from twisted.internet import reactor

    observer = FilteringLogObserver(
        textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)]
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    request_log = RequestLog(request_log_path) if request_log_path else None
    lines = []
    dead_base = None
    chain: list[Interceptor] = []
    if faults is not None:
        from demoshop.faults import build_interceptors, start_dead_host

        if catalogue.dead_share > 0:
            dead_base = start_dead_host(faults, catalogue.dead_host, reactor, request_log)
        pages = ShopPages(catalogue, dead_base=dead_base, grow_every=grow_every, new=new)
        chain = build_interceptors(faults, catalogue, pages, reactor)
    else:
        pages = ShopPages(catalogue, grow_every=grow_every, new=new)
    site = make_site(catalogue, [*chain, *interceptors], request_log, pages)
    listening = reactor.listenTCP(port, site, backlog=1024, interface=host)
    if request_log is not None:
        LoopingCall(request_log.flush).start(REQUEST_LOG_FLUSH_INTERVAL, now=False)
        reactor.addSystemEventTrigger("after", "shutdown", request_log.close)
    bound = listening.getHost()
    pages.base_url = base_url(bound.host, bound.port)  # every link on the pages is absolute
    lines.append(pages.base_url)
    if dead_base is not None:
        lines.append(f"dead: {dead_base}")
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()
    # A background job of a shell script inherits an ignored SIGINT; Twisted only
    # handles SIGINT when it has the default handler, so restore it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    reactor.run()
