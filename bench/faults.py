"""Stock Scrapy retries vs ours on a misbehaving shop: products lost, total time.

    python bench/faults.py [--products 3000] [--fault-rate 0.1] [--fault-mix 503:1] [--outage 3:10]

The same ``catalog`` crawl (same store, same shop: 10% transient faults,
503s by default, ``--fault-mix`` for others, plus a 10-second outage starting
3 s into the crawl):

(a) Scrapy's stock ``RetryMiddleware`` (immediate retries), the project's
    retry and circuit-breaker middlewares disabled;
(b) the project's resilience layer: classified retries with backoff that
    waits in the scheduler, Retry-After, per-domain circuit breakers, dead
    letters.

Both get the same retry count (``RETRY_TIMES=5``) and the same
fixed concurrency (16, the adaptive controller off): the comparison is about
how retries are made, not how many nor the concurrency.  (c) is the
project's default stack as users run it (adaptive controller on, retries
bounded by ``RETRY_MAX_ELAPSED``), and (d) the same on a shop without
faults, for the target: (c) loses nothing and its crawl time is at most
1.3x (the outage's end + (d)'s crawl time).

A product is lost when it should have been saved (``demoshop truth``) but is
not in the database.  Each row shows products saved and lost, dead letters,
retries, the crawl's own time, the process's wall time and its exit status.
Last lines: products saved (b)/(a); (c)'s losses and time against the target.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from demoshop.catalogue import Catalogue  # noqa: E402
from demoshop.process import ShopProcess  # noqa: E402

#: The same retry count on both sides of (a) and (b); the default stack (c) retries for RETRY_MAX_ELAPSED.
RETRY_TIMES = 5

STOCK = json.dumps({
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": 550,
    "crawler.middlewares.retry.RetryMiddleware": None,
    "crawler.middlewares.circuit_breaker.CircuitBreakerMiddleware": None,
})
FIXED = [
    "-s", "ADAPTIVE_ENABLED=False", "-s", "CONCURRENT_REQUESTS=16", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=16",
    "-s", f"RETRY_TIMES={RETRY_TIMES}",
]  # fmt: skip
DEFAULT = "(c) ours, default stack"
FAULT_FREE = "(d) default stack, no faults"
CASES = {
    "(a) stock RetryMiddleware": ["-s", f"DOWNLOADER_MIDDLEWARES={STOCK}", *FIXED],
    "(b) ours (resilience layer)": FIXED,
    DEFAULT: [],
    FAULT_FREE: [],
}


def crawl(shop: ShopProcess, workdir: Path, name: str, extra: list[str]) -> tuple[dict, set[str], int, int, float]:
    db = workdir / f"{name}.db"
    stats_dir = workdir / f"stats-{name}"
    cmd = [
        sys.executable, "-m", "scrapy", "crawl", "catalog", "-a", "site=csa_iot", "-a", f"start_url={shop.list_url}",
        "-s", f"DATABASE_URL=sqlite:///{db}", "-s", f"STATS_DUMP_DIR={stats_dir}", "-s", "LOG_LEVEL=WARNING",
        "-s", "DOWNLOAD_TIMEOUT=2", "-s", "PROMETHEUS_ENABLED=False", *extra,
    ]  # fmt: skip
    started = time.monotonic()
    # a crawl that lost or dead-lettered products exits non-zero (its exit status is reported)
    code = subprocess.run(cmd, cwd=ROOT, stderr=subprocess.DEVNULL).returncode
    wall = time.monotonic() - started
    (dump,) = stats_dir.glob("catalog-*.json")
    stats = json.loads(dump.read_text())["stats"]
    with sqlite3.connect(db) as conn:
        keys = {k for (k,) in conn.execute("SELECT key FROM products")}
        tables = {t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0] if "dead_letters" in tables else 0
    return stats, keys, dead, code, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--fault-rate", default="0.1")
    parser.add_argument("--fault-mix", default="503:1", help="the shop's --fault-mix (default: 503s only)")
    parser.add_argument("--outage", default="3:10")
    args = parser.parse_args()
    wanted = {t["key"] for t in Catalogue(args.products, args.seed).truth() if t["expected"] == "saved"}
    shop_args = [
        "--fault-rate", args.fault_rate, "--fault-mix", args.fault_mix, "--outage", args.outage, "--hang-seconds", "5",
    ]  # fmt: skip
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, (label, extra) in enumerate(CASES.items()):
            # a fresh shop per case: the outage starts at each crawl's first request
            faults = [] if label == FAULT_FREE else shop_args
            with ShopProcess(products=args.products, seed=args.seed, extra_args=faults) as shop:
                results[label] = crawl(shop, Path(tmp), f"case{n}", extra)
    print(f"shop: {args.products} products ({len(wanted)} valid), {float(args.fault_rate):.0%} transient faults"
          f" ({args.fault_mix}), outage {args.outage} (start:seconds); RETRY_TIMES={RETRY_TIMES} in (a) and (b)")
    print(f"{'case':<30} {'saved':>6} {'lost':>6} {'dead letters':>13} {'retries':>8} {'crawl s':>8} {'wall s':>7}"
          f" {'exit':>5}")
    for label, (stats, keys, dead, code, wall) in results.items():
        saved = len(keys & wanted)
        print(f"{label:<30} {saved:>6} {len(wanted) - saved:>6} {dead:>13} {stats.get('retry/count', 0):>8}"
              f" {float(stats['elapsed_time_seconds']):>8.1f} {wall:>7.1f} {code:>5}")
    stock_keys, our_keys = results["(a) stock RetryMiddleware"][1], results["(b) ours (resilience layer)"][1]
    stock_saved, our_saved = len(stock_keys & wanted), len(our_keys & wanted)
    print(f"faults: products saved ours/stock = {our_saved / max(stock_saved, 1):.2f}x"
          f" (stock lost {len(wanted) - stock_saved}, ours lost {len(wanted) - our_saved})")
    start, length = (float(x) for x in args.outage.split(":"))
    fault_free = float(results[FAULT_FREE][0]["elapsed_time_seconds"])
    default_stats, default_keys = results[DEFAULT][0], results[DEFAULT][1]
    budget = start + length + fault_free
    took = float(default_stats["elapsed_time_seconds"])
    print(f"faults: default stack lost {len(wanted - default_keys)} (target 0), crawl time {took:.1f} s"
          f" = {took / budget:.2f}x (outage end {start + length:.0f} s + fault-free crawl {fault_free:.1f} s)"
          " (target <= 1.3x)")


if __name__ == "__main__":
    main()
