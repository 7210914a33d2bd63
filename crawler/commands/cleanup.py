"""``scrapy cleanup``: remove old stats dumps and old crawl logs.

Usage::

    scrapy cleanup --older-than DAYS [--log-dir DIR ...] [--dry-run]

Removes the files last modified more than DAYS days ago (fractions allowed)
among:

* the JSON stats dumps in the stats dump directory (the ``STATS_DUMP_DIR``
  setting, as :mod:`extensions.stats_dump` reads it): files named as that
  extension names them, ``<spider>-<YYYYMMDDTHHMMSS.ffffffZ>-<pid>.json``,
  and its temporary files left by a killed process (``.<that name>.*.tmp``);
* the log files the crawler wrote in the directory of ``LOG_FILE`` (when the
  setting is set) and in each ``--log-dir``: a file counts as a crawler log
  when its first 64 KiB hold Scrapy's start line with this project's bot
  name, ``Scrapy <version> started (bot: <BOT_NAME>)`` (every crawl logs it
  first), whatever the file's name; no other file is touched.

Directories are not searched recursively.  Each file removed (or, with
``--dry-run``, that would be) is printed with its age, then a total.  Errors
print one line ``error: ...`` on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError

from crawler import defaults
from crawler.commands import CommandError, OneLineErrors

#: A stats dump's name (extensions/stats_dump.py), and a temporary file of one.
STATS_DUMP_NAME = re.compile(r"^.+-\d{8}T\d{6}\.\d{6}Z-\d+\.json$")
STATS_DUMP_TEMP = re.compile(r"^\..+-\d{8}T\d{6}\.\d{6}Z-\d+\.json\..+\.tmp$")
#: Bytes of a file's head searched for Scrapy's start line.
LOG_HEAD_BYTES = 64 * 1024
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class OldFile:
    path: Path
    kind: str  # "stats dump" or "log"
    age_days: float
    size: int


def is_stats_dump(path: Path) -> bool:
    """Whether ``path``'s name is that of a stats dump (or of its temporary file)."""
    return bool(STATS_DUMP_NAME.match(path.name) or STATS_DUMP_TEMP.match(path.name))


def is_crawler_log(path: Path, bot_name: str) -> bool:
    """Whether ``path`` is a log this project's crawls wrote: Scrapy's start line with ``bot_name`` in its head."""
    start = re.compile(rb"Scrapy \S+ started \(bot: " + re.escape(bot_name.encode()) + rb"\)")
    try:
        with path.open("rb") as fh:
            return start.search(fh.read(LOG_HEAD_BYTES)) is not None
    except OSError:
        return False


def old_files(
    stats_dirs: Iterable[Path], log_dirs: Iterable[Path], bot_name: str, older_than_days: float, now: float
) -> Iterator[OldFile]:
    """The stats dumps and crawler logs in those directories last modified more than ``older_than_days`` ago."""
    cutoff = now - older_than_days * DAY
    seen: set[Path] = set()
    for kind, directories in (("stats dump", stats_dirs), ("log", log_dirs)):
        for directory in directories:
            if not directory.is_dir():
                continue
            for path in sorted(directory.iterdir()):
                resolved = path.resolve()
                if resolved in seen or path.is_symlink() or not path.is_file():
                    continue
                stat = path.stat()
                if stat.st_mtime >= cutoff:
                    continue
                if kind == "stats dump" and not is_stats_dump(path):
                    continue
                if kind == "log" and not is_crawler_log(path, bot_name):
                    continue
                seen.add(resolved)
                yield OldFile(path, kind, (now - stat.st_mtime) / DAY, stat.st_size)


class Command(OneLineErrors, ScrapyCommand):
    requires_project = True
    requires_crawler_process = False

    def syntax(self) -> str:
        return "--older-than DAYS [--log-dir DIR ...] [--dry-run]"

    def short_desc(self) -> str:
        return "Remove old stats dumps and crawl logs"

    def long_desc(self) -> str:
        return (
            "Remove the stats dumps (STATS_DUMP_DIR) and the crawler's log files (LOG_FILE's directory, "
            "--log-dir) last modified more than DAYS days ago. A log file is the crawler's when its head holds "
            "Scrapy's start line with this project's bot name. --dry-run prints what would be removed."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        group = parser.add_argument_group(title="Cleanup options")
        group.add_argument("--older-than", metavar="DAYS", help="remove files last modified more than DAYS ago")
        group.add_argument("--log-dir", metavar="DIR", action="append", default=[],
                           help="another directory of crawl logs (repeatable)")  # fmt: skip
        group.add_argument("--dry-run", action="store_true", help="print what would be removed, remove nothing")

    def execute(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError(f"unexpected argument(s): {' '.join(args)}")
        self._cleanup(opts)

    def _cleanup(self, opts: argparse.Namespace) -> None:
        if opts.older_than is None:
            raise CommandError("cleanup needs --older-than DAYS")
        try:
            days = float(opts.older_than)
        except ValueError:
            days = -1.0
        if not days >= 0:
            raise CommandError(f"invalid --older-than {opts.older_than!r}: expected days >= 0")
        stats_dir = Path(str(defaults.get(self.settings, "STATS_DUMP_DIR")))
        log_dirs = [Path(d) for d in opts.log_dir]
        log_file = self.settings.get("LOG_FILE")
        if log_file:
            log_dirs.insert(0, Path(str(log_file)).parent)
        for directory in log_dirs:
            if not directory.is_dir():
                raise CommandError(f"no log directory {directory}")
        bot_name = str(self.settings.get("BOT_NAME") or "scrapybot")
        verb = "would remove" if opts.dry_run else "removed"
        count = size = 0
        for old in old_files([stats_dir], log_dirs, bot_name, days, time.time()):
            if not opts.dry_run:
                try:
                    old.path.unlink()
                except FileNotFoundError:
                    continue  # removed meanwhile
                except OSError as exc:
                    raise CommandError(f"cannot remove {old.path}: {exc.strerror or exc}") from None
            print(f"{verb} {old.path} ({old.kind}, {old.age_days:.1f} days old)")
            count += 1
            size += old.size
        searched = ", ".join(str(d) for d in [stats_dir, *log_dirs])
        summary = f"{count} files, {size / 1e6:.1f} MB, older than {days:g} days (in {searched})"
        print(f"dry run: would remove {summary}" if opts.dry_run else f"removed {summary}")
