"""Backup and restore of an SQLite database through SQLite's online backup API.

Pure storage, no Scrapy.  :func:`backup_sqlite` copies the database in one
step of ``sqlite3.Connection.backup``: one read transaction, so the copy is
the database as committed when the backup started, while a crawl goes on
writing (WAL mode: readers never block the writer, nor the writer them).  The
copy is written to a temporary file beside the destination, checked
(``PRAGMA quick_check``), switched to a single file (``journal_mode=DELETE``)
and renamed into place: a failed backup leaves no partial file.

:func:`restore_sqlite` checks a backup (an SQLite file with a ``products``
table that passes ``quick_check``) and copies it over the database with the
same API, in one write transaction of the destination: connections open on
it (none should write: ``scrapy restore`` refuses while a crawl holds the run
lock) see either the old or the restored database, never a mix.

PostgreSQL has ``pg_dump`` / ``pg_restore`` (README, "Getting data out").
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from crawler.errors import ConfigError

__all__ = ["BackupError", "CopyResult", "backup_sqlite", "check_backup", "restore_sqlite", "sqlite_file"]


class BackupError(ConfigError):
    """A backup or restore cannot be made (one-line message)."""


@dataclass(frozen=True, slots=True)
class CopyResult:
    """What a backup or restore copied."""

    pages: int
    bytes: int
    seconds: float
    products: int


def sqlite_file(url: str) -> Path | None:
    """The SQLite file of the database URL ``url``; None for another database (PostgreSQL).

    Raises :class:`BackupError` for an invalid URL, an in-memory database or
    an SQLite URI filename.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        raise BackupError("invalid DATABASE_URL") from None
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:"):
        raise BackupError("DATABASE_URL is an in-memory SQLite database: nothing to back up or restore")
    if database.startswith("file:") or str(parsed.query.get("uri", "")).lower() in ("1", "true"):
        raise BackupError(f"DATABASE_URL names an SQLite URI filename ({database}): give a plain file path")
    return Path(database)


def _connect(path: Path, busy_timeout: float, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=busy_timeout)
    return sqlite3.connect(path, timeout=busy_timeout)


def _products(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM products").fetchone()[0])


def backup_sqlite(source: Path, destination: Path, busy_timeout: float = 30.0) -> CopyResult:
    """Copy the SQLite database ``source`` to ``destination`` (replaced if it exists), consistently.

    ``busy_timeout``: seconds to wait for a lock (a checkpoint, a writer
    switching journal modes).  Raises :class:`BackupError` (one line).
    """
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    if destination.exists() and destination.resolve() == source.resolve():
        raise BackupError(f"the backup {destination} is the database itself")
    if not destination.parent.is_dir():
        raise BackupError(f"cannot write {destination}: no directory {destination.parent}")
    started = time.perf_counter()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    except OSError as e:
        raise BackupError(f"cannot write {destination}: {e.strerror or e}") from None
    os.close(fd)
    try:
        src = _connect(source, busy_timeout)
        try:
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst)  # one step (pages=-1): one read transaction, one snapshot
                dst.execute("PRAGMA journal_mode=DELETE")
                _check(dst, destination)
                pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
                products = _products(dst) if _has_products(dst) else 0
            finally:
                dst.close()
        finally:
            src.close()
        os.chmod(tmp, 0o600)  # a database may hold what the crawl saw: readable by its owner only
        os.replace(tmp, destination)
    except sqlite3.Error as e:
        Path(tmp).unlink(missing_ok=True)
        raise BackupError(f"cannot back up {source}: {' '.join(str(e).split())}") from None
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise BackupError(f"cannot write {destination}: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return CopyResult(pages, destination.stat().st_size, time.perf_counter() - started, products)


def _has_products(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'products'").fetchone() is not None


def _check(conn: sqlite3.Connection, shown: Path) -> None:
    result = conn.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise BackupError(f"{shown} fails SQLite's integrity check: {result}")


def check_backup(backup: Path) -> int:
    """Check that ``backup`` is a crawler database (SQLite, a ``products`` table, intact); return its products.

    Raises :class:`BackupError` (one line).
    """
    if not backup.is_file():
        raise BackupError(f"no backup at {backup}")
    try:
        conn = _connect(backup, 5.0, read_only=True)
        try:
            _check(conn, backup)
            if not _has_products(conn):
                raise BackupError(f"{backup} is not a crawler database (no products table)")
            return _products(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise BackupError(f"{backup} is not an SQLite database ({' '.join(str(e).split())})") from None


def restore_sqlite(backup: Path, database: Path, busy_timeout: float = 30.0) -> CopyResult:
    """Replace the content of ``database`` (created if missing) with the backup ``backup``.

    Raises :class:`BackupError` (one line).  The caller makes sure no crawl
    writes to ``database`` (the run lock).
    """
    products = check_backup(backup)
    if database.exists() and database.resolve() == backup.resolve():
        raise BackupError(f"the backup {backup} is the database itself")
    started = time.perf_counter()
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        src = _connect(backup, busy_timeout, read_only=True)
        try:
            dst = _connect(database, busy_timeout)
            try:
                src.backup(dst)  # one write transaction of the destination
                pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
                dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as e:
        raise BackupError(f"cannot restore {database}: {' '.join(str(e).split())}") from None
    except OSError as e:
        raise BackupError(f"cannot restore {database}: {e.strerror or e}") from None
    return CopyResult(pages, database.stat().st_size, time.perf_counter() - started, products)
