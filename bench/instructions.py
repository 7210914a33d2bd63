"""CPU instructions per page, full stack vs plain Scrapy, counted by callgrind: a throughput figure immune to noise.

    python bench/instructions.py [--products 300] [--small 30]

``bench/throughput.py`` times both crawlers on a shared machine whose speed
moves by ±20% from one round to the next.  This benchmark counts the
instructions each crawler process executes instead (``valgrind
--tool=callgrind``, Debian's ``valgrind`` package), which does not depend
on what else the machine does.  Each side crawls the same demo shop of
``--products`` products and one of ``--small`` products, with the same
settings as ``bench/throughput.py`` (concurrency 16 / 8, the project's
``CONCURRENT_ITEMS`` and ``ROBOTSTXT_OBEY`` on both sides); the difference
divided by the difference in pages is the cost of one more page, start-up
(imports, opening the database) excluded.

Caveat: under callgrind a crawl runs about 50x slower, so work done on a
timer (the progress snapshot, the adaptive controller's tick, the store's
and the frontier's flush timers, ``malloc_trim``) runs 50x more often per
page than in a real crawl: the figure over-counts the full stack's periodic
work, never under-counts it.

Last line: ``instructions: plain Scrapy / full stack per page = X.XXx`` (the
throughput ratio the CPU alone allows; target >= 0.95x, as throughput.py).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crawler import settings as PROJECT_SETTINGS  # noqa: E402, N812
from demoshop.process import ShopProcess  # noqa: E402

SEED = 7
CONCURRENCY, PER_DOMAIN = 16, 8


def commands(list_url: str, workdir: Path) -> dict[str, list[str]]:
    """The two crawls of ``list_url``: plain Scrapy and the full stack, with the same settings."""
    shared = [f"CONCURRENT_ITEMS={PROJECT_SETTINGS.CONCURRENT_ITEMS}", "ROBOTSTXT_OBEY=true"]
    return {
        "plain": [sys.executable, str(ROOT / "bench" / "plain_spider.py"), list_url,
                  str(CONCURRENCY), str(PER_DOMAIN), *shared],
        "full": [sys.executable, "-m", "scrapy", "crawl", "catalog", "-a", "site=csa_iot",
                 "-a", f"start_url={list_url}", "-s", f"DATABASE_URL=sqlite:///{workdir / 'bench.db'}",
                 "-s", f"STATS_DUMP_DIR={workdir / 'stats'}", "-s", f"CONCURRENT_REQUESTS={CONCURRENCY}",
                 "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={PER_DOMAIN}", "-s", "LOG_LEVEL=ERROR"],
    }  # fmt: skip


def run(side: str, command: list[str], workdir: Path) -> tuple[int, int]:
    """(instructions, responses) of one crawl: every thread of the process, counted by callgrind."""
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={workdir / 'callgrind.%p'}", *command],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    counts = [int(n) for n in re.findall(r"Collected : (\d+)", out.stderr)]
    if out.returncode != 0 or not counts:
        sys.exit(f"{side} failed under callgrind (status {out.returncode})\n{out.stderr[-3000:]}")
    if side == "plain":  # its stats, one JSON line on stdout
        stats = json.loads(out.stdout.strip().splitlines()[-1])
    else:
        (dump,) = (workdir / "stats").glob("catalog-*.json")
        stats = json.loads(dump.read_text())["stats"]
    return sum(counts), int(stats["response_received_count"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=300)
    parser.add_argument("--small", type=int, default=30)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found: apt-get install valgrind")

    counts: dict[tuple[str, int], int] = {}
    responses: dict[tuple[str, int], int] = {}
    for products in (args.small, args.products):
        with ShopProcess(products=products, seed=SEED) as shop:
            for side in ("plain", "full"):
                with tempfile.TemporaryDirectory() as tmp:
                    workdir = Path(tmp)
                    counts[side, products], responses[side, products] = run(
                        side, commands(shop.list_url, workdir)[side], workdir
                    )
                print(f"{side:5s} {products:5d} products: {counts[side, products] / 1e9:6.2f} G instructions,"
                      f" {responses[side, products]} responses", flush=True)  # fmt: skip
    per_page = {}
    for side in ("plain", "full"):
        extra_pages = responses[side, args.products] - responses[side, args.small]
        per_page[side] = (counts[side, args.products] - counts[side, args.small]) / extra_pages
        print(f"{side}: {per_page[side] / 1e6:.2f} M instructions per page ({extra_pages} more pages)")
    print(f"instructions: plain Scrapy / full stack per page = {per_page['plain'] / per_page['full']:.2f}x")


if __name__ == "__main__":
    main()
