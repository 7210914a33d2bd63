"""Memory of a big crawl: peak RSS of the crawler process, full stack against plain Scrapy.

    python bench/memory.py [--products 20000] [--interval 0.2] [--tracemalloc N]

Serves a demo shop of ``--products`` products and runs ``scrapy crawl
catalog`` on it (site profile, validation, batched SQLite store, adaptive
concurrency, dead-letter queue, accounting, stats dump, Prometheus: the
default ``balanced`` crawl profile), sampling the crawler process's resident
memory (psutil; the process itself, children excluded) every ``--interval``
seconds.  Prints the RSS over the crawl's progress, the peak and the products
saved.  ``--tracemalloc N`` also runs the crawl under tracemalloc (from the
spider's opening) and prints, at the end, the N source lines that grew most
between the first and the last snapshot (slower, and the RSS then includes
tracemalloc's own bookkeeping; for finding what grows).

The baseline, in the same run on the same shop: plain Scrapy
(``bench/plain_spider.py``: the same request graph, no project code, no
pipeline) with the default profile's concurrency and the settings both sides
share, sampled the same way; and both again on a 20-product shop, whose
peak is each process's fixed cost (imports, threads, caches), to tell the
fixed cost from what grows with the crawl.  Last lines:
``memory: peak RSS = X MB for N products (target <= 300 MB)`` and
``memory: peak RSS full stack / plain Scrapy = X.XXx (target <= 1.0x)``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crawler import settings as PROJECT_SETTINGS  # noqa: E402, N812
from crawler.crawl_profiles import DEFAULT_PROFILE, profile_settings  # noqa: E402
from demoshop.process import ShopProcess  # noqa: E402

TARGET_MB = 300
SEED = 5
#: Products of the tiny shop that measures each process's fixed cost.
SMALL = 20


class TracemallocSnapshots:
    """Crawl-process extension (``--tracemalloc``): snapshot at open and every 10 s; print the growth at close."""

    def __init__(self, crawler) -> None:  # noqa: ANN001
        import tracemalloc

        self.tracemalloc = tracemalloc
        self.top = crawler.settings.getint("TRACEMALLOC_TOP", 15)
        self.first = None
        self.last = None
        self.loop = None

    @classmethod
    def from_crawler(cls, crawler):  # noqa: ANN001, ANN206
        from scrapy import signals

        ext = cls(crawler)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def _snapshot(self):  # noqa: ANN202
        return self.tracemalloc.take_snapshot().filter_traces(
            [self.tracemalloc.Filter(False, self.tracemalloc.__file__)]
        )

    def spider_opened(self, spider) -> None:  # noqa: ANN001
        from twisted.internet.task import LoopingCall

        if not self.tracemalloc.is_tracing():
            self.tracemalloc.start(1)  # one frame: the line that allocated
        self.first = self._snapshot()
        self.loop = LoopingCall(self._take)
        self.loop.start(10.0, now=False)

    def _take(self) -> None:
        self.last = self._snapshot()

    def spider_closed(self, spider) -> None:  # noqa: ANN001
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        if self.first is None or self.last is None:
            return
        traced, peak = self.tracemalloc.get_traced_memory()
        lines = [f"tracemalloc: traced now {traced / 2**20:.1f} MB, peak {peak / 2**20:.1f} MB; "
                 f"growth from the start to the last snapshot before close:"]
        for stat in self.last.compare_to(self.first, "lineno")[: self.top]:
            lines.append(f"  {stat.size_diff / 2**20:+8.2f} MB {stat.count_diff:+9d} blocks  {stat.traceback[0]}")
        print("\n".join(lines), file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=20000)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="N")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, ShopProcess(products=args.products, seed=SEED) as shop:
        stats_dir = Path(tmp) / "stats"
        command = our_command(shop.list_url, Path(tmp))
        env = dict(os.environ)
        if args.tracemalloc:
            from crawler import settings as project

            extensions = {**project.EXTENSIONS, "memory.TracemallocSnapshots": 999}
            command += ["-s", f"EXTENSIONS={json.dumps(extensions)}", "-s", f"TRACEMALLOC_TOP={args.tracemalloc}"]
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "bench"), env.get("PYTHONPATH")]))
        samples, stderr, code = sample_rss(command, env, args.interval)
        if code != 0:
            sys.exit(f"crawl failed with status {code}\n{stderr[-3000:]}")
        (dump,) = stats_dir.glob("catalog-*.json")
        stats = json.loads(dump.read_text())["stats"]
        plain = sample_rss(plain_command(shop.list_url), dict(os.environ), args.interval)
        plain_samples, plain_stderr, plain_code = plain
        if plain_code != 0:
            sys.exit(f"plain Scrapy failed with status {plain_code}\n{plain_stderr[-3000:]}")
    # the fixed cost of each process (imports, threads, caches): the same crawls of a tiny shop
    with tempfile.TemporaryDirectory() as tmp, ShopProcess(products=SMALL, seed=SEED) as shop:
        small = max(rss for _, rss in sample_rss(our_command(shop.list_url, Path(tmp)), dict(os.environ), 0.05)[0])
        plain_small = max(rss for _, rss in sample_rss(plain_command(shop.list_url), dict(os.environ), 0.05)[0])

    if args.tracemalloc:
        print("\n".join(line for line in stderr.splitlines() if line.startswith(("tracemalloc:", "  "))))
    peak_t, peak = max(samples, key=lambda s: s[1])
    duration = samples[-1][0]
    print(f"crawl: {duration:.1f} s, {len(samples)} RSS samples every {args.interval:g} s")
    for fraction in (0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
        t, rss = min(samples, key=lambda s: abs(s[0] - fraction * duration))
        print(f"  RSS at {t:6.1f} s ({fraction:4.0%} of the crawl): {rss / 2**20:6.1f} MB")
    print(f"peak RSS: {peak / 2**20:.1f} MB at {peak_t:.1f} s")
    saved, rejected = int(stats.get("products/saved", 0)), int(stats.get("products/rejected", 0))
    print(
        f"products: {saved} saved, {rejected} rejected, {stats.get('products/lost', '?')} lost "
        f"(identity holds: {stats.get('products/identity_holds')}); "
        f"{stats.get('response_received_count', 0)} pages in {float(stats['elapsed_time_seconds']):.1f} s; "
        f"backpressure held {stats.get('scheduler/held/backpressure', 0)} list pages"
    )
    plain_peak = max(rss for _, rss in plain_samples)
    print(f"plain Scrapy: {plain_samples[-1][0]:.1f} s, peak RSS {plain_peak / 2**20:.1f} MB")
    caveat = " [under tracemalloc: RSS includes its overhead]" if args.tracemalloc else ""
    print(f"memory: peak RSS = {peak / 2**20:.0f} MB for {args.products} products (target <= {TARGET_MB} MB){caveat}")
    print(f"fixed cost (a {SMALL}-product crawl): full stack {small / 2**20:.1f} MB, plain Scrapy"
          f" {plain_small / 2**20:.1f} MB; growth above it: full stack {(peak - small) / 2**20:.1f} MB,"
          f" plain Scrapy {(plain_peak - plain_small) / 2**20:.1f} MB")
    print(f"memory: peak RSS full stack / plain Scrapy = {peak / plain_peak:.2f}x"
          f" ({peak / 2**20:.0f} / {plain_peak / 2**20:.0f} MB) (target <= 1.0x){caveat}")


def our_command(list_url: str, workdir: Path) -> list[str]:
    """The project's crawl, default profile, into a database in ``workdir``."""
    return [
        sys.executable, "-m", "scrapy", "crawl", "catalog",
        "-a", "site=csa_iot", "-a", f"start_url={list_url}",
        "-s", f"DATABASE_URL=sqlite:///{workdir / 'memory.db'}",
        "-s", f"STATS_DUMP_DIR={workdir / 'stats'}", "-s", "LOG_LEVEL=WARNING",
    ]  # fmt: skip


