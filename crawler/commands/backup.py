"""``scrapy backup``: a consistent copy of the SQLite database, even while a crawl writes.

Usage::

    scrapy backup -o FILE [--force]

Copies ``DATABASE_URL`` (an SQLite file) to FILE with SQLite's online backup
API (:mod:`storage.backup`): FILE holds every row committed when the backup
started; a running crawl is neither stopped nor slowed beyond sharing the
disk.  FILE is one self-contained SQLite file (no ``-wal``); an existing FILE
is replaced only with ``--force``.  ``scrapy restore -i FILE`` puts it back.
PostgreSQL databases are refused with one line: use ``pg_dump`` (README,
"Getting data out").  Errors print one line ``error: ...`` on stderr, exit
status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError
from sqlalchemy.engine import make_url

from crawler import defaults
from crawler.commands import CommandError, OneLineErrors

PG_DUMP_HINT = "use pg_dump (e.g. pg_dump -Fc -f catalog.dump DBNAME; see README, Getting data out)"


def shown_url(url: str) -> str:
    """``url`` without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for a message
        return "DATABASE_URL"


class Command(OneLineErrors, ScrapyCommand):
    requires_project = True
    requires_crawler_process = False

    def syntax(self) -> str:
        return "-o FILE [--force]"

    def short_desc(self) -> str:
        return "Back up the SQLite database (consistent while a crawl writes)"

    def long_desc(self) -> str:
        return (
            "Copy the SQLite database of DATABASE_URL to FILE with SQLite's online backup API: FILE holds every "
            "row committed when the backup started, even while a crawl writes. An existing FILE is replaced only "
            "with --force. PostgreSQL: use pg_dump. Restore with scrapy restore -i FILE."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        group = parser.add_argument_group(title="Backup options")
        group.add_argument("-o", "--output", metavar="FILE", help="the backup file to write")
        group.add_argument("--force", action="store_true", help="replace FILE if it exists")

    def execute(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError(f"unexpected argument(s): {' '.join(args)}")
        self._backup(opts)

    def _backup(self, opts: argparse.Namespace) -> None:
        from storage.backup import backup_sqlite, sqlite_file

        if not opts.output or opts.output == "-":
            raise CommandError("backup needs -o FILE (a file: the backup is an SQLite database)")
        url = str(defaults.get(self.settings, "DATABASE_URL"))
        source = sqlite_file(url)
        if source is None:
            raise CommandError(f"scrapy backup copies SQLite databases, not {shown_url(url)}: {PG_DUMP_HINT}")
        if not source.is_file():
            raise CommandError(f"no database at {source.absolute()} (check DATABASE_URL, or crawl first)")
        destination = Path(opts.output)
        if destination.exists() and not opts.force:
            raise CommandError(f"{destination} exists: add --force to replace it")
        result = backup_sqlite(source, destination)
        print(
            f"backed up {source} to {destination}: {result.products} products,"
            f" {result.bytes / 1e6:.1f} MB, in {result.seconds:.2f} s"
        )
