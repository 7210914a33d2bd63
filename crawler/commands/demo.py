"""``scrapy demo``: serve the local demo shop, crawl it into SQLite, summarise.

The demo keeps its own database, ``DATA_DIR/demo.db``, apart from the default
``DATA_DIR/catalog.db``: it crawls the shop with the real site's profile
(``csa_iot``, only the host swapped), so its products would otherwise mix with
a real crawl's under the same site and keys.  The summary ends with the exact
commands, ``-s DATABASE_URL=...`` included, that read the demo's database.
"""

from __future__ import annotations

import argparse
import json
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from crawler import defaults, paths

PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: The demo shop's port when it is free: the same port from one demo to the next keeps the
#: products' URLs (some fields are URLs), so a second demo finds them unchanged and
#: resumes an interrupted one (the same start URL); else any free port.
DEMO_PORT = 8931


def free_or_any(port: int) -> int:
    """``port`` if a server can listen on it on 127.0.0.1, else 0 (any free port)."""
    if port <= 0:
        return 0
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the shop's server does
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


class Command(ScrapyCommand):
    requires_project = True
    requires_crawler_process = False

    def syntax(self) -> str:
        return "[--products N] [--seed S] [--db PATH] [--port P]"

    def short_desc(self) -> str:
        return "Start the demo shop, crawl it completely into SQLite and print a summary"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("--products", type=int, default=1000, help="products in the shop (default 1000)")
        parser.add_argument("--seed", type=int, default=1, help="catalogue seed (default 1)")
        parser.add_argument("--db", help="SQLite file (default DATA_DIR/demo.db)")
        parser.add_argument("--stats-dir", help="stats dump directory (default STATS_DUMP_DIR, i.e. STATS_DIR)")
        parser.add_argument(
            "--port", type=int, default=DEMO_PORT,
            help=f"the shop's port on 127.0.0.1 (default {DEMO_PORT}, or any free one if it is taken; 0: any)",
        )  # fmt: skip

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError("scrapy demo takes no arguments")
        from demoshop.process import ShopProcess

        db = paths.absolute(opts.db or Path(defaults.get(self.settings, "DATA_DIR")) / "demo.db")
        stats_dir = paths.absolute(opts.stats_dir or defaults.get(self.settings, "STATS_DUMP_DIR"))
        url = paths.sqlite_url(db)
        log = stats_dir / "demo-crawl.log"
        stats_dir.mkdir(parents=True, exist_ok=True)
        port = free_or_any(opts.port)
        extra = ("--port", str(port)) if port else ()
        with ShopProcess(products=opts.products, seed=opts.seed, extra_args=extra) as shop:
            print(f"demo shop: {opts.products} products at {shop.url}", flush=True)
            started = time.time()
            cmd = [
                sys.executable, "-m", "scrapy", "crawl", "catalog",
                "-a", "site=csa_iot",
                "-a", f"start_url={shop.list_url}",
                "-s", f"DATABASE_URL={url}",
                "-s", f"STATS_DUMP_DIR={stats_dir}",
                "-s", f"LOG_FILE={log}",
            ]
            print(f"crawling (log: {log}) ...", flush=True)
            code = subprocess.call(cmd, cwd=PROJECT_ROOT)
        dumps = sorted(
            (p for p in stats_dir.glob("catalog-*.json") if p.stat().st_mtime >= started - 1),
            key=lambda p: p.stat().st_mtime,
        )
        if not dumps:
            print(f"error: the crawl failed (exit status {code}); see {log}", file=sys.stderr)
            self.exitcode = code or 1
            return
        print(summary(json.loads(dumps[-1].read_text()), db, dumps[-1]))
        print(next_steps(url, str(defaults.get(self.settings, "DATABASE_URL"))))
        if code != 0:
            print(f"error: the crawl ended with exit status {code}; see {log}", file=sys.stderr)
            self.exitcode = code


def summary(document: dict[str, Any], db: Path, stats_path: Path) -> str:
    """Human summary of a finished crawl's stats dump."""
    stats = document["stats"]
    elapsed = float(stats.get("elapsed_time_seconds") or 0.0)
    pages = int(stats.get("response_received_count", 0))
    saved = sum(int(stats.get(f"store/{k}", 0)) for k in ("inserted", "updated", "unchanged"))
    lines = [
        f"finished: {document.get('finish_reason')}",
        f"outcome: exit status {stats.get('outcome/exit_status')} ({stats.get('outcome/reason')})",
        f"products saved: {saved} (inserted {stats.get('store/inserted', 0)},"
        f" updated {stats.get('store/updated', 0)}, unchanged {stats.get('store/unchanged', 0)})",
        f"products rejected: {stats.get('store/rejected', 0)} (reasons in table rejected_items)",
        f"optional values that did not parse, stored as null: {stats.get('validation/warnings', 0)}"
        " (validation/warnings/* in the stats)",
        f"products dead-lettered: {stats.get('products/dead_lettered', 0)} (table dead_letters)",
        f"nothing lost: {'yes' if stats.get('products/identity_holds') else 'NO'} ({stats.get('products/identity')})",
        f"elapsed: {elapsed:.1f} s, {pages} pages, {pages / elapsed if elapsed else 0:.0f} pages/s",
        f"database: {db} (tables products, rejected_items, dead_letters)",
        f"stats: {stats_path}",
    ]
    return "\n".join(lines)


def next_steps(url: str, default_url: str) -> str:
    """The commands that read the demo's database (``url``), which is not the default one."""
    try:
        shown = make_url(default_url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        shown = "(an invalid URL)"
    setting = shlex.quote(f"DATABASE_URL={url}")
    return "\n".join([
        f"the demo keeps its own database, apart from the default DATABASE_URL ({shown}); read it with:",
        f"  scrapy dlq list -s {setting}",
        f"  scrapy dlq count -s {setting}",
    ])  # fmt: skip
