"""Product storage: SQLAlchemy Core, SQLite (embedded default) or PostgreSQL.

Pure storage, no Scrapy or Twisted: :class:`ProductStore` writes batches of
:class:`ProductRow` / :class:`RejectRow` in one transaction each (tables
``products`` and ``rejected_items`` of :mod:`storage.schema`; a product whose
content changed keeps its previous version in ``product_versions``, in the same
transaction, see :mod:`storage.versions`), and is meant
to be used by ONE thread at a time (the store pipeline's writer thread).
The engine is made by :func:`storage.engine.open_engine` (URL checks, SQLite
set-up, one-line :class:`~storage.engine.DatabaseError`), like that of every
store of the database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, case, exc, func, select
from sqlalchemy.engine import Connection

from crawler.items import canonical_json
from storage.base import SqlStore
from storage.engine import chunks, dialect_insert, is_transient, one_line, utc_iso
from storage.schema import KEY_LENGTH, product_versions, products, rejected_items
from storage.versions import VERSION_COLUMNS, keep_previous_versions

__all__ = [
    "PRODUCT_COLUMNS",
    "REJECT_COLUMNS",
    "BatchResult",
    "ProductRow",
    "ProductStore",
    "RejectRow",
    "StoreWriteError",
]

#: Error one-liners kept in a :class:`BatchResult` (the counts are complete).
MAX_ERRORS_KEPT = 20


class StoreWriteError(Exception):
    """A batch could not be written because of a persistent, not row-specific error.

    Rows written before the error stay written: ``result`` counts them and
    ``unwritten`` is the number of rows of the batch that were not stored.
    """

    def __init__(self, message: str, result: BatchResult, unwritten: int) -> None:
        super().__init__(message)
        self.result = result
        self.unwritten = unwritten


# --- rows and results -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProductRow:
    """A valid product to save.

    ``data`` is ``item.fields`` already serialised with
    :func:`crawler.items.canonical_json` (the text ``content_hash`` hashes),
    so it is serialised once per item, not once for the hash and once here.
    """

    site: str
    key: str
    url: str
    data: str
    content_hash: str
    list_page: int | None
    list_position: int | None
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class RejectRow:
    """A page that is not a valid product (``data`` is the raw extracted values)."""

    site: str
    url: str
    key: str | None
    reason: str
    data: dict[str, Any]
    seen_at: datetime


@dataclass(slots=True)
class BatchResult:
    """What one :meth:`ProductStore.write_batch` did.

    ``rejected`` counts the reject rows of the batch that were stored,
    ``isolated`` the product rows the database refused, stored as rejects
    (reason ``store error: ...``) instead, ``failed`` the rows that could not
    be stored at all (their errors are in ``errors``).
    """

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    retries: int = 0
    isolated: int = 0
    failed: int = 0
    #: Products whose content changed (their previous version is now in ``product_versions``).
    changed: int = 0
    #: Field name -> products of the batch whose that field changed.
    changed_fields: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    #: (site, key) of the products now in the database (committed).
    saved_keys: set[tuple[str, str]] = field(default_factory=set)
    #: (site, url) of the rejects now in the database, isolated products included.
    rejected_urls: set[tuple[str, str]] = field(default_factory=set)

    @property
    def stored(self) -> int:
        """Rows of the batch that are now in the database (products or rejects)."""
        return self.inserted + self.updated + self.unchanged + self.rejected + self.isolated

    def add(self, other: BatchResult) -> None:
        """Add the counts of ``other`` (a sub-batch) to this result."""
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.rejected += other.rejected
        self.retries += other.retries
        self.isolated += other.isolated
        self.failed += other.failed
        self.changed += other.changed
        for name, count in other.changed_fields.items():
            self.changed_fields[name] = self.changed_fields.get(name, 0) + count
        self.saved_keys |= other.saved_keys
        self.rejected_urls |= other.rejected_urls
        self._note(other.errors)

    def _note(self, errors: list[str]) -> None:
        room = MAX_ERRORS_KEPT - len(self.errors)
        if room > 0:
            self.errors.extend(errors[:room])


# --- helpers ---------------------------------------------------------------------


def _reject_json(data: Any) -> str:
    """Raw values as JSON text; never fails (non-JSON values become strings)."""
    try:
        return canonical_json(data)
    except (TypeError, ValueError, RecursionError):
        return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


# --- the store -------------------------------------------------------------------


class ProductStore(SqlStore):
    """Writes product and reject rows (tables ``products`` and ``rejected_items``).

    A failed batch is retried ``retries`` times, then split to isolate bad rows.
    """

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self._build_statements(dialect_insert(self.dialect))

    # -- setup

    def _build_statements(self, insert: Any) -> None:
        p = products.c
        ins = insert(products)
        product_upsert = ins.on_conflict_do_update(
            index_elements=[p.site, p.key],
            set_={
                "url": ins.excluded.url,
                "data": ins.excluded.data,
                "content_hash": ins.excluded.content_hash,
                "list_page": ins.excluded.list_page,
                "list_position": ins.excluded.list_position,
                "last_seen": ins.excluded.last_seen,
                # first_seen never changes; updated_at only when the content does
                "updated_at": case(
                    (p.content_hash == ins.excluded.content_hash, p.updated_at),
                    else_=ins.excluded.updated_at,
                ),
            },
        )
        r = rejected_items.c
        rins = insert(rejected_items)
        reject_upsert = rins.on_conflict_do_update(
            index_elements=[r.site, r.url],
            set_={
                "key": rins.excluded.key,
                "reason": rins.excluded.reason,
                "data": rins.excluded.data,
                "last_seen": rins.excluded.last_seen,
                "times": r.times + rins.excluded.times,
            },
        )
        self.product_upsert = product_upsert
        self.reject_upsert = reject_upsert
        self._upsert_products = self._executemany(product_upsert, PRODUCT_COLUMNS)
        self._upsert_rejects = self._executemany(reject_upsert, REJECT_COLUMNS)
        self._insert_versions = self._executemany(product_versions.insert(), VERSION_COLUMNS)
        self._lookups: dict[str, tuple[Any, str]] = {
            "hashes": (
                select(p.key, p.content_hash).where(
                    p.site == bindparam("site"), p.key.in_(bindparam("keys", expanding=True))
                ),
                "keys",
            ),
            "reject_ids": (
                select(r.id).where(r.site == bindparam("site"), r.url.in_(bindparam("urls", expanding=True))),
                "urls",
            ),
        }
        self._lookup_sql: dict[tuple[str, int], str] | None = None
        if self.dialect == "sqlite":
            q = self.engine.dialect.identifier_preparer.quote
            self._lookup_sql = {}
            self._lookup_templates = {
                "hashes": f"SELECT {q('key')}, {q('content_hash')} FROM {q('products')}"
                f" WHERE {q('site')} = ? AND {q('key')} IN ({{}})",
                "reject_ids": f"SELECT {q('id')} FROM {q('rejected_items')}"
                f" WHERE {q('site')} = ? AND {q('url')} IN ({{}})",
            }
        self._delete_rejects = rejected_items.delete().where(r.id.in_(bindparam("ids", expanding=True)))

    # -- writing

    def write_batch(self, products: Sequence[ProductRow], rejects: Sequence[RejectRow] = ()) -> BatchResult:
        """Save ``products`` and ``rejects`` in one transaction; return the counts.

        Duplicate products (same site and key) or rejects (same site and url)
        in the batch: the last one wins, counted once (a reject's ``times``
        grows by its number of duplicates).  A reject of a page that the same
        batch also saves as a product, later, is not stored (counted as
        rejected).  A transient error retries the whole batch ``retries``
        times; if it persists, or on any other database error, the batch is
        split in halves until each bad row is alone: a bad product row is
        then stored as a reject (``store error: ...``).  Raises
        :class:`StoreWriteError` only when an error is not row-specific
        (e.g. the database stays locked or is gone).
        """
        started = time.perf_counter()
        result = BatchResult()
        ops = self._prepare(products, rejects, result)
        accounted = result.stored + result.failed
        try:
            if ops:
                self._write_with_retries(ops, result)
        except StoreWriteError as e:
            e.unwritten = len(ops) - (result.stored + result.failed - accounted)
            raise
        finally:
            result.seconds = time.perf_counter() - started
        return result

    def _prepare(self, products: Sequence[ProductRow], rejects: Sequence[RejectRow], result: BatchResult) -> list[_Op]:
        """Deduplicate (the last row of a key or URL wins) and build the value tuples."""
        by_key: dict[tuple[str, str], ProductRow] = {}
        for row in products:
            by_key[(row.site, row.key)] = row
        ops: list[_Op] = []
        stamps: dict[datetime, str] = {}  # rows of a batch share a few crawl times
        for row in by_key.values():
            seen = stamps.get(row.seen_at)
            if seen is None:
                seen = stamps[row.seen_at] = utc_iso(row.seen_at)
            values = (
                row.site, row.key, row.url, row.data, row.content_hash,
                row.list_page, row.list_position, seen, seen, seen,
            )  # fmt: skip
            ops.append((values, row, False))
        if not rejects:
            return ops
        saved_at: dict[tuple[str, str], str] = {}
        for values, _row, _isolated in ops:
            place = (values[_SITE], values[_URL])
            if saved_at.get(place, "") < values[_SEEN]:
                saved_at[place] = values[_SEEN]
        by_url: dict[tuple[str, str], tuple[RejectRow, int]] = {}
        for rrow in rejects:
            place = (rrow.site, rrow.url)
            previous = by_url.get(place)
            by_url[place] = (rrow, previous[1] + 1 if previous else 1)
        for place, (rrow, times) in by_url.items():
            seen = utc_iso(rrow.seen_at)
            if saved_at.get(place, "") > seen:
                result.rejected += 1  # superseded: the page is saved as a product later in this batch
                result.rejected_urls.add(place)
                continue
            ops.append((_reject_values(rrow, seen, times), None, False))
        return ops

    def _write_with_retries(self, ops: list[_Op], result: BatchResult) -> None:
        try:
            result.add(self._with_retries(lambda: self._write_once(ops), result))
        except exc.SQLAlchemyError as e:
            self._split(ops, result, e)

    def _split(self, ops: list[_Op], result: BatchResult, error: exc.SQLAlchemyError) -> None:
        """Write ``ops`` (which failed as a whole with ``error``) in halves, isolating bad rows.

        A transient error here is taken as not row-specific (it outlived the
        retries): :class:`StoreWriteError`.
        """
        if len(ops) == 1:
            self._isolate(ops[0], result, error)
            return
        middle = len(ops) // 2
        for part in (ops[:middle], ops[middle:]):
            try:
                result.add(self._write_once(part))
            except exc.SQLAlchemyError as e:
                if is_transient(e):
                    raise self._systemic(e, result) from e
                self._split(part, result, e)

    def _isolate(self, op: _Op, result: BatchResult, error: exc.SQLAlchemyError) -> None:
        """``op`` alone failed with ``error``: store a product as a reject; count a reject as failed."""
        if is_transient(error):
            raise self._systemic(error, result) from error
        values, product, _isolated = op
        message = one_line(error, with_type=True)
        if product is None:
            result.failed += 1
            result._note([f"reject of {values[1]} not stored: {message}"])
            return
        reject = _store_error_reject(product, error)
        try:
            result.add(self._write_once([(_reject_values(reject, utc_iso(reject.seen_at), 1), None, True)]))
        except exc.SQLAlchemyError as e:
            if is_transient(e):
                raise self._systemic(e, result) from e
            result.failed += 1
            result._note([f"product {product.key!r} ({product.url}) not stored: {message}"])
            return
        result._note([f"product {product.key!r} ({product.url}) stored as reject: {message}"])

    def _systemic(self, error: exc.SQLAlchemyError, result: BatchResult) -> StoreWriteError:
        # `unwritten` is filled in by write_batch()
        return StoreWriteError(f"cannot write to {self.url_shown}: {one_line(error)}", result, 0)

    def _write_once(self, ops: list[_Op]) -> BatchResult:
        """One transaction: count, keep the previous versions of changed products, upsert products,
        clear their old rejects, upsert rejects."""
        result = BatchResult()
        product_values = [op[0] for op in ops if op[1] is not None]
        reject_ops = [op for op in ops if op[1] is None]
        with self._writer.begin() as conn:
            if product_values:
                existing = self._existing_hashes(conn, product_values)
                inserted = unchanged = 0
                changed: list[tuple[Any, ...]] = []
                for values in product_values:
                    old = existing.get(values[_SITE], _EMPTY).get(values[_KEY])
                    if old is None:
                        inserted += 1
                    elif old == values[_HASH]:
                        unchanged += 1
                    else:
                        changed.append(values)
                result.inserted = inserted
                result.unchanged = unchanged
                result.updated = len(product_values) - inserted - unchanged
                if changed:  # before the upsert overwrites them
                    self._keep_versions(conn, changed, result)
                self._upsert_products(conn, product_values)
                self._clear_rejects(conn, product_values)
            if reject_ops:
                self._upsert_rejects(conn, [op[0] for op in reject_ops])
                isolated = sum(1 for op in reject_ops if op[2])
                result.isolated = isolated
                result.rejected = len(reject_ops) - isolated
        # the transaction committed: these rows are in the database
        result.saved_keys = {(v[_SITE], v[_KEY]) for v in product_values}
        result.rejected_urls = {(op[0][0], op[0][1]) for op in reject_ops}
        return result

    def _keep_versions(self, conn: Connection, changed: list[tuple[Any, ...]], result: BatchResult) -> None:
        """Copy the stored rows of the ``changed`` products to ``product_versions`` (same transaction)."""
        rows = [(v[_SITE], v[_KEY], v[_DATA], v[_SEEN]) for v in changed]
        counts = keep_previous_versions(conn, rows, self._insert_versions)
        result.changed = counts.changed
        result.changed_fields = dict(counts.fields)

    def _existing_hashes(self, conn: Connection, rows: list[tuple[Any, ...]]) -> dict[str, dict[str, str]]:
        """``{site: {key: content_hash}}`` of the stored products among ``rows``."""
        found: dict[str, dict[str, str]] = {}
        for site, keys in _by_site(rows, _KEY).items():
            hashes = found.setdefault(site, {})
            for chunk in chunks(keys):
                hashes.update(self._lookup("hashes", conn, site, chunk))
        return found

    def _clear_rejects(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        """Delete the rejects of pages now saved as products (looked up first: usually none)."""
        for site, urls in _by_site(rows, _URL).items():
            for chunk in chunks(list(dict.fromkeys(urls))):
                ids = [row[0] for row in self._lookup("reject_ids", conn, site, chunk)]
                if ids:
                    conn.execute(self._delete_rejects, {"ids": ids})

    def _lookup(self, name: str, conn: Connection, site: str, values: list[str]) -> list[tuple[Any, ...]]:
        """Rows of the lookup ``name`` ("hashes": key, content_hash; "reject_ids": id) for ``values`` of ``site``.

        SQLite: plain SQL cached per number of values, run with
        ``exec_driver_sql`` (SQLAlchemy would re-render the expanding IN list
        on every call); elsewhere the Core statement with an expanding IN.
        """
        if self._lookup_sql is None:
            statement, values_name = self._lookups[name]
            return [tuple(row) for row in conn.execute(statement, {"site": site, values_name: values})]
        key = (name, len(values))
        sql = self._lookup_sql.get(key)
        if sql is None:
            sql = self._lookup_sql[key] = self._lookup_templates[name].format(", ".join("?" * len(values)))
        return conn.exec_driver_sql(sql, (site, *values)).fetchall()

    # -- reading (tests, tools)

    def count(self, table: Table) -> int:
        """Number of rows in ``table``."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


