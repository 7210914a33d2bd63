"""Pages rendered in the browser vs plain HTTP: pages/s, and the browser's memory, on one demo shop.

    python bench/js.py [--products 500] [--interval 0.5] [--profile balanced] [--recycle-pages N]

Serves one demo shop of ``--products`` products and crawls it twice, the same
catalogue and the same pages:

* the baseline, plain HTTP: the shipped csa_iot profile on the HTML pages;
* the browser: the same profile with ``render = "js"`` (and a ``wait_for``) on
  the list and detail stages, on the shop's JavaScript variant (``/js/...``:
  cards and rows exist only once the page's script ran), through
  scrapy-playwright and the system's Chromium.

Each prints pages/s (responses / the crawl's own elapsed time) and detail pages/s;
the last lines give the browser's cost as a ratio.

Memory: every ``--interval`` s the resident memory of the crawler's process tree
(the crawler, Playwright's driver, Chromium and all its processes) is summed with
psutil: a conservative figure (pages shared between Chromium's processes count
once per process; the PSS of the same processes, which counts them once, is
printed too).  Two targets, checked and printed, never loosened:

* the browser crawl's peak RSS (crawler + browser) stays under 1.5 GB;
* it does not grow with the number of pages once contexts are recycled: from
  the first context recycle (``BROWSER_CONTEXT_RECYCLE_PAGES``, its time read from
  the crawler's log) to the end of the crawl, the pages are split in two halves
  (by the shop's request log); the peak of the second half must stay within 10%
  of the first half's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crawler.siteprofile import PROFILES_DIR  # noqa: E402
from demoshop.process import ShopProcess  # noqa: E402

SEED = 7
PEAK_TARGET_MB = 1536
GROWTH_TARGET = 0.10
LIST_JS = 'render = "js"\nwait_for = "div.post-feed article.product"\n'
DETAIL_JS = 'render = "js"\nwait_for = "div.entry-product-details li"\n'


def js_profile(directory: Path) -> Path:
    """The shipped csa_iot profile with both stages rendered in the browser."""
    text = (PROFILES_DIR / "csa_iot.toml").read_text()
    text = text.replace("[list]\n", "[list]\n" + LIST_JS, 1).replace("[detail]\n", "[detail]\n" + DETAIL_JS, 1)
    path = directory / "csa_iot_js.toml"
    path.write_text(text)
    return path


def crawl_command(start_url: str, site: str, workdir: Path, name: str, *settings: str) -> list[str]:
    command = [
        sys.executable, "-m", "scrapy", "crawl", "catalog", "-a", f"site={site}", "-a", f"start_url={start_url}",
        "-s", f"DATABASE_URL=sqlite:///{workdir / f'{name}.db'}", "-s", f"STATS_DUMP_DIR={workdir / name}",
        "-s", "LOG_LEVEL=INFO", "-s", "PROMETHEUS_ENABLED=False",
    ]  # fmt: skip
    for setting in settings:
        command += ["-s", setting]
    return command


def tree_memory(process: psutil.Process) -> tuple[int, int, int]:
    """(the process's RSS, the RSS of all its descendants, the PSS of the whole tree), bytes."""
    info = process.memory_full_info()
    own, children, pss = info.rss, 0, info.pss
    for child in process.children(recursive=True):
        try:
            child_info = child.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        children += child_info.rss
        pss += child_info.pss
    return own, children, pss


def run(command: list[str], interval: float) -> tuple[list[tuple[float, int, int, int]], str, int]:
    """Run ``command`` sampling its process tree: ([(unix time, crawler RSS, children RSS, PSS)], log, status)."""
    samples: list[tuple[float, int, int, int]] = []
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=log,
                                text=True)  # fmt: skip
        process = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                samples.append((time.time(), *tree_memory(process)))
            except psutil.NoSuchProcess:
                break
            time.sleep(interval)
        proc.wait()
        log.seek(0)
        text = log.read()
    return samples, text, proc.returncode


def stats_of(directory: Path) -> dict:
    (dump,) = directory.glob("catalog-*.json")
    return json.loads(dump.read_text())["stats"]


def rates(stats: dict) -> tuple[float, float]:
    elapsed = float(stats["elapsed_time_seconds"])
    return int(stats["response_received_count"]) / elapsed, int(stats.get("catalog/detail_pages", 0)) / elapsed


