"""ETA accuracy: the progress extension's ETA against the real end of a steady crawl.

    python bench/eta.py [--products 3000] [--seed 11] [--capacity 6] [--queue 6] [--latency 0.05]

Serves a demo shop with a capacity model (C workers, a queue of Q, service
time L: a ceiling of C / L requests/s, 120/s by default, so a ~30 s crawl of
3,000 products), crawls it once with ``-s PROGRESS_INTERVAL=1 -s
STATS_DUMP_INTERVAL=1`` and polls the live stats dump meanwhile, recording
each new estimate (``progress.updated_at``, ``progress.fraction``,
``progress.eta_seconds``).  After the crawl, at the first samples reaching
10, 25, 50 and 75% progress, the relative error is
``|ETA - actual remaining| / actual remaining`` with actual remaining =
the crawl's ``finish_time`` - the sample's time.  Prints a table; last line:
``eta: worst relative error = X.X% (target <= 15%)``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from demoshop.process import ShopProcess  # noqa: E402

MILESTONES = (0.10, 0.25, 0.50, 0.75)
TARGET = 0.15


def parse_time(value: str) -> float:
    """A stats-dump time (ISO 8601; naive means UTC, as Scrapy records ``finish_time``) as a UNIX time."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def read_dump(stats_dir: Path) -> dict | None:
    dumps = sorted(stats_dir.glob("catalog-*.json"))
    if not dumps:
        return None
    try:
        return json.loads(dumps[-1].read_text())
    except (OSError, ValueError):  # never expected: the dump is written atomically
        return None


def crawl(url: str, workdir: Path, poll: float) -> tuple[list[tuple[float, float, float | None]], dict, int]:
    """Run the crawl, polling the live dump; return (samples, final document, exit status)."""
    stats_dir = workdir / "stats"
    cmd = [
        sys.executable, "-m", "scrapy", "crawl", "catalog",
        "-a", "site=csa_iot", "-a", f"start_url={url}",
        "-s", f"DATABASE_URL=sqlite:///{workdir / 'eta.db'}",
        "-s", f"STATS_DUMP_DIR={stats_dir}",
        "-s", "PROGRESS_INTERVAL=1", "-s", "STATS_DUMP_INTERVAL=1",
        "-s", "PROMETHEUS_PORT=0", "-s", "LOG_LEVEL=WARNING",
    ]  # fmt: skip
    log = (workdir / "crawl.log").open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    samples: dict[str, tuple[float, float, float | None]] = {}
    try:
        while proc.poll() is None:
            document = read_dump(stats_dir)
            if document is not None and document.get("running"):
                progress = document.get("progress") or {}
                stamp = progress.get("updated_at")
                if stamp and progress.get("fraction") is not None:
                    samples[stamp] = (parse_time(stamp), float(progress["fraction"]), progress.get("eta_seconds"))
            time.sleep(poll)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()
    final = read_dump(stats_dir) or {}
    return sorted(samples.values()), final, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--capacity", type=int, default=6)
    parser.add_argument("--queue", type=int, default=6)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between reads of the live dump")
    args = parser.parse_args()

    shop_args = ["--capacity", str(args.capacity), "--queue", str(args.queue), "--latency", str(args.latency)]
    with tempfile.TemporaryDirectory() as tmp, ShopProcess(args.products, args.seed, extra_args=shop_args) as shop:
        samples, final, code = crawl(shop.list_url, Path(tmp), args.poll)
        log_tail = (Path(tmp) / "crawl.log").read_text()[-3000:]
    stats = final.get("stats") or {}
    if code != 0 or final.get("running") is not False or "finish_time" not in stats:
        print(log_tail)
        sys.exit(f"error: the crawl failed (exit status {code}, finish_reason {final.get('finish_reason')!r})")
    end = parse_time(stats["finish_time"])
    start = parse_time(stats["start_time"])
    print(
        f"shop: {args.products} products, capacity {args.capacity}, queue {args.queue}, latency {args.latency} s "
        f"(ceiling {args.capacity / args.latency:.0f} req/s)"
    )
    print(
        f"crawl: {end - start:.1f} s, {stats.get('response_received_count')} responses, "
        f"finish_reason {final.get('finish_reason')}, {len(samples)} estimates sampled, "
        f"mean rate {stats.get('response_received_count', 0) / (end - start):.0f} req/s, "
        f"{sum(v for k, v in stats.items() if k.startswith('retry/reason_count/'))} retries"
    )
    print(f"{'target':>7} {'at (s)':>7} {'progress':>9} {'ETA (s)':>8} {'actual (s)':>10} {'error':>7}")
    worst = 0.0
    missing = []
    for milestone in MILESTONES:
        sample = next((s for s in samples if s[1] >= milestone), None)
        if sample is None or sample[2] is None:
            missing.append(milestone)
            print(f"{milestone:>7.0%} {'-':>7} {'-':>9} {'-':>8} {'-':>10} {'no ETA':>7}")
            continue
        at, fraction, eta = sample
        actual = end - at
        error = abs(eta - actual) / actual if actual > 0 else float("inf")
        worst = max(worst, error)
        print(f"{milestone:>7.0%} {at - start:>7.1f} {fraction:>9.1%} {eta:>8.1f} {actual:>10.1f} {error:>7.1%}")
    if missing:
        worst = float("inf")
    print(f"eta: worst relative error = {100 * worst:.1f}% (target <= {100 * TARGET:.0f}%)")


if __name__ == "__main__":
    main()
