"""Stats dump: document sections and the close sequence on fakes, then a live file polled during a real crawl."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from scrapy.settings import Settings

from crawler.errors import ConfigError
from demoshop.catalogue import Catalogue
from demoshop.process import ShopProcess
from extensions.stats_dump import StatsDump, domains_section, progress_section, stages_section
from tests.conftest import ROOT, catalog_command

# --- sections (pure) ---------------------------------------------------------------------------


def test_sections_from_the_stats():
    stats = {
        "progress/fraction": 0.5, "progress/eta_seconds": None, "progress/basis": "total_count",
        "progress/detail_rate": 100.0, "progress/list_rate": 8.0, "progress/expected_total": 3000,
        "stages/list/started": 250, "stages/list/finished": 100, "stages/list/mean_seconds": 0.05,
        "stages/detail/started": 1200, "stages/detail/p95_seconds": 0.2, "stages/detail/unknown": 1,
        "adaptive/concurrency/a.example": 8, "adaptive/delay/a.example": 0.0,
        "breaker/state/a.example": "closed", "breaker/state/b.example": SimpleNamespace(value="open"),
        "item_scraped_count": 5,
    }  # fmt: skip
    assert progress_section(stats) == {
        "fraction": 0.5, "eta_seconds": None, "detail_rate": 100.0, "list_rate": 8.0,
        "basis": "total_count", "expected_total": 3000, "updated_at": None,
    }  # fmt: skip
    assert stages_section(stats) == {
        "detail": {"started": 1200, "finished": None, "mean_seconds": None, "p95_seconds": 0.2},
        "list": {"started": 250, "finished": 100, "mean_seconds": 0.05, "p95_seconds": None},
    }
    assert domains_section(stats) == {
        "a.example": {"concurrency": 8, "delay": 0.0, "breaker": "closed"},
        "b.example": {"concurrency": None, "delay": None, "breaker": "open"},
    }
    assert progress_section({})["fraction"] is None and stages_section({}) == {} and domains_section({}) == {}


# --- the extension on a fake crawler -------------------------------------------------------------


class FakeStats:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def set_value(self, key: str, value: Any) -> None:
        self.values[key] = value

    def get_stats(self) -> dict[str, Any]:
        return self.values


def dump_ext(tmp_path: Path, **settings: Any) -> StatsDump:
    crawler = SimpleNamespace(
        stats=FakeStats({"start_time": datetime(2026, 11, 26, tzinfo=UTC), "progress/fraction": 0.25}),
        settings=Settings({"STATS_DUMP_DIR": str(tmp_path), "STATS_DUMP_INTERVAL": 0, **settings}),
        signals=SimpleNamespace(connect=lambda *a, **k: None),
    )
    return StatsDump.from_crawler(crawler)  # type: ignore[arg-type]


def test_final_dump_is_rewritten_when_a_stat_changes_after_spider_closed(tmp_path):
    ext = dump_ext(tmp_path, CRAWL_PROFILE="saver")
    spider = SimpleNamespace(name="catalog", site="csa_iot")
    ext.spider_opened(spider)  # type: ignore[arg-type]
    assert ext.path is not None and not ext.path.exists()  # interval 0: written only at close
    ext.spider_closed(spider, "finished")  # type: ignore[arg-type]
    first = json.loads(ext.path.read_text())
    assert first["running"] is False and first["finish_reason"] == "finished" and first["profile"] == "saver"
    assert first["progress"]["fraction"] == 0.25 and first["stats"]["start_time"].startswith("2026-11-26")
    assert set(first) == {"spider", "site", "finish_reason", "running", "updated_at", "profile", "progress",
                          "stages", "domains", "stats"}  # fmt: skip

    mtime = ext.path.stat().st_mtime_ns
    ext.engine_stopped()  # nothing changed: not rewritten
    assert ext.path.stat().st_mtime_ns == mtime
    ext.crawler.stats.set_value("dlq/failed", 1)  # an async spider_closed handler finishing late
    ext.write_live(spider)  # type: ignore[arg-type]  # a periodic write after close does nothing
    assert "dlq/failed" not in json.loads(ext.path.read_text())["stats"]
    ext.engine_stopped()
    final = json.loads(ext.path.read_text())
    assert final["stats"]["dlq/failed"] == 1 and final["running"] is False
    assert list(tmp_path.iterdir()) == [ext.path]  # no temporary file left


@pytest.mark.parametrize("value", [-1, "often"])
def test_bad_interval_is_a_one_line_config_error(tmp_path, value):
    with pytest.raises(ConfigError, match="STATS_DUMP_INTERVAL"):
        dump_ext(tmp_path, STATS_DUMP_INTERVAL=value)


# --- a live file during a real crawl -------------------------------------------------------------

PRODUCTS, SEED, LATENCY = 300, 3, 0.05
STATS_LOG = re.compile(r"\[scrapy\.statscollectors\] INFO: Dumping Scrapy stats:\n(\{.*?\})\n", re.S)


def logged_final_stats(log: str) -> dict[str, Any]:
    """The scalar stats of Scrapy's own "Dumping Scrapy stats" block (logged after spider_closed)."""
    match = STATS_LOG.search(log)
    assert match, log[-3000:]
    found = {}
    for key, value in re.findall(r"^[ {]'([^']+)': (.+?),?$", match.group(1), re.M):
        try:
            found[key] = ast.literal_eval(value.rstrip("}"))
        except (ValueError, SyntaxError):
            pass  # datetimes and the like
    return found


