"""Progress reporter: pure helpers and the extension on fakes (no reactor), then a real crawl of a slowed shop."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from scrapy import Request
from scrapy.http import HtmlResponse
from scrapy.settings import Settings

from crawler.errors import ConfigError
from demoshop.catalogue import Catalogue
from demoshop.process import ShopProcess
from extensions.progress import (
    FINISHED,
    STARTED,
    LatencyReservoir,
    ProgressReporter,
    by_domain,
    format_duration,
    open_breakers,
    progress_line,
)
from tests.conftest import run_crawl

# --- pure helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "unknown"),
        (float("nan"), "unknown"),
        (float("inf"), "unknown"),
        (0, "0:00:00"),
        (-3, "0:00:00"),
        (0.4, "0:00:00"),
        (59.6, "0:01:00"),
        (61, "0:01:01"),
        (3599, "0:59:59"),
        (3600, "1:00:00"),
        (100_000, "27:46:40"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_reservoir_mean_and_nearest_rank_percentile():
    reservoir = LatencyReservoir(size=1000)
    assert reservoir.mean() is None and reservoir.percentile(95) is None
    for value in range(1, 101):  # 1..100
        reservoir.add(value / 100)
    assert len(reservoir) == 100
    assert reservoir.mean() == pytest.approx(0.505)
    assert reservoir.percentile(95) == pytest.approx(0.95)
    assert reservoir.percentile(50) == pytest.approx(0.50)
    assert reservoir.percentile(100) == pytest.approx(1.00)
    assert reservoir.percentile(0.1) == pytest.approx(0.01)
    reservoir.add(5.0)  # the sorted cache is invalidated
    assert reservoir.percentile(100) == 5.0


def test_reservoir_keeps_only_the_most_recent_values():
    reservoir = LatencyReservoir(size=10)
    for value in range(100):
        reservoir.add(value)
    assert len(reservoir) == 10
    assert reservoir.mean() == pytest.approx(94.5)  # 90..99
    assert reservoir.percentile(95) == 99


def test_reservoir_rejects_bad_arguments():
    with pytest.raises(ValueError):
        LatencyReservoir(size=0)
    with pytest.raises(ValueError):
        LatencyReservoir().percentile(0)
    with pytest.raises(ValueError):
        LatencyReservoir().percentile(101)


def test_domains_and_open_breakers_from_the_stats():
    stats = {
        "adaptive/concurrency/b.example": 3,
        "adaptive/concurrency/a.example": 8,
        "adaptive/concurrency/": 1,  # no domain: ignored
        "breaker/state/a.example": "closed",
        "breaker/state/b.example": "open",
        "breaker/state/c.example": SimpleNamespace(value="half_open"),  # a BreakerState
        "other": 1,
    }
    assert by_domain(stats, "adaptive/concurrency/") == {"a.example": 8, "b.example": 3}
    assert list(by_domain(stats, "adaptive/concurrency/")) == ["a.example", "b.example"]
    assert open_breakers(stats) == ["b.example (open)", "c.example (half_open)"]
    assert open_breakers({}) == []


def line(**overrides: Any) -> str:
    args: dict[str, Any] = {
        "pages": 1320, "pages_per_min": 3120.4, "items": 1200, "items_per_min": 2890.0,
        "fraction": 0.42, "eta_seconds": 17.2, "done": 1260, "expected": 3000, "basis": "total_count",
        "concurrency": {"a.example": 8, "b.example": 2.0}, "breakers": [],
    }  # fmt: skip
    return progress_line(**{**args, **overrides})


def test_progress_line_format():
    assert line() == (
        "Crawled 1320 pages (at 3120 pages/min), scraped 1200 items (at 2890 items/min); "
        "progress 42.0% (1260/3000 products), ETA 0:00:17; concurrency a.example=8, b.example=2; "
        "open breakers: none"
    )
    assert "\n" not in line()


def test_progress_line_unknowns_and_estimates():
    text = line(fraction=None, eta_seconds=None, expected=0, concurrency={}, breakers=["b.example (open)"])
    assert "progress unknown (1260/? products), ETA unknown; concurrency n/a; open breakers: b.example (open)" in text
    assert "(1260/~3100 products)" in line(expected=3100, basis="extrapolated")
    assert "(1260/3100 products)" in line(expected=3100, basis="last_page")


# --- the extension on fakes -----------------------------------------------------------------


class FakeStats:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get_value(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set_value(self, key: str, value: Any) -> None:
        self.values[key] = value

    def inc_value(self, key: str, count: int = 1, start: int = 0) -> None:
        self.values[key] = self.values.get(key, start) + count

    def get_stats(self) -> dict[str, Any]:
        return self.values


class FakeAccounting:
    """ProductAccounting's public API (count, outstanding, ended) over plain attributes."""

    def __init__(self) -> None:
        self.pending: dict[int, str] = {}
        self.counts = dict.fromkeys(("discovered", "saved", "rejected", "dead_lettered", "duplicates",
                                     "filtered", "failed", "pending"), 0)  # fmt: skip

    def count(self, term: str) -> int:
        return self.counts[term]

    def outstanding(self) -> int:
        return len(self.pending)

    def ended(self, terms: tuple[str, ...]) -> int:
        return sum(self.counts[t] for t in terms)


