"""``scrapy export`` and the site views, on a database filled by a real crawl of the demo shop.

The crawl runs as users run it (a subprocess over loopback); so do the
exports.  Each format is read back and compared, value by value, with the
``products`` table; the view ``products_csa_iot`` that the crawl created is
compared the same way.  A 50,000-product table, inserted with the store,
checks that an export streams (bounded ``tracemalloc`` peak).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from crawler.items import canonical_json, content_hash
from crawler.siteprofile import load_profile
from storage.export import iter_products, parse_since, write_export
from storage.products import ProductRow, ProductStore
from storage.views import ViewStore, identifier, profile_fields, view_columns, view_name
from tests.conftest import ROOT, run_crawl, scrapy_command

PROFILE = load_profile("csa_iot")
FIELDS = [spec.name for spec in PROFILE.fields]
TYPES = {spec.name: spec.type for spec in PROFILE.fields}
COLUMNS = ["key", "url", *FIELDS, "first_seen", "last_seen", "updated_at"]


def export(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = scrapy_command("export", "-s", f"DATABASE_URL=sqlite:///{db}", *args)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def table_rows(db: Path, site: str = "csa_iot") -> list[dict[str, Any]]:
    """The products of ``site`` straight from the table: typed fields (as stored) and the product columns."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT key, url, data, first_seen, last_seen, updated_at FROM products WHERE site = ? ORDER BY id",
            (site,),
        ).fetchall()
    finally:
        conn.close()
    out = []
    for key, url, data, first_seen, last_seen, updated_at in rows:
        fields = json.loads(data)
        out.append({
            "key": key, "url": url, **{name: fields.get(name) for name in FIELDS},
            "first_seen": first_seen, "last_seen": last_seen, "updated_at": updated_at,
        })  # fmt: skip
    return out


def from_csv_cell(name: str, text: str) -> Any:
    """A CSV cell read back with the field's type (the format README documents)."""
    if text == "":
        return None
    type_ = TYPES.get(name, "str")
    if type_ == "int":
        return int(text)
    if type_ == "float":
        return float(text)
    if type_ == "bool":
        assert text in ("true", "false"), text
        return text == "true"
    if type_ == "list":
        return json.loads(text)
    return text


def from_xlsx_cell(name: str, value: Any) -> Any:
    type_ = TYPES.get(name, "str")
    if value is None:
        return None
    if type_ == "date":
        assert isinstance(value, datetime), (name, value)  # a date cell
        return value.date().isoformat()
    if type_ == "list":
        return json.loads(value)
    if type_ == "int":
        assert isinstance(value, int) and not isinstance(value, bool), (name, value)
    if type_ == "bool":
        assert isinstance(value, bool), (name, value)
    return value


