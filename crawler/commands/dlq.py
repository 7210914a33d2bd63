"""``scrapy dlq``: inspect, export and replay the dead-letter queue.

Subcommands::

    scrapy dlq list    [FILTERS] [--limit 50] [--offset 0]
    scrapy dlq show    ID
    scrapy dlq count   [FILTERS]
    scrapy dlq export  [FILTERS] -o FILE [--format jsonl|csv]
    scrapy dlq requeue [FILTERS] [--dry-run]

FILTERS: ``--spider S --site S --reason R --class transient|permanent
--stage list|detail``.  The database is ``DATABASE_URL`` (project settings,
``-s DATABASE_URL=...``; by default ``DATA_DIR/catalog.db``); an SQLite file
that does not exist is an error (``error: no database at ...``), never
created empty: a mistyped URL must not look like an empty queue.
``requeue`` runs, for each distinct spider and spider arguments among the
selected dead letters, ``scrapy crawl SPIDER -a ...`` with ``DLQ_REQUEUE=1``
and a ``DLQ_REQUEUE_FILTER`` naming their ids (and the ``-s`` options given
to ``scrapy dlq``), then prints how many recovered.  Errors print one line ``error: ...`` on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from crawler import defaults
from crawler.commands import CommandError, OneLineErrors
from crawler.errors import ConfigError
from crawler.outcome import DEAD_LETTERS, OK
from crawler.redaction import REDACTED_HEADERS, REDACTED_META_KEYS, redact_record, strip_url_credentials
from crawler.settings import DATABASE_URL_ENV

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SUBCOMMANDS = ("list", "show", "count", "export", "requeue")
FORMATS = ("jsonl", "csv")
#: Settings ``requeue`` sets itself (not passed through from ``-s``).
OWN_SETTINGS = ("DATABASE_URL", "DLQ_REQUEUE", "DLQ_REQUEUE_FILTER")
#: A requeue filter longer than this goes to a temporary file (``@FILE``), not the command line.
MAX_INLINE_FILTER = 32_000
#: Columns of ``scrapy dlq list``.
LIST_COLUMNS = (
    ("id", "id"),
    ("stage", "stage"),
    ("class", "failure_class"),
    ("reason", "reason"),
    ("attempts", "attempts"),
    ("status", "last_status"),
    ("times", "times"),
    ("url", "url"),
)


class Command(OneLineErrors, ScrapyCommand):
    requires_project = True
    requires_crawler_process = False

    def syntax(self) -> str:
        return "list|show ID|count|export -o FILE|requeue [options]"

    def short_desc(self) -> str:
        return "Inspect, export and replay the dead-letter queue"

    def long_desc(self) -> str:
        return (
            "Inspect, export and replay the dead-letter queue (table dead_letters of DATABASE_URL). "
            "list: a table of the dead letters; show ID: every column of one; count: counts by class and reason; "
            "export -o FILE: every column as JSON lines or CSV; requeue: replay the selected dead letters "
            "with scrapy crawl (one crawl per spider and spider arguments) and report how many recovered."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        group = parser.add_argument_group(title="Dead-letter options")
        group.add_argument("--spider", help="only dead letters of this spider")
        group.add_argument("--site", help="only dead letters of this site")
        group.add_argument("--reason", help="only dead letters with this reason (e.g. http_404, timeout)")
        group.add_argument("--class", dest="failure_class", choices=("transient", "permanent"),
                           help="only transient or permanent failures")  # fmt: skip
        group.add_argument("--stage", help="only list or detail requests")
        group.add_argument("--limit", type=int, default=50, help="list: rows shown (default 50)")
        group.add_argument("--offset", type=int, default=0, help="list: rows skipped (default 0)")
        group.add_argument("-o", "--output", metavar="FILE", help="export: the file to write ('-': stdout)")
        group.add_argument("--format", choices=FORMATS,
                           help="export: jsonl or csv (default: from the file's extension, else jsonl)")  # fmt: skip
        group.add_argument("--dry-run", action="store_true", help="requeue: print the crawls, run nothing")

    def execute(self, args: list[str], opts: argparse.Namespace) -> None:
        stray = [a for a in args if a.startswith("-") and a != "-"]
        if stray:
            raise UsageError(f"unknown option(s): {' '.join(stray)}")
        if not args:
            raise CommandError(f"a subcommand is required (one of: {', '.join(SUBCOMMANDS)})")
        name, rest = args[0], args[1:]
        if name not in SUBCOMMANDS:
            raise CommandError(f"unknown subcommand {name!r} (one of: {', '.join(SUBCOMMANDS)})")
        if name != "show" and rest:
            raise CommandError(f"dlq {name} takes no arguments, got {' '.join(rest)}")
        getattr(self, f"_{name}")(rest, opts)

    # -- helpers

    def _database_url(self) -> str:
        return str(defaults.get(self.settings, "DATABASE_URL"))

    def _redacted(self, row: dict[str, Any]) -> dict[str, Any]:
        return redacted_row(
            row, self.settings.getlist("DLQ_REDACT_HEADERS", []), self.settings.getlist("DLQ_REDACT_META_KEYS", [])
        )

    def _store(self) -> Any:
        from storage.dead_letters import DeadLetterStore

        store = DeadLetterStore(self._database_url(), must_exist=True)
        try:
            store.create_schema()
        except ConfigError:
            store.close()
            raise
        return store

    @staticmethod
    def _filters(opts: argparse.Namespace) -> Any:
        from storage.dead_letters import DeadLetterFilter

        return DeadLetterFilter(
            spider=opts.spider, site=opts.site, reason=opts.reason, failure_class=opts.failure_class, stage=opts.stage
        )

    # -- subcommands

    def _list(self, _args: list[str], opts: argparse.Namespace) -> None:
        if opts.limit < 0 or opts.offset < 0:
            raise CommandError("--limit and --offset must be >= 0")
        store = self._store()
        try:
            filters = self._filters(opts)
            rows = store.list(filters, limit=opts.limit, offset=opts.offset)
            total = store.count(filters)
        finally:
            store.close()
        table = [[_cell(row[column]) for _, column in LIST_COLUMNS] for row in rows]
        print(_table([title for title, _ in LIST_COLUMNS], table))
        if len(rows) < total:
            print(f"({len(rows)} of {total} dead letters shown, from offset {opts.offset}; see --limit, --offset)")
        else:
            print(f"({total} dead letters)")

    def _show(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            raise CommandError("dlq show takes one dead-letter id")
        try:
            letter_id = int(args[0])
        except ValueError:
            raise CommandError(f"invalid dead-letter id {args[0]!r}") from None
        store = self._store()
        try:
            row = store.get(letter_id)
        finally:
            store.close()
        if row is None:
            raise CommandError(f"no dead letter with id {letter_id} in {store.url_shown}")
        row = self._redacted(row)
        width = max(len(name) for name in row)
        for name, value in row.items():
            if name == "request":
                continue
            print(f"{name + ':':<{width + 1}} {_cell(value)}".rstrip())
        print("request:")
        try:
            print(json.dumps(json.loads(row["request"]), indent=2, ensure_ascii=False))
        except ValueError:
            print(row["request"])

    def _count(self, _args: list[str], opts: argparse.Namespace) -> None:
        store = self._store()
        try:
            counts = store.count_by(self._filters(opts))
        finally:
            store.close()
        table = [[kind, reason, str(n)] for kind, reason, n in counts]
        table.append(["total", "", str(sum(n for _, _, n in counts))])
        print(_table(["class", "reason", "count"], table, right={2}))

    def _export(self, _args: list[str], opts: argparse.Namespace) -> None:
        from storage.dead_letters import COLUMNS

        if not opts.output:
            raise CommandError("dlq export needs -o FILE")
        fmt = opts.format or ("csv" if opts.output.lower().endswith(".csv") else "jsonl")
        store = self._store()
        written = 0
        try:
            rows = (self._redacted(row) for row in store.iter_all(self._filters(opts)))
            if opts.output == "-":
                written = _write_rows(sys.stdout, rows, fmt, COLUMNS)
            else:
                path = Path(opts.output)
                try:
                    with path.open("w", encoding="utf-8", newline="") as fh:
                        written = _write_rows(fh, rows, fmt, COLUMNS)
                except OSError as exc:
                    raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
        finally:
            store.close()
        if opts.output != "-":
            print(f"exported {written} dead letters to {opts.output} ({fmt})")

    def _requeue(self, _args: list[str], opts: argparse.Namespace) -> None:
        url = _absolute_url(self._database_url())
        store = self._store()
        try:
            groups: dict[tuple[str, str], list[int]] = {}
            times: dict[int, int] = {}
            for row in store.iter_all(self._filters(opts)):
                groups.setdefault((row["spider"], row["spider_args"]), []).append(int(row["id"]))
                times[int(row["id"])] = int(row["times"])
        finally:
            store.close()
        if not times:
            raise CommandError(f"no dead letters to requeue in {store.url_shown} (with these filters)")
        failed_runs: list[str] = []
        exitcode = 0
        with tempfile.TemporaryDirectory(prefix="dlq-requeue-") as tmp:
            for number, ((spider, args_json), ids) in enumerate(sorted(groups.items()), start=1):
                try:
                    spider_args = json.loads(args_json) or {}
                except ValueError:
                    spider_args = {}
                command = self._crawl_command(spider, spider_args, args_json, ids, url, opts, Path(tmp, f"{number}"))
                shown = [_hide_password(part) for part in command]
                print(f"requeue {len(ids)} dead letters of {spider} {args_json}: {shlex.join(shown)}", flush=True)
                if opts.dry_run:
                    continue
                env = {**os.environ, DATABASE_URL_ENV: url}
                code = subprocess.call(command, cwd=PROJECT_ROOT, env=env)
                # a replay that ran but left dead letters (exit status 5) is reported below as "still dead"
                if code not in (OK, DEAD_LETTERS):
                    failed_runs.append(f"{spider} {args_json} (exit status {code})")
                    exitcode = exitcode or code
        if opts.dry_run:
            print(f"dry run: {len(times)} dead letters in {len(groups)} crawls, nothing run")
            return
        store = self._store()
        try:
            left = store.existing(times)
        finally:
            store.close()
        again = sum(1 for i, t in left.items() if t > times[i])
        print(
            f"requeued {len(times)}, recovered {len(times) - len(left)} (removed), still dead {len(left)}"
            f" ({again} failed again)"
        )
        if failed_runs:
            print(f"error: requeue crawl failed: {'; '.join(failed_runs)}", file=sys.stderr)
            self.exitcode = exitcode

    def _crawl_command(
        self,
        spider: str,
        spider_args: dict[str, Any],
        args_json: str,
        ids: list[int],
        url: str,
        opts: argparse.Namespace,
        filter_file: Path,
    ) -> list[str]:
        requeue_filter = json.dumps({"spider": spider, "spider_args": args_json, "ids": ids}, separators=(",", ":"))
        if len(requeue_filter) > MAX_INLINE_FILTER:
            filter_file.write_text(requeue_filter, encoding="utf-8")
            requeue_filter = f"@{filter_file}"
        command = [sys.executable, "-m", "scrapy", "crawl", spider]
        for key, value in sorted(spider_args.items()):
            command += ["-a", f"{key}={value}"]
        # the database URL (maybe with a password) goes through the environment, not the command line
        command += ["-s", "DLQ_REQUEUE=1", "-s", f"DLQ_REQUEUE_FILTER={requeue_filter}"]
        for setting in opts.set:
            if setting.split("=", 1)[0].strip() not in OWN_SETTINGS:
                command += ["-s", setting]
        if opts.loglevel:
            command += ["-L", opts.loglevel]
        if opts.logfile:
            command += ["--logfile", opts.logfile]
        if opts.nolog:
            command.append("--nolog")
        return command


# --- output helpers -------------------------------------------------------------------


def _cell(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


def _table(header: list[str], rows: list[list[str]], right: Iterable[int] = ()) -> str:
    """A plain text table, columns separated by two spaces (the last column not padded)."""
    right = set(right)
    widths = [max([len(header[i])] + [len(row[i]) for row in rows]) for i in range(len(header))]
    lines = []
    for cells in [header, *rows]:
        parts = []
        for i, cell in enumerate(cells):
            if i == len(cells) - 1 and i not in right:
                parts.append(cell)
            else:
                parts.append(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def redacted_row(row: dict[str, Any], headers: Iterable[str] = (), meta_keys: Iterable[str] = ()) -> dict[str, Any]:
    """A dead-letter row without credentials (rows stored before redaction existed may hold some)."""
    row = dict(row)
    if isinstance(row.get("url"), str):
        row["url"] = strip_url_credentials(row["url"])
    try:
        record = json.loads(row["request"])
    except (KeyError, TypeError, ValueError):
        return row
    if isinstance(record, dict):
        record = redact_record(record, (*REDACTED_HEADERS, *headers), (*REDACTED_META_KEYS, *meta_keys))
        row["request"] = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    return row


def _write_rows(fh: Any, rows: Iterable[dict[str, Any]], fmt: str, columns: tuple[str, ...]) -> int:
    written = 0
    if fmt == "csv":
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row[c] is None else row[c] for c in columns])
            written += 1
        return written
    for row in rows:
        document = {c: row[c] for c in columns}
        for name in ("spider_args", "request"):  # JSON text -> JSON object
            try:
                document[name] = json.loads(document[name])
            except (TypeError, ValueError):
                pass
        fh.write(json.dumps(document, ensure_ascii=False) + "\n")
        written += 1
    return written


def _hide_password(part: str) -> str:
    if not part.startswith("DATABASE_URL="):
        return part
    try:
        return "DATABASE_URL=" + make_url(part.split("=", 1)[1]).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return part


def _absolute_url(url: str) -> str:
    """``url`` with a relative SQLite file made absolute (the crawls run in the project root)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        return url  # the store reports it in one line
    database = parsed.database or ""
    if (
        parsed.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not database.startswith("file:")
        and str(parsed.query.get("uri", "")).lower() not in ("1", "true")
        and not os.path.isabs(database)
    ):
        parsed = parsed.set(database=os.path.abspath(database))
    elif parsed.get_backend_name() == "sqlite" and database in ("", ":memory:"):
        raise CommandError("requeue needs a database file, not an in-memory SQLite database")
    return parsed.render_as_string(hide_password=False)