def plain_command(list_url: str) -> list[str]:
    """Plain Scrapy with the default profile's concurrency and the settings both sides share."""
    profile = profile_settings(DEFAULT_PROFILE)
    shared = {"CONCURRENT_ITEMS": PROJECT_SETTINGS.CONCURRENT_ITEMS, "ROBOTSTXT_OBEY": True}
    return [
        sys.executable, str(ROOT / "bench" / "plain_spider.py"), list_url,
        str(profile["CONCURRENT_REQUESTS"]), str(profile["CONCURRENT_REQUESTS_PER_DOMAIN"]),
        *(f"{name}={json.dumps(value)}" for name, value in shared.items()),
    ]  # fmt: skip


def sample_rss(command: list[str], env: dict, interval: float) -> tuple[list[tuple[float, int]], str, int]:
    """Run ``command``, sampling its RSS every ``interval`` s: (samples, stderr, exit status)."""
    started = time.monotonic()
    # stderr to a file, not a pipe: a crawl logging more than a pipe holds would block on it
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
        process = psutil.Process(proc.pid)
        samples: list[tuple[float, int]] = []
        while proc.poll() is None:
            try:
                samples.append((time.monotonic() - started, process.memory_info().rss))
            except psutil.NoSuchProcess:
                break
            time.sleep(interval)
        proc.wait()
        log.seek(0)
        stderr = log.read()
    return samples, stderr, proc.returncode


if __name__ == "__main__":
    main()
