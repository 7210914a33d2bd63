"""Incremental mode (``-a mode=incremental``): a nightly run fetches only what is new.

The demo shop grows newest first between two runs: ``--products N --grow K
--grow-every 0`` serves N products (K newer ones held back),
``--products N --grow K --new K`` the same catalogue K products later.  What
each run asked for is read from the shop's request log.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
from pathlib import Path

import pytest

from crawler import defaults
from crawler.siteprofile import load_profile
from demoshop.catalogue import Catalogue
from demoshop.pages import MATTER_QUERY, ShopPages
from demoshop.process import ShopProcess
from storage.engine import DatabaseError
from storage.known import BY_KEY, KnownProducts, load_known
from storage.products import ProductRow, ProductStore, RejectRow
from tests.conftest import expected_fields, run_crawl
from tests.test_real_site import swap_host

PRODUCTS, NEW, SEED = 60, 5, 4
PER_PAGE = 12


# --- the stored products (pure storage) ---------------------------------------------------------


def test_known_products_match_detail_urls_canonically():
    known = KnownProducts(["https://shop.example/p/a/?y=2&x=1", "https://shop.example/p/b/#top", ""])
    assert len(known) == 2
    assert "https://shop.example/p/a/?x=1&y=2" in known  # query order does not matter
    assert "https://shop.example/p/b/" in known  # nor a fragment
    assert "https://shop.example/p/c/" not in known
    assert "" not in known and None not in known
    assert known.nbytes == 16  # 8 bytes a product


def test_known_products_by_key_compare_text_as_is():
    known = KnownProducts(["123", "abc"], by=BY_KEY)
    assert "123" in known and "abc" in known
    assert "ABC" not in known and "0123" not in known


def _store(db: Path) -> ProductStore:
    store = ProductStore(f"sqlite:///{db}")
    store.create_schema()
    return store


def test_load_known_reads_saved_and_rejected_products_of_one_site(tmp_path):
    from datetime import UTC, datetime

    db = tmp_path / "known.db"
    store = _store(db)
    now = datetime.now(UTC)
    store.write_batch(
        [
            ProductRow("shop", "a", "http://shop/p/a/", "{}", "h", 1, 1, now),
            ProductRow("other", "b", "http://shop/p/b/", "{}", "h", 1, 2, now),
        ],
        [RejectRow("shop", "http://shop/p/r/", None, "title: missing", {}, now)],
    )
    store.close()
    known = load_known(f"sqlite:///{db}", "shop")
    assert len(known) == 2
    assert "http://shop/p/a/" in known and "http://shop/p/r/" in known  # saved, rejected
    assert "http://shop/p/b/" not in known  # another site's
    keys = load_known(f"sqlite:///{db}", "shop", by=BY_KEY)
    assert "a" in keys and "b" not in keys and len(keys) == 1  # a reject without a key is not a key


def test_load_known_of_a_database_without_tables_is_empty_and_creates_nothing(tmp_path):
    db = tmp_path / "empty.db"
    sqlite3.connect(db).close()
    assert len(load_known(f"sqlite:///{db}", "shop")) == 0
    with pytest.raises(DatabaseError, match="no database at"):
        load_known(f"sqlite:///{tmp_path / 'missing.db'}", "shop")
    assert not (tmp_path / "missing.db").exists()


def test_progress_takes_the_products_earlier_runs_ended_off_the_expected_ones():
    """The site states 120 products; 100 are stored (carried): 20 are this run's work, not 120."""
    from tests.test_progress import FakeAccounting, reporter

    ext = reporter(FakeAccounting())
    stats = ext.stats.values
    stats["catalog/expected_products"] = 120
    assert ext.snapshot(ext.clock()).expected_products == 120
    stats["products/carried"] = 100
    assert ext.snapshot(ext.clock()).expected_products == 20
    stats["products/carried"] = 130  # more stored than the site lists now (products removed)
    assert ext.snapshot(ext.clock()).expected_products == 0


# --- the demo shop grows between runs ---------------------------------------------------------------


def _slugs(pages: ShopPages, count: int) -> list[str]:
    slugs = []
    for number in range(1, count + 1):
        path = "/csa-iot_products/" + (f"page/{number}/" if number > 1 else "")
        body = pages.respond(f"{path}?{MATTER_QUERY}").body.decode()
        slugs += re.findall(r'/csa_product/([^/"]+)/"', body)
    return slugs


def test_demo_shop_new_lists_grown_products_from_the_start():
    catalogue = Catalogue(30, SEED, grow=4)
    truth = [line["key"] for line in catalogue.truth()]
    before = _slugs(ShopPages(catalogue, grow_every=0), 4)
    assert before == truth[4:]  # the 4 newest held back, and never added (grow_every 0)
    assert _slugs(ShopPages(catalogue, grow_every=0, new=4), 4) == truth  # 4 newer on top
    assert _slugs(ShopPages(catalogue, grow_every=0, new=1), 4) == truth[3:]
    with pytest.raises(ValueError, match="new must be between 0 and grow"):
        ShopPages(catalogue, new=5)