def reporter(accounting: FakeAccounting | None = None, **settings: Any) -> ProgressReporter:
    crawler = SimpleNamespace(stats=FakeStats(), settings=Settings({"LOGSTATS_INTERVAL": 10, **settings}))
    crawler.signals = SimpleNamespace(connect=lambda *a, **k: None)
    ext = ProgressReporter.from_crawler(crawler)  # type: ignore[arg-type]
    ext._accounting = accounting
    now = [100.0]
    ext.clock = lambda: now[0]
    ext.now = now  # type: ignore[attr-defined]
    return ext


def request(url: str, stage: str | None) -> Request:
    return Request(url, meta={"stage": stage} if stage else {})


def respond(ext: ProgressReporter, req: Request, latency: float) -> None:
    req.meta["download_latency"] = latency
    ext.response_received(HtmlResponse(req.url, body=b"<html></html>", request=req), req, None)  # type: ignore[arg-type]


def test_stage_counters_count_first_scheduling_and_one_end():
    ext = reporter()
    stats = ext.stats.values
    page = request("http://a.example/list/1", "list")
    ext.request_scheduled(page, None)  # type: ignore[arg-type]
    retry = page.replace(dont_filter=True)  # a retry or parked copy keeps the marker
    ext.request_scheduled(retry, None)  # type: ignore[arg-type]
    assert stats["stages/list/started"] == 1
    assert page.meta[STARTED] == ext.token
    respond(ext, retry, 0.2)
    ext.request_dead_lettered(retry)  # a 404 given up and then delivered: ends once
    assert stats["stages/list/finished"] == 1 and retry.meta[FINISHED] == ext.token

    product = request("http://a.example/p/1", "detail")
    duplicate = request("http://a.example/p/1", "detail")
    lost = request("http://a.example/p/2", "detail")
    for r in (product, duplicate, lost):
        ext.request_scheduled(r, None)  # type: ignore[arg-type]
    ext.request_dropped(duplicate, None)  # type: ignore[arg-type]
    ext.request_filtered(lost, reason="robots.txt")
    respond(ext, product, 0.1)
    assert stats["stages/detail/started"] == 3 and stats["stages/detail/finished"] == 3

    unscheduled = request("http://a.example/robots.txt", None)  # no stage: not counted
    ext.request_scheduled(unscheduled, None)  # type: ignore[arg-type]
    respond(ext, unscheduled, 0.3)
    foreign = request("http://a.example/list/9", "list")  # not scheduled by this crawl (e.g. a resumed job)
    foreign.meta[STARTED] = "someone-else"
    respond(ext, foreign, 0.3)
    assert set(ext.stages) == {"list", "detail"}
    assert stats["stages/list/finished"] == 1

    ext.update()  # the latency of every response of a stage counts, its own or not
    assert stats["stages/list/mean_seconds"] == pytest.approx(0.25)
    assert stats["stages/list/p95_seconds"] == pytest.approx(0.3)
    assert stats["stages/detail/mean_seconds"] == pytest.approx(0.1)


