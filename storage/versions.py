"""Change history of products: earlier versions kept in ``product_versions``, and read back.

Pure storage, no Scrapy or Twisted.

Writing: :class:`ProductStore.write_batch <storage.products.ProductStore>`
calls :func:`keep_previous_versions` inside its transaction, before its
upsert overwrites the rows, with the batch's products whose ``content_hash``
differs from the stored one.  It reads their stored rows in one SELECT per
site and chunk of keys (not per row; unchanged products are never read),
and inserts one ``product_versions`` row per product (one executemany):
the previous ``data`` and ``content_hash``, when that version was first
stored (``valid_from``: its ``updated_at``), when it was replaced
(``replaced_at``: the crawl time of the new version, the new ``updated_at``)
and the names of the fields that differ (:func:`changed_fields`).  The same
transaction commits or rolls back both, so the history never misses or
invents a change.

Reading: :class:`VersionStore` (``scrapy changes``) lists the changes newest
first, each with the fields' old and new values: the new values of a
version are those of the next version of the same product, or the current
row of ``products`` for the latest one.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, exc, func, inspect, select
from sqlalchemy.engine import Connection

from storage.base import SqlStore
from storage.engine import DatabaseError, chunks, one_line
from storage.schema import product_versions, products

__all__ = [
    "VERSION_COLUMNS",
    "Change",
    "VersionCounts",
    "VersionStore",
    "changed_fields",
    "keep_previous_versions",
]

_MISSING = object()


def changed_fields(old_data: str, new_data: str) -> list[str]:
    """Names of the fields whose value differs between two ``data`` JSON texts, sorted.

    A field present in one version only counts as changed (even when the other
    would read it as null).  Text that is not a JSON object counts as one
    field named ``""`` (e.g. a row written by another program).
    """
    try:
        old, new = json.loads(old_data), json.loads(new_data)
    except (TypeError, ValueError):
        return [""]
    if not isinstance(old, dict) or not isinstance(new, dict):
        return [""] if old != new else []
    if len(old) == len(new):  # the usual case: the same fields (the cheapest test first)
        names = [k for k, value in old.items() if value != new.get(k, _MISSING)]
        if all(k in new for k in names):  # every key of old is in new: the same keys
            return sorted(names)
    return sorted(k for k in old.keys() | new.keys() if old.get(k, _MISSING) != new.get(k, _MISSING))


@dataclass(slots=True)
class VersionCounts:
    """What :func:`keep_previous_versions` recorded: versions kept, and changes per field."""

    changed: int = 0
    fields: Counter[str] = field(default_factory=Counter)


_OLD_ROWS = select(products.c.key, products.c.data, products.c.content_hash, products.c.updated_at).where(
    products.c.site == bindparam("site"), products.c.key.in_(bindparam("keys", expanding=True))
)
#: Column order of the value tuples :func:`keep_previous_versions` inserts.
VERSION_COLUMNS = ("site", "key", "data", "content_hash", "valid_from", "replaced_at", "changed_fields")
_INSERT = product_versions.insert()


def _insert_core(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    conn.execute(_INSERT, [dict(zip(VERSION_COLUMNS, row, strict=True)) for row in rows])


def keep_previous_versions(
    conn: Connection,
    changed: Sequence[tuple[str, str, str, str]],
    insert: Callable[[Connection, list[tuple[Any, ...]]], None] = _insert_core,
) -> VersionCounts:
    """Copy the stored rows of ``changed`` products to ``product_versions`` (in ``conn``'s transaction).

    ``changed``: (site, key, new data JSON, replaced_at ISO text) of products
    whose stored ``content_hash`` differs from the new one; call it before the
    rows are overwritten.  One SELECT per site and chunk of keys, one INSERT
    executemany in all: ``insert(conn, tuples of VERSION_COLUMNS)`` (default:
    a Core executemany; the product store passes its faster SQLite runner).
    """
    counts = VersionCounts()
    by_site: dict[str, dict[str, tuple[str, str]]] = {}
    for site, key, data, replaced_at in changed:
        by_site.setdefault(site, {})[key] = (data, replaced_at)
    rows: list[tuple[Any, ...]] = []
    for site, new in by_site.items():
        for keys in chunks(list(new)):
            for key, old_data, old_hash, valid_from in conn.execute(_OLD_ROWS, {"site": site, "keys": keys}):
                new_data, replaced_at = new[key]
                names = changed_fields(old_data, new_data)
                counts.fields.update(names)
                rows.append((site, key, old_data, old_hash, valid_from, replaced_at, json.dumps(names)))
    if rows:
        insert(conn, rows)
    counts.changed = len(rows)
    return counts


# --- reading -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One recorded change of a product: its fields before and after ``replaced_at``."""

    id: int
    site: str
    key: str
    #: The product's current URL (None if its row is gone from ``products``).
    url: str | None
    replaced_at: str
    fields: tuple[str, ...]
    old: dict[str, Any]
    new: dict[str, Any]

    def values(self) -> dict[str, dict[str, Any]]:
        """``{field: {"old": value, "new": value}}`` of the changed fields (absent: None)."""
        return {name: {"old": self.old.get(name), "new": self.new.get(name)} for name in self.fields}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``scrapy changes --format json``)."""
        return {
            "site": self.site,
            "key": self.key,
            "url": self.url,
            "replaced_at": self.replaced_at,
            "changed_fields": list(self.fields),
            "changes": self.values(),
        }


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text is not None else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


class VersionStore(SqlStore):
    """Reads the change history (table ``product_versions``; ``products`` for the current values)."""

    TABLES = [products, product_versions]

    def has_history(self) -> bool:
        """Whether the database has the ``product_versions`` table (a crawl with change history wrote to it)."""
        try:
            return bool(inspect(self.engine).has_table(product_versions.name))
        except exc.SQLAlchemyError as e:
            raise DatabaseError(f"cannot read {self.url_shown}: {one_line(e)}") from None

    def changes(self, since: str | None = None, site: str | None = None, limit: int = 0) -> list[Change]:
        """Changes replaced at ``since`` (ISO-8601 UTC text, as stored) or later, of ``site``, newest first.

        ``limit`` > 0 keeps the newest ``limit``.  The new values of each change
        are the next version of the product (by id: versions are written in
        crawl order), else its current row: one query.
        """
        v = product_versions.alias("v")
        n = product_versions.alias("n")
        p = products
        next_data = (
            select(n.c.data)
            .where(n.c.site == v.c.site, n.c.key == v.c.key, n.c.id > v.c.id)
            .order_by(n.c.id)
            .limit(1)
            .scalar_subquery()
        )
        stmt = (
            select(v.c.id, v.c.site, v.c.key, p.c.url, v.c.replaced_at, v.c.changed_fields, v.c.data,
                   func.coalesce(next_data, p.c.data))  # fmt: skip
            .select_from(v.outerjoin(p, and_(p.c.site == v.c.site, p.c.key == v.c.key)))
            .order_by(v.c.replaced_at.desc(), v.c.id.desc())
        )
        if since is not None:
            stmt = stmt.where(v.c.replaced_at >= since)
        if site is not None:
            stmt = stmt.where(v.c.site == site)
        if limit > 0:
            stmt = stmt.limit(limit)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(stmt).all()
        except exc.SQLAlchemyError as e:
            raise DatabaseError(f"cannot read the change history in {self.url_shown}: {one_line(e)}") from None
        changes = []
        for id_, site_, key, url, replaced_at, names, old, new in rows:
            fields = json.loads(names) if names else []
            changes.append(Change(int(id_), site_, key, url, replaced_at, tuple(fields),
                                  _json_object(old), _json_object(new)))  # fmt: skip
        return changes
