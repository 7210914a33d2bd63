"""Seeded fault injection of the demo shop: configuration, command-line flags and interceptors.

Everything here is off by default and installs nothing unless its flag is given
(see :func:`build_interceptors`), so a shop without faults pays nothing per request.
The chain, in order, is: :class:`Outage`, :class:`demoshop.ratelimit.RateLimiter`,
:class:`demoshop.capacity.CapacityModel`, :class:`Gone`, :class:`TransientFaults`: an
outage is the whole site down, limiter included (it charges no token); a request the
limiter refuses is answered at once, before it takes a worker or a queue place.
``/robots.txt`` is never faulted.

Transient faults are deterministic per request target (path and ``?query``, so
``...&paged=2`` and ``...&paged=3`` are two targets): the k-th request (k = 0, 1, ...)
for a target fails iff ``u(seed, target, k) < rate``, where ``u`` is a blake2b-based
uniform draw; a second draw from the same digest picks the kind by the ``--fault-mix``
weights.  A target never fails more than ``--fault-max-consecutive`` times in a row
(when the draw says "fail" once more, the request is served and the streak ends).
So two shops with the same seed and the same per-target request order fault the same
requests, and a crawler with more retries than that always gets every page.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from demoshop.catalogue import DEFAULT_DEAD_HOST, JS_PAGE_KINDS, Catalogue
from demoshop.jspages import JS_PREFIX
from demoshop.pages import LIST_PATH, ShopPages

if TYPE_CHECKING:
    from twisted.web.server import Request

STATUS_KINDS = ("500", "502", "503", "504", "429")
FAULT_KINDS = (*STATUS_KINDS, "hang", "reset", "truncate")
DEFAULT_FAULT_MIX = "500:1,502:1,503:1,504:1,429:1,hang:1,reset:1,truncate:1"
#: Paths that transient faults apply to: list pages and detail pages (of both variants).
FAULTED_PREFIXES = (LIST_PATH[:-1], "/csa_product/", JS_PREFIX + LIST_PATH[:-1], JS_PREFIX + "/csa_product/")
NEVER_FAULTED = "/robots.txt"


def path_of(target: str) -> str:
    """The path of a request target (without its ``?query``)."""
    return target.partition("?")[0]


_REASONS = {
    404: "Not Found",
    410: "Gone",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def error_body(status: int) -> bytes:
    """A small HTML error page."""
    title = f"{status} {_REASONS.get(status, 'Error')}"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><h1>{title}</h1></body></html>\n"
    ).encode()


def answer(request: Request, status: int, fault: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """Finish ``request`` at once with ``status`` and a small HTML body, tagged with ``fault``."""
    request.shop_fault = fault
    body = error_body(status)
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    request.setHeader(b"content-length", b"%d" % len(body))
    for name, value in headers:
        request.setHeader(name, value)
    request.write(body)
    request.finish()


def reset(request: Request, fault: str) -> None:
    """Abort the TCP connection of ``request`` (RST, no response); it is logged as lost."""
    request.shop_fault = fault
    transport = request.transport
    if transport is not None and not request._disconnected:
        transport.abortConnection()


def close(request: Request) -> None:
    """Close the connection of ``request`` after flushing what was written (FIN)."""
    transport = request.transport
    if transport is not None and not request._disconnected:
        transport.loseConnection()


# --- configuration ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultConfig:
    """Every fault and capacity option of a shop run (the defaults turn everything off)."""

    fault_rate: float = 0.0
    fault_mix: tuple[tuple[str, float], ...] = ()
    fault_seed: int | None = None
    fault_max_consecutive: int = 2
    retry_after: int = 1
    retry_after_form: str = "both"
    hang_seconds: float = 30.0
    outages: tuple[tuple[float, float], ...] = ()
    outage_mode: str = "503"
    dead_port: int = 0
    dead_mode: str = "reset"
    capacity: int = 0
    queue: int = 0
    latency: float = 0.0
    overload_status: int = 503
    rate: float = 0.0
    rate_burst: float | None = None
    retry_after_format: str = "seconds"

    @classmethod
    def from_options(cls, options: argparse.Namespace) -> FaultConfig:
        """The configuration of parsed :func:`add_arguments` options."""
        return cls(
            fault_rate=options.fault_rate,
            fault_mix=options.fault_mix,
            fault_seed=options.fault_seed,
            fault_max_consecutive=options.fault_max_consecutive,
            retry_after=options.retry_after,
            retry_after_form=options.retry_after_form,
            hang_seconds=options.hang_seconds,
            outages=tuple(options.outage or ()),
            outage_mode=options.outage_mode,
            dead_port=options.dead_port,
            dead_mode=options.dead_mode,
            capacity=options.capacity,
            queue=options.queue,
            latency=options.latency,
            overload_status=options.overload_status,
            rate=options.rate,
            rate_burst=options.rate_burst,
            retry_after_format=options.retry_after_format,
        )


def _number(kind: type, low: float | None = None, high: float | None = None) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a{'n integer' if kind is int else ' number'}: {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high) or value != value:
            bounds = f">= {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"must be {bounds}: {text!r}")
        return value

    return parse


def parse_fault_mix(text: str) -> tuple[tuple[str, float], ...]:
    """``"500:1,hang:2"`` -> ``(("500", 1.0), ("hang", 2.0))``; kinds from :data:`FAULT_KINDS`."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, weight_text = part.partition(":")
        kind = kind.strip()
        if kind not in FAULT_KINDS:
            raise argparse.ArgumentTypeError(f"unknown fault kind {kind!r} (one of {', '.join(FAULT_KINDS)})")
        try:
            weight = float(weight_text) if sep else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad weight in {part!r}") from None
        if not weight >= 0 or math.isinf(weight):
            raise argparse.ArgumentTypeError(f"bad weight in {part!r}")
        mix[kind] = mix.get(kind, 0.0) + weight
    if sum(mix.values()) <= 0:
        raise argparse.ArgumentTypeError(f"no fault kind with a positive weight in {text!r}")
    return tuple((kind, weight) for kind, weight in mix.items() if weight > 0)


