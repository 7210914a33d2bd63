"""ETA accuracy: the progress extension's ETA against the real end of a crawl, in three scenarios.

    python bench/eta.py [--scenario steady|ramping|outage ...] [--seed 11] [--poll 0.1]

Each scenario serves a demo shop with a capacity model (C workers, a queue
of Q, service time L: a ceiling of C / L requests/s), crawls it once with
the default crawl profile and ``-s PROGRESS_INTERVAL=1 -s
STATS_DUMP_INTERVAL=1``, and polls the live stats dump meanwhile, recording
each new estimate (``progress.updated_at``, ``progress.fraction``,
``progress.eta_seconds``).  Each crawl takes about 30 s:

* ``steady``: 3,000 products, C=6, Q=6, L=0.05 s (120 requests/s): the
  crawl runs at the shop's ceiling from the first seconds.  Target 15%.
* ``ramping``: 1,800 products, C=64, Q=64, L=0.2 s: the shop is never the
  limit, the crawler's concurrency is, and the default (``balanced``)
  profile ramps it from 4 (20 requests/s) to 16 (80 requests/s) over the
  first part of the crawl.  Target 25%.
* ``outage``: 1,800 products on the steady shop with ``--outage 8:10``
  (every request answered 503 from 8 s to 18 s after the first one, i.e.
  from about 40% progress on).  Target 25%.

After the crawl, at the first samples reaching 10, 25, 50 and 75%
progress, the relative error is ``|ETA - actual remaining| / actual
remaining`` with actual remaining = the crawl's ``finish_time`` - the
sample's time.  One table per scenario, then one line each::

    eta steady: worst relative error = X.X% (target <= 15%)

An outage that starts after a sample cannot be foreseen by any estimator:
such samples are marked ``*`` (``before the outage``) and the outage
scenario also prints the worst error of the samples taken after the outage
ended, which is what the estimator controls.  The worst error itself is
over all the samples, as for the other scenarios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from demoshop.process import ShopProcess  # noqa: E402

MILESTONES = (0.10, 0.25, 0.50, 0.75)

#: A sample: (UNIX time, progress fraction, ETA seconds or None).
Sample = tuple[float, float, float | None]


@dataclass(frozen=True)
class Scenario:
    name: str
    products: int
    capacity: int
    queue: int
    latency: float
    target: float
    outage: tuple[float, float] | None = None  # (start, length), seconds after the shop's first request

    def shop_args(self) -> list[str]:
        args = ["--capacity", str(self.capacity), "--queue", str(self.queue), "--latency", str(self.latency)]
        if self.outage is not None:
            args += ["--outage", f"{self.outage[0]:g}:{self.outage[1]:g}"]
        return args

    def describe(self) -> str:
        text = (
            f"{self.products} products, capacity {self.capacity}, queue {self.queue}, latency {self.latency} s "
            f"(ceiling {self.capacity / self.latency:.0f} req/s)"
        )
        if self.outage is not None:
            text += f", outage {self.outage[0]:g} s + {self.outage[1]:g} s"
        return text


SCENARIOS = {
    "steady": Scenario("steady", 3000, capacity=6, queue=6, latency=0.05, target=0.15),
    "ramping": Scenario("ramping", 1800, capacity=64, queue=64, latency=0.2, target=0.25),
    "outage": Scenario("outage", 1800, capacity=6, queue=6, latency=0.05, target=0.25, outage=(8.0, 10.0)),
}


def parse_time(value: str) -> float:
    """A stats-dump time (ISO 8601; naive means UTC, as Scrapy records ``finish_time``) as a UNIX time."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
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


def crawl(url: str, workdir: Path, poll: float) -> tuple[list[Sample], dict, int]:
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
    samples: dict[str, Sample] = {}
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


def run(scenario: Scenario, seed: int, poll: float) -> tuple[float, float | None]:
    """Crawl ``scenario``, print its table; return (worst error, worst error after the outage or None)."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        ShopProcess(scenario.products, seed, extra_args=scenario.shop_args()) as shop,
    ):
        samples, final, code = crawl(shop.list_url, Path(tmp), poll)
        log_tail = (Path(tmp) / "crawl.log").read_text()[-3000:]
    stats = final.get("stats") or {}
    print(f"--- {scenario.name}: {scenario.describe()}")
    if code != 0 or final.get("running") is not False or "finish_time" not in stats:
        print(log_tail)
        print(f"error: the crawl failed (exit status {code}, finish_reason {final.get('finish_reason')!r})")
        return float("inf"), None
    end = parse_time(stats["finish_time"])
    start = parse_time(stats["start_time"])
    retries = sum(v for k, v in stats.items() if k.startswith("retry/reason_count/"))
    print(
        f"crawl: {end - start:.1f} s, {stats.get('response_received_count')} responses, "
        f"finish_reason {final.get('finish_reason')}, {len(samples)} estimates sampled, "
        f"mean rate {stats.get('response_received_count', 0) / (end - start):.0f} req/s, {retries} retries, "
        f"{stats.get('products/dead_lettered', 0)} dead letters"
    )
    # The outage, in crawl time: the shop counts from its first request, which is within a second of start.
    outage_end = start + sum(scenario.outage) if scenario.outage else None
    outage_start = start + scenario.outage[0] if scenario.outage else None
    print(f"{'target':>7} {'at (s)':>7} {'progress':>9} {'ETA (s)':>8} {'actual (s)':>10} {'error':>7}")
    worst, worst_after = 0.0, 0.0
    for milestone in MILESTONES:
        sample = next((s for s in samples if s[1] >= milestone), None)
        if sample is None or sample[2] is None:
            worst = worst_after = float("inf")
            print(f"{milestone:>7.0%} {'-':>7} {'-':>9} {'-':>8} {'-':>10} {'no ETA':>7}")
            continue
        at, fraction, eta = sample
        actual = end - at
        error = abs(eta - actual) / actual if actual > 0 else float("inf")
        worst = max(worst, error)
        note = ""
        if outage_start is not None and outage_end is not None:
            if at < outage_start:
                note = "  * before the outage"
            elif at >= outage_end:
                worst_after = max(worst_after, error)
                note = "  after the outage"
            else:
                note = "  during the outage"
        print(f"{milestone:>7.0%} {at - start:>7.1f} {fraction:>9.1%} {eta:>8.1f} {actual:>10.1f} {error:>7.1%}{note}")
    return worst, (worst_after if scenario.outage else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="run only these (repeatable; default: all)"
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between reads of the live dump")
    args = parser.parse_args()

    results = []
    for name in args.scenario or list(SCENARIOS):
        scenario = SCENARIOS[name]
        results.append((scenario, *run(scenario, args.seed, args.poll)))
        print()
    for scenario, _, after in results:
        if after is not None:
            print(f"eta {scenario.name} (samples after the outage): worst relative error = {100 * after:.1f}%")
    for scenario, worst, _ in results:
        target = f"target <= {100 * scenario.target:.0f}%"
        print(f"eta {scenario.name}: worst relative error = {100 * worst:.1f}% ({target})")


if __name__ == "__main__":
    main()
