"""The dead second host of the demo shop.

A seeded share of products is linked from the list pages on
``http://<dead host>:<port>/csa_product/<slug>/``.  Linux routes all of
127.0.0.0/8 to loopback, so the default 127.0.0.2 needs no setup.  Two modes:

* ``reset``: a listener that reads the request line, logs it (``"fault": "dead"``,
  ``"host"``) and aborts the connection (TCP RST, no response);
* ``refuse``: a socket is bound to the port (so nobody else takes it) but never
  listens, so every connection is refused; nothing reaches the shop, nothing is logged.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet.protocol import Factory, Protocol

#: A connection that sends no request line within this many seconds is aborted anyway.
READ_TIMEOUT = 1.0
_MAX_LINE = 8192
#: Sockets held by ``refuse`` mode for the life of the process.
_held: list[socket.socket] = []


class _Reset(Protocol):
    def __init__(self, factory: _ResetFactory) -> None:
        self.factory = factory
        self.buffer = b""
        self.timer: Any = None

    def connectionMade(self) -> None:
        self.timer = self.factory.reactor.callLater(READ_TIMEOUT, self._abort)

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if b"\n" in self.buffer or len(self.buffer) > _MAX_LINE:
            self._abort()

    def _abort(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        request_log = self.factory.request_log
        if request_log is not None:
            parts = self.buffer.split(b"\n", 1)[0].strip().split(b" ")
            method = parts[0].decode("latin-1") if parts[0] else None
            path = parts[1].decode("latin-1") if len(parts) > 1 else None
            request_log.record_line({
                "method": method, "path": path, "status": 0, "bytes": 0,
                "fault": "dead", "host": self.factory.host, "lost": True,
            })  # fmt: skip
        self.transport.abortConnection()

    def connectionLost(self, reason: Any = None) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()


class _ResetFactory(Factory):
    noisy = False

    def __init__(self, reactor: Any, request_log: Any, host: str) -> None:
        self.reactor = reactor
        self.request_log = request_log
        self.host = host

    def buildProtocol(self, addr: Any) -> _Reset:
        return _Reset(self)


def start(host: str, port: int, mode: str, reactor: Any, request_log: Any = None) -> str:
    """Start the dead host on ``host:port`` (0 = a free port); returns ``http://host:port/``."""
    from demoshop.server import base_url

    if mode == "reset":
        factory = _ResetFactory(reactor, request_log, host)
        listening = reactor.listenTCP(port, factory, backlog=1024, interface=host)
        bound = listening.getHost()
        factory.host = f"{host}:{bound.port}"
        return base_url(bound.host, bound.port)
    if mode == "refuse":
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.bind((host, port))  # bound, never listening: connections are refused
        _held.append(sock)
        return base_url(host, sock.getsockname()[1])
    raise ValueError(f"unknown dead-host mode {mode!r}")
