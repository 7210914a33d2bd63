"""Adaptive concurrency end to end: real crawls against the demo shop's capacity model.

The shop serves at most C requests at once (each taking L seconds), queues Q
more and answers the rest with an immediate 503 (``python -m demoshop serve
--capacity C --queue Q --latency L``).  What the shop saw is read from its
request log: each request is logged when it ends, with the seconds it waited
in the queue, so its stay in the shop is ``[t - L - queued, t]``.  Bounds are
loose on purpose: precise throughput figures belong to ``bench/adaptive.py``.

The last test loads :class:`SlotCleanupProbe` (below) into the crawl process
as a test-only extension.
"""

from __future__ import annotations

import json
import sqlite3
import time
from functools import partialmethod
from pathlib import Path
from typing import Any

from demoshop.catalogue import Catalogue
from demoshop.process import ShopProcess
from tests.conftest import run_crawl

DOMAIN = "127.0.0.1"
CONCURRENCY_STAT = f"adaptive/concurrency/{DOMAIN}"


# --- helpers ------------------------------------------------------------------------------------------------


def request_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def shop_spans(entries: list[dict], latency: float) -> list[tuple[float, float]]:
    """(arrival, end) of every request the capacity model served (robots.txt bypasses it)."""
    return [
        (e["t"] - latency - e.get("queued", 0.0), e["t"])
        for e in entries
        if e["status"] == 200 and e["path"] != "/robots.txt"
    ]


def in_flight_profile(spans: list[tuple[float, float]], slack: float = 0.002) -> tuple[float, int]:
    """Time-weighted mean and maximum of the requests in the shop at once.

    Each span is shrunk by ``slack`` at both ends: a span is reconstructed from
    its end time, so a request sent right after the previous response could
    otherwise seem to overlap it by the rendering time.
    """
    events = sorted([(a + slack, 1) for a, _ in spans] + [(b - slack, -1) for _, b in spans])
    level = peak = 0
    area = 0.0
    last = events[0][0]
    for t, step in events:
        area += level * (t - last)
        level += step
        peak = max(peak, level)
        last = t
    duration = events[-1][0] - events[0][0]
    return area / duration, peak


