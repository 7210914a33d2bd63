"""Full stack vs plain Scrapy: pages/s on the same demo shop, same run.

    python bench/throughput.py [--products 2400] [--rounds 3]

Alternates a minimal plain Scrapy spider (bench/plain_spider.py, no
pipeline) and ``scrapy crawl catalog`` (the shipped csa_iot profile with only
the host swapped, validation, batched SQLite store, stats dump) against one
demo shop in the real site's markup.  Both sides get the same Scrapy
settings: the concurrency given, and the project's own values of
``CONCURRENT_ITEMS`` and ``ROBOTSTXT_OBEY`` (the headline ratio).  Plain
Scrapy is also run with Scrapy's default ``CONCURRENT_ITEMS`` (100), reported
on its own line, to show what that one setting is worth.  pages/s =
responses received / the crawl's own elapsed time (start-up of the Python
process excluded).  Also reports the demo shop's requests per CPU second.
Last line: ``throughput: full stack / plain Scrapy = X.XXx`` (target >= 0.95x).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crawler import settings as PROJECT_SETTINGS  # noqa: E402, N812
from crawler.siteprofile import load_profile  # noqa: E402
from demoshop.process import ShopProcess  # noqa: E402


def rate(stats: dict) -> tuple[float, int]:
    pages = int(stats["response_received_count"])
    return pages / float(stats["elapsed_time_seconds"]), pages


#: Settings the project sets that plain Scrapy gets too (the project's values).
SHARED_SETTINGS = {"CONCURRENT_ITEMS": PROJECT_SETTINGS.CONCURRENT_ITEMS, "ROBOTSTXT_OBEY": True}


def run_plain(url: str, concurrency: int, per_domain: int, settings: dict) -> dict:
    extra = [f"{name}={json.dumps(value)}" for name, value in settings.items()]
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "plain_spider.py"), url, str(concurrency), str(per_domain), *extra],
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

    plain, plain_default, ours = [], [], []
    with tempfile.TemporaryDirectory() as tmp, ShopProcess(products=args.products, seed=7) as shop:
        parts, base = urlsplit(load_profile("csa_iot").start_urls[0]), urlsplit(shop.url)
        start = urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))  # only the host swapped
        shop_proc = psutil.Process(shop.pid)
        cpu0 = sum(shop_proc.cpu_times()[:2])
        served = 0
        for n in range(args.rounds):
            stats = run_plain(start, args.concurrency, args.per_domain, SHARED_SETTINGS)
            plain.append(rate(stats)[0])
            served += int(stats["downloader/request_count"])
            defaults = {**SHARED_SETTINGS, "CONCURRENT_ITEMS": 100}
            stats = run_plain(start, args.concurrency, args.per_domain, defaults)
            plain_default.append(rate(stats)[0])
            served += int(stats["downloader/request_count"])
            stats = run_ours(start, args.concurrency, args.per_domain, Path(tmp), n)
            ours.append(rate(stats)[0])
            served += int(stats["downloader/request_count"])
            saved = int(stats.get("store/inserted", 0))
            print(
                f"round {n + 1}: plain {plain[-1]:7.1f} pages/s (CONCURRENT_ITEMS=100: {plain_default[-1]:7.1f})"
                f" | full stack {ours[-1]:7.1f} pages/s"
                f" ({saved} products saved, {stats.get('store/rejected', 0)} rejected)",
                flush=True,
            )
        shop_cpu = sum(shop_proc.cpu_times()[:2]) - cpu0
    p, o = statistics.median(plain), statistics.median(ours)
    pd = statistics.median(plain_default)
    print(f"plain Scrapy, same settings (median of {args.rounds}): {p:.1f} pages/s")
    print(f"plain Scrapy, CONCURRENT_ITEMS=100 (median of {args.rounds}): {pd:.1f} pages/s"
          f" (full stack / this = {o / pd:.2f}x)")
    print(f"full stack   (median of {args.rounds}): {o:.1f} pages/s")
    print(f"demo shop: {served} requests in {shop_cpu:.1f} CPU s = {served / shop_cpu:.0f} requests per CPU second")
    print(f"throughput: full stack / plain Scrapy = {o / p:.2f}x")


if __name__ == "__main__":
    main()