def parse_outage(text: str) -> tuple[float, float]:
    """``"START:DURATION"`` (seconds) -> ``(start, duration)``."""
    start_text, sep, duration_text = text.partition(":")
    try:
        start, duration = float(start_text), float(duration_text)
    except ValueError:
        start = duration = -1.0
    if not sep or not (start >= 0 and duration > 0) or math.isinf(start + duration):
        raise argparse.ArgumentTypeError(f"expected START:DURATION in seconds (START >= 0, DURATION > 0): {text!r}")
    return start, duration


def add_catalogue_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that change the catalogue and its truth (``serve`` and ``truth``)."""
    share = _number(float, 0.0, 1.0)
    parser.add_argument(
        "--gone-share",
        type=share,
        default=0.0,
        metavar="F",
        help="share of products whose detail page always answers 404 (even index) or 410 (odd)",
    )
    parser.add_argument(
        "--dead-share",
        type=share,
        default=0.0,
        metavar="F",
        help="share of products linked on the dead host (absolute URL) instead of the shop",
    )
    parser.add_argument(
        "--dead-host",
        default=DEFAULT_DEAD_HOST,
        metavar="HOST",
        help=f"address of the dead host (default {DEFAULT_DEAD_HOST}; any 127.0.0.0/8 address)",
    )
    parser.add_argument(
        "--grow",
        type=_number(int, 0),
        default=0,
        metavar="G",
        help="G more Matter products appear at the top while the shop is crawled (see --grow-every); "
        "the truth lists all products + G",
    )
    parser.add_argument(
        "--change-share",
        type=share,
        default=0.0,
        metavar="F",
        help="share of the saved products that show changed values (a new firmware or hardware version, "
        "a new certified date) compared with the same shop without it; the truth says what changed",
    )
    parser.add_argument(
        "--change-seed", type=int, default=None, metavar="S", help="seed of the changes (default: --seed)"
    )
    parser.add_argument(
        "--js-never-render",
        type=share,
        default=0.0,
        metavar="F",
        help="share of the JavaScript variant's pages (/js/...) whose script never inserts the content "
        "(seeded per list page number and per product; the truth's js_never_renders says which)",
    )
    parser.add_argument(
        "--js-never-render-on",
        type=parse_js_page_kinds,
        default=JS_PAGE_KINDS,
        metavar="KINDS",
        help="which JS pages --js-never-render may stall: list, detail or list,detail (default)",
    )
    parser.add_argument(
        "--js-never-render-seed", type=int, default=None, metavar="S",
        help="seed of --js-never-render (default: --seed)",
    )


def parse_js_page_kinds(text: str) -> frozenset[str]:
    """``list``, ``detail`` or ``list,detail``."""
    kinds = frozenset(k.strip() for k in text.split(","))
    if not kinds or not kinds <= JS_PAGE_KINDS:
        raise argparse.ArgumentTypeError(f"one or more of list, detail (comma-separated): {text!r}")
    return kinds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The fault, capacity and growth flags of ``serve``."""
    parser.add_argument(
        "--grow-every",
        type=_number(int, 0),
        default=10,
        metavar="K",
        help="with --grow: one product is added after every K-th list-page request (default 10; "
        "0: never while the shop is served)",
    )
    parser.add_argument(
        "--new",
        type=_number(int, 0),
        default=0,
        metavar="K",
        help="with --grow G: K (<= G) of the G products are already at the top when the shop starts "
        "(added since an earlier run); --products N --grow K --grow-every 0 is a catalogue of N "
        "products, --products N --grow K --new K the same catalogue K products later",
    )
    group = parser.add_argument_group("faults (all off by default)")
    group.add_argument(
        "--fault-rate",
        type=_number(float, 0.0, 1.0),
        default=0.0,
        metavar="F",
        help="share of list/detail requests that fail transiently (default 0)",
    )
    group.add_argument(
        "--fault-mix",
        type=parse_fault_mix,
        default=parse_fault_mix(DEFAULT_FAULT_MIX),
        metavar="KIND:W,...",
        help=f"weights of the fault kinds (default {DEFAULT_FAULT_MIX})",
    )
    group.add_argument(
        "--fault-seed", type=int, default=None, metavar="S", help="seed of the transient faults (default: --seed)"
    )
    group.add_argument(
        "--fault-max-consecutive",
        type=_number(int, 0),
        default=2,
        metavar="N",
        help="a path never fails more than N times in a row (default 2)",
    )
    group.add_argument(
        "--retry-after",
        type=_number(int, 0),
        default=1,
        metavar="N",
        help="Retry-After of the 429 fault, in seconds (default 1)",
    )
    group.add_argument(
        "--retry-after-form",
        choices=("seconds", "date", "both"),
        default="both",
        help="Retry-After as delta-seconds, as an HTTP date, or alternating (default both)",
    )
    group.add_argument(
        "--hang-seconds",
        type=_number(float, 0.0),
        default=30.0,
        metavar="T",
        help="a hang fault closes the connection, without a response, after T s (default 30)",
    )
    group.add_argument(
        "--outage",
        type=parse_outage,
        action="append",
        metavar="START:DURATION",
        help="every request fails from START to START+DURATION seconds after the first request (repeatable)",
    )
    group.add_argument(
        "--outage-mode",
        choices=("503", "reset"),
        default="503",
        help="how requests fail during an outage (default 503, no Retry-After)",
    )
    group.add_argument(
        "--dead-port",
        type=_number(int, 0, 65535),
        default=0,
        metavar="PORT",
        help="port of the dead host; 0 picks a free one (default 0)",
    )
    group.add_argument(
        "--dead-mode",
        choices=("reset", "refuse"),
        default="reset",
        help="the dead host resets every connection, or refuses it (nothing listens) (default reset)",
    )
    group = parser.add_argument_group("capacity model (off by default)")
    group.add_argument(
        "--capacity",
        type=_number(int, 0),
        default=0,
        metavar="C",
        help="requests served at once; 0 = unlimited (default 0)",
    )
    group.add_argument(
        "--queue",
        type=_number(int, 0),
        default=0,
        metavar="Q",
        help="requests that wait (FIFO) when C are being served; more get the overload status (default 0)",
    )
    group.add_argument(
        "--latency",
        type=_number(float, 0.0),
        default=0.0,
        metavar="L",
        help="seconds each request takes to serve (default 0)",
    )
    group.add_argument(
        "--overload-status",
        type=int,
        choices=(503, 429),
        default=503,
        help="status of a request beyond capacity + queue (429 carries Retry-After: 1) (default 503)",
    )
    group = parser.add_argument_group("per-client rate limit (off by default)")
    group.add_argument(
        "--rate",
        type=_number(float, 0.0),
        default=0.0,
        metavar="R",
        help="requests per second per client address (a token bucket); beyond it 429 with Retry-After; "
        "0 = no limit (default 0)",
    )
    group.add_argument(
        "--rate-burst",
        type=_number(float, 1.0),
        default=None,
        metavar="B",
        help="bucket size: requests a client may make at once (default R, at least 1)",
    )
    group.add_argument(
        "--retry-after-format",
        choices=("seconds", "date"),
        default="seconds",
        help="Retry-After of a rate-limited 429: whole seconds rounded up, or an HTTP date (default seconds; "
        "--retry-after-form is the 429 fault's)",
    )


