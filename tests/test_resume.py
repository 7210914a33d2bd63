"""Crash-safe resume: crawls of the demo shop killed (SIGKILL), interrupted (Ctrl-C) or forced
to stop (Ctrl-C twice), then run again with the same command, end with the shop's truth.

Real processes over loopback; the kill moments are seeded random: one while the crawl
starts, the others after a random number of committed products.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from crawler.siteprofile import load_profile
from demoshop.catalogue import Catalogue
from demoshop.process import ShopProcess
from tests.conftest import ROOT, catalog_command, expected_fields, run_crawl
from tests.test_real_site import db_rows as rows
from tests.test_real_site import swap_host

PRODUCTS = 150
SEED = 5
#: Seconds each shop request takes: the crawl lasts several seconds, so kills land mid-crawl.
LATENCY = "0.25"
KILL_SEED = 20261129
#: Requests at once while the test kills: ~16 pages/s, the crawl lasts about 10 s.
CONCURRENCY = 4


def count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # the table is not there yet
        return 0


def command(start: str, db: Path, stats: Path, *extra: str) -> list[str]:
    return catalog_command(
        start, "-s", f"DATABASE_URL=sqlite:///{db}", "-s", f"STATS_DUMP_DIR={stats}",
        "-s", "PROMETHEUS_ENABLED=false", "-s", f"CONCURRENT_REQUESTS={CONCURRENCY}", *extra,
    )  # fmt: skip


def start_crawl(start: str, db: Path, stats: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        command(start, db, stats, *extra), cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def assert_truth(db: Path, shop: ShopProcess) -> None:
    truth = {t["key"]: t for t in Catalogue(PRODUCTS, SEED).truth()}
    saved = {key: json.loads(data) for key, data in rows(db, "SELECT key, data FROM products")}
    wanted = {key for key, t in truth.items() if t["expected"] == "saved"}
    assert set(saved) == wanted, f"missing {sorted(wanted - set(saved))[:5]}, extra {sorted(set(saved) - wanted)[:5]}"
    for key in wanted:
        assert saved[key] == expected_fields(truth[key], shop.url), key
    rejected = {t["path"] for t in truth.values() if t["expected"] == "rejected"}
    assert count(db, "SELECT COUNT(*) FROM rejected_items") == len(rejected)
    # stored exactly once, and nothing left to resume
    assert count(db, "SELECT COUNT(*) FROM products") == count(db, "SELECT COUNT(DISTINCT url) FROM products")
    assert count(db, "SELECT COUNT(*) FROM crawl_frontier") == 0
    assert rows(db, "SELECT DISTINCT state FROM crawl_runs") == [("closed",)]


@pytest.fixture(scope="module")
def slow_shop():
    with ShopProcess(products=PRODUCTS, seed=SEED, extra_args=("--latency", LATENCY)) as shop:
        yield shop


def start_url(shop: ShopProcess) -> str:
    return swap_host(load_profile("csa_iot").start_urls[0], shop.url)


@pytest.mark.parametrize("jobdir", [False, True], ids=["database", "with-JOBDIR"])
def test_a_crawl_killed_three_times_resumes_to_the_truth(slow_shop, tmp_path: Path, jobdir: bool) -> None:
    db, stats = tmp_path / "catalog.db", tmp_path / "stats"
    extra = ("-s", f"JOBDIR={tmp_path / 'job'}") if jobdir else ()
    start = start_url(slow_shop)
    rng = random.Random(KILL_SEED + jobdir)
    products = "SELECT COUNT(*) FROM products"
    kills = []
    # 1: while the crawl starts (before or just after its first records)
    proc = start_crawl(start, db, stats, *extra)
    time.sleep(rng.uniform(0.5, 2.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kills.append(count(db, products))
    # 2 and 3: after a random number of products committed (each resumed run makes progress)
    for _ in range(2):
        target = count(db, products) + rng.randint(5, 35)
        proc = start_crawl(start, db, stats, *extra)
        wait_for(lambda target=target, proc=proc: count(db, products) >= target or proc.poll() is not None)
        assert proc.poll() is None, f"the crawl ended before the kill:\n{proc.stdout.read()[-3000:]}"
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append(count(db, products))
    assert kills[-1] < len([t for t in Catalogue(PRODUCTS, SEED).truth() if t["expected"] == "saved"])
    result = run_crawl(start, db, tmp_path / "final", "-s", "PROMETHEUS_ENABLED=false", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming run 1 (attempt " in result.stderr
    assert_truth(db, slow_shop)
    final = result.stats
    assert final["products/identity_holds"] is True
    # the resumed run fetched what was left (and what was in flight or unrecorded at the
    # last kill), found every product, and no product twice
    carried = final.get("products/carried", 0)
    assert final["products/discovered"] + carried == PRODUCTS


def test_ctrl_c_then_the_same_command_resumes(slow_shop, tmp_path: Path) -> None:
    db, stats = tmp_path / "catalog.db", tmp_path / "stats"
    start = start_url(slow_shop)
    proc = start_crawl(start, db, stats)
    wait_for(lambda: count(db, "SELECT COUNT(*) FROM products") >= 20)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 6, output[-3000:]
    assert "stopped before its end (shutdown): the same command resumes it" in output
    # the first Ctrl-C let the requests in flight finish and wrote every parsed product
    saved_then = count(db, "SELECT COUNT(*) FROM products")
    done = count(db, "SELECT COUNT(*) FROM crawl_frontier WHERE state = 'done' AND stage = 'detail'")
    assert done == saved_then + count(db, "SELECT COUNT(*) FROM rejected_items")
    result = run_crawl(start, db, tmp_path / "final", "-s", "PROMETHEUS_ENABLED=false")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_truth(db, slow_shop)
    last = result.stats
    assert last["products/carried"] == done
    # every product fetched once over the two runs: the done ones were not fetched again
    assert last["products/discovered"] + last["products/carried"] == PRODUCTS
    assert last["resume/reissued"] > 0


def test_a_second_ctrl_c_stops_at_once_and_still_writes_what_was_parsed(tmp_path: Path) -> None:
    db, stats = tmp_path / "catalog.db", tmp_path / "stats"
    with ShopProcess(products=PRODUCTS, seed=SEED, extra_args=("--latency", "2")) as slower:
        # each request takes 2 s: the first Ctrl-C cannot finish before the second comes
        port = urlsplit(slower.url).port
        forced_stop(start_url(slower), db, stats, tmp_path / "crawl.log")
    # the same shop (same URL: the same command), faster, for the resumed run
    with ShopProcess(products=PRODUCTS, seed=SEED, extra_args=("--latency", LATENCY, "--port", str(port))) as shop:
        result = run_crawl(start_url(shop), db, tmp_path / "final", "-s", "PROMETHEUS_ENABLED=false")
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Resuming run 1 (attempt 2)" in result.stderr
        assert_truth(db, shop)


def forced_stop(start: str, db: Path, stats: Path, log: Path) -> None:
    # nothing is written during the crawl: only the forced stop's flush can save the products
    proc = start_crawl(
        start, db, stats, "-s", "STORE_BATCH_SIZE=100000", "-s", "STORE_FLUSH_INTERVAL=1000", "-s", f"LOG_FILE={log}"
    )
    wait_for(lambda: log.exists() and log.read_text().count("Dropped:") >= 1)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 6, output[-3000:]
    assert "forced stop" in output
    assert "Store: forced stop: writing the" in log.read_text()
    assert count(db, "SELECT COUNT(*) FROM products") > 0
    assert rows(db, "SELECT state FROM crawl_runs") == [("open",)]


def test_resume_discard_starts_afresh(slow_shop, tmp_path: Path) -> None:
    db, stats = tmp_path / "catalog.db", tmp_path / "stats"
    start = start_url(slow_shop)
    proc = start_crawl(start, db, stats)
    wait_for(lambda: count(db, "SELECT COUNT(*) FROM products") >= 10)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    result = run_crawl(start, db, tmp_path / "final", "-s", "PROMETHEUS_ENABLED=false", "-s", "RESUME_DISCARD=true")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming" not in result.stderr
    assert result.stats["products/discovered"] == PRODUCTS
    assert rows(db, "SELECT id, state FROM crawl_runs ORDER BY id") == [(1, "closed"), (2, "closed")]

