"""Full stack vs plain Scrapy: pages/s on the same demo shop, same run.

    python bench/throughput.py [--products 2400] [--rounds 3]

Alternates a minimal plain Scrapy spider (bench/plain_spider.py, no
pipeline) and ``scrapy crawl catalog`` (site profile, validation, batched
SQLite store, stats dump) against one demo shop, with the same concurrency.
pages/s = responses received / the crawl's own elapsed time (start-up of the
Python process excluded).  Also reports the demo shop's requests per CPU
second.  Last line: ``throughput: full stack / plain Scrapy = X.XXx``
(target >= 0.95x).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from demoshop.process import ShopProcess  # noqa: E402


def rate(stats: dict) -> tuple[float, int]:
    pages = int(stats["response_received_count"])
    return pages / float(stats["elapsed_time_seconds"]), pages


def run_plain(url: str, concurrency: int, per_domain: int) -> dict:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "plain_spider.py"), url, str(concurrency), str(per_domain)],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_ours(url: str, concurrency: int, per_domain: int, workdir: Path, n: int) -> dict:
    stats_dir = workdir / f"stats-{n}"
    subprocess.run(
        [
            sys.executable, "-m", "scrapy", "crawl", "catalog",
            "-a", "site=csa_iot", "-a", f"start_url={url}",
            "-s", f"DATABASE_URL=sqlite:///{workdir / f'bench-{n}.db'}",
            "-s", f"STATS_DUMP_DIR={stats_dir}",
            "-s", f"CONCURRENT_REQUESTS={concurrency}",
            "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={per_domain}",
            "-s", "LOG_LEVEL=WARNING",
        ],
        check=True, cwd=ROOT,
    )
    (dump,) = stats_dir.glob("catalog-*.json")
    return json.loads(dump.read_text())["stats"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=2400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--per-domain", type=int, default=8)
    args = parser.parse_args()

    plain, ours = [], []
    with tempfile.TemporaryDirectory() as tmp, ShopProcess(products=args.products, seed=7) as shop:
        shop_proc = psutil.Process(shop.pid)
        cpu0 = sum(shop_proc.cpu_times()[:2])
        served = 0
        for n in range(args.rounds):
            stats = run_plain(shop.list_url, args.concurrency, args.per_domain)
            plain.append(rate(stats)[0])
            served += int(stats["downloader/request_count"])
            stats = run_ours(shop.list_url, args.concurrency, args.per_domain, Path(tmp), n)
            ours.append(rate(stats)[0])
            served += int(stats["downloader/request_count"])
            saved = int(stats.get("store/inserted", 0))
            print(
                f"round {n + 1}: plain {plain[-1]:7.1f} pages/s | full stack {ours[-1]:7.1f} pages/s"
                f" ({saved} products saved, {stats.get('store/rejected', 0)} rejected)",
                flush=True,
            )
        shop_cpu = sum(shop_proc.cpu_times()[:2]) - cpu0
    p, o = statistics.median(plain), statistics.median(ours)
    print(f"plain Scrapy (median of {args.rounds}): {p:.1f} pages/s")
    print(f"full stack   (median of {args.rounds}): {o:.1f} pages/s")
    print(f"demo shop: {served} requests in {shop_cpu:.1f} CPU s = {served / shop_cpu:.0f} requests per CPU second")
    print(f"throughput: full stack / plain Scrapy = {o / p:.2f}x")


if __name__ == "__main__":
    main()
