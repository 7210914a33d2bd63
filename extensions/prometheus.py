"""Prometheus exporter: the crawl's stats and live state at ``/metrics``, read at scrape time.

A replacement for the dead ``scrapy-prometheus-exporter`` (same setting names)
on ``prometheus_client``.  Each crawler gets its own
:class:`~prometheus_client.CollectorRegistry` (never the global ``REGISTRY``)
holding

* :class:`CrawlerCollector`, which builds every metric family from
  ``crawler.stats`` and a few live engine objects *when scraped* (nothing is
  copied periodically): every numeric stat as ``scrapy_<sanitised key>``, and
  labelled ``crawler_*`` families from the stats the project's components
  publish (progress, adaptive concurrency, circuit breakers, retries, dead
  letters, product accounting) plus the queue sizes;
* the histogram ``crawler_request_duration_seconds{stage}``, observed on
  ``response_received`` from ``meta["download_latency"]``.

The page is served by Twisted on the crawl's own reactor and rendered on the
reactor thread, so a scrape sees a consistent snapshot of the stats.  The port
is bound when the extension is created (the first free one of the range; when
none is free the crawl goes on without metrics, with a warning: the metrics
never kill a crawl) and released when the spider closes.  The URL is logged and kept in the ``prometheus/url``
stat.  Settings: ``PROMETHEUS_ENABLED``, ``PROMETHEUS_PORT``,
``PROMETHEUS_HOST``, ``PROMETHEUS_PATH`` (``crawler/defaults.py``).
"""

from __future__ import annotations

import gzip
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Self
from urllib.parse import quote

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector
from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.web.resource import Resource
from twisted.web.server import Request as WebRequest
from twisted.web.server import Site

from crawler import defaults
from crawler.errors import ConfigError

logger = logging.getLogger(__name__)

#: Prefix of the metrics made from plain stats.
STAT_PREFIX = "scrapy_"
#: Buckets of ``crawler_request_duration_seconds``: 5 ms .. 60 s (+Inf is implicit).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Circuit breaker states (``crawler.circuit_breaker.BreakerState`` values).
BREAKER_STATES = ("closed", "open", "half_open")
#: Our classified retry reasons (snake_case); the stats also hold Scrapy's names of the same retries.
OUR_REASON = re.compile(r"[a-z0-9_]+")
#: Product outcomes of ``extensions/accounting.py`` (stats ``products/<outcome>``).
PRODUCT_OUTCOMES = ("saved", "rejected", "dead_lettered", "duplicates", "filtered", "pending")
#: Stage label of ``crawler_rate_per_second`` -> stat.
RATE_STATS = {"detail": "progress/detail_rate", "list": "progress/list_rate"}

_INVALID = re.compile(r"[^a-zA-Z0-9_]")


# -- stats -> metric families (pure) ---------------------------------------------
def metric_name(key: str) -> str:
    """``scrapy_`` + ``key`` with every character outside ``[a-zA-Z0-9_]`` replaced by ``_``."""
    return STAT_PREFIX + _INVALID.sub("_", key)


