"""The base class of the stores: an engine for one writer thread, and schema creation.

:class:`SqlStore` opens the database with :func:`storage.engine.open_engine`
and creates its tables of :data:`storage.schema.metadata`;
:class:`storage.products.ProductStore` and
:class:`storage.dead_letters.DeadLetterStore` add the writes and reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Table, exc, text

from storage.engine import DatabaseError, is_transient, one_line, open_engine
from storage.schema import SCHEMA_LOCK_KEY, metadata

__all__ = ["SqlStore"]

T = TypeVar("T")


class CountsRetries(Protocol):
    """A write's result that counts the retries it took."""

    retries: int

class SqlStore:
    """An engine on ``url`` (an SQLAlchemy database URL) for one writer thread.

    The constructor creates the engine and connects once, raising
    :class:`DatabaseError` (one line, password masked) when it cannot.  A
    store is used by one thread at a time; it may be created in one thread
    and used in another (a writer thread).

    ``retries`` / ``retry_delay``: attempts of a write that failed with a
    transient error (e.g. "database is locked").
    ``sqlite_busy_timeout``: seconds an SQLite writer waits for a lock.
    ``must_exist``: refuse an SQLite file that does not exist (commands that only read).
    ``TABLES``: the tables :meth:`create_schema` creates (None: all).
    """

    TABLES: list[Table] | None = None

    def __init__(
        self,
        url: str,
        *,
        retries: int = 2,
        retry_delay: float = 0.5,
        sqlite_busy_timeout: float = 5.0,
        echo: bool = False,
        must_exist: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retries = max(0, int(retries))
        self.retry_delay = max(0.0, float(retry_delay))
        self._sleep = sleep
        self.engine, self.url_shown = open_engine(
            url, sqlite_busy_timeout=sqlite_busy_timeout, echo=echo, must_exist=must_exist
        )
        self.dialect = self.engine.dialect.name
        #: the engine of write transactions (SQLite: BEGIN IMMEDIATE)
        self._writer = self.engine.execution_options(store_write=True)

    def _executemany(self, statement: Any, columns: tuple[str, ...]) -> Callable[[Connection, list[Any]], None]:
        """A function running ``statement`` once per tuple of ``columns`` values (one executemany).

        On SQLite the statement is compiled once and the tuples go straight
        to the driver's ``executemany`` (``Connection.exec_driver_sql``): no
        per-row parameter processing (the stores' columns are Text/String/Integer,
        which have none on SQLite).  Elsewhere it is a Core executemany
        (``Connection.execute`` with a list of dicts), which PostgreSQL
        drivers batch ("insertmanyvalues").
        """
        if self.dialect == "sqlite":
            compiled = statement.compile(dialect=self.engine.dialect, column_keys=list(columns))
            order = compiled.positiontup
            if compiled.positional and order is not None and sorted(order) == sorted(columns):
                sql = compiled.string
                if tuple(order) == columns:

                    def run_direct(conn: Connection, rows: list[Any]) -> None:
                        conn.exec_driver_sql(sql, rows)

                    return run_direct
                index = [columns.index(name) for name in order]

                def run_reordered(conn: Connection, rows: list[Any]) -> None:
                    conn.exec_driver_sql(sql, [tuple(row[i] for i in index) for row in rows])

                return run_reordered

        def run_core(conn: Connection, rows: list[Any]) -> None:
            conn.execute(statement, [dict(zip(columns, row, strict=True)) for row in rows])

        return run_core

    def create_schema(self) -> None:
        """Create the tables and indexes that do not exist yet.

        On PostgreSQL two processes starting together would both see a table
        missing and one would fail creating it, so creation runs in one
        transaction holding an advisory transaction lock.
        """
        try:
            if self.dialect == "postgresql":
                with self.engine.begin() as conn:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK_KEY})
                    metadata.create_all(conn, tables=self.TABLES)
            else:
                metadata.create_all(self.engine, tables=self.TABLES)
        except exc.SQLAlchemyError as e:
            raise DatabaseError(f"cannot create tables in {self.url_shown}: {one_line(e)}") from None

    def _with_retries(self, write: Callable[[], T], result: CountsRetries) -> T:
        """``write()`` (one transaction); a transient database error runs it again, up to
        ``retries`` times ``retry_delay`` apart, each counted in ``result.retries``.  Any
        other error, or the last transient one, is raised."""
        attempt = 0
        while True:
            try:
                return write()
            except exc.SQLAlchemyError as e:
                if not is_transient(e) or attempt >= self.retries:
                    raise
                attempt += 1
                result.retries += 1
                self._sleep(self.retry_delay)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