_Op = tuple[tuple[Any, ...], "ProductRow | None", bool]
"""One prepared row: (column values, the product row or None for a reject, isolated)."""

#: Column order of the value tuples of prepared rows.
PRODUCT_COLUMNS = (
    "site", "key", "url", "data", "content_hash", "list_page", "list_position", "first_seen", "last_seen", "updated_at",
)  # fmt: skip
REJECT_COLUMNS = ("site", "url", "key", "reason", "data", "first_seen", "last_seen", "times")
_SITE, _KEY, _URL, _HASH, _SEEN = 0, 1, 2, 4, 8
_DATA = 3
_EMPTY: dict[str, str] = {}


def _by_site(rows: list[tuple[Any, ...]], index: int) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for values in rows:
        site = values[_SITE]
        if site in grouped:
            grouped[site].append(values[index])
        else:
            grouped[site] = [values[index]]
    return grouped


def _store_error_reject(row: ProductRow, error: BaseException) -> RejectRow:
    key = row.key[:KEY_LENGTH] if isinstance(row.key, str) else None
    return RejectRow(
        site=row.site,
        url=row.url,
        key=key,
        reason=f"store error: {one_line(error, with_type=True)}",
        data={"fields_json": row.data},
        seen_at=row.seen_at,
    )


def _reject_values(row: RejectRow, seen: str, times: int) -> tuple[Any, ...]:
    return (row.site, row.url, row.key, row.reason, _reject_json(row.data), seen, seen, times)
