"""The database schema: every table of the crawler's database, on one :data:`metadata`.

``products``, ``rejected_items`` and ``product_versions`` (the change
history, :mod:`storage.versions`) are written by
:class:`storage.products.ProductStore`, ``dead_letters`` by
:class:`storage.dead_letters.DeadLetterStore`; all live in the same database
(``DATABASE_URL``).  Timestamps are ISO-8601 UTC text
(:func:`storage.engine.utc_iso`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    text,
)

__all__ = [
    "CLASS_LENGTH",
    "FINGERPRINT_LENGTH",
    "ID_TYPE",
    "KEY_LENGTH",
    "METHOD_LENGTH",
    "REASON_LENGTH",
    "SCHEMA_LOCK_KEY",
    "SITE_LENGTH",
    "STAGE_LENGTH",
    "crawl_frontier",
    "crawl_runs",
    "dead_letters",
    "metadata",
    "product_versions",
    "products",
    "rejected_items",
]

#: Longest key / site the columns hold.
KEY_LENGTH = 500
SITE_LENGTH = 200
#: Longest values of the dead letters' short text columns (longer values are cut).
REASON_LENGTH = 200
CLASS_LENGTH = 16
METHOD_LENGTH = 16
STAGE_LENGTH = 32
FINGERPRINT_LENGTH = 64

#: Advisory lock key serialising schema creation on PostgreSQL (an arbitrary constant).
SCHEMA_LOCK_KEY = 0x63617461_6C6F6721 >> 1

metadata = MetaData()

#: Type of the tables' id columns: INTEGER PRIMARY KEY (the rowid) on SQLite, BIGINT elsewhere.
ID_TYPE = BigInteger().with_variant(Integer, "sqlite")

products = Table(
    "products",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("site", String(SITE_LENGTH), nullable=False),
    Column("key", String(KEY_LENGTH), nullable=False),
    Column("url", Text, nullable=False),
    Column("data", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("list_page", Integer, nullable=True),
    Column("list_position", Integer, nullable=True),
    Column("first_seen", String(32), nullable=False),
    Column("last_seen", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    UniqueConstraint("site", "key", name="uq_products_site_key"),
    CheckConstraint("length(key) > 0", name="ck_products_key_not_empty"),
)

#: Earlier versions of products (the change history, :mod:`storage.versions`): when a
#: product's content changes, its previous ``data`` and ``content_hash`` are copied here
#: in the transaction that overwrites them.  ``valid_from``: when that version was first
#: stored (its ``updated_at``); ``replaced_at``: the crawl time of the version that
#: replaced it; ``changed_fields``: JSON list of the fields that differ.
product_versions = Table(
    "product_versions",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("site", String(SITE_LENGTH), nullable=False),
    Column("key", String(KEY_LENGTH), nullable=False),
    Column("data", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("valid_from", String(32), nullable=False),
    Column("replaced_at", String(32), nullable=False),
    Column("changed_fields", Text, nullable=False),
    Index("ix_product_versions_site_key", "site", "key"),
    Index("ix_product_versions_replaced_at", "replaced_at"),
)

rejected_items = Table(
    "rejected_items",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("site", String(SITE_LENGTH), nullable=False),
    Column("url", Text, nullable=False),
    Column("key", String(KEY_LENGTH), nullable=True),
    Column("reason", Text, nullable=False),
    Column("data", Text, nullable=False),
    Column("first_seen", String(32), nullable=False),
    Column("last_seen", String(32), nullable=False),
    Column("times", Integer, nullable=False, default=1),
    UniqueConstraint("site", "url", name="uq_rejected_items_site_url"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("spider", String(SITE_LENGTH), nullable=False),
    Column("site", String(SITE_LENGTH), nullable=True),
    Column("spider_args", Text, nullable=False),
    Column("fingerprint", String(FINGERPRINT_LENGTH), nullable=False),
    Column("url", Text, nullable=False),
    Column("method", String(METHOD_LENGTH), nullable=False),
    Column("stage", String(STAGE_LENGTH), nullable=True),
    Column("request", Text, nullable=False),
    Column("failure_class", String(CLASS_LENGTH), nullable=False),
    Column("reason", String(REASON_LENGTH), nullable=False),
    Column("last_status", Integer, nullable=True),
    Column("last_exception", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("first_failed", String(32), nullable=False),
    Column("last_failed", String(32), nullable=False),
    Column("times", Integer, nullable=False, default=1),
    UniqueConstraint("spider", "fingerprint", name="uq_dead_letters_spider_fingerprint"),
)


@event.listens_for(products, "before_drop")
def _drop_site_views(_table: Table, connection: Any, **_: Any) -> None:
    """Dropping ``products`` drops the site views over it first (``storage/views.py``):
    PostgreSQL refuses to drop a table that views depend on."""
    if connection.dialect.name != "postgresql":
        return  # SQLite drops the table and keeps the views, which read it again once it is back
    rows = connection.execute(
        text(
            "SELECT DISTINCT view_schema, view_name FROM information_schema.view_table_usage"
            " WHERE table_name = 'products' AND table_schema = current_schema()"
        )
    ).all()
    quote = connection.dialect.identifier_preparer.quote_identifier
    for schema, name in rows:
        connection.exec_driver_sql(f"DROP VIEW IF EXISTS {quote(schema)}.{quote(name)}")

#: One row per crawl run that records its frontier (``crawler/middlewares/resume.py``):
#: ``state`` is ``open`` while it runs and after it was killed or interrupted (the same
#: command resumes it), ``closed`` once it ran to its end.
crawl_runs = Table(
    "crawl_runs",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("spider", String(SITE_LENGTH), nullable=False),
    Column("args", Text, nullable=False),
    Column("state", String(STAGE_LENGTH), nullable=False),
    Column("attempts", Integer, nullable=False, default=1),
    Column("started", String(32), nullable=False),
    Column("updated", String(32), nullable=False),
    Index("ix_crawl_runs_spider_state", "spider", "state"),
)

#: The requests of an open run: ``pending`` until their outcome committed (a list page's
#: products and next pages recorded, a product's row or dead letter stored), then ``done``.
#: ``request`` rebuilds a pending one (crawler/request_records.py); ``url_hash`` is the
#: SHA-256 of ``url`` (URLs are too long for a unique index everywhere).
crawl_frontier = Table(
    "crawl_frontier",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("run_id", ID_TYPE, nullable=False),
    Column("url_hash", String(FINGERPRINT_LENGTH), nullable=False),
    Column("url", Text, nullable=False),
    Column("stage", String(STAGE_LENGTH), nullable=True),
    Column("state", String(STAGE_LENGTH), nullable=False),
    Column("request", Text, nullable=True),
    Column("updated", String(32), nullable=False),
    UniqueConstraint("run_id", "url_hash", name="uq_crawl_frontier_run_url"),
)
