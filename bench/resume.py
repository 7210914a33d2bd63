"""Crash-safe resume: a crawl killed (SIGKILL) at seeded random moments, resumed each time.

    python bench/resume.py [--products 3000] [--kills 3] [--latency 0.02] [--seed 7]

The same ``catalog`` crawl of the same shop, default settings:

(a) a clean run, start to end (the baseline);
(b) a run killed ``--kills`` times, each time at a seeded random moment
    within the clean run's duration, then the same command run again until
    it ends; without ``JOBDIR``;
(c) the same with ``-s JOBDIR=...`` (Scrapy's job directory, which alone
    resumes nothing after a kill).

For (b) and (c): products missing after the last run (the shop's truth minus
the database: target 0), products stored twice (target 0), the last run's
exit status (target 0), and the requests the killed runs cost beyond a clean
run (the shop's request log: list and product pages fetched again because
they were in flight or not yet recorded when the process died), as a share
of the clean run's requests.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
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

#: Seconds a crawl takes to start (Python, Scrapy, the database) before its first request.
STARTUP = 2.0


def command(shop: ShopProcess, db: Path, stats: Path, extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "scrapy", "crawl", "catalog", "-a", "site=csa_iot", "-a", f"start_url={shop.list_url}",
        "-s", f"DATABASE_URL=sqlite:///{db}", "-s", f"STATS_DUMP_DIR={stats}", "-s", "LOG_LEVEL=INFO",
        "-s", "PROMETHEUS_ENABLED=False", *extra,
    ]  # fmt: skip


def requests_in(log: Path, since: int) -> tuple[int, int, int]:
    """(lines now, list page requests, product page requests) logged after line ``since``."""
    lines = log.read_text().splitlines() if log.exists() else []
    lists = products = 0
    for line in lines[since:]:
        path = json.loads(line).get("path", "")
        if "/csa_product/" in path:
            products += 1
        elif "/csa-iot_products/" in path:
            lists += 1
    return len(lines), lists, products


def stored(db: Path) -> tuple[set[str], int]:
    with sqlite3.connect(db) as conn:
        keys = [k for (k,) in conn.execute("SELECT key FROM products")]
    return set(keys), len(keys) - len(set(keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--latency", default="0.02", help="seconds the shop takes per request (default 0.02)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the kill moments")
    parser.add_argument("--verbose", action="store_true", help="show the end of each killed run's log")
    args = parser.parse_args()
    wanted = {t["key"] for t in Catalogue(args.products, 1).truth() if t["expected"] == "saved"}
    rng = random.Random(args.seed)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        log = work / "requests.jsonl"
        latency = ("--latency", args.latency)
        with ShopProcess(products=args.products, seed=1, request_log=log, extra_args=latency) as shop:
            seen = 0
            started = time.monotonic()
            clean_run = command(shop, work / "clean.db", work / "s0", [])
            code = subprocess.run(clean_run, cwd=ROOT, env=env, stderr=subprocess.DEVNULL).returncode
            clean_seconds = time.monotonic() - started
            time.sleep(1.0)  # the shop writes its request log every 0.5 s
            seen, clean_lists, clean_products = requests_in(log, seen)
            keys, twice = stored(work / "clean.db")
            print(f"shop: {args.products} products ({len(wanted)} valid), {args.latency} s per request")
            print(f"(a) clean run: {clean_seconds:.1f} s, {clean_lists} list + {clean_products} product requests,"
                  f" {len(wanted - keys)} missing, exit {code}")
            clean = clean_lists + clean_products
            for label, extra in (("(b) killed, no JOBDIR", []), ("(c) killed, with JOBDIR", ["JOBDIR"])):
                db = work / f"{label[1]}.db"
                extra = ["-s", f"JOBDIR={work / ('job-' + label[1])}"] if extra else []
                moments = []
                phase_start = mark = seen
                for attempt in range(args.kills):
                    err = (work / f"{label[1]}{attempt}.log").open("w")
                    proc = subprocess.Popen(command(shop, db, work / f"s{label[1]}{attempt}", extra), cwd=ROOT,
                                            env=env, stdout=subprocess.DEVNULL, stderr=err)
                    # a moment while this attempt still has work: scaled by what is left to store
                    left = 1 - len(stored(db)[0] & wanted) / len(wanted) if db.exists() else 1.0
                    moment = STARTUP + rng.uniform(0.1, 0.9) * (clean_seconds - STARTUP) * left
                    time.sleep(moment)
                    finished = proc.poll() is not None
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    err.close()
                    moments.append(f"{moment:.1f}" + (" (had finished)" if finished else ""))
                    if finished:  # the run ran to its end before this kill: nothing left to resume
                        break
                    if args.verbose:
                        text = (work / f"{label[1]}{attempt}.log").read_text()
                        said = [line for line in text.splitlines() if "Resuming run" in line]
                        time.sleep(1.0)  # the shop writes its request log every 0.5 s
                        mark, lists, products = requests_in(log, mark)
                        print(f"    attempt {attempt + 1}: {lists} list + {products} product requests;"
                              f" {said[0].split('INFO: ')[-1] if said else 'a new run'}")
                if finished:  # its own exit status (it ended before the kill)
                    final = subprocess.CompletedProcess([], proc.returncode, "", "")
                else:
                    final = subprocess.run(command(shop, db, work / f"s{label[1]}f", extra), cwd=ROOT, env=env,
                                           capture_output=True, text=True)
                time.sleep(1.0)  # the shop writes its request log every 0.5 s
                seen, lists, products = requests_in(log, phase_start)
                keys, twice = stored(db)
                extra_requests = lists + products - clean
                runs = len(moments) + (not finished)
                print(f"{label}: killed at {', '.join(moments)} s, last run exit {final.returncode}"
                      f" (target 0); {lists} list + {products} product requests over {runs} runs")
                print(f"    missing after resume: {len(wanted - keys)} (target 0); stored twice: {twice} (target 0);"
                      f" extra requests: {extra_requests:+d} = {extra_requests / clean:+.1%} of a clean run")
                if final.returncode:
                    print("    " + final.stderr.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
