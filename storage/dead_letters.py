"""Dead-letter queue storage: requests given up on, with what is needed to replay them.

Pure storage, no Scrapy or Twisted (the glue is ``extensions/dead_letters.py``).
The table ``dead_letters`` lives on :data:`storage.schema.metadata`, in
the same database as the products (``DATABASE_URL``), and the engine is
made by :func:`storage.engine.open_engine`, so the URL rules, the SQLite
set-up and the one-line :class:`~storage.engine.DatabaseError` are the
product store's.

One row per (spider, request fingerprint): dead-lettering the same request
again updates its failure columns and ``last_failed`` and increments
``times``; ``first_failed`` keeps the first time.  ``spider_args`` is the
JSON object of the ``-a`` arguments that recreate the spider and
``request`` the JSON object the request is rebuilt from (see
``extensions/dead_letters.py``).  Timestamps are ISO-8601 UTC text, like the
other tables (:func:`~storage.engine.utc_iso`).

Writes (:meth:`DeadLetterStore.write`, :meth:`~DeadLetterStore.add`,
:meth:`~DeadLetterStore.remove`) are meant for ONE thread at a time (the
extension's writer thread); reads open their own pooled connection.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import exc, func, select
from sqlalchemy.sql.elements import ColumnElement

from storage.base import SqlStore
from storage.engine import IN_CHUNK, chunks, dialect_insert, one_line, utc_iso
from storage.schema import (
    CLASS_LENGTH,
    FINGERPRINT_LENGTH,
    METHOD_LENGTH,
    REASON_LENGTH,
    STAGE_LENGTH,
    dead_letters,
)

__all__ = [
    "COLUMNS",
    "DeadLetterFilter",
    "DeadLetterRow",
    "DeadLetterStore",
    "DeadLetterWriteError",
    "WriteResult",
    "canonical_args",
    "upsert_statement",
]

#: Every column, in table order (the keys of the row dicts the read methods return).
COLUMNS: tuple[str, ...] = tuple(c.name for c in dead_letters.columns)
#: Columns written by an insert (all but ``id``), in the order of the value tuples.
_INSERT_COLUMNS: tuple[str, ...] = COLUMNS[1:]
#: Columns an upsert overwrites (``first_failed`` is kept, ``times`` is added to).
_UPDATED_COLUMNS: tuple[str, ...] = tuple(
    c for c in _INSERT_COLUMNS if c not in ("spider", "fingerprint", "first_failed", "times")
)


def canonical_args(args: Mapping[str, Any]) -> str:
    """The stored form of spider arguments: compact JSON, keys sorted (compared as text)."""
    return json.dumps(dict(args), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _json_text(value: str | Mapping[str, Any]) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _cut(value: Any, length: int) -> str:
    text = " ".join(str(value).split())
    return text[:length]


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """One request given up on, as the extension records it.

    ``spider_args`` and ``request`` are JSON objects (a dict, or its JSON
    text).  ``spider_args`` is stored with :func:`canonical_args` so equal
    arguments compare equal.
    """

    spider: str
    site: str | None
    spider_args: str | Mapping[str, Any]
    fingerprint: str
    url: str
    method: str
    stage: str | None
    request: str | Mapping[str, Any]
    failure_class: str
    reason: str
    last_status: int | None
    last_exception: str | None
    attempts: int
    failed_at: datetime

    def values(self) -> dict[str, Any]:
        """The column values of an insert (``first_failed`` = ``last_failed`` = ``failed_at``)."""
        at = utc_iso(self.failed_at)
        args = self.spider_args
        return {
            "spider": self.spider,
            "site": self.site,
            "spider_args": args if isinstance(args, str) else canonical_args(args),
            "fingerprint": self.fingerprint[:FINGERPRINT_LENGTH],
            "url": self.url,
            "method": _cut(self.method, METHOD_LENGTH) or "GET",
            "stage": _cut(self.stage, STAGE_LENGTH) if self.stage is not None else None,
            "request": _json_text(self.request),
            "failure_class": _cut(self.failure_class, CLASS_LENGTH),
            "reason": _cut(self.reason, REASON_LENGTH),
            "last_status": self.last_status,
            "last_exception": self.last_exception,
            "attempts": int(self.attempts),
            "first_failed": at,
            "last_failed": at,
            "times": 1,
        }


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which dead letters a read or a requeue selects (None: any).

    ``spider_args`` matches the stored JSON text exactly (a dict is
    canonicalised with :func:`canonical_args`); ``ids`` is a set of row ids.
    """

    spider: str | None = None
    site: str | None = None
    reason: str | None = None
    failure_class: str | None = None
    stage: str | None = None
    ids: tuple[int, ...] | None = None
    spider_args: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeadLetterFilter:
        """A filter from a JSON-like dict (``DLQ_REQUEUE_FILTER``); ValueError (one line) if invalid."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a dead-letter filter must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown dead-letter filter key(s) {', '.join(map(repr, unknown))} (known: {', '.join(sorted(known))})"
            )
        values: dict[str, Any] = {}
        for name, value in data.items():
            if value is None:
                continue
            if name == "ids":
                if isinstance(value, (int, str)):
                    value = [value]
                try:
                    values["ids"] = tuple(sorted({int(i) for i in value}))
                except (TypeError, ValueError):
                    raise ValueError(f"dead-letter filter 'ids' must be a list of integers, got {value!r}") from None
            elif name == "spider_args":
                values[name] = canonical_args(value) if isinstance(value, Mapping) else str(value)
            elif isinstance(value, (str, int)):
                values[name] = str(value)
            else:
                raise ValueError(f"dead-letter filter {name!r} must be a string, got {value!r}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The filter as a JSON-ready dict (set keys only)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = list(value) if f.name == "ids" else value
        return out

    def where(self) -> list[ColumnElement[bool]]:
        """The SQL conditions of this filter."""
        c = dead_letters.c
        clauses: list[ColumnElement[bool]] = []
        for name in ("spider", "site", "reason", "failure_class", "stage", "spider_args"):
            value = getattr(self, name)
            if value is not None:
                clauses.append(c[name] == value)
        if self.ids is not None:
            clauses.append(c.id.in_(list(self.ids)))
        return clauses


@dataclass(slots=True)
class WriteResult:
    """What one :meth:`DeadLetterStore.write` did: rows upserted, rows removed, retries."""

    added: int = 0
    removed: int = 0
    retries: int = 0
    seconds: float = 0.0


class DeadLetterWriteError(Exception):
    """A write failed for good (the database stays locked, is gone, ...): one-line message."""


class DeadLetterStore(SqlStore):
    """The ``dead_letters`` table of the database at ``url`` (an SQLAlchemy URL).

    The constructor connects once and raises
    :class:`~storage.engine.DatabaseError` (one line, password masked)
    when it cannot; :meth:`create_schema` creates the table.  ``retries`` /
    ``retry_delay``: attempts of a write that failed with a transient error
    (e.g. "database is locked") before :class:`DeadLetterWriteError`.
    """

    TABLES = [dead_letters]

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.upsert = upsert_statement(self.dialect)

    # -- writing

    def write(self, rows: Sequence[DeadLetterRow] = (), remove_ids: Iterable[int] = ()) -> WriteResult:
        """Remove ``remove_ids``, then upsert ``rows``, in one transaction.

        Removals go first: a request that recovered and then failed again
        before the write is kept (the safe side).  Rows of the same spider
        and fingerprint in ``rows`` are merged (the last one wins, ``times``
        counts them all, ``first_failed`` is the earliest).  A transient
        error retries the transaction ``retries`` times; then, or on any other
        database error, :class:`DeadLetterWriteError`.
        """
        started = time.perf_counter()
        values = _merge(rows)
        ids = sorted({int(i) for i in remove_ids})
        result = WriteResult()

        def transaction() -> int:
            with self._writer.begin() as conn:
                removed = 0
                for chunk in chunks(ids):
                    removed += conn.execute(dead_letters.delete().where(dead_letters.c.id.in_(chunk))).rowcount
                if values:
                    conn.execute(self.upsert, values)
            return removed

        try:
            result.removed = self._with_retries(transaction, result)
        except exc.SQLAlchemyError as e:
            raise DeadLetterWriteError(f"cannot write to {self.url_shown}: {one_line(e)}") from e
        result.added = len(rows)
        result.seconds = time.perf_counter() - started
        return result

    def add(self, rows: Sequence[DeadLetterRow]) -> int:
        """Upsert ``rows`` in one transaction (see :meth:`write`); returns ``len(rows)``."""
        return self.write(rows).added

    def remove(self, ids: Iterable[int]) -> int:
        """Delete the dead letters ``ids``; returns how many existed."""
        return self.write((), ids).removed

    # -- reading

    def get(self, letter_id: int) -> dict[str, Any] | None:
        """Every column of dead letter ``letter_id``, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(dead_letters).where(dead_letters.c.id == int(letter_id))).first()
        return dict(row._mapping) if row is not None else None

    def list(
        self,
        filters: DeadLetterFilter | None = None,
        *,
        limit: int | None = 50,
        offset: int = 0,
        after_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Dead letters matching ``filters``, by id; ``after_id``: only ids above it (keyset paging)."""
        statement = select(dead_letters).where(*(filters or DeadLetterFilter()).where())
        if after_id is not None:
            statement = statement.where(dead_letters.c.id > int(after_id))
        statement = statement.order_by(dead_letters.c.id)
        if limit is not None:
            statement = statement.limit(int(limit))
        if offset:
            statement = statement.offset(int(offset))
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(statement)]

    def iter_all(self, filters: DeadLetterFilter | None = None, *, chunk: int = 1000) -> Iterator[dict[str, Any]]:
        """Every dead letter matching ``filters``, by id, read ``chunk`` rows at a time (for export)."""
        filters = filters or DeadLetterFilter()
        if filters.ids is not None:
            for ids in chunks(list(filters.ids), min(chunk, IN_CHUNK)):
                yield from self.list(replace(filters, ids=tuple(ids)), limit=None)
            return
        last: int | None = None
        while True:
            rows = self.list(filters, limit=chunk, after_id=last)
            yield from rows
            if len(rows) < chunk:
                return
            last = rows[-1]["id"]

    def count(self, filters: DeadLetterFilter | None = None) -> int:
        """Number of dead letters matching ``filters``."""
        statement = select(func.count()).select_from(dead_letters).where(*(filters or DeadLetterFilter()).where())
        with self.engine.connect() as conn:
            return int(conn.execute(statement).scalar_one())

    def count_by(self, filters: DeadLetterFilter | None = None) -> list[tuple[str, str, int]]:
        """``(failure_class, reason, count)`` of the matching dead letters, by class then most frequent."""
        c = dead_letters.c
        n = func.count().label("n")
        statement = (
            select(c.failure_class, c.reason, n)
            .where(*(filters or DeadLetterFilter()).where())
            .group_by(c.failure_class, c.reason)
            .order_by(c.failure_class, n.desc(), c.reason)
        )
        with self.engine.connect() as conn:
            return [(str(k), str(r), int(count)) for k, r, count in conn.execute(statement)]

    def existing(self, ids: Iterable[int]) -> dict[int, int]:
        """``{id: times}`` of those of ``ids`` that are still in the queue."""
        found: dict[int, int] = {}
        c = dead_letters.c
        with self.engine.connect() as conn:
            for chunk in chunks(sorted({int(i) for i in ids})):
                found.update((int(i), int(t)) for i, t in conn.execute(select(c.id, c.times).where(c.id.in_(chunk))))
        return found


def upsert_statement(dialect: str) -> Any:
    """The upsert of dead letters on ``dialect`` ("sqlite" or "postgresql"), keyed by (spider, fingerprint)."""
    insert = dialect_insert(dialect)(dead_letters)
    c = dead_letters.c
    set_: dict[str, Any] = {name: insert.excluded[name] for name in _UPDATED_COLUMNS}
    set_["times"] = c.times + insert.excluded.times
    return insert.on_conflict_do_update(index_elements=[c.spider, c.fingerprint], set_=set_)


def _merge(rows: Sequence[DeadLetterRow]) -> list[dict[str, Any]]:
    """Column values of ``rows``, one per (spider, fingerprint): the last wins, ``times`` counts them."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        values = row.values()
        key = (values["spider"], values["fingerprint"])
        previous = merged.get(key)
        if previous is not None:
            values["times"] = previous["times"] + 1
            values["first_failed"] = min(previous["first_failed"], values["first_failed"])
            values["last_failed"] = max(previous["last_failed"], values["last_failed"])
        merged[key] = values
    return list(merged.values())