def _number(value: Any) -> float | None:
    """``value`` as a float if it is a number (booleans as 0/1), else None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    return None


def stat_sample(key: str, value: Any) -> tuple[str, float] | None:
    """The (metric name, value) of one stat, or None if it is not numeric.

    Numbers keep their value, booleans become 0/1, datetimes become a
    ``<name>_seconds`` UNIX time (naive ones are taken as UTC, as Scrapy
    records them) and timedeltas ``<name>_seconds`` too.
    """
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return metric_name(key) + "_seconds", moment.timestamp()
    if isinstance(value, timedelta):
        return metric_name(key) + "_seconds", value.total_seconds()
    number = _number(value)
    return None if number is None else (metric_name(key), number)


def stat_families(stats: Mapping[str, Any], collisions: set[str] | None = None) -> list[Metric]:
    """One gauge per numeric stat, named by :func:`stat_sample`.

    Keys are taken in sorted order; when two keys sanitise to the same name
    the first one wins and the others are left out (and added to
    ``collisions``, so the caller can warn once).
    """
    families: dict[str, Metric] = {}
    for key in sorted(k for k in stats if isinstance(k, str)):
        sample = stat_sample(key, stats[key])
        if sample is None:
            continue
        name, value = sample
        if name in families:
            if collisions is not None:
                collisions.add(key)
            continue
        family = GaugeMetricFamily(name, f"Scrapy stat {key}")
        family.add_metric([], value)
        families[name] = family
    return list(families.values())


def _by_prefix(stats: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    """(rest of the key, value) of every stat ``<prefix><rest>`` with a non-empty rest, sorted."""
    for key in sorted(k for k in stats if isinstance(k, str)):
        if key.startswith(prefix) and len(key) > len(prefix):
            yield key[len(prefix) :], stats[key]


def _gauge(name: str, doc: str, value: Any) -> Metric | None:
    number = _number(value)
    if number is None:
        return None
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], number)
    return family


def _counter(name: str, doc: str, value: Any) -> Metric | None:
    number = _number(value)
    if number is None:
        return None
    family = CounterMetricFamily(name, doc)
    family.add_metric([], number)
    return family


def crawler_families(stats: Mapping[str, Any]) -> list[Metric]:
    """The labelled ``crawler_*`` families built from the stats other components publish.

    A family whose stats are absent (or not numbers) is left out entirely.
    """
    out: list[Metric | None] = [
        _gauge("crawler_progress_ratio", "Estimated fraction of the crawl done (0..1)", stats.get("progress/fraction")),
        _gauge("crawler_eta_seconds", "Estimated seconds until the crawl is done", stats.get("progress/eta_seconds")),
    ]

    rates = GaugeMetricFamily("crawler_rate_per_second", "Pages completed per second, by stage", labels=["stage"])
    for stage, key in RATE_STATS.items():
        number = _number(stats.get(key))
        if number is not None:
            rates.add_metric([stage], number)
    out.append(rates)

    concurrency = GaugeMetricFamily(
        "crawler_domain_concurrency", "Concurrency the adaptive controller allows a domain", labels=["domain"]
    )
    for domain, value in _by_prefix(stats, "adaptive/concurrency/"):
        number = _number(value)
        if number is not None:
            concurrency.add_metric([domain], number)
    out.append(concurrency)

    breakers = GaugeMetricFamily(
        "crawler_breaker_state", "Circuit breaker state of a domain (1: current)", labels=["domain", "state"]
    )
    for domain, value in _by_prefix(stats, "breaker/state/"):
        current = getattr(value, "value", value)  # a BreakerState or its string
        for state in BREAKER_STATES:
            breakers.add_metric([domain, state], 1.0 if current == state else 0.0)
    out.append(breakers)
    out.append(_counter("crawler_breaker_trips", "Times a circuit breaker opened", stats.get("breaker/trips")))

    retries = CounterMetricFamily("crawler_retries", "Retries scheduled, by reason", labels=["reason"])
    for reason, value in _by_prefix(stats, "retry/reason_count/"):
        if not OUR_REASON.fullmatch(reason):
            continue  # Scrapy's names of the same retries ("503 Service Unavailable"), kept for its dashboards
        number = _number(value)
        if number is not None:
            retries.add_metric([reason], number)
    out.append(retries)

    out.append(_counter("crawler_dead_letters", "Requests recorded in the dead-letter queue", stats.get("dlq/added")))
    products = CounterMetricFamily("crawler_products", "Products by final outcome", labels=["outcome"])
    for outcome in PRODUCT_OUTCOMES:
        number = _number(stats.get(f"products/{outcome}"))
        if number is not None:
            products.add_metric([outcome], number)
    out.append(products)
    out.append(
        _counter("crawler_products_discovered", "Product detail requests discovered", stats.get("products/discovered"))
    )
    return [family for family in out if family is not None and family.samples]


# -- live state ------------------------------------------------------------------
def _attempt(read: Callable[[], Any]) -> Any:
    """``read()``, or None if it fails (private or not-yet-created attributes)."""
    try:
        return read()
    except Exception:
        return None


def queue_sizes(crawler: Any) -> dict[str, int]:
    """Live sizes: ``scheduler`` (all requests it holds, delayed ones included),
    ``delayed`` (waiting for their ``not_before``), ``downloader_active`` (in flight).

    Only the sizes that can be read now are returned (none before the engine
    opens the spider or after it closes).
    """
    engine = _attempt(lambda: crawler.engine)
    if engine is None:
        return {}
    scheduler = _attempt(lambda: engine.scheduler)  # public since Scrapy 2.19
    if scheduler is None:
        scheduler = _attempt(lambda: engine._slot.scheduler)
    sizes = {
        "scheduler": _attempt(lambda: len(scheduler)) if scheduler is not None else None,
        "delayed": _attempt(lambda: int(scheduler.waiting)) if scheduler is not None else None,
        "downloader_active": _attempt(lambda: len(engine.downloader.active)),
    }
    return {queue: size for queue, size in sizes.items() if isinstance(size, int)}


class CrawlerCollector(Collector):
    """A custom collector reading one crawler's stats and queues at scrape time."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self._warned: set[str] = set()

    def collect(self) -> Iterable[Metric]:
        """Every ``scrapy_*`` stat gauge, the ``crawler_*`` families and the queue sizes."""
        stats = dict(self.crawler.stats.get_stats())  # one snapshot for the whole scrape
        collisions: set[str] = set()
        yield from stat_families(stats, collisions)
        for key in sorted(collisions - self._warned):
            self._warned.add(key)
            logger.warning("Prometheus: stat %r is not exported: its name %s is taken", key, metric_name(key))
        yield from crawler_families(stats)
        sizes = queue_sizes(self.crawler)
        if sizes:
            queues = GaugeMetricFamily("crawler_queue_size", "Requests waiting or in flight", labels=["queue"])
            for queue, size in sizes.items():
                queues.add_metric([queue], size)
            yield queues


