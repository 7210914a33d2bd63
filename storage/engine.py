"""Database engines: URL checks, SQLite set-up, one-line errors, and small shared helpers.

Pure storage, no Scrapy or Twisted.  :func:`open_engine` makes the engine
(URL checks, SQLite set-up, one-line :class:`DatabaseError`) of every store
of the database (``storage/products.py``, ``storage/dead_letters.py``).

Timestamps are stored as ISO-8601 UTC strings with millisecond precision
(``2024-05-01T12:00:00.000Z``, see :func:`utc_iso`), the same on every
database, so they sort as text.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import StaticPool

from crawler.errors import ConfigError

__all__ = [
    "IN_CHUNK",
    "DatabaseError",
    "chunks",
    "dialect_insert",
    "is_transient",
    "one_line",
    "open_engine",
    "utc_iso",
]

SUPPORTED_DIALECTS = ("sqlite", "postgresql")
#: Largest number of values in one ``IN (...)`` list.
IN_CHUNK = 500


class DatabaseError(ConfigError):
    """The database is misconfigured or cannot be reached (one-line message).

    A :class:`crawler.errors.ConfigError`: ``scrapy crawl`` prints it as
    ``error: <message>`` and exits with status 2.
    """


def utc_iso(moment: datetime) -> str:
    """``moment`` as stored: ISO-8601 UTC, milliseconds, ``Z`` (naive = UTC)."""
    if moment.tzinfo is not UTC:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:23] + "Z"


def one_line(error: BaseException, with_type: bool = False) -> str:
    """A one-line description of ``error`` (the DBAPI message for SQLAlchemy errors)."""
    inner: BaseException = error
    if isinstance(error, exc.DBAPIError) and error.orig is not None:
        inner = error.orig
    text = str(inner).strip()
    if not text or isinstance(inner, exc.SQLAlchemyError):
        # SQLAlchemy's own messages end with "(Background on this error ...)"
        text = text.split("\n(Background on this error", 1)[0]
    text = " ".join(text.split()) or type(inner).__name__
    return f"{type(inner).__name__}: {text}" if with_type else text


_PASSWORD_IN_TEXT = re.compile(r":[^:@/\s]+@")


def _mask(raw: str) -> str:
    """Mask a password in a URL string that could not be parsed."""
    return _PASSWORD_IN_TEXT.sub(":***@", raw)


def is_transient(error: BaseException) -> bool:
    """Errors worth retrying as they are: locks, timeouts, lost connections."""
    if isinstance(error, exc.OperationalError):
        return True
    return isinstance(error, exc.DBAPIError) and bool(error.connection_invalidated)


def _sqlite_is_memory(url: URL) -> bool:
    database = url.database or ""
    if database in ("", ":memory:"):
        return True
    return str(url.query.get("uri", "")).lower() in ("1", "true") and (
        url.query.get("mode") == "memory" or database.startswith("file::memory:")
    )


def chunks(values: list[Any], size: int = IN_CHUNK) -> list[list[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def open_engine(
    url: str, *, sqlite_busy_timeout: float = 5.0, echo: bool = False, must_exist: bool = False
) -> tuple[Engine, str]:
    """The engine of the database URL ``url``, connected once, and the URL to show (password hidden).

    ``must_exist``: for commands that only read (``scrapy dlq``, ``export``,
    ``changes``): an SQLite file that does not exist is a :class:`DatabaseError`
    ("no database at ..."), never created empty.

    Shared by every store of the database (products, dead letters).  SQLite:
    the file's directory is created, connections may move between threads,
    WAL mode, ``busy_timeout``, and transactions begun with the execution
    option ``store_write=True`` start with ``BEGIN IMMEDIATE``.  Raises
    :class:`DatabaseError` (one line, password masked) when the URL is
    invalid, unsupported, or the database cannot be opened.
    """
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError, TypeError) as e:
        raise DatabaseError(f"invalid DATABASE_URL {_mask(str(url))!r}: {one_line(e)}") from None
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_DIALECTS:
        raise DatabaseError(
            f"invalid DATABASE_URL {shown!r}: unsupported database dialect {backend!r}"
            f" (supported: {', '.join(SUPPORTED_DIALECTS)})"
        )
    kwargs: dict[str, Any] = {"echo": echo}
    if backend == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False}
        if _sqlite_is_memory(parsed):
            # one connection shared by the creating and the writer thread
            kwargs["poolclass"] = StaticPool
        elif must_exist:
            _require_file(parsed, shown)
        else:
            _make_parent_dir(parsed, shown)
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except exc.NoSuchModuleError as e:
        raise DatabaseError(
            f"invalid DATABASE_URL {shown!r}: unknown database dialect/driver {parsed.drivername!r}"
            f" ({one_line(e)})"
        ) from None
    except ImportError as e:
        raise DatabaseError(
            f"invalid DATABASE_URL {shown!r}: database driver for {parsed.drivername!r} is not installed"
            f" ({one_line(e)})"
        ) from None
    except (exc.ArgumentError, ValueError, TypeError) as e:
        raise DatabaseError(f"invalid DATABASE_URL {shown!r}: {one_line(e)}") from None
    dialect = engine.dialect.name
    if dialect == "sqlite":
        _setup_sqlite(engine, sqlite_busy_timeout)
    elif dialect != "postgresql":  # pragma: no cover - get_backend_name() was checked above
        engine.dispose()
        raise DatabaseError(f"invalid DATABASE_URL {shown!r}: unsupported database dialect {dialect!r}")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except exc.SQLAlchemyError as e:
        engine.dispose()
        raise DatabaseError(f"cannot open database {shown}: {one_line(e)}") from None
    return engine, shown


def dialect_insert(dialect: str) -> Any:
    """The dialect's ``insert`` construct (with ``on_conflict_do_update``)."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert


def _make_parent_dir(url: URL, shown: str) -> None:
    database = url.database or ""
    if str(url.query.get("uri", "")).lower() in ("1", "true") or database.startswith("file:"):
        return  # an SQLite URI filename: left to SQLite
    parent = os.path.dirname(os.path.abspath(database))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        reason = "Not a directory" if isinstance(e, FileExistsError) else (e.strerror or str(e))
        raise DatabaseError(f"cannot open database {shown}: cannot create directory {parent}: {reason}") from None


def _require_file(url: URL, shown: str) -> None:
    database = url.database or ""
    if str(url.query.get("uri", "")).lower() in ("1", "true") or database.startswith("file:"):
        return  # an SQLite URI filename: left to SQLite
    if not os.path.isfile(database):
        raise DatabaseError(
            f"no database at {shown} ({os.path.abspath(database)} does not exist):"
            " check DATABASE_URL / CRAWLER_DATABASE_URL, or crawl first"
        )


def _setup_sqlite(engine: Engine, busy_timeout: float) -> None:
    busy_ms = max(0, int(busy_timeout * 1000))

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (below), not the sqlite3 module
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    def on_begin(conn: Connection) -> None:
        # a write transaction takes the write lock at once: it waits up to
        # busy_timeout for another writer, instead of failing when a read
        # transaction upgrades; reads do not take it at all
        if conn.get_execution_options().get("store_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
