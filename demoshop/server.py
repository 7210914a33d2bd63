"""Twisted web server of the demo shop: resource, site, request log.

A request first goes through the ordered ``interceptors`` (objects with
``intercept(request, path) -> bool``; True means the interceptor answered, or
will answer, the request itself), then to :class:`demoshop.pages.ShopPages`.
Every finished request, intercepted or not, is written to the request log.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Sequence
from typing import IO, Protocol

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

REQUEST_LOG_FLUSH_INTERVAL = 0.5


class Interceptor(Protocol):
    """Consulted before the pages; returns True when it has taken over the request."""

    def intercept(self, request: Request, path: str) -> bool: ...


class RequestLog:
    """JSON-lines log of answered requests, buffered and flushed by :meth:`flush`."""

    def __init__(self, path: str) -> None:
        self._file: IO[str] | None = open(path, "a", encoding="utf-8")
        self._lines: list[str] = []

    def record(self, request: Request) -> None:
        """Buffer the log line of a finished request."""
        method = request.method.decode("latin-1")
        path = request.path.decode("latin-1")
        self._lines.append(
            f'{{"t": {time.time():.6f}, "method": {json.dumps(method)}, "path": {json.dumps(path)}, '
            f'"status": {request.code}, "bytes": {request.sentLength}}}\n'
        )

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

    def render(self, request: Request) -> bytes | int:
        path = request.path.decode("latin-1")
        for interceptor in self.interceptors:
            if interceptor.intercept(request, path):
                return NOT_DONE_YET
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"allow", b"GET, HEAD")
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"Method not allowed\n"
        response = self.pages.respond(path)
        request.setResponseCode(response.status)
        request.setHeader(b"content-type", response.content_type)
        if response.location is not None:
            request.setHeader(b"location", response.location)
        return response.body


class ShopSite(Site):
    """A :class:`Site` whose access log is the optional JSON request log."""

    noisy = False

    def __init__(self, resource: Resource, request_log: RequestLog | None = None) -> None:
        super().__init__(resource)
        self.request_log = request_log

    def log(self, request: Request) -> None:
        if self.request_log is not None:
            self.request_log.record(request)


def make_site(
    catalogue: Catalogue, interceptors: Sequence[Interceptor] = (), request_log: RequestLog | None = None
) -> ShopSite:
    """The shop's site over ``catalogue``."""
    return ShopSite(ShopResource(ShopPages(catalogue), interceptors), request_log)


def serve(
    catalogue: Catalogue,
    host: str = "127.0.0.1",
    port: int = 0,
    request_log_path: str | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> None:
    """Listen, print the base URL on stdout, run until SIGTERM/SIGINT."""
    from twisted.internet import reactor

    observer = FilteringLogObserver(
        textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)]
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    request_log = RequestLog(request_log_path) if request_log_path else None
    site = make_site(catalogue, interceptors, request_log)
    listening = reactor.listenTCP(port, site, backlog=1024, interface=host)
    if request_log is not None:
        LoopingCall(request_log.flush).start(REQUEST_LOG_FLUSH_INTERVAL, now=False)
        reactor.addSystemEventTrigger("after", "shutdown", request_log.close)
    bound = listening.getHost()
    shown_host = f"[{bound.host}]" if ":" in bound.host else bound.host
    sys.stdout.write(f"http://{shown_host}:{bound.port}/\n")
    sys.stdout.flush()
    # A background job of a shell script inherits an ignored SIGINT; Twisted only
    # handles SIGINT when it has the default handler, so restore it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    reactor.run()
