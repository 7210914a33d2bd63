"""One SQL view per site: the products of a site with one column per profile field.

Pure storage, no Scrapy or Twisted.  Products keep their fields as one JSON
text (``products.data``); the view ``products_<site>`` reads them back as
columns, in the site profile's field order::

    key, url, <field 1>, <field 2>, ..., first_seen, last_seen, updated_at

:func:`view_columns` names the columns (the same names as ``scrapy export``'s
header); :class:`ViewStore` creates or replaces the view of a profile
(the ``SiteViews`` extension when a crawl starts, and ``scrapy export``).

Names: a site or field name becomes a lower-case identifier of letters,
digits and ``_`` (anything else becomes ``_``; a leading digit gets a
``f_`` prefix), at most 63 characters (PostgreSQL's limit); a field whose
name is already taken by another column gets ``_2``, ``_3``... (a field
named ``url`` is ``field_url``: the product's own columns keep their names).
Every name is quoted in the DDL besides, and the site is a SQL literal.

Column types: SQLite's ``json_extract`` gives integers, reals and text as
stored, booleans as 1/0, lists as JSON text, dates as ISO text.  On
PostgreSQL ``int`` and ``decimal`` fields are ``numeric``, ``float`` is
``double precision``, ``bool`` is ``boolean``, ``date`` is ``date``, lists
are ``jsonb``, the rest text; a stored value of another JSON type than the
field's (an older profile's) reads as NULL instead of failing the query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, exc, inspect, text
from sqlalchemy.engine import Connection, Dialect

from storage.base import SqlStore
from storage.engine import DatabaseError, one_line
from storage.schema import SCHEMA_LOCK_KEY, products

__all__ = [
    "META_COLUMNS",
    "ViewColumn",
    "ViewStore",
    "identifier",
    "view_columns",
    "view_name",
    "view_sql",
]

#: The product's own columns of a view (and of an export), besides the fields.
META_COLUMNS = ("key", "url", "first_seen", "last_seen", "updated_at")
#: Longest identifier (PostgreSQL truncates longer ones).
MAX_IDENTIFIER = 63
VIEW_PREFIX = "products_"

_NOT_WORD = re.compile(r"[^a-z0-9_]+")


@dataclass(frozen=True, slots=True)
class ViewColumn:
    """One column of a site's view: its name, the JSON key it reads (None: a product column) and the field type."""

    name: str
    field: str | None = None
    type: str = "str"


def identifier(name: str, prefix: str = "f_") -> str:
    """``name`` as a plain lower-case SQL identifier (``[a-z_][a-z0-9_]*``, at most 63 characters)."""
    ident = _NOT_WORD.sub("_", name.lower()).strip("_")
    if not ident or ident[0].isdigit():
        ident = prefix + ident
    return ident[:MAX_IDENTIFIER].rstrip("_") or prefix.rstrip("_")


def view_name(site: str) -> str:
    """The view of ``site``: ``products_<site>`` as an identifier."""
    return identifier(VIEW_PREFIX + identifier(site, prefix="site_"))


def view_columns(fields: Iterable[tuple[str, str]]) -> list[ViewColumn]:
    """The columns of a site's view (and export) for its profile's ``(field name, type)`` pairs, in order."""
    taken = set(META_COLUMNS)
    columns: list[ViewColumn] = []
    for field, type_ in fields:
        base = identifier(field)
        if base in META_COLUMNS:
            base = identifier(f"field_{base}")
        name, n = base, 1
        while name in taken:
            n += 1
            suffix = f"_{n}"
            name = base[: MAX_IDENTIFIER - len(suffix)] + suffix
        taken.add(name)
        columns.append(ViewColumn(name, field, type_))
    key, url, *times = (ViewColumn(name) for name in META_COLUMNS)
    return [key, url, *columns, *times]


def profile_fields(profile: Any) -> list[tuple[str, str]]:
    """``(name, type)`` of a :class:`crawler.siteprofile.SiteProfile`'s fields, in profile order."""
    return [(spec.name, spec.type) for spec in profile.fields]


# --- DDL ---------------------------------------------------------------------------


def _literal(dialect: Dialect, value: str) -> str:
    processor = String().literal_processor(dialect)
    assert processor is not None
    return str(processor(value))