@pytest.fixture(scope="module")
def crawled(shop, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("export")
    db = work / "catalog.db"
    result = run_crawl(shop.list_url, db, work / "stats")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stats["site_views/name"] == "products_csa_iot"
    assert "site_views/errors" not in result.stats
    return db


def test_csv_export_equals_the_table(crawled: Path, tmp_path: Path) -> None:
    out = tmp_path / "products.csv"
    result = export(crawled, "-o", str(out))
    assert result.returncode == 0, result.stderr
    expected = table_rows(crawled)
    assert f"exported {len(expected)} products of site csa_iot" in result.stdout
    with out.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [{name: from_csv_cell(name, cell) for name, cell in zip(header, row, strict=True)} for row in reader]
    assert header == COLUMNS
    assert len(expected) > 250  # the shop's valid products
    assert rows == expected
    # lists are JSON arrays, booleans true/false
    with_list = next(r for r in expected if r["transport_interface"])
    raw = out.read_text(encoding="utf-8")
    assert '"' + json.dumps(with_list["transport_interface"], separators=(",", ":")).replace('"', '""') + '"' in raw


def test_jsonl_export_equals_the_table_and_stdout_is_the_same(crawled: Path, tmp_path: Path) -> None:
    out = tmp_path / "products.jsonl"
    result = export(crawled, "-o", str(out))
    assert result.returncode == 0, result.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [list(r) for r in rows[:1]] == [COLUMNS]
    assert rows == table_rows(crawled)
    piped = export(crawled, "-o", "-", "--format", "jsonl")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines() == lines
    assert "exported" in piped.stderr  # the summary goes to stderr, not into the data


def test_xlsx_export_equals_the_table(crawled: Path, tmp_path: Path) -> None:
    out = tmp_path / "products.xlsx"
    result = export(crawled, "-o", str(out))
    assert result.returncode == 0, result.stderr
    workbook = load_workbook(out, read_only=True)
    sheet = workbook["csa_iot"]
    values = sheet.iter_rows(values_only=True)
    header = list(next(values))
    rows = [{name: from_xlsx_cell(name, v) for name, v in zip(header, row, strict=True)} for row in values]
    workbook.close()
    assert header == COLUMNS
    assert rows == table_rows(crawled)


def test_since_keeps_products_updated_at_or_after(crawled: Path, tmp_path: Path) -> None:
    db = tmp_path / "since.db"
    shutil.copy(crawled, db)
    later = "2099-01-02T03:04:05.000Z"
    conn = sqlite3.connect(db)
    changed = [k for (k,) in conn.execute("SELECT key FROM products ORDER BY id LIMIT 7")]
    conn.executemany("UPDATE products SET updated_at = ? WHERE key = ?", [(later, k) for k in changed])
    conn.commit()
    conn.close()
    result = export(db, "-o", "-", "--format", "csv", "--since", "2099-01-02T03:04:05Z")
    assert result.returncode == 0, result.stderr
    keys = [row["key"] for row in csv.DictReader(io.StringIO(result.stdout))]
    assert keys == changed
    assert export(db, "-o", "-", "--format", "csv", "--since", "2099-01-03").stdout.count("\n") == 1  # header only
    every = export(db, "-o", "-", "--format", "csv", "--since", "2000-01-01")
    assert every.stdout.count("\n") == 1 + len(table_rows(db))


def test_export_errors_are_one_line_and_touch_nothing(crawled: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    cases = [
        (export(missing, "-o", str(tmp_path / "x.csv")), "no database at"),
        (export(crawled, "-o", str(tmp_path / "x.txt")), "cannot tell the format"),
        (export(crawled, "-o", "-", "--format", "xlsx"), "cannot be written to stdout"),
        (export(crawled, "-o", str(tmp_path / "x.csv"), "--since", "yesterday"), "invalid --since"),
        (export(crawled, "-o", str(tmp_path / "x.csv"), "--site", "nosuchsite"), "unknown site"),
        (export(crawled, "-o", str(tmp_path / "nodir" / "x.csv")), "cannot write"),
        (export(crawled), "needs -o FILE"),
    ]
    for result, text in cases:
        assert result.returncode == 2, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.stderr
    assert not missing.exists()  # read-only: never created
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob(".x.*"))


def test_the_crawl_made_the_view_with_one_column_per_field(crawled: Path) -> None:
    conn = sqlite3.connect(crawled)
    try:
        cursor = conn.execute("SELECT * FROM products_csa_iot")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor]
    finally:
        conn.close()
    assert names == COLUMNS
    expected = table_rows(crawled)
    for row in expected:  # SQLite: booleans are 1/0, lists JSON text
        for name in FIELDS:
            if TYPES[name] == "bool" and row[name] is not None:
                row[name] = int(row[name])
            if TYPES[name] == "list" and row[name] is not None:
                row[name] = json.dumps(row[name], separators=(",", ":"))
    assert sorted(rows, key=lambda r: r["key"]) == sorted(expected, key=lambda r: r["key"])


# --- names and unusual profiles (pure, and on a scratch SQLite file) --------------------


def test_names_are_sanitised_identifiers() -> None:
    assert view_name("csa_iot") == "products_csa_iot"
    assert view_name("csa-iot.org") == "products_csa_iot_org"
    assert view_name("x'; DROP TABLE products; --") == "products_x_drop_table_products"
    assert view_name("") == "products_site"
    assert len(view_name("a" * 200)) == 63
    assert identifier("9lives") == "f_9lives"
    columns = [c.name for c in view_columns([("url", "str"), ("Price €", "decimal"), ("price", "int"), ("a-b", "str")])]
    assert columns == ["key", "url", "field_url", "price", "price_2", "a_b", "first_seen", "last_seen", "updated_at"]


