"""Resilience end to end: the demo shop misbehaves, nothing is lost.

Faults are injected by the demo shop over real loopback sockets; timing is
checked on the shop's own request log, not with wall-clock assertions.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from pathlib import Path

from crawler import outcome
from demoshop.catalogue import Catalogue
from demoshop.process import ShopProcess
from tests.conftest import run_crawl

#: Short timeouts and backoff so faulty crawls stay quick in tests.
FAST = ("-s", "DOWNLOAD_TIMEOUT=1", "-s", "RETRY_BACKOFF_BASE=0.2")


def truth(products: int, seed: int, **shares: float) -> list[dict]:
    return list(Catalogue(products, seed, **shares).truth())


def saved_keys(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {k for (k,) in conn.execute("SELECT key FROM products")}


def dead_letters(db: Path) -> list[dict]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "dead_letters" not in tables:
            return []
        return [dict(r) for r in conn.execute("SELECT url, reason, failure_class, attempts FROM dead_letters")]


def request_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def by_path(log: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for entry in sorted(log, key=lambda e: e["t"]):
        grouped[entry["path"]].append(entry)
    return grouped


def expected_saved(rows: list[dict]) -> set[str]:
    return {t["key"] for t in rows if t["expected"] == "saved"}


def test_mixed_transient_faults_lose_nothing(tmp_path):
    log = tmp_path / "requests.jsonl"
    args = ["--fault-rate", "0.2", "--hang-seconds", "3"]
    # the default stack, controller on: random faults are noise to it, not overload
    with ShopProcess(products=200, seed=11, request_log=log, extra_args=args) as shop:
        result = run_crawl(shop.list_url, tmp_path / "db.sqlite", tmp_path / "stats", *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    assert saved_keys(tmp_path / "db.sqlite") == expected_saved(truth(200, 11))
    assert dead_letters(tmp_path / "db.sqlite") == []
    stats = result.stats
    assert stats["products/identity_holds"] is True, stats["products/identity"]
    kinds = {e["fault"] for e in request_log(log) if e.get("fault")}
    assert len(kinds) >= 5, kinds  # 500/502/503/504/429/hang/reset/truncate, seeded
    assert stats["retry/count"] >= 20


def test_outage_loses_nothing_and_does_not_hammer_the_site(tmp_path):
    log = tmp_path / "requests.jsonl"
    args = ["--outage", "0.5:4", "--latency", "0.05"]
    with ShopProcess(products=480, seed=12, request_log=log, extra_args=args) as shop:
        result = run_crawl(shop.list_url, tmp_path / "db.sqlite", tmp_path / "stats", *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    assert saved_keys(tmp_path / "db.sqlite") == expected_saved(truth(480, 12))
    assert dead_letters(tmp_path / "db.sqlite") == []
    entries = request_log(log)
    failed = [e for e in entries if e.get("fault") == "outage"]
    assert failed, "the outage should have hit the crawl"
    start = min(e["t"] for e in entries)
    during = [e for e in entries if start + 0.5 <= e["t"] <= start + 4.5]
    # Stock Scrapy retries at once: hundreds of requests in a 4 s outage.  Here
    # the breaker opens after a few failures and parks the rest; retries wait.
    assert len(during) <= 60, len(during)
    per_path = by_path(during)
    assert max(len(v) for v in per_path.values()) <= 3
    assert result.stats["products/identity_holds"] is True


def test_retry_after_is_honoured(tmp_path):
    log = tmp_path / "requests.jsonl"
    args = ["--fault-rate", "0.25", "--fault-mix", "429:1", "--retry-after", "2"]
    # the retry middleware alone (with the controller on, each 429 would also pause the whole
    # domain: tests/test_politeness.py)
    with ShopProcess(products=100, seed=13, request_log=log, extra_args=args) as shop:
        result = run_crawl(
            shop.list_url, tmp_path / "db.sqlite", tmp_path / "stats", "-s", "ADAPTIVE_ENABLED=False", *FAST
        )
    assert result.returncode == 0, result.stderr[-3000:]
    assert saved_keys(tmp_path / "db.sqlite") == expected_saved(truth(100, 13))
    checked = 0
    for attempts in by_path(request_log(log)).values():
        for first, second in zip(attempts, attempts[1:], strict=False):
            if first["status"] == 429:
                assert second["t"] - first["t"] >= 2.0 - 0.02, (first, second)
                checked += 1
    assert checked >= 10


def test_waiting_for_backoff_holds_no_slot(tmp_path):
    log = tmp_path / "requests.jsonl"
    args = ["--fault-rate", "0.15", "--fault-mix", "503:1", "--fault-max-consecutive", "1"]
    settings = (
        "-s", "RETRY_BACKOFF=fixed", "-s", "RETRY_BACKOFF_BASE=1.5", "-s", "RETRY_JITTER=none",
        "-s", "CIRCUIT_BREAKER_ENABLED=False", "-s", "ADAPTIVE_ENABLED=False",
        "-s", "CONCURRENT_REQUESTS=4", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=4",
    )  # fmt: skip
    with ShopProcess(products=200, seed=14, request_log=log, extra_args=[*args, "--latency", "0.02"]) as shop:
        result = run_crawl(shop.list_url, tmp_path / "db.sqlite", tmp_path / "stats", *settings)
    assert result.returncode == 0, result.stderr[-3000:]
    assert saved_keys(tmp_path / "db.sqlite") == expected_saved(truth(200, 14))
    entries = sorted(request_log(log), key=lambda e: e["t"])
    waits = []
    for attempts in by_path(entries).values():
        for first, second in zip(attempts, attempts[1:], strict=False):
            if first["status"] == 503:
                assert second["t"] - first["t"] >= 1.5 - 0.02  # the retry waited its backoff
                waits.append((first["t"], second["t"]))
    assert len(waits) >= 10
    # With 4 slots and every failed request waiting 1.5 s, other requests must
    # flow during the waits: a waiting retry holds no slot.
    busy = [sum(1 for e in entries if a < e["t"] < b) for a, b in waits]
    assert sum(1 for n in busy if n >= 10) >= len(waits) * 0.8, busy


def test_gone_products_are_dead_lettered_after_one_attempt(tmp_path):
    log = tmp_path / "requests.jsonl"
    with ShopProcess(products=150, seed=15, request_log=log, extra_args=["--gone-share", "0.1"]) as shop:
        result = run_crawl(shop.list_url, tmp_path / "db.sqlite", tmp_path / "stats")
    # the gone products are dead letters, over MAX_DEAD_LETTERS = 0
    assert result.returncode == outcome.DEAD_LETTERS, result.stderr[-3000:]
    rows = truth(150, 15, gone_share=0.1)
    gone = {t["path"]: t["dead_reason"] for t in rows if t["expected"] == "dead_letter"}
    assert gone
    letters = {d["url"].split(":", 2)[2].split("/", 1)[1]: d for d in dead_letters(tmp_path / "db.sqlite")}
    assert {"/" + p for p in letters} == set(gone)
    for path, letter in letters.items():
        assert letter["reason"] == gone["/" + path] and letter["failure_class"] == "permanent"
        assert letter["attempts"] == 1
    requested = by_path(request_log(log))
    assert all(len(requested[p]) == 1 for p in gone)
    assert saved_keys(tmp_path / "db.sqlite") == expected_saved(rows)
    stats = result.stats
    assert stats["products/dead_lettered"] == len(gone)
    assert stats["products/identity_holds"] is True


def test_dead_host_is_dead_lettered_and_does_not_slow_the_healthy_one(tmp_path):
    breaker = '{"max_trips": 2, "cooldown": 0.5, "cooldown_max": 1.0}'
    rates = {}
    for share in (0.0, 0.25):
        log = tmp_path / f"requests-{share}.jsonl"
        args = ["--dead-share", str(share), "--dead-mode", "refuse", "--latency", "0.05"]
        with ShopProcess(products=300, seed=16, request_log=log, extra_args=args) as shop:
            result = run_crawl(
                shop.list_url, tmp_path / f"db-{share}.sqlite", tmp_path / f"stats-{share}",
                "-a", "allowed_domains=127.0.0.1,127.0.0.2", "-s", f"CIRCUIT_BREAKER={breaker}", *FAST,
                # fixed concurrency: the comparison is about the breaker, not the adaptive controller
                "-s", "ADAPTIVE_ENABLED=False", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=4",
            )  # fmt: skip
        # with a dead host, its products are dead letters, over MAX_DEAD_LETTERS = 0
        assert result.returncode == (outcome.DEAD_LETTERS if share else outcome.OK), result.stderr[-3000:]
        rows = truth(300, 16, dead_share=share)
        db = tmp_path / f"db-{share}.sqlite"
        assert saved_keys(db) == expected_saved(rows)
        dead = {t["path"] for t in rows if t["expected"] == "dead_letter"}
        letters = dead_letters(db)
        assert {d["url"].split("127.0.0.2", 1)[1].split("/", 1)[1] for d in letters} == {p[1:] for p in dead}
        assert all(d["reason"] == "circuit_open" for d in letters), letters
        assert result.stats["products/identity_holds"] is True
        details = [e["t"] for e in request_log(log) if e["path"].startswith("/csa_product/")]
        rates[share] = len(details) / (max(details) - min(details))
    assert rates[0.25] >= 0.5 * rates[0.0], rates


def test_jobdir_keeps_requests_waiting_for_backoff(tmp_path):
    """Pause while retries wait for their backoff, resume: they are still there, and due later."""
    import signal
    import subprocess
    import time

    from tests.conftest import ROOT, catalog_command

    db, job = tmp_path / "db.sqlite", tmp_path / "job"
    # every page fails once; list pages retry at once, product pages after 6 s
    args = ["--fault-rate", "1", "--fault-mix", "503:1", "--fault-max-consecutive", "1"]
    settings = [
        "-s", f"DATABASE_URL=sqlite:///{db}", "-s", f"JOBDIR={job}",
        "-s", "RETRY_BACKOFF=fixed", "-s", "RETRY_JITTER=none", "-s", "RETRY_BACKOFF_BASE=6",
        "-s", 'RETRY_POLICIES={"list": {"base": 0.05}}',
        "-s", "CIRCUIT_BREAKER_ENABLED=False", "-s", "ADAPTIVE_ENABLED=False", "-s", "PROMETHEUS_ENABLED=False",
    ]  # fmt: skip
    with ShopProcess(products=60, seed=17, extra_args=args) as shop:
        cmd = catalog_command(shop.list_url, *settings)
        first = subprocess.Popen(
            [*cmd, "-s", f"STATS_DUMP_DIR={tmp_path / 's1'}"], cwd=ROOT, stderr=subprocess.PIPE, text=True
        )
        time.sleep(3)  # list pages done, every product request waiting for its 6 s backoff
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=60)
        (dump,) = (tmp_path / "s1").glob("catalog-*.json")
        stats = json.loads(dump.read_text())["stats"]
        assert stats["finish_reason"] == "shutdown", err[-2000:]
        assert stats.get("item_scraped_count", 0) == 0
        assert stats["scheduler/delayed"] >= 60
        second = subprocess.run(
            [*cmd, "-s", f"STATS_DUMP_DIR={tmp_path / 's2'}"], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
    assert second.returncode == 0, second.stderr[-2000:]
    (dump,) = (tmp_path / "s2").glob("catalog-*.json")
    resumed = json.loads(dump.read_text())["stats"]
    assert resumed["finish_reason"] == "finished"
    assert saved_keys(db) == expected_saved(truth(60, 17))