# --- crawls -------------------------------------------------------------------------------------------


def requests_of(log: Path) -> tuple[list[str], list[str]]:
    """(list page paths, detail page paths) the shop answered, from its request log."""
    paths = [json.loads(line)["path"] for line in log.read_text().splitlines() if line.strip()]
    lists = [p for p in paths if p.startswith("/csa-iot_products/")]
    details = [p for p in paths if p.startswith("/csa_product/")]
    return lists, details


def free_port() -> int:
    """A loopback port free now: the shop of every night listens on it, as a real site keeps its URLs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def crawl(shop: ShopProcess, db: Path, stats: Path, *extra: str):
    start = swap_host(load_profile("csa_iot").start_urls[0], shop.url)
    return run_crawl(start, db, stats, *extra)


def db_matches_truth(db: Path, truth: list[dict], base: str) -> None:
    with sqlite3.connect(db) as conn:
        saved = {k: json.loads(d) for k, d in conn.execute("SELECT key, data FROM products")}
        rejected = {u for (u,) in conn.execute("SELECT url FROM rejected_items")}
    wanted = {t["key"]: t for t in truth if t["expected"] == "saved"}
    assert set(saved) == set(wanted), f"missing {sorted(set(wanted) - set(saved))[:5]}"
    for key, line in wanted.items():
        assert saved[key] == expected_fields(line, base), key
    assert rejected == {base.rstrip("/") + t["path"] for t in truth if t["expected"] == "rejected"}


def test_a_nightly_run_fetches_only_the_new_products(tmp_path):
    db = tmp_path / "catalog.db"
    truth = list(Catalogue(PRODUCTS, SEED, grow=NEW).truth())
    assert len(truth) == PRODUCTS + NEW
    new_keys = [t["key"] for t in truth[:NEW]]
    port = ["--port", str(free_port())]

    # night 1: N products (the K newer ones not certified yet), a full run
    with ShopProcess(PRODUCTS, SEED, tmp_path / "night1.log", [*port, "--grow", str(NEW), "--grow-every", "0"]) as shop:
        first = crawl(shop, db, tmp_path / "stats1")
    assert first.returncode == 0, first.stderr[-3000:]
    with sqlite3.connect(db) as conn:
        stored = {k for (k,) in conn.execute("SELECT key FROM products")}
    assert stored and not stored & set(new_keys)

    # night 2: K products were added at the top; the incremental run fetches those only
    grown = [*port, "--grow", str(NEW), "--new", str(NEW), "--grow-every", "0"]
    with ShopProcess(PRODUCTS, SEED, tmp_path / "night2.log", grown) as shop:
        second = crawl(shop, db, tmp_path / "stats2", "-a", "mode=incremental")
        base = shop.url
    assert second.returncode == 0, second.stderr[-3000:]
    lists, details = requests_of(tmp_path / "night2.log")
    assert sorted(p.strip("/").rsplit("/", 1)[1] for p in details) == sorted(new_keys)
    stop_after = defaults.INCREMENTAL_STOP_AFTER
    # page 1 (the new products and 7 known), 2 known pages, then page 1 re-read once
    assert len(lists) == 1 + stop_after + 1, lists
    stats = second.stats
    assert stats["incremental/stop_reason"] == "known_pages"
    assert stats["incremental/stopped_at_page"] == 1 + stop_after
    assert stats["incremental/list_pages"] == 1 + stop_after
    assert stats["incremental/known_products"] == PRODUCTS
    assert stats["incremental/new_products"] == NEW == stats["products/discovered"]
    carried = (1 + stop_after) * PER_PAGE - NEW
    assert stats["incremental/skipped_products"] == carried == stats["products/carried"]
    assert stats["catalog/recheck_list_pages"] == 1
    assert "catalog/expected_products" not in stats  # not judged against the whole catalogue
    assert stats["incremental/site_list_pages"] == -(-(PRODUCTS + NEW) // PER_PAGE)
    assert stats["outcome/name"] == "ok"
    assert 0 <= stats["progress/fraction"] <= 1 and stats["progress/eta_seconds"] in (0, 0.0, None)
    db_matches_truth(db, truth, base)

    # night 3: nothing changed: a handful of list pages, no product page, exit 0
    with ShopProcess(PRODUCTS, SEED, tmp_path / "night3.log", grown) as shop:
        third = crawl(shop, db, tmp_path / "stats3", "-a", "mode=incremental")
    assert third.returncode == 0, third.stderr[-3000:]
    lists, details = requests_of(tmp_path / "night3.log")
    assert details == []
    assert len(lists) == stop_after + 1, lists  # pages 1..STOP_AFTER, page 1 re-read
    stats = third.stats
    assert stats.get("products/discovered", 0) == 0
    assert stats["products/carried"] == stop_after * PER_PAGE
    assert stats["outcome/name"] == "ok"
    db_matches_truth(db, truth, base)


def test_an_incremental_run_on_an_empty_database_is_a_full_run(tmp_path):
    db = tmp_path / "catalog.db"
    with ShopProcess(30, SEED, tmp_path / "shop.log") as shop:
        result = crawl(shop, db, tmp_path / "stats", "-a", "mode=incremental")
        base = shop.url
    assert result.returncode == 0, result.stderr[-3000:]
    _, details = requests_of(tmp_path / "shop.log")
    assert len(details) == 30
    stats = result.stats
    assert stats["incremental/known_products"] == 0
    assert stats["incremental/stop_reason"] == "nothing_stored"
    assert stats["catalog/expected_products"] == 30
    assert stats.get("products/carried", 0) == 0
    db_matches_truth(db, list(Catalogue(30, SEED).truth()), base)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-a", "mode=nightly"), "error: unknown mode 'nightly' (-a mode=: one of full, incremental)"),
        (
            ("-a", "mode=incremental", "-s", "INCREMENTAL_STOP_AFTER=0"),
            "error: invalid setting INCREMENTAL_STOP_AFTER='0': expected int >= 1",
        ),
    ],
)
def test_bad_mode_or_setting_is_one_line_and_exit_2(tmp_path, args, message):
    result = run_crawl("http://127.0.0.1:9/csa-iot_products/", tmp_path / "x.db", tmp_path / "stats", *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == message
    assert "Traceback" not in result.stderr


def test_a_list_only_catalogue_is_compared_by_key(tmp_path):
    """Cards are the items (no detail pages): the stored keys tell the known products."""
    from tests.test_real_site import LIST_ONLY

    profile = tmp_path / "csa_cards.toml"
    profile.write_text(LIST_ONLY)
    db, port = tmp_path / "cards.db", ["--port", str(free_port())]
    start = swap_host(load_profile(str(profile)).start_urls[0], "http://127.0.0.1/")
    held = [*port, "--grow", str(NEW), "--grow-every", "0"]
    with ShopProcess(PRODUCTS, SEED, extra_args=held) as shop:
        first = run_crawl(swap_host(start, shop.url), db, tmp_path / "stats1", site=str(profile))
    assert first.returncode == 0, first.stderr[-3000:]
    with ShopProcess(PRODUCTS, SEED, tmp_path / "night2.log", [*held, "--new", str(NEW)]) as shop:
        second = run_crawl(
            swap_host(start, shop.url), db, tmp_path / "stats2", "-a", "mode=incremental", site=str(profile)
        )
    assert second.returncode == 0, second.stderr[-3000:]
    stop_after = defaults.INCREMENTAL_STOP_AFTER
    lists, details = requests_of(tmp_path / "night2.log")
    assert details == [] and len(lists) == 1 + stop_after + 1, lists
    stats = second.stats
    assert stats["incremental/new_products"] == NEW == stats["products/saved"]
    assert stats["products/carried"] == (1 + stop_after) * PER_PAGE - NEW
    with sqlite3.connect(db) as conn:
        stored = {k for (k,) in conn.execute("SELECT key FROM products")}
    assert stored == {t["key"] for t in Catalogue(PRODUCTS, SEED, grow=NEW).truth()}


def test_products_added_during_an_incremental_run_are_found_by_the_re_check(tmp_path):
    """The shop gains products at the top while the incremental run walks it: page 1 is read again."""
    db, port = tmp_path / "catalog.db", ["--port", str(free_port())]
    more = 4  # added during night 2, one after each list-page request
    held = [*port, "--grow", str(NEW + more)]
    with ShopProcess(PRODUCTS, SEED, extra_args=[*held, "--grow-every", "0"]) as shop:
        assert crawl(shop, db, tmp_path / "stats1").returncode == 0
    with ShopProcess(PRODUCTS, SEED, tmp_path / "night2.log", [*held, "--new", str(NEW), "--grow-every", "1"]) as shop:
        result = crawl(shop, db, tmp_path / "stats2", "-a", "mode=incremental")
        base = shop.url
    assert result.returncode == 0, result.stderr[-3000:]
    truth = list(Catalogue(PRODUCTS, SEED, grow=NEW + more).truth())
    db_matches_truth(db, truth, base)
    _, details = requests_of(tmp_path / "night2.log")
    assert len(details) == NEW + more  # each new product once, no known one
    stats = result.stats
    assert stats["catalog/recheck_new_products"] > 0
    assert stats["products/identity_holds"] is True, stats["products/identity"]