def saved_keys(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {k for (k,) in conn.execute("SELECT key FROM products")}


def rejected_urls(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {u for (u,) in conn.execute("SELECT url FROM rejected_items")}


def assert_nothing_lost(db: Path, stats: dict, shop_url: str, products: int, seed: int) -> None:
    truth = list(Catalogue(products, seed).truth())
    assert saved_keys(db) == {t["key"] for t in truth if t["expected"] == "saved"}
    base = shop_url.rstrip("/")
    assert rejected_urls(db) == {base + t["path"] for t in truth if t["expected"] == "rejected"}
    assert stats["products/identity_holds"] is True, stats["products/identity"]
    assert stats["products/lost"] == 0


# --- the controller finds the shop's capacity ---------------------------------------------------------------

CAPACITY, QUEUE, LATENCY = 4, 4, 0.05


def test_concurrency_settles_near_the_shop_capacity(tmp_path):
    products, seed = 600, 21
    log = tmp_path / "requests.jsonl"
    args = ["--capacity", str(CAPACITY), "--queue", str(QUEUE), "--latency", str(LATENCY)]
    with ShopProcess(products=products, seed=seed, request_log=log, extra_args=args) as shop:
        # the default profile (balanced): start 4, max 16 per domain, told nothing about the shop
        result = run_crawl(shop.list_url, tmp_path / "db.sqlite", tmp_path / "stats", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = result.stats
    assert_nothing_lost(tmp_path / "db.sqlite", stats, shop.url, products, seed)

    # the controller's final limit: near C, far from the profile's maximum of 16
    assert 2 <= stats[CONCURRENCY_STAT] <= 3 * CAPACITY, stats[CONCURRENCY_STAT]
    assert stats.get("adaptive/decisions/increase", 0) >= 1  # it did adapt from its start of 4

    entries = [e for e in request_log(log) if e["path"] != "/robots.txt"]
    rejected = [e for e in entries if e["status"] in (429, 503)]
    assert len(rejected) / len(entries) < 0.05, f"{len(rejected)} of {len(entries)} requests rejected"

    # what the shop saw, over the crawl's middle (start-up and the last stragglers left out)
    spans = shop_spans(entries, LATENCY)
    start, end = min(a for a, _ in spans), max(b for _, b in spans)
    middle = [(a, b) for a, b in spans if start + 0.1 * (end - start) <= a and b <= end - 0.1 * (end - start)]
    mean, peak = in_flight_profile(middle)
    assert 2 <= mean <= 3 * CAPACITY, (mean, peak)
    assert peak <= CAPACITY + QUEUE, (mean, peak)  # more would have been rejected

    # loose on speed: at least half the ceiling of C / L pages/s (precise figures: bench/adaptive.py)
    ok = [e for e in entries if e["status"] == 200]
    rate = len(ok) / (max(e["t"] for e in ok) - min(e["t"] for e in ok))
    assert rate >= 0.5 * CAPACITY / LATENCY, f"{rate:.0f} pages/s"


# --- the adapted limit survives the downloader's idle-slot cleanup ------------------------------------------


class SlotCleanupProbe:
    """Test-only extension: make the downloader's idle-slot cleanup happen mid-crawl.

    Scrapy deletes a download slot idle for 60 s (``Downloader._slot_gc``, every
    ``_SLOT_GC_INTERVAL`` s: no active request and ``lastseen + delay`` that old);
    a request after that gets a new slot with ``CONCURRENT_REQUESTS_PER_DOMAIN``.
    Here the cleanup runs every 0.1 s with an age of 0.3 s.  After
    ``PROBE_PAUSE_AFTER`` responses the engine is paused until the domain's slot
    is gone, then resumed; every request reaching the downloader after that
    records the slot's concurrency next to the controller's limit.  Results go
    to ``probe/*`` stats.
    """

    def __init__(self, crawler: Any) -> None:
        from scrapy.core.downloader import Downloader
        from scrapy.utils.misc import load_object

        self.crawler = crawler
        self.pause_after = crawler.settings.getint("PROBE_PAUSE_AFTER", 150)
        downloader_cls = load_object(crawler.settings["DOWNLOADER"])
        downloader_cls._SLOT_GC_INTERVAL = 0.1
        downloader_cls._slot_gc = partialmethod(Downloader._slot_gc, age=0.3)
        self.responses = 0
        self.phase = "before"  # -> "paused" -> "after"
        self.old_slot: Any = None
        self.poll: Any = None
        self.seen: list[tuple[int, int]] = []  # (slot.concurrency, controller limit) after the cleanup

    @classmethod
    def from_crawler(cls, crawler: Any) -> SlotCleanupProbe:
        from scrapy import signals

        probe = cls(crawler)
        crawler.signals.connect(probe.response_received, signal=signals.response_received)
        crawler.signals.connect(probe.engine_started, signal=signals.engine_started)
        crawler.signals.connect(probe.spider_closed, signal=signals.spider_closed)
        return probe

    def engine_started(self) -> None:
        from scrapy import signals

        # connected now, after the downloader middlewares: their handlers run first
        self.crawler.signals.connect(self.request_reached_downloader, signal=signals.request_reached_downloader)

    def _downloader(self) -> Any:
        return self.crawler.engine.downloader

    def _limit(self) -> int:
        from crawler.middlewares.adaptive import AdaptiveConcurrencyMiddleware

        for mw in self._downloader().middleware.middlewares:
            if isinstance(mw, AdaptiveConcurrencyMiddleware):
                return mw.domains[DOMAIN].sensor.limit
        raise AssertionError("AdaptiveConcurrencyMiddleware is not enabled")

    def response_received(self, response: Any, request: Any, spider: Any) -> None:
        self.responses += 1
        if self.phase == "before" and self.responses >= self.pause_after:
            from twisted.internet.task import LoopingCall

            self.phase = "paused"
            self.old_slot = self._downloader().slots.get(DOMAIN)
            self.crawler.stats.set_value("probe/limit_before", self._limit())
            self.crawler.engine.pause()
            self.poll = LoopingCall(self._check_slot)
            self.poll.start(0.05)

    def _check_slot(self) -> None:
        if DOMAIN in self._downloader().slots:
            return
        self.poll.stop()
        self.crawler.stats.set_value("probe/slot_deleted", True)
        self.phase = "after"
        self.crawler.stats.set_value("probe/resumed_at", time.time())  # the shop's log has the same clock
        self.crawler.engine.unpause()
        self.crawler.engine._slot.nextcall.schedule()  # resume now, not at the next 5 s heartbeat

    def request_reached_downloader(self, request: Any, spider: Any) -> None:
        if self.phase != "after":
            return
        slot = self._downloader().slots[DOMAIN]
        self.crawler.stats.set_value("probe/slot_recreated", slot is not self.old_slot)
        self.seen.append((slot.concurrency, self._limit()))

    def spider_closed(self, spider: Any) -> None:
        stats = self.crawler.stats
        stats.set_value("probe/per_domain", self.crawler.settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN"))
        stats.set_value("probe/requests_after", len(self.seen))
        stats.set_value("probe/concurrency_after", sorted({c for c, _ in self.seen}))
        stats.set_value("probe/mismatches", [pair for pair in self.seen if pair[0] != pair[1]][:5])


def test_adapted_concurrency_survives_idle_slot_cleanup(tmp_path):
    from crawler import settings as project

    products, seed = 360, 22
    log = tmp_path / "requests.jsonl"
    # 2 workers and a long queue: the controller settles far below the profile's 16 per
    # domain on latency alone, and the shop would show any burst beyond it (no 503 up to 32)
    args = ["--capacity", "2", "--queue", "30", "--latency", str(LATENCY)]
    extensions = {**project.EXTENSIONS, f"{__name__}.SlotCleanupProbe": 990}
    with ShopProcess(products=products, seed=seed, request_log=log, extra_args=args) as shop:
        result = run_crawl(
            shop.list_url, tmp_path / "db.sqlite", tmp_path / "stats",
            "-s", f"EXTENSIONS={json.dumps(extensions)}", "-s", "PROBE_PAUSE_AFTER=150",
            timeout=120,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    stats = result.stats
    assert stats.get("probe/slot_deleted") is True, "the idle slot was never cleaned up"
    assert stats.get("probe/slot_recreated") is True
    per_domain = stats["probe/per_domain"]
    assert per_domain == 16
    assert stats["probe/limit_before"] < per_domain
    assert stats["probe/requests_after"] >= 100
    # every request after the cleanup ran with the controller's limit, never the new slot's default
    assert stats["probe/mismatches"] == [], stats["probe/mismatches"]
    after = stats["probe/concurrency_after"]
    assert max(after) < per_domain, after
    assert_nothing_lost(tmp_path / "db.sqlite", stats, shop.url, products, seed)

    # and the shop saw it: after the pause, never more requests at once than that limit
    spans = shop_spans(request_log(log), LATENCY)
    _, peak = in_flight_profile([s for s in spans if s[0] >= stats["probe/resumed_at"]])
    assert peak <= max(after), (peak, after)