def test_view_of_a_site_with_awkward_names(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    site = "o'brien\"; DROP TABLE products; --"
    fields = [("url", "str"), ('we"ird', "int"), ("Size (cm)", "float"), ("tags", "list"), ("ok", "bool")]
    store = ProductStore(url)
    store.create_schema()
    data = {"url": "u", 'we"ird': 7, "Size (cm)": 1.5, "tags": ["a", "b"], "ok": True}
    now = datetime(2024, 5, 1, tzinfo=UTC)
    store.write_batch([ProductRow(site, "k1", "https://x/1", canonical_json(data), content_hash(data), 1, 1, now)])
    store.close()
    views = ViewStore(url)
    try:
        assert views.ensure_view(site, fields) == (view_name(site), True)
        assert views.ensure_view(site, fields) == (view_name(site), False)  # unchanged: left alone
        with views.engine.connect() as conn:
            result = conn.exec_driver_sql(f'SELECT * FROM "{view_name(site)}"')
            names = list(result.keys())
            rows = [tuple(r) for r in result]
        assert names == ["key", "url", "field_url", "we_ird", "size_cm", "tags", "ok", *COLUMNS[-3:]]
        assert rows == [("k1", "https://x/1", "u", 7, 1.5, '["a","b"]', 1, *(["2024-05-01T00:00:00.000Z"] * 3))]
        # a profile that changed replaces the view
        assert views.ensure_view(site, fields[:2]) == (view_name(site), True)
        with views.engine.connect() as conn:
            names = list(conn.exec_driver_sql(f'SELECT * FROM "{view_name(site)}"').keys())
            assert names[2:4] == ["field_url", "we_ird"]
            assert conn.exec_driver_sql("SELECT count(*) FROM products").scalar_one() == 1  # nothing dropped
    finally:
        views.close()


def test_parse_since() -> None:
    assert parse_since("2024-05-01") == "2024-05-01T00:00:00.000Z"
    assert parse_since("2024-05-01T12:30Z") == "2024-05-01T12:30:00.000Z"
    assert parse_since("2024-05-01T14:30:00+02:00") == "2024-05-01T12:30:00.000Z"
    with pytest.raises(ValueError, match="invalid --since"):
        parse_since("May 1st")


# --- memory ------------------------------------------------------------------------------

LARGE = 50_000


def test_export_of_a_large_table_keeps_memory_flat(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'large.db'}"
    store = ProductStore(url)
    store.create_schema()
    now = datetime(2024, 5, 1, tzinfo=UTC)
    text = "x" * 400
    stored = 0
    for start in range(0, LARGE, 5000):
        batch = []
        for i in range(start, start + 5000):
            data = {"slug": f"p{i}", "title": f"Product {i} {text}", "vid": i, "transport_interface": ["Thread"]}
            encoded = canonical_json(data)
            stored += len(encoded)
            batch.append(ProductRow("big", f"p{i}", f"https://x/p/{i}", encoded, content_hash(data), 1, 1, now))
        assert store.write_batch(batch).inserted == 5000
    store.close()
    columns = view_columns([("slug", "str"), ("title", "str"), ("vid", "int"), ("transport_interface", "list")])
    out = tmp_path / "large.csv"
    reader = ViewStore(url, must_exist=True)
    try:
        tracemalloc.start()
        try:
            written = write_export(out, "csv", columns, iter_products(reader.engine, "big", columns))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        reader.close()
    assert written == LARGE
    assert out.stat().st_size > stored  # every row was written
    # the rows' JSON alone is over 20 MB: holding them at once would be far above this bound
    assert stored > 20_000_000
    assert peak < 6_000_000, f"export peak {peak / 1e6:.1f} MB for {LARGE} rows"


def test_xlsx_dates_are_date_cells(tmp_path: Path) -> None:
    columns = view_columns([("day", "date"), ("n", "int"), ("big", "int"), ("d", "decimal")])
    rows = [
        ("k", "u", "2024-05-01", 3, 2**60, "1.50", "t1", "t2", "t3"),
        ("k2", "u2", None, None, None, None, "", "", ""),
    ]
    out = tmp_path / "t.xlsx"
    assert write_export(out, "xlsx", columns, rows, sheet="s/1") == 2
    workbook = load_workbook(out)
    sheet = workbook["s_1"]
    assert sheet["C2"].value == datetime(2024, 5, 1) and sheet["C2"].number_format == "yyyy-mm-dd"
    assert sheet["D2"].value == 3 and sheet["E2"].value == str(2**60) and sheet["F2"].value == 1.5
    assert [c.value for c in sheet[3]][2:6] == [None, None, None, None]
    assert date.fromisoformat("2024-05-01") + timedelta(0) == sheet["C2"].value.date()


def test_profile_fields_follow_the_profile_order() -> None:
    assert [name for name, _ in profile_fields(PROFILE)] == FIELDS
