"""The site view and the export on PostgreSQL: typed columns, rows, and a table that can still be dropped.

Runs when ``TEST_POSTGRES_URL`` names a PostgreSQL database the tests may use
(``.ci/run`` starts a local server and sets it); skipped otherwise.  The
tables live in a schema of their own (``search_path``), dropped at the end,
so other tests on the same database are not disturbed.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from crawler.items import canonical_json, content_hash
from crawler.siteprofile import load_profile
from storage.export import iter_products, write_export
from storage.products import ProductRow, ProductStore
from storage.schema import metadata
from storage.views import ViewStore, profile_fields, view_columns

URL = os.environ.get("TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="TEST_POSTGRES_URL is not set (no PostgreSQL server)")

AT = datetime(2024, 5, 1, 12, tzinfo=UTC)


@pytest.fixture
def schema_url():
    """A URL whose connections work in a fresh schema (dropped afterwards)."""
    assert URL
    schema = f"views_{uuid.uuid4().hex[:12]}"
    admin = create_engine(URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def row(site: str, key: str, data: dict) -> ProductRow:
    return ProductRow(site, key, f"https://x.test/{key}", canonical_json(data), content_hash(data), 1, 1, AT)


def test_view_columns_are_typed_on_postgresql(schema_url: str) -> None:
    profile = load_profile("csa_iot")
    fields = profile_fields(profile)
    good = {
        "slug": "a", "title": "A lamp", "manufacturer": "Acme", "certificate_id": "CSA1",
        "certification_date": "2024-04-30", "vid": 4891, "pid": None, "primary_device_type_id": [256, 257],
        "transport_interface": ["Wi-Fi", "Thread"], "tis_trp_tested": True,
    }  # fmt: skip
    # an older profile's values of other types read as NULL instead of failing the query
    odd = {"slug": "b", "title": "B", "vid": "0x12", "certification_date": "30/04/2024", "tis_trp_tested": "yes"}
    store = ProductStore(schema_url)
    store.create_schema()
    store.write_batch([row("csa_iot", "a", good), row("csa_iot", "b", odd), row("other", "c", good)])
    store.close()
    views = ViewStore(schema_url)
    try:
        assert views.ensure_view("csa_iot", fields) == ("products_csa_iot", True)
        assert views.ensure_view("csa_iot", fields)[0] == "products_csa_iot"  # replaced again, no error
        with views.engine.connect() as conn:
            result = conn.exec_driver_sql("SELECT * FROM products_csa_iot ORDER BY key")
            names = list(result.keys())
            rows = [dict(zip(names, r, strict=True)) for r in result]
        assert names == [c.name for c in view_columns(fields)]
        assert [r["key"] for r in rows] == ["a", "b"]  # only this site
        a, b = rows
        assert a["vid"] == Decimal(4891) and a["pid"] is None
        assert a["certification_date"] == date(2024, 4, 30)
        assert a["tis_trp_tested"] is True
        assert a["primary_device_type_id"] == [256, 257] and a["transport_interface"] == ["Wi-Fi", "Thread"]
        assert a["title"] == "A lamp" and a["first_seen"] == "2024-05-01T12:00:00.000Z"
        assert (b["vid"], b["certification_date"], b["tis_trp_tested"]) == (None, None, None)
        # the export reads the same rows through a server-side cursor
        columns = view_columns(fields)
        exported = list(iter_products(views.engine, "csa_iot", columns, chunk=1))
        assert [r[0] for r in exported] == ["a", "b"]
        assert dict(zip([c.name for c in columns], exported[0], strict=True))["transport_interface"] == [
            "Wi-Fi",
            "Thread",
        ]
        # dropping the tables drops the views over them first
        metadata.drop_all(views.engine)
        with views.engine.connect() as conn:
            views_left = "SELECT count(*) FROM information_schema.views WHERE table_schema = current_schema()"
            assert conn.exec_driver_sql(views_left).scalar_one() == 0
    finally:
        views.close()


def test_export_to_jsonl_on_postgresql(schema_url: str, tmp_path) -> None:
    store = ProductStore(schema_url)
    store.create_schema()
    store.write_batch([row("s", f"k{i}", {"n": i, "tags": ["t"]}) for i in range(25)])
    store.close()
    views = ViewStore(schema_url, must_exist=True)
    try:
        columns = view_columns([("n", "int"), ("tags", "list")])
        out = tmp_path / "out.jsonl"
        assert write_export(out, "jsonl", columns, iter_products(views.engine, "s", columns, chunk=7)) == 25
    finally:
        views.close()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(d["key"], d["n"], d["tags"]) for d in lines] == [(f"k{i}", i, ["t"]) for i in range(25)]