def recycle_times(log: str) -> list[float]:
    """Unix times of the crawler's "Browser context ... recycled" lines (second resolution)."""
    times = []
    for line in log.splitlines():
        if "Browser context" in line and "recycled after" in line:
            times.append(datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S").timestamp())
    return times


def mb(value: float) -> str:
    return f"{value / 2**20:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--profile", default="balanced", help="crawl profile of both crawls")
    parser.add_argument("--recycle-pages", type=int, default=None,
                        help="BROWSER_CONTEXT_RECYCLE_PAGES (default: the project's)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        requests_log = work / "requests.jsonl"
        with ShopProcess(products=args.products, seed=SEED, request_log=requests_log) as shop:
            plain_samples, plain_log, code = run(
                crawl_command(shop.list_url, "csa_iot", work, "plain", f"CRAWL_PROFILE={args.profile}"),
                args.interval,
            )
            if code != 0:
                sys.exit(f"plain crawl failed with status {code}\n{plain_log[-3000:]}")
            extra = [f"CRAWL_PROFILE={args.profile}"]
            if args.recycle_pages is not None:
                extra.append(f"BROWSER_CONTEXT_RECYCLE_PAGES={args.recycle_pages}")
            js_samples, js_log, code = run(
                crawl_command(shop.js_list_url, str(js_profile(work)), work, "js", *extra), args.interval
            )
            if code != 0:
                sys.exit(f"browser crawl failed with status {code}\n{js_log[-3000:]}")
        plain, js = stats_of(work / "plain"), stats_of(work / "js")
        shop_log = [json.loads(line) for line in requests_log.read_text().splitlines() if line.strip()]

    plain_rate, plain_detail = rates(plain)
    js_rate, js_detail = rates(js)
    print(f"shop: {args.products} products; crawl profile {args.profile}; "
          f"browser: {js.get('playwright/context_count')} contexts opened, "
          f"{js.get('browser/contexts_recycled', 0)} recycled, "
          f"max {js.get('playwright/page_count/max_concurrent')} pages at once")
    for name, stats, (rate, detail) in (("plain HTTP", plain, (plain_rate, plain_detail)),
                                        ("browser", js, (js_rate, js_detail))):
        print(f"{name:>10}: {int(stats['response_received_count'])} pages "
              f"({int(stats.get('catalog/detail_pages', 0))} detail) in {float(stats['elapsed_time_seconds']):.1f} s:"
              f" {rate:.1f} pages/s, {detail:.1f} detail pages/s; saved {stats.get('products/saved', 0)}, "
              f"identity holds: {stats.get('products/identity_holds')}")

    plain_peak = max(own + children for _, own, children, _ in plain_samples)
    _, peak_own, peak_children, _ = max(js_samples, key=lambda s: s[1] + s[2])
    peak = peak_own + peak_children
    peak_pss = max(pss for *_, pss in js_samples)
    print(f"peak RSS, plain HTTP crawl: {mb(plain_peak)}")
    print(f"peak RSS, browser crawl: {mb(peak)} (crawler {mb(peak_own)} + Playwright and Chromium "
          f"{mb(peak_children)}), {len(js_samples)} samples every {args.interval:g} s; peak PSS of the same "
          f"processes (shared pages counted once): {mb(peak_pss)}")

    # growth after the first recycle: pages (browser navigations to /js/ pages) split in two halves
    recycles = recycle_times(js_log)
    js_pages = sorted(e["t"] for e in shop_log if e["path"].startswith("/js/"))
    growth_holds: bool | None = None
    if recycles and js_pages:
        first = recycles[0]
        after = [t for t in js_pages if t >= first]
        if len(after) >= 20:
            middle = after[len(after) // 2]
            first_half = [own + ch for t, own, ch, _ in js_samples if first <= t < middle]
            second_half = [own + ch for t, own, ch, _ in js_samples if middle <= t <= after[-1]]
            if first_half and second_half:
                a, b = max(first_half), max(second_half)
                growth = (b - a) / a
                growth_holds = growth <= GROWTH_TARGET
                print(f"after the first context recycle ({len(recycles)} recycles): {len(after)} pages; peak RSS over "
                      f"their first half {mb(a)}, over their second half {mb(b)} ({growth:+.1%})")
    if growth_holds is None:
        print("after the first context recycle: not enough pages to tell (more --products, or --recycle-pages lower)")

    print(f"js: browser / plain HTTP pages/s = {js_rate / plain_rate:.3f}x "
          f"({js_rate:.1f} / {plain_rate:.1f}); detail pages/s {js_detail:.1f} / {plain_detail:.1f}")
    print(f"js: peak RSS browser crawl / plain HTTP crawl = {peak / plain_peak:.2f}x ({mb(peak)} / {mb(plain_peak)})")
    print(f"js: peak RSS of the browser crawl = {mb(peak)} (target < {PEAK_TARGET_MB} MB): "
          f"{'holds' if peak < PEAK_TARGET_MB * 2**20 else 'DOES NOT HOLD'}")
    verdict = {True: "holds", False: "DOES NOT HOLD", None: "not measured"}[growth_holds]
    print(f"js: no growth with pages after the first recycle (second half within {GROWTH_TARGET:.0%} of the first): "
          f"{verdict}")


if __name__ == "__main__":
    main()
