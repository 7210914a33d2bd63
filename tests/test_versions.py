"""The change history (storage/versions.py): versions kept by the product store, read back.

Each store test runs on a real SQLite file and, when ``TEST_POSTGRES_URL`` is
set, on PostgreSQL too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crawler.items import canonical_json, content_hash
from storage.engine import DatabaseError, utc_iso
from storage.products import ProductRow, ProductStore
from storage.schema import metadata, product_versions
from storage.versions import VersionStore, changed_fields

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PG_URL = os.environ.get("TEST_POSTGRES_URL")


def row(i: int, at: datetime = T0, site: str = "shop", **changes: Any) -> ProductRow:
    fields = {"title": f"Product {i}", "firmware": "1.0", "date": "2024-01-01", "tags": ["a"], **changes}
    return ProductRow(site, f"k{i}", f"https://shop.test/p/{i}", canonical_json(fields), content_hash(fields),
                      1, i + 1, at)  # fmt: skip


# --- changed_fields (pure) ---------------------------------------------------------


def test_changed_fields_names_the_fields_that_differ_sorted() -> None:
    old = canonical_json({"a": 1, "b": [1, 2], "c": "x", "d": None})
    new = canonical_json({"a": 1, "b": [1, 3], "c": "y", "d": None})
    assert changed_fields(old, new) == ["b", "c"]
    assert changed_fields(old, old) == []


def test_a_field_present_in_one_version_only_is_changed() -> None:
    assert changed_fields('{"a":1}', '{"a":1,"b":null}') == ["b"]
    assert changed_fields('{"a":1,"z":2}', '{"a":1}') == ["z"]
    assert changed_fields('{"a":1,"b":2}', '{"a":1,"c":2}') == ["b", "c"]  # as many fields, not the same


def test_text_that_is_not_a_json_object_is_one_unnamed_change() -> None:
    assert changed_fields("not json", '{"a":1}') == [""]
    assert changed_fields("[1]", "[2]") == [""]


# --- writing -------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProductStore]:
    if request.param == "postgresql":
        if not PG_URL:
            pytest.skip("TEST_POSTGRES_URL is not set (no PostgreSQL server)")
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
    s = ProductStore(url)
    if request.param == "postgresql":
        metadata.drop_all(s.engine)
    s.create_schema()
    yield s
    s.close()


def versions(store: ProductStore) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(product_versions).order_by(product_versions.c.id)).mappings().all()
    return [dict(r) for r in rows]


def test_a_changed_product_keeps_its_previous_version(store: ProductStore) -> None:
    first = [row(i) for i in range(10)]
    store.write_batch(first)
    t1 = T0 + timedelta(days=1)
    second = [row(i, t1) for i in range(10)]
    second[3] = row(3, t1, firmware="1.1")
    second[7] = row(7, t1, firmware="2.0", date="2024-02-02")
    result = store.write_batch(second)
    assert (result.updated, result.unchanged, result.changed) == (2, 8, 2)
    assert result.changed_fields == {"firmware": 2, "date": 1}
    kept = versions(store)
    assert [(v["key"], json.loads(v["changed_fields"])) for v in kept] == [("k3", ["firmware"]),
                                                                          ("k7", ["date", "firmware"])]  # fmt: skip
    by_key = {v["key"]: v for v in kept}
    assert by_key["k3"]["data"] == first[3].data
    assert by_key["k3"]["content_hash"] == first[3].content_hash
    assert by_key["k3"]["valid_from"] == utc_iso(T0)
    assert by_key["k3"]["replaced_at"] == utc_iso(t1)
    assert {v["site"] for v in kept} == {"shop"}


def test_unchanged_and_new_products_keep_no_version(store: ProductStore) -> None:
    store.write_batch([row(i) for i in range(5)])
    result = store.write_batch([row(i, T0 + timedelta(hours=1)) for i in range(8)])
    assert (result.inserted, result.unchanged, result.changed) == (3, 5, 0)
    assert versions(store) == []


def test_each_change_is_one_version_and_the_chain_reads_old_to_new(store: ProductStore) -> None:
    t1, t2 = T0 + timedelta(days=1), T0 + timedelta(days=2)
    store.write_batch([row(1), row(2)])
    store.write_batch([row(1, t1, firmware="1.1"), row(2, t1)])
    store.write_batch([row(1, t2, firmware="1.2"), row(2, t2, title="Renamed")])
    reader = VersionStore(store.engine.url.render_as_string(hide_password=False), must_exist=True)
    try:
        changes = reader.changes()
    finally:
        reader.close()
    assert [(c.key, c.replaced_at) for c in changes] == [("k2", utc_iso(t2)), ("k1", utc_iso(t2)),
                                                         ("k1", utc_iso(t1))]  # fmt: skip
    assert changes[0].values() == {"title": {"old": "Product 2", "new": "Renamed"}}
    assert changes[1].values() == {"firmware": {"old": "1.1", "new": "1.2"}}  # the current row
    assert changes[2].values() == {"firmware": {"old": "1.0", "new": "1.1"}}  # the next version
    assert changes[2].url == "https://shop.test/p/1"


def test_a_version_is_written_once_when_its_batch_is_split_around_a_bad_row(store: ProductStore) -> None:
    """The first, whole-batch transaction copies the versions, then fails on the bad row: it rolls
    back with them, and the halves that commit copy each version once."""
    store.write_batch([row(i) for i in range(6)])
    t1 = T0 + timedelta(days=1)
    batch = [row(i, t1, firmware="9") for i in range(6)]
    bad = row(99, t1)
    batch.append(ProductRow(bad.site, "", bad.url, bad.data, bad.content_hash, 1, 1, t1))  # CHECK fails
    result = store.write_batch(batch)
    assert (result.updated, result.isolated, result.changed) == (6, 1, 6)
    assert sorted(v["key"] for v in versions(store)) == [f"k{i}" for i in range(6)]


# --- reading -------------------------------------------------------------------------


def test_changes_filters_by_time_and_site_newest_first(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    s = ProductStore(url)
    s.create_schema()
    days = [T0 + timedelta(days=d) for d in range(4)]
    s.write_batch([row(1), row(2, site="other")])
    for d in (1, 2, 3):
        s.write_batch([row(1, days[d], firmware=f"1.{d}"), row(2, days[d], site="other", firmware=f"2.{d}")])
    s.close()
    reader = VersionStore(url, must_exist=True)
    try:
        assert len(reader.changes()) == 6
        recent = reader.changes(since=utc_iso(days[2]))
        assert [(c.site, c.replaced_at) for c in recent] == [
            ("other", utc_iso(days[3])), ("shop", utc_iso(days[3])),
            ("other", utc_iso(days[2])), ("shop", utc_iso(days[2])),
        ]  # fmt: skip
        assert {c.site for c in reader.changes(site="shop")} == {"shop"}
        assert len(reader.changes(limit=2)) == 2
        assert reader.changes(site="nowhere") == []
        assert reader.has_history()
    finally:
        reader.close()


def test_a_missing_database_is_refused_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(DatabaseError, match="no database at"):
        VersionStore(f"sqlite:///{path}", must_exist=True)
    assert not path.exists()
