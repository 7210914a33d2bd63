"""Prometheus exporter: the collector on fake crawlers (no reactor), a real crawl scraped live, the dashboard."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from scrapy import Request
from scrapy.exceptions import NotConfigured
from scrapy.settings import Settings
from twisted.internet.error import CannotListenError

from crawler.errors import ConfigError
from extensions.prometheus import (
    CrawlerCollector,
    PrometheusExporter,
    format_url,
    listen_first,
    metric_name,
    parse_ports,
    queue_sizes,
)
from tests.conftest import ROOT, catalog_command, run_crawl

DASHBOARD = ROOT / "docs" / "grafana" / "catalog-crawler-dashboard.json"


# -- fakes ---------------------------------------------------------------------------
class FakeStats:
    """The part of a MemoryStatsCollector the collector reads."""

    def __init__(self, stats: dict[str, Any] | None = None) -> None:
        self._stats = dict(stats or {})

    def get_stats(self) -> dict[str, Any]:
        return self._stats

    def set_value(self, key: str, value: Any) -> None:
        self._stats[key] = value


class FakeCrawler:
    def __init__(self, stats: dict[str, Any] | None = None, engine: Any = None, settings: Settings | None = None):
        self.stats = FakeStats(stats)
        self._engine = engine
        self.settings = settings or Settings()

    @property
    def engine(self) -> Any:
        if self._engine is None:  # like Scrapy's _LateAttribute before the crawl starts
            raise RuntimeError("crawler.engine is not set yet")
        return self._engine


class FakeScheduler:
    def __init__(self, size: int, waiting: int) -> None:
        self.size, self._waiting = size, waiting

    def __len__(self) -> int:
        return self.size

    @property
    def waiting(self) -> int:
        return self._waiting


def fake_engine(scheduler: Any, active: int) -> SimpleNamespace:
    """An engine as Scrapy 2.19 has it: ``_slot.scheduler`` and ``downloader.active`` (a set)."""
    return SimpleNamespace(
        _slot=SimpleNamespace(scheduler=scheduler), downloader=SimpleNamespace(active=set(range(active)))
    )


STATS: dict[str, Any] = {
    "downloader/response_status_count/200": 120,
    "downloader/response_status_count/503": 4,
    "response_received_count": 124,
    "item_scraped_count": 100,
    "item_dropped_count": 7,
    "elapsed_time_seconds": 12.5,
    "start_time": datetime(2026, 11, 26, 6, 0, 0, tzinfo=UTC),
    "naive_time": datetime(2026, 11, 26, 6, 0, 0),  # Scrapy used naive UTC datetimes once
    "store/write_seconds": timedelta(seconds=1.5),
    "products/identity_holds": True,
    "stats/flag_off": False,
    "finish_reason": "finished",
    "prometheus/url": "http://127.0.0.1:9410/metrics",
    "nested": {"a": 1},
    "nothing": None,
    # two keys that sanitise to the same name: the first in sorted order wins
    "dup/key": 1,
    "dup_key": 2,
    # published by the project's components
    "progress/fraction": 0.25,
    "progress/eta_seconds": 42.0,
    "progress/detail_rate": 30.0,
    "progress/list_rate": 2.5,
    "adaptive/concurrency/shop.example": 6,
    "adaptive/concurrency/slow.example": 1,
    "breaker/state/shop.example": "closed",
    "breaker/state/dead.example": "open",
    "breaker/state/flaky.example": "half_open",
    "breaker/trips": 3,
    "retry/reason_count/http_503": 4,
    "retry/reason_count/timeout": 1,
    "dlq/added": 2,
    "products/discovered": 110,
    "products/saved": 100,
    "products/rejected": 7,
    "products/dead_lettered": 2,
    "products/duplicates": 1,
    "products/lost": 0,
}


def registry_of(crawler: Any) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(CrawlerCollector(crawler))
    return registry


# -- unit: names and values -------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("downloader/response_status_count/200", "scrapy_downloader_response_status_count_200"),
        ("item_scraped_count", "scrapy_item_scraped_count"),
        ("log_count/WARNING", "scrapy_log_count_WARNING"),
        (
            "retry/reason_count/twisted.internet.error.TimeoutError",
            "scrapy_retry_reason_count_twisted_internet_error_TimeoutError",
        ),
        ("a-b c:d", "scrapy_a_b_c_d"),
    ],
)
def test_metric_names_are_sanitised(key, name):
    assert metric_name(key) == name


def test_every_numeric_stat_is_a_gauge():
    registry = registry_of(FakeCrawler(STATS))
    value = registry.get_sample_value
    assert value("scrapy_downloader_response_status_count_200") == 120
    assert value("scrapy_downloader_response_status_count_503") == 4
    assert value("scrapy_item_scraped_count") == 100
    assert value("scrapy_elapsed_time_seconds") == 12.5
    assert value("scrapy_products_identity_holds") == 1.0
    assert value("scrapy_stats_flag_off") == 0.0
    assert value("scrapy_start_time_seconds") == STATS["start_time"].timestamp()
    assert value("scrapy_naive_time_seconds") == STATS["start_time"].timestamp()
    assert value("scrapy_store_write_seconds_seconds") == 1.5
    # numbers published by components are plain stats too
    assert value("scrapy_breaker_trips") == 3
    assert value("scrapy_adaptive_concurrency_shop_example") == 6
    names = {m.name for m in registry.collect()}
    # non-numeric values are skipped
    for skipped in ("scrapy_finish_reason", "scrapy_prometheus_url", "scrapy_nested", "scrapy_nothing"):
        assert skipped not in names
    assert "scrapy_start_time" not in names
    gauges = [m for m in registry.collect() if m.name.startswith("scrapy_")]
    assert all(m.type == "gauge" for m in gauges)


def test_duplicate_names_after_sanitising_keep_the_first_key(caplog):
    collector = CrawlerCollector(FakeCrawler(STATS))
    families = list(collector.collect())
    dup = [m for m in families if m.name == "scrapy_dup_key"]
    assert len(dup) == 1 and [s.value for s in dup[0].samples] == [1.0]  # "dup/key" < "dup_key"
    assert "dup_key" in caplog.text and "not exported" in caplog.text
    names = [m.name for m in families]
    assert len(names) == len(set(names)), "no family name may repeat"
    caplog.clear()
    list(collector.collect())
    assert "not exported" not in caplog.text, "a collision is reported once"


def test_labelled_families():
    registry = registry_of(FakeCrawler(STATS))
    value = registry.get_sample_value
    assert value("crawler_progress_ratio") == 0.25
    assert value("crawler_eta_seconds") == 42.0
    assert value("crawler_rate_per_second", {"stage": "detail"}) == 30.0
    assert value("crawler_rate_per_second", {"stage": "list"}) == 2.5
    assert value("crawler_domain_concurrency", {"domain": "shop.example"}) == 6
    assert value("crawler_domain_concurrency", {"domain": "slow.example"}) == 1
    for domain, current in [("shop.example", "closed"), ("dead.example", "open"), ("flaky.example", "half_open")]:
        for state in ("closed", "open", "half_open"):
            expected = 1.0 if state == current else 0.0
            assert value("crawler_breaker_state", {"domain": domain, "state": state}) == expected, (domain, state)
    assert value("crawler_breaker_trips_total") == 3
    assert value("crawler_retries_total", {"reason": "http_503"}) == 4
    assert value("crawler_retries_total", {"reason": "timeout"}) == 1
    assert value("crawler_dead_letters_total") == 2
    assert value("crawler_products_discovered_total") == 110
    outcomes = {"saved": 100, "rejected": 7, "dead_lettered": 2, "duplicates": 1}
    for outcome, count in outcomes.items():
        assert value("crawler_products_total", {"outcome": outcome}) == count
    # outcomes without a stat (not yet counted) have no sample; "lost" is not an outcome
    assert value("crawler_products_total", {"outcome": "filtered"}) is None
    assert value("crawler_products_total", {"outcome": "pending"}) is None
    assert value("crawler_products_total", {"outcome": "lost"}) is None
    types = {m.name: m.type for m in registry.collect()}
    assert types["crawler_products"] == "counter" and types["crawler_breaker_state"] == "gauge"


def test_absent_stats_emit_no_family():
    families = list(CrawlerCollector(FakeCrawler({"item_scraped_count": 1})).collect())
    assert [m.name for m in families] == ["scrapy_item_scraped_count"]
    # a non-numeric value of a family's stat is skipped too
    odd = {"progress/eta_seconds": None, "adaptive/concurrency/x": "n/a", "dlq/added": "?"}
    assert list(CrawlerCollector(FakeCrawler(odd)).collect()) == []


def test_queue_sizes_are_read_live_and_guarded():
    scheduler = FakeScheduler(size=12, waiting=3)
    crawler = FakeCrawler({}, engine=fake_engine(scheduler, active=2))
    registry = registry_of(crawler)
    value = registry.get_sample_value
    assert value("crawler_queue_size", {"queue": "scheduler"}) == 12
    assert value("crawler_queue_size", {"queue": "delayed"}) == 3
    assert value("crawler_queue_size", {"queue": "downloader_active"}) == 2
    scheduler.size, scheduler._waiting = 40, 0  # read at scrape time, not copied
    assert value("crawler_queue_size", {"queue": "scheduler"}) == 40
    assert value("crawler_queue_size", {"queue": "delayed"}) == 0

    # before the crawl starts (engine not set) or after the slot is gone: nothing, no error
    assert queue_sizes(FakeCrawler({})) == {}
    closed = SimpleNamespace(_slot=None, downloader=SimpleNamespace(active=set()))
    assert queue_sizes(FakeCrawler({}, engine=closed)) == {"downloader_active": 0}
    # a plain Scrapy scheduler has no "waiting"; one that cannot tell its length is skipped
    plain = SimpleNamespace(__len__=None)
    assert queue_sizes(FakeCrawler({}, engine=fake_engine(plain, active=1))) == {"downloader_active": 1}
    # Scrapy 2.19's public engine.scheduler is preferred
    public = SimpleNamespace(scheduler=FakeScheduler(5, 1), downloader=SimpleNamespace(active=set()))
    assert queue_sizes(FakeCrawler({}, engine=public)) == {"scheduler": 5, "delayed": 1, "downloader_active": 0}


@pytest.mark.parametrize("accept", ["", "application/openmetrics-text; version=1.0.0; charset=utf-8"])
def test_exposition_is_valid_in_both_formats(accept):
    exporter = PrometheusExporter(FakeCrawler(STATS, engine=fake_engine(FakeScheduler(3, 1), 1)))
    observe(exporter, "detail", 0.02)
    encoder, content_type = choose_encoder(accept)
    text = encoder(exporter.registry).decode()
    parse = parse_openmetrics if "openmetrics" in content_type else parse_text
    families = {family.name: family for family in parse(text)}
    assert "scrapy_item_scraped_count" in families
    assert "crawler_request_duration_seconds" in families
    assert "crawler_products" in families or "crawler_products_total" in families


# -- unit: histogram, registries ----------------------------------------------------------
def observe(exporter: PrometheusExporter, stage: str | None, latency: float | None) -> None:
    meta: dict[str, Any] = {}
    if stage is not None:
        meta["stage"] = stage
    if latency is not None:
        meta["download_latency"] = latency
    request = Request("http://shop.example/x", meta=meta)
    exporter.response_received(response=None, request=request, spider=None)  # type: ignore[arg-type]


def test_request_duration_histogram_by_stage():
    exporter = PrometheusExporter(FakeCrawler({}))
    for latency in (0.004, 0.02, 0.3, 45.0):
        observe(exporter, "detail", latency)
    observe(exporter, "list", 0.2)
    observe(exporter, None, 0.01)  # robots.txt and the like
    observe(exporter, "detail", None)  # no latency (e.g. a cached response): not observed
    value = exporter.registry.get_sample_value
    bucket = "crawler_request_duration_seconds_bucket"
    assert value(bucket, {"stage": "detail", "le": "0.005"}) == 1
    assert value(bucket, {"stage": "detail", "le": "0.025"}) == 2
    assert value(bucket, {"stage": "detail", "le": "0.5"}) == 3
    assert value(bucket, {"stage": "detail", "le": "60.0"}) == 4
    assert value(bucket, {"stage": "detail", "le": "+Inf"}) == 4
    assert value("crawler_request_duration_seconds_count", {"stage": "detail"}) == 4
    assert value("crawler_request_duration_seconds_sum", {"stage": "detail"}) == pytest.approx(45.324)
    assert value("crawler_request_duration_seconds_count", {"stage": "list"}) == 1
    assert value("crawler_request_duration_seconds_count", {"stage": "other"}) == 1


def test_two_crawlers_in_one_process_do_not_collide():
    first = PrometheusExporter(FakeCrawler({"item_scraped_count": 1, "products/saved": 1}))
    second = PrometheusExporter(FakeCrawler({"item_scraped_count": 2, "products/saved": 2}))
    observe(first, "detail", 0.01)
    observe(second, "detail", 0.01)
    observe(second, "detail", 0.01)
    assert first.registry is not second.registry
    for exporter, n in ((first, 1), (second, 2)):
        value = exporter.registry.get_sample_value
        assert value("scrapy_item_scraped_count") == n
        assert value("crawler_products_total", {"outcome": "saved"}) == n
        assert value("crawler_request_duration_seconds_count", {"stage": "detail"}) == n
    # nothing went to the global registry
    assert REGISTRY.get_sample_value("crawler_request_duration_seconds_count", {"stage": "detail"}) is None
    assert REGISTRY.get_sample_value("scrapy_item_scraped_count") is None


def test_disabled_is_not_configured():
    crawler = FakeCrawler({}, settings=Settings({"PROMETHEUS_ENABLED": "False"}))
    with pytest.raises(NotConfigured):
        PrometheusExporter.from_crawler(crawler)  # type: ignore[arg-type]


# -- unit: ports and URL ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (9410, (9410, 9410)),
        ("9410", (9410, 9410)),
        (0, (0, 0)),
        ("0", (0, 0)),
        ([9410, 9430], (9410, 9430)),
        ((9410, 9430), (9410, 9430)),
        ([9410], (9410, 9410)),
        ("9410,9430", (9410, 9430)),
        ("9410-9430", (9410, 9430)),
        ("[9410, 9430]", (9410, 9430)),
        (range(9410, 9431), (9410, 9430)),
    ],
)
def test_parse_ports(value, expected):
    assert parse_ports(value) == expected


@pytest.mark.parametrize("value", ["", "http", [1, 2, 3], [9430, 9410], 70000, -1, True, 9410.5, None, []])
def test_bad_ports_are_one_line_errors(value):
    with pytest.raises(ConfigError, match="PROMETHEUS_PORT") as info:
        parse_ports(value)
    assert "\n" not in str(info.value)


class FakePort:
    def __init__(self, port: int) -> None:
        self.port = port

    def getHost(self) -> SimpleNamespace:  # noqa: N802 (Twisted's name)
        return SimpleNamespace(port=self.port)


def fake_listen(busy: set[int], calls: list[tuple[int, str]]):
    def listen_tcp(port: int, factory: Any, interface: str) -> FakePort:
        calls.append((port, interface))
        if port in busy:
            raise CannotListenError(interface, port, OSError(98, "Address already in use"))
        return FakePort(port)

    return listen_tcp


def test_a_port_range_is_tried_in_turn():
    calls: list[tuple[int, str]] = []
    port, _ = listen_first((9410, 9430), "127.0.0.1", None, fake_listen({9410, 9411}, calls))  # type: ignore[arg-type]
    assert port is not None and port.getHost().port == 9412
    assert calls == [(9410, "127.0.0.1"), (9411, "127.0.0.1"), (9412, "127.0.0.1")]


def test_no_free_port_in_the_range_gives_the_reason():
    calls: list[tuple[int, str]] = []
    port, reason = listen_first((9410, 9412), "127.0.0.1", None, fake_listen({9410, 9411, 9412}, calls))  # type: ignore[arg-type]
    assert port is None
    assert "\n" not in reason and "Address already in use" in reason
    assert [p for p, _ in calls] == [9410, 9411, 9412]


def test_an_oserror_from_the_reactor_is_a_busy_port_too():
    def listen_tcp(port: int, factory: Any, interface: str) -> FakePort:
        if port == 9410:
            raise OSError(98, "Address already in use")
        return FakePort(port)

    port, _ = listen_first((9410, 9411), "127.0.0.1", None, listen_tcp)  # type: ignore[arg-type]
    assert port is not None and port.getHost().port == 9411


def test_start_records_the_url_in_the_stats(caplog):
    crawler = FakeCrawler({})
    exporter = PrometheusExporter(crawler, host="127.0.0.1", ports=(0, 0), path="/ops/metrics/")
    caplog.set_level("INFO")
    url = exporter.start(listen_tcp=lambda port, factory, interface: FakePort(41234))
    assert url == "http://127.0.0.1:41234/ops/metrics"
    assert crawler.stats.get_stats()["prometheus/url"] == url
    assert url in caplog.text


def test_format_url():
    assert format_url("127.0.0.1", 9410, ["metrics"]) == "http://127.0.0.1:9410/metrics"
    assert format_url("::1", 9410, ["metrics"]) == "http://[::1]:9410/metrics"
    assert format_url("localhost", 80, []) == "http://localhost:80/"


# -- integration: a real crawl, scraped while it runs ------------------------------------------
URL_LINE = re.compile(r"Prometheus metrics at (http://\S+)")
REQUIRED = (
    "scrapy_item_scraped_count",
    "scrapy_response_received_count",
    "scrapy_downloader_response_status_count_200",
    "scrapy_start_time_seconds",
    "crawler_products_total",
    "crawler_products_discovered_total",
    "crawler_queue_size",
    "crawler_dead_letters_total",
)
DETAIL_BUCKET = re.compile(r'^crawler_request_duration_seconds_bucket\{(?=[^}]*stage="detail")[^}]*\} ', re.M)


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            return response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None


def _complete(body: str | None) -> bool:
    return body is not None and all(name in body for name in REQUIRED) and bool(DETAIL_BUCKET.search(body))


def _listening(pid: int, port: int) -> list[str]:
    """Addresses process ``pid`` listens on at ``port``."""
    conns = psutil.Process(pid).net_connections(kind="tcp")
    return [c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN and c.laddr.port == port]


def test_metrics_are_served_during_the_crawl_and_not_after(shop, tmp_path):
    db, stats_dir = tmp_path / "catalog.db", tmp_path / "stats"
    cmd = catalog_command(
        shop.list_url, "-s", f"DATABASE_URL=sqlite:///{db}", "-s", f"STATS_DUMP_DIR={stats_dir}",
        "-s", "PROMETHEUS_PORT=0", "-s", "CONCURRENT_REQUESTS=2", "-s", "DOWNLOAD_DELAY=0.02",
    )  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and proc.poll() is None and time.monotonic() < deadline:
            url = next((m.group(1) for line in list(lines) if (m := URL_LINE.search(line))), None)
            time.sleep(0.02)
        assert url is not None, "".join(lines)[-3000:]
        host, port = re.match(r"http://([^:/]+):(\d+)/metrics$", url).groups()  # type: ignore[union-attr]
        assert host == "127.0.0.1" and int(port) > 0

        body = None
        while not _complete(body) and proc.poll() is None:
            body = _get(url) or body
            time.sleep(0.1)
        assert _complete(body), f"scraped during the crawl:\n{body}\n{''.join(lines)[-2000:]}"
        assert proc.poll() is None, "the crawl should still be running (slow it down?)"
        assert _listening(proc.pid, int(port)) == ["127.0.0.1"]
        families = {f.name for f in parse_text(body)}  # valid exposition
        assert {"crawler_request_duration_seconds", "crawler_products", "scrapy_item_scraped_count"} <= families
        assert _get(url.rsplit("/", 1)[0] + "/nothing-here") is None  # only the metrics path is served

        proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
    log = "".join(lines)
    assert proc.returncode == 0, log[-3000:]
    assert f"Prometheus metrics no longer served at {url}" in log
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", int(port)), timeout=5):
        pass
    (dump,) = stats_dir.glob("catalog-*.json")
    assert json.loads(dump.read_text())["stats"]["prometheus/url"] == url


def test_a_busy_metrics_port_never_kills_the_crawl(shop, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_crawl(shop.list_url, tmp_path / "c.db", tmp_path / "stats", "-s", f"PROMETHEUS_PORT={port}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert f"Prometheus: cannot listen on 127.0.0.1 port {port}" in result.stderr
    assert "metrics are off for this crawl" in result.stderr
    assert result.stats["prometheus/url"] is None


# -- the Grafana dashboard -------------------------------------------------------------------
METRIC_REF = re.compile(r"\b((?:scrapy|crawler)_[A-Za-z0-9_]+)")


def exported_sample_names() -> set[str]:
    """Every sample name the exporter emits for a crawl with all the stats above and some latencies."""
    stats = {**STATS, "products/filtered": 0, "products/pending": 0}
    exporter = PrometheusExporter(FakeCrawler(stats, engine=fake_engine(FakeScheduler(3, 1), 1)))
    observe(exporter, "detail", 0.02)
    observe(exporter, "list", 0.02)
    return {sample.name for family in exporter.registry.collect() for sample in family.samples}


def all_panels(panels: list[dict]) -> list[dict]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(all_panels(panel.get("panels", [])))
    return out


def test_dashboard_is_importable_and_uses_exported_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert any(i["name"] == "DS_PROMETHEUS" and i["pluginId"] == "prometheus" for i in dashboard["__inputs"])
    assert dashboard["uid"] and dashboard["title"]
    panels = all_panels(dashboard["panels"])
    assert len({p["id"] for p in panels}) == len(panels)
    emitted = exported_sample_names()
    referenced: set[str] = set()
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(METRIC_REF.findall(target["expr"]))
            assert names, (panel["title"], target["expr"])
            assert names <= emitted, f"{panel['title']}: {sorted(names - emitted)} are not exported"
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
            referenced |= names
    for variable in dashboard["templating"]["list"]:
        assert set(METRIC_REF.findall(variable["definition"])) <= emitted
    titles = " / ".join(p["title"].lower() for p in panels)
    for word in ("progress", "eta", "pages/s", "items/s", "outcome", "concurrency", "breaker", "dead letters",
                 "queue", "p95", "retries"):  # fmt: skip
        assert word in titles, word
    wanted = {
        "crawler_progress_ratio", "crawler_eta_seconds", "scrapy_response_received_count", "scrapy_item_scraped_count",
        "crawler_products_total", "crawler_domain_concurrency", "crawler_breaker_state", "crawler_dead_letters_total",
        "crawler_queue_size", "crawler_request_duration_seconds_bucket", "crawler_retries_total",
    }  # fmt: skip
    assert wanted <= referenced, sorted(wanted - referenced)
    exprs = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.95," in exprs