def test_snapshot_uses_the_accounting_and_publishes_the_estimate():
    accounting = FakeAccounting()
    ext = reporter(accounting)
    stats = ext.stats.values
    stats["catalog/expected_products"] = 120
    stats["catalog/expected_list_pages"] = 10
    # list page 1 done, 9 list pages scheduled, 12 products discovered, 2 saved, 1 rejected
    pages = [request(f"http://a.example/list/{n}", "list") for n in range(1, 11)]
    for page in pages:
        ext.request_scheduled(page, None)  # type: ignore[arg-type]
    respond(ext, pages[0], 0.05)
    accounting.counts.update(discovered=12, saved=2, rejected=1)
    accounting.pending = {n: f"u{n}" for n in range(9)}

    snapshot = ext.snapshot(ext.clock())
    assert (snapshot.detail_done, snapshot.detail_pending) == (3, 9)
    assert (snapshot.list_done, snapshot.list_pending) == (1, 9)
    assert (snapshot.products_discovered, snapshot.expected_products, snapshot.expected_list_pages) == (12, 120, 10)

    ext.update()
    assert stats["progress/fraction"] == pytest.approx(3 / 120, abs=1e-4)
    assert stats["progress/eta_seconds"] is None  # one snapshot: no rate yet
    assert stats["progress/basis"] == "total_count" and stats["progress/expected_total"] == 120
    ext.now[0] += 2.0  # type: ignore[attr-defined]
    # 20 product pages downloaded in 2 s (10/s), 9 more scheduled; 22 products committed by now
    products = [request(f"http://a.example/p/{n}", "detail") for n in range(29)]
    for product in products:
        ext.request_scheduled(product, None)  # type: ignore[arg-type]
    for product in products[:20]:
        respond(ext, product, 0.1)
    accounting.counts.update(saved=22)
    accounting.pending = {n: f"u{n}" for n in range(9)}
    ext.update()
    # remaining downloads: 9 products + 108 undiscovered + 9 list pages, at 10 requests/s
    # (measured on downloads, not on commits: 22 committed would read 9.5/s)
    assert stats["progress/eta_seconds"] == pytest.approx((9 + 108 + 9) / 10, abs=0.1)
    assert stats["progress/detail_rate"] == 0.0  # its meter starts at the first product download
    ext.now[0] += 1.0  # type: ignore[attr-defined]
    for product in products[20:25]:
        respond(ext, product, 0.1)
    ext.update()
    assert stats["progress/detail_rate"] == pytest.approx(5.0)
    assert stats["progress/updated_at"] is not None

    ext.update(finished=True)  # a finished crawl: nothing pending whatever the counters say
    assert stats["progress/fraction"] == 1.0 and stats["progress/eta_seconds"] == 0.0


def test_snapshot_in_flight_and_recent_latency():
    ext = reporter(None)
    assert ext.snapshot(ext.clock()).in_flight is None  # no engine (the fakes)
    assert ext.snapshot(ext.clock()).latency is None  # no response yet
    slots = {"a": SimpleNamespace(transferring={1, 2, 3}), "b": SimpleNamespace(transferring={4})}
    ext.crawler.engine = SimpleNamespace(downloader=SimpleNamespace(slots=slots))  # type: ignore[attr-defined]
    pages = [request(f"http://a.example/list/{n}", "list") for n in range(150)]
    for n, page in enumerate(pages):
        ext.request_scheduled(page, None)  # type: ignore[arg-type]
        respond(ext, page, 1.0 if n < 50 else 0.2)  # only the last RECENT_LATENCIES count
    snapshot = ext.snapshot(ext.clock())
    assert snapshot.in_flight == 4
    assert snapshot.latency == pytest.approx(0.2)
    assert ext.stats.values.get("stages/list/mean_seconds") is None  # published by update() only


