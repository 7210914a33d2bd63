"""Crawling a rate-limited shop: stock Scrapy, stock Scrapy + AutoThrottle, the project's default stack.

    python bench/ratelimit.py [--products 600] [--rate 20] [--seed 11]

The demo shop limits each client to ``--rate`` requests per second (a token
bucket of one second's worth, ``--rate-burst`` left at its default); a request
beyond it is answered at once with 429 and an honest ``Retry-After`` (the time
until a token is there, whole seconds rounded up) and costs no token.  The same
``catalog`` crawl (the shipped csa_iot profile, only the host swapped) runs
three times, each against a fresh shop (a full bucket) of the same catalogue:

(a) stock Scrapy: the project's retry, circuit-breaker and adaptive
    middlewares disabled, Scrapy's ``RetryMiddleware`` enabled (it retries a
    429 at once, ignoring ``Retry-After``), Scrapy's default concurrency
    (16, 8 per domain), the project's ``RETRY_TIMES``;
(b) (a) plus AutoThrottle (``AUTOTHROTTLE_ENABLED``, all its defaults: target
    concurrency 1.0, start delay 5 s);
(c) the project's default stack as users run it (no setting changed).

Per case, from the shop's request log (``/robots.txt`` left out: the limiter
ignores it): ok pages/s = responses that were neither 429 nor an error
(status < 400) per second of the crawl's own time (``elapsed_time_seconds``,
start-up of the Python process excluded), its ratio to the allowed rate, the
share of requests answered 429; from the crawl: products saved and lost
(against ``demoshop truth``), dead letters, retries, exit status, wall time.
The allowed rate is a ceiling only up to the bucket's first burst (one
second's worth), so a perfect client measures about 1.0x, and a crawl that
gives up within seconds can measure well above it.

Targets, for (c): ok pages/s >= 0.9x the allowed rate, <= 5% of requests
answered 429, 0 products lost.  Last lines: those three figures of (c).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from demoshop.catalogue import Catalogue  # noqa: E402
from demoshop.process import ShopProcess  # noqa: E402

#: The retry count of the stock cases (the project's default stack retries for RETRY_MAX_ELAPSED instead).
RETRY_TIMES = 5
#: A crawl still running after this is killed (and reported as such).
CRAWL_TIMEOUT = 900.0

STOCK_MIDDLEWARES = json.dumps({
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": 550,
    "crawler.middlewares.retry.RetryMiddleware": None,
    "crawler.middlewares.circuit_breaker.CircuitBreakerMiddleware": None,
    "crawler.middlewares.adaptive.AdaptiveConcurrencyMiddleware": None,
})  # fmt: skip
STOCK = [
    "-s", f"DOWNLOADER_MIDDLEWARES={STOCK_MIDDLEWARES}", "-s", "ADAPTIVE_ENABLED=False",
    "-s", "CONCURRENT_REQUESTS=16", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=8", "-s", f"RETRY_TIMES={RETRY_TIMES}",
]  # fmt: skip
CASES = {
    "(a) stock Scrapy": STOCK,
    "(b) stock Scrapy + AutoThrottle": [*STOCK, "-s", "AUTOTHROTTLE_ENABLED=True"],
    "(c) ours, default stack": [],
}
DEFAULT_STACK = "(c) ours, default stack"


@dataclass
class Outcome:
    requests: int  # requests the shop saw, robots.txt left out
    ok: int  # of those, answered with a status < 400
    limited: int  # of those, answered 429
    crawl_seconds: float
    saved: int
    lost: int
    dead_letters: int
    retries: int
    code: str
    wall: float

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.crawl_seconds if self.crawl_seconds > 0 else 0.0

    @property
    def limited_share(self) -> float:
        return self.limited / self.requests if self.requests else 0.0


def shop_counts(log: Path) -> tuple[int, int, int]:
    """Requests, ok responses (< 400) and 429s in the request log, ``/robots.txt`` left out."""
    requests = ok = limited = 0
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if entry["path"].partition("?")[0] == "/robots.txt":
            continue
        requests += 1
        status = entry["status"]
        ok += 0 < status < 400
        limited += status == 429
    return requests, ok, limited


def crawl(shop: ShopProcess, workdir: Path, name: str, extra: list[str]) -> tuple[dict, set[str], int, str, float]:
    """Run the crawl: its stats (empty if it left none), saved keys, dead letters, exit status, wall time."""
    db = workdir / f"{name}.db"
    stats_dir = workdir / f"stats-{name}"
    cmd = [
        sys.executable, "-m", "scrapy", "crawl", "catalog", "-a", "site=csa_iot", "-a", f"start_url={shop.list_url}",
        "-s", f"DATABASE_URL=sqlite:///{db}", "-s", f"STATS_DUMP_DIR={stats_dir}", "-s", "LOG_LEVEL=WARNING",
        "-s", "PROMETHEUS_ENABLED=False",  # no metrics port: nothing about the crawl itself
        *extra,
    ]  # fmt: skip
    started = time.monotonic()
    # a crawl that lost or dead-lettered products exits non-zero (its exit status is reported)
    try:
        code = str(subprocess.run(cmd, cwd=ROOT, stderr=subprocess.DEVNULL, timeout=CRAWL_TIMEOUT).returncode)
    except subprocess.TimeoutExpired:
        code = "timeout"
    wall = time.monotonic() - started
    dumps = list(stats_dir.glob("catalog-*.json"))
    stats = json.loads(dumps[0].read_text())["stats"] if len(dumps) == 1 else {}
    keys: set[str] = set()
    dead = 0
    if db.exists():
        with sqlite3.connect(db) as conn:
            tables = {t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "products" in tables:
                keys = {k for (k,) in conn.execute("SELECT key FROM products")}
            if "dead_letters" in tables:
                dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    return stats, keys, dead, code, wall


def run_case(args: argparse.Namespace, wanted: set[str], workdir: Path, n: int, extra: list[str]) -> Outcome:
    log = workdir / f"case{n}.jsonl"
    with ShopProcess(products=args.products, seed=args.seed, request_log=log, rate=args.rate) as shop:
        stats, keys, dead, code, wall = crawl(shop, workdir, f"case{n}", extra)
    # the shop's log is complete once it has stopped
    requests, ok, limited = shop_counts(log)
    saved = len(keys & wanted)
    return Outcome(
        requests=requests,
        ok=ok,
        limited=limited,
        crawl_seconds=float(stats.get("elapsed_time_seconds", wall)),
        saved=saved,
        lost=len(wanted) - saved,
        dead_letters=dead,
        retries=int(stats.get("retry/count", 0)),
        code=code,
        wall=wall,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=600)
    parser.add_argument("--rate", type=float, default=20.0, help="the shop's requests/s per client (default 20)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    wanted = {t["key"] for t in Catalogue(args.products, args.seed).truth() if t["expected"] == "saved"}
    print(
        f"shop: {args.products} products ({len(wanted)} valid), rate limit {args.rate:g} requests/s per client "
        f"(burst {max(1.0, args.rate):g}, 429 + Retry-After beyond it); RETRY_TIMES={RETRY_TIMES} in (a), (b); "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    results: dict[str, Outcome] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, (label, extra) in enumerate(CASES.items()):
            r = results[label] = run_case(args, wanted, Path(tmp), n, extra)
            print(f"  {label}: {r.ok_per_s:.1f} ok pages/s, {r.limited_share:.1%} 429, {r.lost} lost, "
                  f"exit {r.code}, {r.wall:.1f} s", flush=True)  # fmt: skip
    header = (
        f"{'case':<32} {'ok pages/s':>10} {'/rate':>6} {'requests':>9} {'ok':>6} {'429':>6} {'429 share':>9} "
        f"{'saved':>6} {'lost':>5} {'dead letters':>12} {'retries':>8} {'crawl s':>8} {'wall s':>7} {'exit':>7}"
    )
    print()
    print(header)
    print("-" * len(header))
    for label, r in results.items():
        print(
            f"{label:<32} {r.ok_per_s:>10.2f} {r.ok_per_s / args.rate:>6.2f} {r.requests:>9} {r.ok:>6} {r.limited:>6} "
            f"{r.limited_share:>9.1%} {r.saved:>6} {r.lost:>5} {r.dead_letters:>12} {r.retries:>8} "
            f"{r.crawl_seconds:>8.1f} {r.wall:>7.1f} {r.code:>7}"
        )
    ours = results[DEFAULT_STACK]
    print(f"targets for {DEFAULT_STACK} against --rate {args.rate:g}:")
    print(f"ratelimit: ok pages/s = {ours.ok_per_s / args.rate:.2f} x the allowed rate (target >= 0.9)")
    print(f"429 share = {ours.limited_share:.1%} (target <= 5%)")
    print(f"lost = {ours.lost} (target 0)")


if __name__ == "__main__":
    main()
