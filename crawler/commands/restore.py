"""``scrapy restore``: put a backup made by ``scrapy backup`` back as the SQLite database.

Usage::

    scrapy restore -i FILE [--force]

Checks that FILE is a crawler database (SQLite, a ``products`` table, passes
``PRAGMA quick_check``), then copies it over ``DATABASE_URL``'s file with
SQLite's backup API (:mod:`storage.backup`).  A database that exists is
replaced only with ``--force``.  Refused while a crawl holds the database:
the command takes every run lock of the database (:mod:`extensions.run_lock`:
the lock files ``<database>.<site>.lock`` beside it, and those of the sites
in the backup) for the time of the copy, so no crawl of those sites starts
meanwhile either.  PostgreSQL: use ``pg_restore``.  Errors print one line
``error: ...`` on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError

from crawler import defaults
from crawler.commands import CommandError, OneLineErrors
from crawler.commands.backup import shown_url
from extensions.run_lock import FileLock, lock_for

PG_RESTORE_HINT = "use pg_restore (e.g. pg_restore --clean -d DBNAME catalog.dump; see README, Getting data out)"


def backup_sites(backup: Path) -> list[str]:
    """The sites with products in the backup ``backup`` (already checked)."""
    conn = sqlite3.connect(f"{backup.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return [str(row[0]) for row in conn.execute("SELECT DISTINCT site FROM products")]
    finally:
        conn.close()


def run_locks(url: str, database: Path, sites: list[str]) -> list[FileLock]:
    """The run locks of every crawl that could write to ``database``: the lock files beside it, and ``sites``'."""
    locks = {path.resolve(): FileLock(path) for path in database.parent.glob(f"{database.name}.*.lock")}
    for site in sites:
        lock = lock_for(url, site)
        if isinstance(lock, FileLock):
            locks.setdefault(lock.path.resolve(), lock)
    return list(locks.values())


class Command(OneLineErrors, ScrapyCommand):
    requires_project = True
    requires_crawler_process = False

    def syntax(self) -> str:
        return "-i FILE [--force]"

    def short_desc(self) -> str:
        return "Restore the SQLite database from a backup (scrapy backup)"

    def long_desc(self) -> str:
        return (
            "Replace the SQLite database of DATABASE_URL with the backup FILE (made by scrapy backup), after "
            "checking it. An existing database is replaced only with --force; never while a crawl holds the "
            "database (its run lock). PostgreSQL: use pg_restore."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        group = parser.add_argument_group(title="Restore options")
        group.add_argument("-i", "--input", metavar="FILE", help="the backup to restore")
        group.add_argument("--force", action="store_true", help="replace a database that exists")

    def execute(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError(f"unexpected argument(s): {' '.join(args)}")
        self._restore(opts)

    def _restore(self, opts: argparse.Namespace) -> None:
        from storage.backup import check_backup, restore_sqlite, sqlite_file

        if not opts.input:
            raise CommandError("restore needs -i FILE (a backup made by scrapy backup)")
        url = str(defaults.get(self.settings, "DATABASE_URL"))
        database = sqlite_file(url)
        if database is None:
            raise CommandError(f"scrapy restore restores SQLite databases, not {shown_url(url)}: {PG_RESTORE_HINT}")
        backup = Path(opts.input)
        check_backup(backup)
        if database.exists() and not opts.force:
            raise CommandError(f"{database.absolute()} exists: add --force to replace it with {backup}")
        held: list[FileLock] = []
        try:
            for lock in run_locks(url, database, backup_sites(backup)):
                try:
                    acquired = lock.acquire()
                except OSError as exc:
                    raise CommandError(f"cannot take the run lock ({lock}): {exc.strerror or exc}") from None
                if not acquired:
                    raise CommandError(f"a crawl holds the database ({lock}): stop it, then restore")
                held.append(lock)
            result = restore_sqlite(backup, database)
        finally:
            for lock in held:
                lock.release()
        print(
            f"restored {database} from {backup}: {result.products} products,"
            f" {result.bytes / 1e6:.1f} MB, in {result.seconds:.2f} s"
        )
