"""Polite at full speed, end to end on the demo shop with the default stack (controller on).

Rate limits (429 + Retry-After), pauses, and the scheduler's gates: checked on
the shop's own request log over real loopback sockets.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

from demoshop.catalogue import Catalogue
from demoshop.process import ShopProcess
from tests.conftest import run_crawl


def request_log(path: Path) -> list[dict]:
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted((e for e in entries if e["path"] != "/robots.txt"), key=lambda e: e["t"])


def saved_keys(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {k for (k,) in conn.execute("SELECT key FROM products")}


def dead_letter_reasons(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "dead_letters" not in tables:
            return []
        return [r for (r,) in conn.execute("SELECT reason FROM dead_letters")]


def expected(products: int, seed: int) -> set[str]:
    return {t["key"] for t in Catalogue(products, seed).truth() if t["expected"] == "saved"}


def test_rate_limited_shop_loses_nothing_and_is_rarely_refused(tmp_path):
    log = tmp_path / "requests.jsonl"
    with ShopProcess(products=200, seed=21, request_log=log, rate=20) as shop:
        result = run_crawl(shop.list_url, tmp_path / "db.sqlite", tmp_path / "stats")
    assert result.returncode == 0, result.stderr[-3000:]
    assert saved_keys(tmp_path / "db.sqlite") == expected(200, 21)
    assert dead_letter_reasons(tmp_path / "db.sqlite") == []  # no circuit_open, nothing
    entries = request_log(log)
    refused = [e for e in entries if e["status"] == 429]
    assert refused, "the crawl should have met the limit"
    assert len(refused) / len(entries) <= 0.05, (len(refused), len(entries))
    stats = result.stats
    assert stats["pace/cuts"] >= 1
    assert stats.get("breaker/trips", 0) == 0  # 429 means "slow down", not "down"
    # once the pace has settled (after the first seconds), the crawl keeps under the limit
    start = entries[0]["t"]
    late = [e for e in entries if e["t"] > start + 3]
    assert sum(e["status"] == 429 for e in late) <= max(2, 0.02 * len(late))


def test_retry_after_as_an_http_date_pauses_the_whole_domain_until_then(tmp_path):
    log = tmp_path / "requests.jsonl"
    with ShopProcess(products=120, seed=22, request_log=log, rate=10, retry_after_format="date") as shop:
        result = run_crawl(shop.list_url, tmp_path / "db.sqlite", tmp_path / "stats")
    assert result.returncode == 0, result.stderr[-3000:]
    assert saved_keys(tmp_path / "db.sqlite") == expected(120, 22)
    entries = request_log(log)
    refused = [e for e in entries if e["status"] == 429]
    assert refused and result.stats["pace/pauses"] >= 1
    # The date is in whole seconds, rounded up: the domain is paused at least until the
    # next whole second after each 429.  Requests already on the wire when the 429 was
    # sent may still arrive just after it; nothing is sent once the crawler has read it.
    for answer in refused:
        until = math.ceil(answer["t"])
        sent_during = [e for e in entries if answer["t"] + 0.05 < e["t"] < until - 0.001]
        assert sent_during == [], (answer, sent_during[:5])


def test_half_open_probe_is_never_held_back_by_backpressure(tmp_path):
    """The livelock: a probe parked by list-stage backpressure left the breaker half-open for ever."""
    log = tmp_path / "requests.jsonl"
    settings = (
        "-s", "BACKPRESSURE_DETAIL_HIGH_WATER=3",
        "-s", 'CIRCUIT_BREAKER={"cooldown": 1.0, "cooldown_jitter": 0, "failure_threshold": 3}',
        "-s", "DOWNLOAD_TIMEOUT=2", "-s", "RETRY_BACKOFF_BASE=0.2",
    )  # fmt: skip
    shop_args = ["--outage", "1.5:3", "--latency", "0.05"]
    with ShopProcess(products=300, seed=23, request_log=log, extra_args=shop_args) as shop:
        result = run_crawl(shop.list_url, tmp_path / "db.sqlite", tmp_path / "stats", *settings, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert saved_keys(tmp_path / "db.sqlite") == expected(300, 23)
    stats = result.stats
    assert stats["breaker/trips"] >= 1
    assert stats["breaker/state/127.0.0.1"] == "closed"
    assert stats["scheduler/held/backpressure"] >= 1
    # after the outage the breaker closes or re-opens within a cooldown or two (each
    # re-trip doubles it): the crawl does not wait on a probe that never reports
    entries = request_log(log)
    failed = [e for e in entries if e.get("fault") == "outage"]
    assert failed, "the outage should have hit the crawl"
    outage_end = failed[0]["t"] + 3
    after = [e for e in entries if e["t"] > outage_end and e["status"] == 200]
    assert after and after[0]["t"] - outage_end < 1.0 + 2.0 + 0.5, after[:1]


def test_outage_with_the_default_stack_loses_nothing_and_recovers_its_pace(tmp_path):
    """10% random 503s and an outage, controller on: nothing lost, and after the outage
    the crawl runs about as fast as before it (not at the minimum for the rest of the crawl)."""
    log = tmp_path / "requests.jsonl"
    shop_args = ["--fault-rate", "0.1", "--fault-mix", "503:1", "--outage", "2:4", "--latency", "0.02"]
    with ShopProcess(products=600, seed=24, request_log=log, extra_args=shop_args) as shop:
        result = run_crawl(shop.list_url, tmp_path / "db.sqlite", tmp_path / "stats", timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert saved_keys(tmp_path / "db.sqlite") == expected(600, 24)
    assert dead_letter_reasons(tmp_path / "db.sqlite") == []
    # every time the breaker opened, the controller heard of it (signal breaker_changed)
    assert result.stats.get("adaptive/site_down", 0) == result.stats.get("breaker/trips", 0)
    entries = request_log(log)
    outage = [e["t"] for e in entries if e.get("fault") == "outage"]
    assert outage, "the outage should have hit the crawl"
    first, last = outage[0], outage[0] + 4
    before = [e for e in entries if e["t"] < first and e["status"] == 200]
    # ok answers per second before the outage, and over the crawl after it (from 3 s after its end)
    rate_before = len(before) / max(0.5, first - entries[0]["t"])
    after = [e for e in entries if e["t"] > last + 3 and e["status"] == 200]
    if after:
        rate_after = len(after) / max(0.5, after[-1]["t"] - (last + 3))
        assert rate_after >= 0.7 * rate_before, (rate_before, rate_after)