# -- HTTP ------------------------------------------------------------------------
class MetricsPage(Resource):
    """The exposition of one registry, rendered on the reactor thread.

    Same negotiation as ``prometheus_client``'s own servers: the text format,
    or OpenMetrics when the ``Accept`` header asks for it; gzip when accepted.
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: WebRequest) -> bytes:
        encoder, content_type = choose_encoder(_header(request, b"accept"))
        output = encoder(self.registry)
        if gzip_accepted(_header(request, b"accept-encoding")):
            output = gzip.compress(output, compresslevel=1)
            request.setHeader(b"Content-Encoding", b"gzip")
        request.setHeader(b"Content-Type", content_type.encode())
        return output


def _header(request: WebRequest, name: bytes) -> str:
    value = request.getHeader(name)
    return value.decode("latin-1") if value else ""


class QuietSite(Site):
    """A Site that writes no access log and no "Starting factory" lines into the crawl log."""

    noisy = False

    def log(self, request: WebRequest) -> None:
        """Log nothing."""


def path_segments(path: str) -> list[str]:
    """The non-empty ``/``-separated segments of ``PROMETHEUS_PATH``."""
    return [segment for segment in str(path).split("/") if segment]


def build_root(segments: list[str], page: Resource) -> Resource:
    """A plain resource tree serving ``page`` at ``/<segments>`` (at every path if there are none)."""
    if not segments:
        return page
    root = node = Resource()
    for segment in segments[:-1]:
        child = Resource()
        node.putChild(segment.encode(), child)
        node = child
    node.putChild(segments[-1].encode(), page)
    return root


def parse_ports(value: Any) -> tuple[int, int]:
    """``PROMETHEUS_PORT`` as an inclusive (first, last) range, like Scrapy's ``TELNETCONSOLE_PORT``.

    Accepts a port (``9410``, ``"9410"``), a range (``[9410, 9430]``,
    ``"9410,9430"``, ``"9410-9430"``, ``range(9410, 9431)``) or a one-port
    list.  0 means any free port.  Raises :class:`ConfigError` otherwise.
    """
    if isinstance(value, range):
        items: list[Any] = [value[0], value[-1]] if len(value) else []
    elif isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, str):
        items = [part for part in re.split(r"[\s,\-\[\]()]+", value) if part]
    else:
        items = [value]
    try:
        if not 1 <= len(items) <= 2 or any(isinstance(item, (bool, float)) for item in items):
            raise ValueError
        ports = [int(item) for item in items]
    except (TypeError, ValueError):
        raise ConfigError(f"PROMETHEUS_PORT: expected a port or [first, last] ports, got {value!r}") from None
    first, last = ports[0], ports[-1]
    if not 0 <= first <= last <= 65535:
        raise ConfigError(f"PROMETHEUS_PORT: expected ports in 0..65535 with first <= last, got {value!r}")
    return first, last


def describe_ports(ports: tuple[int, int]) -> str:
    first, last = ports
    return f"port {first}" if first == last else f"ports {first}-{last}"


def listen_first(
    ports: tuple[int, int], host: str, factory: Site, listen_tcp: Callable[..., IListeningPort]
) -> tuple[IListeningPort | None, str]:
    """Listen on the first port of the range that binds: ``(port, "")``, or ``(None, reason)`` if none does."""
    first, last = ports
    reason = ""
    for port in range(first, last + 1):
        try:
            return listen_tcp(port, factory, interface=host), ""
        except CannotListenError as exc:
            reason = str(exc.socketError)
        except OSError as exc:  # some reactors raise it directly (e.g. a port taken between two tries)
            reason = str(exc)
    return None, " ".join(reason.split())  # one line


def format_url(host: str, port: int, segments: list[str]) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + "/".join(quote(segment) for segment in segments)


# -- the extension -----------------------------------------------------------------
class PrometheusExporter:
    """Serve the crawler's metrics at ``http://PROMETHEUS_HOST:PROMETHEUS_PORT/PROMETHEUS_PATH``.

    Disable with ``PROMETHEUS_ENABLED = False``.  The listening port is opened
    in :meth:`from_crawler` and closed when the spider closes.
    """

    def __init__(
        self, crawler: Any, host: str = "127.0.0.1", ports: tuple[int, int] = (0, 0), path: str = "metrics"
    ) -> None:
        self.crawler = crawler
        self.host = host
        self.ports = ports
        self.segments = path_segments(path)
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = CrawlerCollector(crawler)
        self.registry.register(self.collector)
        self.request_duration = Histogram(
            "crawler_request_duration_seconds",
            "Download latency of responses, by stage (meta download_latency)",
            ["stage"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        #: The histogram's child of each stage, looked up once (``labels()`` validates and locks on every call).
        self._duration_by_stage: dict[str, Any] = {}
        self.listening: IListeningPort | None = None
        self.url: str | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        """Build, bind the port (metrics off with a warning if it cannot) and connect the signals."""
        settings = crawler.settings
        if not settings.getbool("PROMETHEUS_ENABLED", defaults.PROMETHEUS_ENABLED):
            raise NotConfigured
        ext = cls(
            crawler,
            host=str(defaults.get(settings, "PROMETHEUS_HOST")),
            ports=parse_ports(defaults.get(settings, "PROMETHEUS_PORT")),
            path=str(defaults.get(settings, "PROMETHEUS_PATH")),
        )
        ext.start()
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.response_received, signal=signals.response_received)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(ext.engine_stopped, signal=signals.engine_stopped)
        return ext

    def start(self, listen_tcp: Callable[..., IListeningPort] | None = None) -> str | None:
        """Listen (on the installed reactor unless ``listen_tcp`` is given); return the URL, or None
        (a warning) when no port of the range is free."""
        if listen_tcp is None:
            from twisted.internet import reactor

            listen_tcp = reactor.listenTCP  # type: ignore[attr-defined]
        site = QuietSite(build_root(self.segments, MetricsPage(self.registry)))
        self.listening, reason = listen_first(self.ports, self.host, site, listen_tcp)
        if self.listening is None:
            # the metrics never stop a crawl: it goes on without them
            logger.warning(
                "Prometheus: cannot listen on %s %s (%s): metrics are off for this crawl"
                " (choose a free port or a range, 0 for any, or set PROMETHEUS_ENABLED=False)",
                self.host, describe_ports(self.ports), reason,
            )
            self.crawler.stats.set_value("prometheus/url", None)
            return None
        self.url = format_url(self.host, self.listening.getHost().port, self.segments)
        self.crawler.stats.set_value("prometheus/url", self.url)
        logger.info("Prometheus metrics at %s", self.url)
        return self.url

    def stop(self) -> Deferred[None] | None:
        """Stop listening; the Deferred fires once the port is closed."""
        listening, self.listening = self.listening, None
        if listening is None:
            return None
        url = self.url
        stopped = listening.stopListening()
        if stopped is None:
            logger.info("Prometheus metrics no longer served at %s", url)
            return None
        stopped.addCallback(lambda _: logger.info("Prometheus metrics no longer served at %s", url))
        return stopped

    # -- signals -----------------------------------------------------------------
    def spider_opened(self, spider: Spider) -> None:
        """Record the URL (again) once the spider runs."""
        if self.url is not None:
            self.crawler.stats.set_value("prometheus/url", self.url)

    def response_received(self, response: Response, request: Request, **kwargs: Any) -> None:
        """Observe the download latency of ``request`` under its stage."""
        latency = request.meta.get("download_latency")
        if latency is None:
            return
        seconds = _number(latency)
        if seconds is None or math.isnan(seconds) or seconds < 0:
            return
        stage = str(request.meta.get("stage") or "other")
        child = self._duration_by_stage.get(stage)
        if child is None:
            child = self._duration_by_stage[stage] = self.request_duration.labels(stage=stage)
        child.observe(seconds)

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        """Stop listening; the spider closes once the port is closed."""
        await self._stop_and_wait()

    async def engine_stopped(self) -> None:
        """Stop listening, in case the spider never opened or closed (a crawl that failed to start)."""
        await self._stop_and_wait()

    async def _stop_and_wait(self) -> None:
        stopped = self.stop()
        if stopped is not None:
            await maybe_deferred_to_future(stopped)
