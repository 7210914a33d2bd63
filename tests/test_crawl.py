"""End to end: crawl the demo shop over loopback into SQLite and compare with its truth."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from demoshop.catalogue import Catalogue
from tests.conftest import ROOT, SHOP_PRODUCTS, SHOP_SEED, catalog_command, expected_fields, run_crawl, scrapy_command


def truth() -> list[dict]:
    return list(Catalogue(SHOP_PRODUCTS, SHOP_SEED).truth())


def db_products(db: Path) -> dict[str, dict]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT key, url, data, list_page, list_position FROM products").fetchall()
    return {k: {"url": u, "data": json.loads(d), "list_page": p, "list_position": pos} for k, u, d, p, pos in rows}


def db_rejected(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT url, reason FROM rejected_items").fetchall())


@pytest.fixture(scope="module")
def first_crawl(shop, tmp_path_factory):
    work = tmp_path_factory.mktemp("crawl")
    db = work / "catalog.db"
    result = run_crawl(shop.list_url, db, work / "stats1")
    return shop, db, work, result


def test_crawl_saves_exactly_the_truth(first_crawl):
    shop, db, _, result = first_crawl
    assert result.returncode == 0, result.stderr[-3000:]
    expected = {t["key"]: t for t in truth()}
    saved = db_products(db)
    wanted = {k for k, t in expected.items() if t["expected"] == "saved"}
    assert set(saved) == wanted, f"missing {sorted(wanted - set(saved))[:5]}, extra {sorted(set(saved) - wanted)[:5]}"
    for key, row in saved.items():
        t = expected[key]
        assert row["data"] == expected_fields(t, shop.url), key
        assert row["url"] == shop.url.rstrip("/") + t["path"]
        assert (row["list_page"], row["list_position"]) == (t["list_page"], t["list_position"])


def test_bad_pages_are_rejected_with_reasons(first_crawl):
    shop, db, _, result = first_crawl
    rejected = db_rejected(db)
    bad = {shop.url.rstrip("/") + t["path"]: t for t in truth() if t["expected"] == "rejected"}
    assert bad, "the shop should seed bad pages"
    assert set(rejected) == set(bad)
    for url, reason in rejected.items():
        assert bad[url]["reject_field"] in reason, (url, reason)


def test_stats_dump_accounts_for_every_product(first_crawl):
    _, _, _, result = first_crawl
    stats = result.stats
    expected = truth()
    n_saved = sum(t["expected"] == "saved" for t in expected)
    assert stats["store/inserted"] == n_saved
    assert stats["store/rejected"] == len(expected) - n_saved
    assert stats["catalog/detail_requests"] == len(expected)
    assert stats["item_scraped_count"] == n_saved
    assert stats["store/batches"] >= 1
    assert stats["catalog/expected_products"] == SHOP_PRODUCTS
    assert stats["products/discovered"] == len(expected)
    assert stats["products/saved"] == n_saved
    assert stats["products/identity_holds"] is True, stats["products/identity"]


def test_second_crawl_changes_nothing(first_crawl):
    shop, db, work, _ = first_crawl
    before = db_products(db)
    result = run_crawl(shop.list_url, db, work / "stats2")
    assert result.returncode == 0, result.stderr[-3000:]
    stats = result.stats
    assert stats.get("store/inserted", 0) == 0
    assert stats.get("store/updated", 0) == 0
    assert stats["store/unchanged"] == len(before)
    assert db_products(db) == before


def test_sigint_flushes_what_was_collected(tmp_path):
    """The first Ctrl-C stops the crawl gracefully and every scraped item is saved."""
    from demoshop.process import ShopProcess

    with ShopProcess(products=600, seed=5) as shop:
        db = tmp_path / "stopped.db"
        cmd = catalog_command(
            shop.list_url, "-s", f"DATABASE_URL=sqlite:///{db}", "-s", f"STATS_DUMP_DIR={tmp_path}",
            "-s", "CONCURRENT_REQUESTS=2", "-s", "DOWNLOAD_DELAY=0.02",
            "-s", "STORE_FLUSH_INTERVAL=60", "-s", "STORE_BATCH_SIZE=1000",
        )
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # At <= 50 pages/s the whole shop takes over 13 s: interrupt it mid-way,
        # with every scraped item still in the store's buffer.
        time.sleep(4)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    (dump,) = tmp_path.glob("catalog-*.json")
    stats = json.loads(dump.read_text())["stats"]
    assert stats["finish_reason"] == "shutdown", stderr[-2000:]
    scraped = stats.get("item_scraped_count", 0)
    assert 0 < scraped < 600
    assert len(db_products(db)) == scraped == stats["store/inserted"]
    # stopped early: what was not done yet is pending (read from the scheduler), nothing is lost
    assert 0 < stats["products/pending"] <= stats["scheduler/left_at_close"]
    assert stats["products/lost"] == 0
    assert stats["products/identity_holds"] is True, stats["products/identity"]


class VanishOne:
    """An extension that drops one product request when it is scheduled, without a word
    (a ``request_scheduled`` handler raising IgnoreRequest: the engine then neither
    enqueues it nor sends ``request_dropped``)."""

    def __init__(self) -> None:
        self.dropped = False

    @classmethod
    def from_crawler(cls, crawler):  # noqa: ANN001, ANN206
        from scrapy import signals

        ext = cls()
        crawler.signals.connect(ext.request_scheduled, signal=signals.request_scheduled)
        return ext

    def request_scheduled(self, request, spider) -> None:  # noqa: ANN001
        from scrapy.exceptions import IgnoreRequest

        if request.meta.get("stage") == "detail" and not self.dropped:
            self.dropped = True
            raise IgnoreRequest("vanished")


def test_an_early_stop_reads_pending_from_the_scheduler_and_names_what_vanished(shop, tmp_path):
    """Pending is what the scheduler held at close, not "the rest": a product that vanished
    is lost even when the crawl stopped early (before, it was counted pending)."""
    from crawler import outcome, settings

    extensions = {**settings.EXTENSIONS, "tests.test_crawl.VanishOne": 10}
    result = run_crawl(
        shop.list_url, tmp_path / "db.sqlite", tmp_path / "stats",
        "-s", f"EXTENSIONS={json.dumps(extensions)}", "-s", "CLOSESPIDER_ITEMCOUNT=40",
    )  # fmt: skip
    stats = result.stats
    assert stats["finish_reason"] == "closespider_itemcount"
    assert stats["products/pending"] > 0
    assert stats["products/lost"] == 1, stats["products/identity"]
    assert stats["products/identity_holds"] is False
    assert result.returncode == outcome.INCOMPLETE, result.stderr[-2000:]
    assert "Products unaccounted for (1 lost)" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-a", "site=no_such_site"], "unknown site 'no_such_site'"),
        (["-a", "site=csa_iot", "-s", "DATABASE_URL=nosuchdialect://x/y"], "DATABASE_URL"),
    ],
)
def test_configuration_errors_are_one_line(tmp_path, args, message):
    proc = subprocess.run(
        scrapy_command("crawl", "catalog", *args, "-s", f"STATS_DUMP_DIR={tmp_path}"),
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], proc.stderr[-2000:]


def test_unusable_database_path_is_one_line(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    proc = subprocess.run(
        scrapy_command("crawl", "catalog", "-a", "site=csa_iot", "-s", f"DATABASE_URL=sqlite:///{blocker}/x.db"),
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(blocker) in errors[0], proc.stderr[-2000:]


def test_bad_profile_is_one_line_naming_file_and_key(tmp_path):
    profile = (ROOT / "crawler" / "sites" / "csa_iot.toml").read_text()
    bad = tmp_path / "broken.toml"
    bad.write_text(profile.replace('type = "date"', 'type = "datetime"', 1))
    proc = subprocess.run(
        scrapy_command("crawl", "catalog", "-a", f"site={bad}"),
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert str(bad) in errors[0] and "fields.certification_date.type" in errors[0]


def test_no_remote_control_server_by_default(first_crawl):
    """Scrapy 2.19 starts a code-execution HTTP server in every crawl; the project turns it off."""
    *_, result = first_crawl
    assert "Remote control" not in result.stderr