#: PostgreSQL: the JSON type a field's value must have, and the SQL type it is cast to.
_PG_TYPES = {
    "int": ("number", "numeric"),
    "float": ("number", "double precision"),
    "bool": ("boolean", "boolean"),
}
_PG_DECIMAL = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"
_PG_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _sqlite_value(dialect: Dialect, column: ViewColumn) -> str:
    assert column.field is not None
    if '"' in column.field:
        # a JSON path cannot name a key holding a double quote: look it up among the object's keys
        return f"(SELECT e.value FROM json_each(p.data) AS e WHERE e.key = {_literal(dialect, column.field)})"
    return f"json_extract(p.data, {_literal(dialect, '$.' + chr(34) + column.field + chr(34))})"


def _postgresql_value(dialect: Dialect, column: ViewColumn) -> str:
    assert column.field is not None
    key = _literal(dialect, column.field)
    value, as_text = f"(j.doc -> {key})", f"(j.doc ->> {key})"
    if column.type in _PG_TYPES:
        json_type, sql_type = _PG_TYPES[column.type]
        return f"CASE WHEN jsonb_typeof{value} = '{json_type}' THEN CAST({as_text} AS {sql_type}) END"
    if column.type == "decimal":
        return f"CASE WHEN {as_text} ~ {_literal(dialect, _PG_DECIMAL)} THEN CAST({as_text} AS numeric) END"
    if column.type == "date":
        return f"CASE WHEN {as_text} ~ {_literal(dialect, _PG_DATE)} THEN CAST({as_text} AS date) END"
    if column.type == "list":
        return value
    return as_text


def view_sql(dialect: Dialect, site: str, columns: Sequence[ViewColumn]) -> str:
    """``SELECT ...`` of the view of ``site`` with ``columns`` (the body of ``CREATE VIEW ... AS``)."""
    quote = dialect.identifier_preparer.quote_identifier
    parts = []
    for column in columns:
        if column.field is None:
            value = f"p.{quote(column.name)}"
        elif dialect.name == "postgresql":
            value = _postgresql_value(dialect, column)
        else:
            value = _sqlite_value(dialect, column)
        parts.append(f"{value} AS {quote(column.name)}")
    table = quote(products.name)
    source = f"{table} AS p"
    if dialect.name == "postgresql":
        # the JSON text is parsed once per row, not once per column
        source += " CROSS JOIN LATERAL (SELECT CAST(p.data AS jsonb) AS doc) AS j"
    return f"SELECT {', '.join(parts)} FROM {source} WHERE p.{quote('site')} = {_literal(dialect, site)}"


class ViewStore(SqlStore):
    """Creates or replaces the views of sites (and the ``products`` table they read, when missing)."""

    TABLES = [products]

    def has_products(self) -> bool:
        """Whether the database has the ``products`` table."""
        try:
            return bool(inspect(self.engine).has_table(products.name))
        except exc.SQLAlchemyError as e:
            raise DatabaseError(f"cannot read {self.url_shown}: {one_line(e)}") from None

    def ensure_view(self, site: str, fields: Iterable[tuple[str, str]]) -> tuple[str, bool]:
        """Create or replace the view of ``site`` with its profile's ``(field, type)`` pairs.

        Returns the view's name and whether it changed (SQLite: a view that is
        already the same is left alone, so running crawls see no schema change).
        Raises :class:`DatabaseError` (one line) when it cannot.
        """
        name = view_name(site)
        dialect = self.engine.dialect
        quoted = dialect.identifier_preparer.quote_identifier(name)
        create = f"CREATE VIEW {quoted} AS {view_sql(dialect, site, view_columns(fields))}"
        try:
            if self.dialect == "sqlite":
                with self.engine.connect() as conn:  # a read first: an up-to-date view takes no write lock
                    if _sqlite_view_sql(conn, name) == create:
                        return name, False
            with self._writer.begin() as conn:
                if self.dialect == "postgresql":
                    # serialised with schema creation and other crawls' views
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK_KEY})
                elif _sqlite_view_sql(conn, name) == create:
                    return name, False
                conn.exec_driver_sql(f"DROP VIEW IF EXISTS {quoted}")
                conn.exec_driver_sql(create)
        except exc.SQLAlchemyError as e:
            raise DatabaseError(f"cannot create view {name} in {self.url_shown}: {one_line(e)}") from None
        return name, True


def _sqlite_view_sql(conn: Connection, name: str) -> str | None:
    row = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?", (name,)).first()
    return None if row is None else str(row[0])