def test_snapshot_latency_is_the_last_second_s():
    # A mean over a longer past lags a site that starts to queue, or still holds the queue before an outage.
    ext = reporter(None)
    pages = [request(f"http://a.example/list/{n}", "list") for n in range(73)]
    for page in pages:
        ext.request_scheduled(page, None)  # type: ignore[arg-type]
    for page in pages[:50]:
        respond(ext, page, 1.0)
    ext.now[0] += 5.0  # type: ignore[attr-defined]
    for page in pages[50:70]:
        respond(ext, page, 0.2)
    assert ext.snapshot(ext.clock()).latency == pytest.approx(0.2)  # the last second's 20 responses
    ext.now[0] += 5.0  # type: ignore[attr-defined]
    for page in pages[70:]:
        respond(ext, page, 0.4)
    # 3 responses in the last second: the last RECENT_LEAST (10) count
    assert ext.snapshot(ext.clock()).latency == pytest.approx((7 * 0.2 + 3 * 0.4) / 10)


@pytest.mark.parametrize(
    ("settings", "ceiling"),
    [
        ({"CONCURRENT_REQUESTS_PER_DOMAIN": 16, "ADAPTIVE_CONCURRENCY_MAX": 12, "CONCURRENT_REQUESTS": 32}, 24),
        ({"CONCURRENT_REQUESTS_PER_DOMAIN": 10, "ADAPTIVE_CONCURRENCY_MAX": 12, "CONCURRENT_REQUESTS": 32}, 20),
        ({"CONCURRENT_REQUESTS_PER_DOMAIN": 16, "ADAPTIVE_CONCURRENCY_MAX": 12, "CONCURRENT_REQUESTS": 18}, 18),
        ({"CONCURRENT_REQUESTS_PER_DOMAIN": 16, "ADAPTIVE_ENABLED": False, "CONCURRENT_REQUESTS": 64}, 32),
        ({"CONCURRENT_REQUESTS_PER_DOMAIN": 1, "ADAPTIVE_CONCURRENCY_MAX": 1, "CONCURRENT_REQUESTS": 1}, 6),
    ],
)
def test_snapshot_concurrency_limits_and_their_ceiling(settings: dict[str, Any], ceiling: int):
    # The controller's ceiling for the slots downloading now (never below their limits in force).
    ext = reporter(None, **settings)
    slots = {
        "a": SimpleNamespace(transferring={1, 2, 3}, concurrency=4),
        "b": SimpleNamespace(transferring={4}, concurrency=2),
        "idle": SimpleNamespace(transferring=set(), concurrency=8),  # not downloading: not counted
    }
    ext.crawler.engine = SimpleNamespace(downloader=SimpleNamespace(slots=slots))  # type: ignore[attr-defined]
    snapshot = ext.snapshot(ext.clock())
    assert (snapshot.in_flight, snapshot.concurrency, snapshot.concurrency_max) == (4, 6, ceiling)


def test_the_old_half_life_setting_is_reported_unused(caplog):
    with caplog.at_level("WARNING", logger="extensions.progress"):
        reporter(None, PROGRESS_HALF_LIFE=5)
    assert "PROGRESS_HALF_LIFE is no longer used" in caplog.text


def test_without_accounting_the_detail_stage_counters_stand_in():
    ext = reporter(None)
    products = [request(f"http://a.example/p/{n}", "detail") for n in range(4)]
    for product in products:
        ext.request_scheduled(product, None)  # type: ignore[arg-type]
    respond(ext, products[0], 0.1)
    snapshot = ext.snapshot(ext.clock())
    assert (snapshot.detail_done, snapshot.detail_pending, snapshot.products_discovered) == (1, 3, 4)


@pytest.mark.parametrize(
    "settings",
    [
        {"PROGRESS_INTERVAL": -1},
        {"PROGRESS_INTERVAL": "soon"},
        {"PROGRESS_RATE_WINDOW": 0},
        {"PROGRESS_RATE_WINDOW": 61},
        {"LOGSTATS_INTERVAL": -5},
    ],
)
def test_bad_settings_are_one_line_config_errors(settings):
    with pytest.raises(ConfigError, match="progress settings"):
        reporter(None, **settings)