@pytest.fixture(scope="module")
def live_crawl(tmp_path_factory):
    work = tmp_path_factory.mktemp("stats_dump")
    stats_dir = work / "stats"
    reads: list[dict] = []
    with ShopProcess(products=PRODUCTS, seed=SEED, extra_args=["--latency", str(LATENCY)]) as shop:
        cmd = catalog_command(
            shop.list_url, "-s", f"DATABASE_URL=sqlite:///{work / 'catalog.db'}", "-s", f"STATS_DUMP_DIR={stats_dir}",
            "-s", "STATS_DUMP_INTERVAL=0.5", "-s", "PROGRESS_INTERVAL=0.5", "-s", "PROMETHEUS_PORT=0",
        )  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
        reader.start()
        try:
            deadline = time.monotonic() + 240
            while proc.poll() is None and time.monotonic() < deadline:
                for path in stats_dir.glob("catalog-*.json"):
                    text = path.read_text()
                    running = proc.poll() is None
                    reads.append({"path": path, "document": json.loads(text), "crawl_running": running})
                time.sleep(0.01)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(timeout=10)
    log = "".join(lines)
    assert proc.returncode == 0, log[-3000:]
    return stats_dir, reads, log


def test_the_live_file_is_valid_json_at_every_read_and_says_running(live_crawl):
    _, reads, log = live_crawl
    during = [r for r in reads if r["crawl_running"] and r["document"]["running"]]
    assert len(reads) >= 50, f"only {len(reads)} reads of the live file"  # each one parsed above
    assert len(during) >= 20, log[-3000:]
    assert len({r["path"] for r in reads}) == 1
    stamps = {r["document"]["updated_at"] for r in during}
    assert len(stamps) >= 3, "rewritten every STATS_DUMP_INTERVAL"
    fractions = [r["document"]["progress"]["fraction"] for r in during if r["document"]["progress"]["fraction"]]
    assert any(0 < f < 1 for f in fractions), fractions
    assert fractions == sorted(fractions)
    document = during[-1]["document"]
    assert document["finish_reason"] is None and document["profile"] == "balanced"
    assert document["progress"]["basis"] == "total_count" and document["progress"]["expected_total"] == PRODUCTS
    assert document["stages"]["detail"]["started"] > 0
    assert document["domains"]["127.0.0.1"]["concurrency"] >= 1
    assert document["stats"]["progress/fraction"] == document["progress"]["fraction"]


def test_after_the_crawl_the_same_file_is_the_final_dump(live_crawl):
    stats_dir, reads, log = live_crawl
    (path,) = stats_dir.glob("catalog-*.json")
    assert path == reads[0]["path"]
    assert [p.name for p in stats_dir.iterdir()] == [path.name]  # no temporary file left behind
    document = json.loads(path.read_text())
    running_doc = next(r["document"] for r in reads if r["document"]["running"])
    assert set(document) == set(running_doc)  # the same document shape
    assert document["running"] is False and document["finish_reason"] == "finished"
    stats = document["stats"]
    assert f"Stats written to {path}" in log
    # the file holds the crawl's final stats: those Scrapy logs after every spider_closed handler ran
    logged = logged_final_stats(log)
    for key in ("finish_reason", "item_scraped_count", "response_received_count",
                "products/saved", "progress/fraction", "stages/detail/finished", "dlq/added"):  # fmt: skip
        assert stats[key] == logged[key], key
    # the verdict and the exit status come later, when the engine stops (after the last writes
    # committed, after Scrapy logged its stats): the file has them
    assert stats["outcome/exit_status"] == 0 and stats["products/identity"].startswith("discovered")
    saved = sum(t["expected"] == "saved" for t in Catalogue(PRODUCTS, SEED).truth())
    assert stats["item_scraped_count"] == saved
    assert stats["products/identity_holds"] is True
    assert document["progress"]["fraction"] == 1.0 and document["progress"]["eta_seconds"] == 0.0
    assert document["stages"]["detail"]["finished"] == stats["stages/detail/finished"] == PRODUCTS
    assert document["domains"]["127.0.0.1"]["concurrency"] == stats["adaptive/concurrency/127.0.0.1"]