# --- the interceptors ------------------------------------------------------------------------------------------


def draw(seed: int, target: str, attempt: int) -> tuple[float, float]:
    """Two independent uniform draws in [0, 1) for request number ``attempt`` (0-based) of ``target``.

    ``target`` is the request's path and ``?query`` (if any), exactly as requested.
    """
    digest = hashlib.blake2b(f"{seed}\x1f{target}\x1f{attempt}".encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8], "big") / 2**64, int.from_bytes(digest[8:], "big") / 2**64


def fault_kind(seed: int, target: str, attempt: int, rate: float, mix: Sequence[tuple[str, float]]) -> str | None:
    """The fault the hash draws for request ``attempt`` of ``target`` (ignoring the consecutive cap), or None."""
    fails, which = draw(seed, target, attempt)
    if fails >= rate:
        return None
    total = sum(weight for _, weight in mix)
    point = which * total
    for kind, weight in mix:
        point -= weight
        if point < 0:
            return kind
    return mix[-1][0]


class TransientFaults:
    """Seeded transient faults on list and detail pages (see the module docstring)."""

    def __init__(self, config: FaultConfig, seed: int, pages: ShopPages, reactor: Any) -> None:
        self.rate = config.fault_rate
        self.mix = config.fault_mix or parse_fault_mix(DEFAULT_FAULT_MIX)
        self.seed = seed
        self.max_consecutive = config.fault_max_consecutive
        self.retry_after = config.retry_after
        self.retry_after_form = config.retry_after_form
        self.hang_seconds = config.hang_seconds
        self.pages = pages
        self.reactor = reactor
        #: target -> requests seen so far
        self.attempts: dict[str, int] = {}
        #: target -> current run of consecutive failures (absent = 0)
        self.streaks: dict[str, int] = {}
        self._retry_afters = 0

    def decide(self, target: str) -> str | None:
        """Count a request for ``target``; the fault it gets, or None."""
        attempt = self.attempts.get(target, 0)
        self.attempts[target] = attempt + 1
        kind = fault_kind(self.seed, target, attempt, self.rate, self.mix)
        streak = self.streaks.get(target, 0)
        if kind is None or streak >= self.max_consecutive:
            if streak:
                del self.streaks[target]
            return None
        self.streaks[target] = streak + 1
        return kind

    def intercept(self, request: Request, target: str) -> bool:
        if not target.startswith(FAULTED_PREFIXES):
            return False
        kind = self.decide(target)
        if kind is None:
            return False
        if kind == "429":
            answer(request, 429, kind, [(b"retry-after", self.retry_after_value().encode())])
        elif kind in STATUS_KINDS:
            answer(request, int(kind), kind)
        elif kind == "hang":
            self.hang(request)
        elif kind == "truncate":
            self.truncate(request, target)
        else:
            reset(request, kind)
        return True

    def retry_after_value(self) -> str:
        """The next Retry-After value: delta-seconds or an HTTP date at least ``retry_after`` s away."""
        form = self.retry_after_form
        if form == "both":
            form = "seconds" if self._retry_afters % 2 == 0 else "date"
            self._retry_afters += 1
        if form == "seconds":
            return str(self.retry_after)
        # HTTP dates have 1 s resolution: the next whole second after now + N, so no client waits less than N.
        return formatdate(math.floor(time.time() + self.retry_after) + 1, usegmt=True)

    def hang(self, request: Request) -> None:
        """Answer nothing; close the connection after ``hang_seconds`` (or forget it if the client leaves)."""
        request.shop_fault = "hang"
        timer = self.reactor.callLater(self.hang_seconds, close, request)

        def client_left(_: Any) -> None:
            if timer.active():
                timer.cancel()

        request.notifyFinish().addErrback(client_left)

    def truncate(self, request: Request, target: str) -> None:
        """Status line, headers and the full Content-Length, but only half the body; then close.

        A truncated list page is a fault: it does not count towards the catalogue's growth.
        """
        response = self.pages.respond(target, count=False)
        if request.method == b"HEAD" or len(response.body) < 2:
            reset(request, "truncate")  # nothing to cut in half
            return
        request.shop_fault = "truncate"
        request.setResponseCode(response.status)
        request.setHeader(b"content-type", response.content_type)
        if response.location is not None:
            request.setHeader(b"location", response.location)
        request.setHeader(b"content-length", b"%d" % len(response.body))
        request.write(response.body[: len(response.body) // 2])
        close(request)


class Outage:
    """Every request (but robots.txt) fails inside the windows, counted from the shop's first request."""

    def __init__(
        self, windows: Sequence[tuple[float, float]], mode: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.windows = tuple((start, start + duration) for start, duration in windows)
        self.mode = mode
        self.clock = clock
        self.first: float | None = None

    def in_outage(self) -> bool:
        """Whether now is inside a window (the first call starts the clock)."""
        now = self.clock()
        if self.first is None:
            self.first = now
        elapsed = now - self.first
        return any(start <= elapsed < end for start, end in self.windows)

    def intercept(self, request: Request, target: str) -> bool:
        if not self.in_outage() or path_of(target) == NEVER_FAULTED:
            return False
        if self.mode == "reset":
            reset(request, "outage")
        else:
            answer(request, 503, "outage")
        return True


class Gone:
    """Detail pages of permanently gone products (both variants): always 404 or 410."""

    def __init__(self, paths: dict[str, int]) -> None:
        self.paths = paths

    def intercept(self, request: Request, target: str) -> bool:
        path = path_of(target)
        status = self.paths.get(path.removeprefix(JS_PREFIX) if path.startswith(JS_PREFIX + "/") else path)
        if status is None:
            return False
        answer(request, status, "gone")
        return True


def build_interceptors(config: FaultConfig, catalogue: Catalogue, pages: ShopPages, reactor: Any) -> list[Any]:
    """The interceptors ``config`` asks for, in chain order; empty when everything is off."""
    from demoshop.capacity import CapacityModel
    from demoshop.ratelimit import RateLimiter

    chain: list[Any] = []
    if config.outages:
        chain.append(Outage(config.outages, config.outage_mode))
    if config.rate > 0:
        chain.append(RateLimiter(config.rate, config.rate_burst, config.retry_after_format))
    if config.capacity > 0 or config.latency > 0:
        chain.append(CapacityModel(config.capacity, config.queue, config.latency, config.overload_status, reactor))
    gone = catalogue.gone_paths()
    if gone:
        chain.append(Gone(gone))
    if config.fault_rate > 0 and config.fault_max_consecutive > 0:
        seed = catalogue.seed if config.fault_seed is None else config.fault_seed
        chain.append(TransientFaults(config, seed, pages, reactor))
    return chain


def start_dead_host(config: FaultConfig, host: str, reactor: Any, request_log: Any = None) -> str:
    """Start the dead host (see :mod:`demoshop.deadhost`); returns its base URL."""
    from demoshop.deadhost import start

    return start(host, config.dead_port, config.dead_mode, reactor, request_log)
