"""Change history end to end: crawl the demo shop, restart it with seeded changes
(``--change-share``), crawl again; ``product_versions`` and ``scrapy changes`` hold
exactly the changed products with their changed fields.  Plus the demo shop's
change flags and the command's one-line errors."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from crawler.commands.changes import CommandError, parse_since
from demoshop.catalogue import CHANGE_FIELDS, Catalogue
from demoshop.process import ShopProcess
from tests.conftest import ROOT, CrawlResult, expected_fields, run_crawl, scrapy_command

PRODUCTS, SEED, CHANGE_SHARE = 60, 3, 0.25


# --- the demo shop's changes (pure) --------------------------------------------------


def test_changed_products_differ_from_the_unchanged_shop_exactly_in_their_changes() -> None:
    before = list(Catalogue(PRODUCTS, SEED).truth())
    after = list(Catalogue(PRODUCTS, SEED, change_share=CHANGE_SHARE).truth())
    changed = [t for t in after if t["changes"]]
    assert 0 < len(changed) < len(after)
    for old, new in zip(before, after, strict=True):
        assert old["key"] == new["key"]
        differ = {name for name in old["fields"] if old["fields"][name] != new["fields"][name]}
        assert differ == set(new["changes"])
        assert differ <= set(CHANGE_FIELDS)
        for name in differ:
            assert new["changes"][name] == {"old": old["fields"][name], "new": new["fields"][name]}
        if differ:
            assert new["expected"] == "saved"  # only products a crawl stores change
    assert "changes" not in before[0]


def test_the_changes_depend_on_the_change_seed_only() -> None:
    def keys(**kw: Any) -> set[str]:
        return {t["key"] for t in Catalogue(PRODUCTS, SEED, change_share=CHANGE_SHARE, **kw).truth() if t["changes"]}

    assert keys() == keys(change_seed=SEED)
    assert keys(change_seed=99) != keys()
    assert keys(change_seed=99) == keys(change_seed=99)


def test_truth_command_prints_the_changes() -> None:
    args = ["--products", str(PRODUCTS), "--seed", str(SEED), "--change-share", str(CHANGE_SHARE)]
    proc = subprocess.run(
        [*scrapy_command()[:1], "-m", "demoshop", "truth", *args], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines == list(Catalogue(PRODUCTS, SEED, change_share=CHANGE_SHARE).truth())


# --- crawl, change, crawl again ------------------------------------------------------


@dataclass
class TwoCrawls:
    db: Path
    base_url: str
    first: CrawlResult
    second: CrawlResult
    truth: list[dict[str, Any]]


@pytest.fixture(scope="module")
def two_crawls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoCrawls]:
    tmp = tmp_path_factory.mktemp("changes")
    db = tmp / "catalog.db"
    with ShopProcess(products=PRODUCTS, seed=SEED) as shop:
        base_url, list_url = shop.url, shop.list_url
        first = run_crawl(list_url, db, tmp / "stats1")
    port = str(urlsplit(base_url).port)  # the same URLs (and absolute links in the data) after the restart
    extra = ("--port", port, "--change-share", str(CHANGE_SHARE))
    with ShopProcess(products=PRODUCTS, seed=SEED, extra_args=extra) as shop:
        assert shop.url == base_url
        second = run_crawl(list_url, db, tmp / "stats2")
    truth = list(Catalogue(PRODUCTS, SEED, change_share=CHANGE_SHARE).truth())
    yield TwoCrawls(db, base_url, first, second, truth)


def query(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_product_versions_hold_exactly_the_changed_products(two_crawls: TwoCrawls) -> None:
    assert two_crawls.first.returncode == 0, two_crawls.first.stderr[-3000:]
    assert two_crawls.second.returncode == 0, two_crawls.second.stderr[-3000:]
    changed = {t["key"]: t for t in two_crawls.truth if t["changes"]}
    assert changed
    rows = query(two_crawls.db, "SELECT site, key, data, changed_fields, replaced_at FROM product_versions")
    assert sorted(key for _, key, *_ in rows) == sorted(changed)
    base = two_crawls.base_url
    for site, key, data, names, _replaced_at in rows:
        assert site == "csa_iot"
        assert json.loads(names) == sorted(changed[key]["changes"])
        old = json.loads(data)
        for name, pair in changed[key]["changes"].items():
            assert old[name] == pair["old"]
        # the rest of the old version is the product as first crawled
        before = {**expected_fields(changed[key], base), **{n: p["old"] for n, p in changed[key]["changes"].items()}}
        assert old == before
    current = dict(query(two_crawls.db, "SELECT key, data FROM products"))
    for key, line in changed.items():
        assert json.loads(current[key]) == expected_fields(line, base)


def test_the_second_crawl_counts_the_changes(two_crawls: TwoCrawls) -> None:
    changed = [t for t in two_crawls.truth if t["changes"]]
    first, second = two_crawls.first.stats, two_crawls.second.stats
    assert first["store/changed"] == 0
    assert second["store/changed"] == second["store/updated"] == len(changed)
    for name in CHANGE_FIELDS:
        expected = sum(1 for t in changed if name in t["changes"])
        assert second.get(f"store/changed_fields/{name}", 0) == expected


def run_changes(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        scrapy_command("changes", "-s", f"DATABASE_URL=sqlite:///{db}", *args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_scrapy_changes_json_lists_every_change_with_old_and_new_values(two_crawls: TwoCrawls) -> None:
    proc = run_changes(two_crawls.db, "--format", "json", "--site", "csa_iot")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    changed = {t["key"]: t for t in two_crawls.truth if t["changes"]}
    assert sorted(c["key"] for c in listed) == sorted(changed)
    for change in listed:
        line = changed[change["key"]]
        assert change["changes"] == line["changes"]
        assert change["changed_fields"] == sorted(line["changes"])
        assert change["url"] == two_crawls.base_url.rstrip("/") + line["path"]
    times = [c["replaced_at"] for c in listed]
    assert times == sorted(times, reverse=True)


def test_scrapy_changes_text_shows_each_field_old_to_new(two_crawls: TwoCrawls) -> None:
    proc = run_changes(two_crawls.db)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    changed = [t for t in two_crawls.truth if t["changes"]]
    for line in changed:
        assert f"  csa_iot  {line['key']}  " in out
        for name, pair in line["changes"].items():
            assert f"    {name}: {json.dumps(pair['old'])} -> {json.dumps(pair['new'])}" in out
    assert out.rstrip().endswith(f"{len(changed)} changes")


def test_scrapy_changes_since_and_site_filter(two_crawls: TwoCrawls) -> None:
    later = run_changes(two_crawls.db, "--since", "2999-01-01")
    assert later.returncode == 0 and later.stdout.strip() == "0 changes"
    other = run_changes(two_crawls.db, "--site", "elsewhere", "--format", "json")
    assert other.returncode == 0 and json.loads(other.stdout) == []


# --- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("2026-11-01", "2026-11-01T00:00:00.000Z"),
        ("2026-11-01T06:30", "2026-11-01T06:30:00.000Z"),
        ("2026-11-01T06:30:00+02:00", "2026-11-01T04:30:00.000Z"),
        ("2026-11-01T06:30:00Z", "2026-11-01T06:30:00.000Z"),
    ],
)
def test_parse_since(text: str, stored: str) -> None:
    assert parse_since(text) == stored


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "", "01/11/2026"])
def test_a_bad_since_is_a_one_line_error(text: str) -> None:
    with pytest.raises(CommandError, match="invalid --since"):
        parse_since(text)


def test_bad_date_and_missing_database_exit_2_with_one_line(tmp_path: Path) -> None:
    absent = tmp_path / "absent.db"
    proc = run_changes(absent)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: no database at")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not absent.exists()
    sqlite3.connect(tmp_path / "old.db").close()  # a database without the history
    proc = run_changes(tmp_path / "old.db")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"error: no change history in sqlite:///{tmp_path / 'old.db'}")
    proc = run_changes(tmp_path / "old.db", "--since", "last week")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: invalid --since 'last week': expected a date (2026-11-01) or an ISO-8601 time (2026-11-01T06:00:00Z)"
    )
