"""Adaptive concurrency vs fixed concurrency and AutoThrottle, against a shop of known capacity.

    python bench/adaptive.py [--products 3000] [--capacity 6] [--queue 6] [--latency 0.05]
                             [--overload-status 503] [--rounds 1] [--only NAME,...]

The demo shop's capacity model serves C requests at once, each taking L
seconds, queues Q more and rejects the rest at once with 503 (or 429): the
throughput ceiling is C / L successful pages/s (6 / 0.05 = 120).  Each
configuration crawls a fresh shop of the same catalogue:

* plain Scrapy (``bench/plain_spider.py``'s spider, stock RetryMiddleware and
  stock downloader, whose per-domain limit is not enforced, so
  ``CONCURRENT_REQUESTS`` is the concurrency) at fixed concurrency 6, 16, 32;
* plain Scrapy with AutoThrottle, its defaults and ``AUTOTHROTTLE_TARGET_CONCURRENCY=6``;
* ``scrapy crawl catalog`` (the full stack) with ``CRAWL_PROFILE=balanced`` and
  ``performance``, told nothing about the shop.

Per configuration: goodput (200 responses / the crawl's elapsed time, start-up
of the Python process excluded), products/s (products handled: saved or
rejected for ours, scraped for plain Scrapy), products lost (against the
shop's truth: a product expected saved that is not in ``products``, expected
rejected that is not in ``rejected_items``, expected dead-lettered that is not
in ``dead_letters``; for plain Scrapy: a product whose detail page was never
scraped) and the share of the requests the shop saw that it rejected (503/429).
With ``--rounds`` > 1, the median round (by goodput) of each configuration is shown.

Targets: ``performance`` >= 0.9 x ceiling with 0 products lost and <= 2% of
requests rejected; ``balanced`` >= 0.75 x ceiling with 0 lost.  Last line:
``adaptive: performance goodput / ceiling = X.XX (balanced Y.YY)``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from demoshop.catalogue import Catalogue  # noqa: E402
from demoshop.process import ShopProcess  # noqa: E402

SEED = 7
OVERLOAD = (429, 503)


@dataclass(frozen=True)
class Config:
    name: str
    kind: str  # "plain" or "ours"
    settings: dict


CONFIGS = [
    Config("fixed-6", "plain", {"CONCURRENT_REQUESTS": 6, "CONCURRENT_REQUESTS_PER_DOMAIN": 6}),
    Config("fixed-16", "plain", {"CONCURRENT_REQUESTS": 16, "CONCURRENT_REQUESTS_PER_DOMAIN": 16}),
    Config("fixed-32", "plain", {"CONCURRENT_REQUESTS": 32, "CONCURRENT_REQUESTS_PER_DOMAIN": 32}),
    Config("autothrottle", "plain", {"AUTOTHROTTLE_ENABLED": True}),
    Config("autothrottle-t6", "plain", {"AUTOTHROTTLE_ENABLED": True, "AUTOTHROTTLE_TARGET_CONCURRENCY": 6.0}),
    Config("balanced", "ours", {"CRAWL_PROFILE": "balanced"}),
    Config("performance", "ours", {"CRAWL_PROFILE": "performance"}),
]

DESCRIPTIONS = {
    "fixed-6": "plain Scrapy, CONCURRENT_REQUESTS=6",
    "fixed-16": "plain Scrapy, CONCURRENT_REQUESTS=16",
    "fixed-32": "plain Scrapy, CONCURRENT_REQUESTS=32",
    "autothrottle": "plain Scrapy, AutoThrottle (defaults)",
    "autothrottle-t6": "plain Scrapy, AutoThrottle target 6",
    "balanced": "catalog, CRAWL_PROFILE=balanced",
    "performance": "catalog, CRAWL_PROFILE=performance",
}


@dataclass
class Result:
    name: str
    elapsed: float
    goodput: float
    products_per_s: float
    lost: int
    requests: int
    rejected: int
    note: str

    @property
    def rejected_share(self) -> float:
        return self.rejected / self.requests if self.requests else 0.0


# --- the plain Scrapy worker (a subprocess: one reactor per crawl) -------------------------------------------


def plain_worker(url: str, settings_json: str, out: str) -> None:
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess

    sys.path.insert(0, str(ROOT / "bench"))
    from plain_spider import PlainCatalogSpider

    # the stock retry middleware logs every product it gives up on at ERROR: too many lines here
    settings = {"LOG_LEVEL": "CRITICAL", **json.loads(settings_json)}
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(PlainCatalogSpider)
    scraped: list[str] = []

    def item_scraped(item: dict, **_: object) -> None:  # a named function: signals hold weak references
        scraped.append(item["url"])

    crawler.signals.connect(item_scraped, signal=signals.item_scraped)
    process.crawl(crawler, start_url=url)
    process.start()
    Path(out).write_text(json.dumps({"stats": crawler.stats.get_stats(), "scraped": scraped}, default=str))


# --- one configuration ---------------------------------------------------------------------------------------


def shop_counts(log: Path) -> tuple[int, int]:
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return len(entries), sum(1 for e in entries if e["status"] in OVERLOAD)


def lost_ours(db: Path, truth: list[dict], base: str) -> int:
    with sqlite3.connect(db) as conn:
        saved = {k for (k,) in conn.execute("SELECT key FROM products")}
        rejected = {u for (u,) in conn.execute("SELECT url FROM rejected_items")}
        tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        dead = {u for (u,) in conn.execute("SELECT url FROM dead_letters")} if "dead_letters" in tables else set()
    lost = 0
    for t in truth:
        url = base + t["path"]
        if t["expected"] == "saved":
            lost += t["key"] not in saved
        elif t["expected"] == "rejected":
            lost += url not in rejected
        else:
            lost += not any(urlparse(u).path == t["path"] for u in dead)
    return lost


def run(command: list[str]) -> None:
    """Run a crawl; its log is shown only if it fails."""
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    # a crawl that lost or dead-lettered products ran to its end (exit 4 or 5): its losses are measured below
    if proc.returncode not in (0, 4, 5):
        sys.exit(f"crawl failed with status {proc.returncode}: {' '.join(command)}\n{proc.stderr[-3000:]}")


def run_config(config: Config, args: argparse.Namespace, truth: list[dict], workdir: Path, n: int) -> Result:
    log = workdir / f"{config.name}-{n}.jsonl"
    shop_args = [
        "--capacity", str(args.capacity), "--queue", str(args.queue), "--latency", str(args.latency),
        "--overload-status", str(args.overload_status),
    ]
    with ShopProcess(products=args.products, seed=SEED, request_log=log, extra_args=shop_args) as shop:
        if config.kind == "plain":
            out = workdir / f"{config.name}-{n}.json"
            run([sys.executable, __file__, "--plain-worker", shop.list_url, json.dumps(config.settings), str(out)])
            data = json.loads(out.read_text())
            stats = data["stats"]
            scraped = {urlparse(u).path for u in data["scraped"]}
            lost = sum(1 for t in truth if t["path"] not in scraped)
            handled = int(stats.get("item_scraped_count", 0))
            note = f"retries gave up {stats.get('retry/max_reached', 0)}x"
        else:
            db, stats_dir = workdir / f"{config.name}-{n}.db", workdir / f"stats-{config.name}-{n}"
            command = [
                sys.executable, "-m", "scrapy", "crawl", "catalog",
                "-a", "site=csa_iot", "-a", f"start_url={shop.list_url}",
                "-s", f"DATABASE_URL=sqlite:///{db}", "-s", f"STATS_DUMP_DIR={stats_dir}", "-s", "LOG_LEVEL=WARNING",
            ]
            for key, value in config.settings.items():
                command += ["-s", f"{key}={value}"]
            run(command)
            (dump,) = stats_dir.glob("catalog-*.json")
            stats = json.loads(dump.read_text())["stats"]
            lost = lost_ours(db, truth, shop.url.rstrip("/"))
            handled = int(stats.get("products/saved", 0)) + int(stats.get("products/rejected", 0))
            host = urlparse(shop.url).hostname
            up, down = (stats.get(f"adaptive/decisions/{a}", 0) for a in ("increase", "decrease"))
            note = f"final limit {stats.get(f'adaptive/concurrency/{host}', '?')}, decisions +{up}/-{down}"
    requests, rejected = shop_counts(log)
    elapsed = float(stats["elapsed_time_seconds"])
    ok = int(stats.get("downloader/response_status_count/200", 0))
    return Result(config.name, elapsed, ok / elapsed, handled / elapsed, lost, requests, rejected, note)


# --- main ----------------------------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--plain-worker":
        plain_worker(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--capacity", type=int, default=6)
    parser.add_argument("--queue", type=int, default=6)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--overload-status", type=int, choices=OVERLOAD, default=503)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated configurations (default: all)")
    args = parser.parse_args()
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    configs = [c for c in CONFIGS if not only or c.name in only]
    if only - {c.name for c in CONFIGS}:
        parser.error(f"unknown configuration(s): {', '.join(sorted(only - {c.name for c in CONFIGS}))}")

    ceiling = args.capacity / args.latency
    truth = list(Catalogue(args.products, SEED).truth())
    print(
        f"shop: {args.products} products, capacity {args.capacity}, "
        f"queue {args.queue}, latency {args.latency:g} s, overload status {args.overload_status}: "
        f"ceiling {ceiling:.1f} successful pages/s; {os.cpu_count()} CPUs",
        flush=True,
    )
    rounds: dict[str, list[Result]] = {c.name: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            for config in configs:
                r = run_config(config, args, truth, Path(tmp), n)
                rounds[config.name].append(r)
                print(
                    f"  round {n + 1} {config.name:<16} {r.goodput:6.1f} pages/s ({r.goodput / ceiling:.2f}x ceiling), "
                    f"{r.lost} lost, {r.rejected_share:.1%} rejected, {r.elapsed:.1f} s",
                    flush=True,
                )

    header = (
        f"{'configuration':<40} {'goodput':>8} {'ceiling':>8} {'/ceil':>6} {'products/s':>11} {'lost':>5} "
        f"{'rejected':>9} {'elapsed':>8}  notes"
    )
    print()
    print(header)
    print("-" * len(header))
    chosen: dict[str, Result] = {}
    for config in configs:
        ordered = sorted(rounds[config.name], key=lambda r: r.goodput)
        r = chosen[config.name] = ordered[(len(ordered) - 1) // 2]
        print(
            f"{DESCRIPTIONS[config.name]:<40} {r.goodput:8.1f} {ceiling:8.1f} {r.goodput / ceiling:6.2f} "
            f"{r.products_per_s:11.1f} {r.lost:5d} {r.rejected_share:9.1%} {r.elapsed:7.1f}s  {r.note}"
        )
    if args.rounds > 1:
        for config in configs:
            rates = [r.goodput / ceiling for r in rounds[config.name]]
            print(f"{config.name}: goodput / ceiling over {args.rounds} rounds: "
                  f"{', '.join(f'{x:.2f}' for x in rates)} (median {statistics.median(rates):.2f})")

    perf, bal = chosen.get("performance"), chosen.get("balanced")
    if perf is not None:
        met = perf.goodput >= 0.9 * ceiling and perf.lost == 0 and perf.rejected_share <= 0.02
        print(f"target performance: >= 0.90x ceiling, 0 lost, <= 2% rejected: {'met' if met else 'MISSED'}")
    if bal is not None:
        met = bal.goodput >= 0.75 * ceiling and bal.lost == 0
        print(f"target balanced: >= 0.75x ceiling, 0 lost: {'met' if met else 'MISSED'}")
    p = f"{perf.goodput / ceiling:.2f}" if perf is not None else "n/a"
    b = f"{bal.goodput / ceiling:.2f}" if bal is not None else "n/a"
    print(f"adaptive: performance goodput / ceiling = {p} (balanced {b})")


if __name__ == "__main__":
    main()