# --- a real crawl -----------------------------------------------------------------------------

PRODUCTS, SEED, LATENCY = 300, 3, 0.05
LINE = re.compile(
    r"\[extensions\.progress\] INFO: (?P<final>Progress at close \((?P<reason>\w+)\): )?"
    r"Crawled (?P<pages>\d+) pages \(at (?P<ppm>\d+) pages/min\), scraped (?P<items>\d+) items \(at \d+ items/min\); "
    r"progress (?P<percent>\d+\.\d)% \((?P<done>\d+)/(?P<expected>\d+|~\d+|\?) products\), "
    r"ETA (?P<eta>\d+:\d\d:\d\d|unknown); concurrency (?P<concurrency>127\.0\.0\.1=\d+); open breakers: none$"
)


@pytest.fixture(scope="module")
def slow_crawl(tmp_path_factory):
    work = tmp_path_factory.mktemp("progress")
    with ShopProcess(products=PRODUCTS, seed=SEED, extra_args=["--latency", str(LATENCY)]) as shop:
        result = run_crawl(
            shop.list_url, work / "catalog.db", work / "stats",
            "-s", "PROGRESS_INTERVAL=0.5", "-s", "LOGSTATS_INTERVAL=1", "-s", "PROMETHEUS_PORT=0",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_progress_lines_replace_logstats(slow_crawl):
    log = slow_crawl.stderr
    matches = [m for m in map(LINE.search, log.splitlines()) if m]
    periodic = [m for m in matches if not m["final"]]
    finals = [m for m in matches if m["final"]]
    assert len(periodic) >= 2, log[-3000:]
    assert any(m["eta"] != "unknown" and 0 < float(m["percent"]) < 100 for m in periodic), log[-3000:]
    assert all(m["expected"] == str(PRODUCTS) for m in periodic)
    pages = [int(m["pages"]) for m in periodic]
    assert pages == sorted(pages) and int(periodic[-1]["ppm"]) > 0
    assert len(finals) == 1 and finals[0]["reason"] == "finished"
    assert (finals[0]["percent"], finals[0]["done"], finals[0]["eta"]) == ("100.0", str(PRODUCTS), "0:00:00")
    progress_lines = [ln for ln in log.splitlines() if "[extensions.progress]" in ln]
    assert len(progress_lines) == len(matches), "every progress line is one well-formed line"
    assert "[scrapy.extensions.logstats]" not in log  # Scrapy's LogStats is replaced


def test_final_progress_and_stage_stats(slow_crawl):
    stats = slow_crawl.stats
    assert stats["progress/fraction"] == 1.0
    assert stats["progress/eta_seconds"] == 0.0
    assert stats["progress/expected_total"] == PRODUCTS
    assert stats["progress/basis"] == "total_count"
    assert stats["progress/detail_rate"] > 0
    list_pages = stats["catalog/list_pages"]
    assert stats["stages/list/started"] == stats["stages/list/finished"] == list_pages
    assert stats["stages/detail/started"] == stats["stages/detail/finished"] == stats["products/discovered"] == PRODUCTS
    # every response but robots.txt belongs to a stage (no faults on this shop: no retry, no dead letter)
    responses = stats["response_received_count"] - stats.get("robotstxt/response_count", 0)
    assert stats["stages/list/finished"] + stats["stages/detail/finished"] == responses
    for stage in ("list", "detail"):
        mean, p95 = stats[f"stages/{stage}/mean_seconds"], stats[f"stages/{stage}/p95_seconds"]
        assert LATENCY * 0.8 <= mean <= p95 < 10, (stage, mean, p95)
    assert stats["responses_per_minute"] > 0 and stats["items_per_minute"] > 0
    saved = sum(t["expected"] == "saved" for t in Catalogue(PRODUCTS, SEED).truth())
    assert stats["item_scraped_count"] == saved
    assert stats["products/identity_holds"] is True
