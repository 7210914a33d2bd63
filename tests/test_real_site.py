"""The shipped csa_iot profile against the demo shop in the real site's markup.

The demo shop imitates csa-iot.org (filtered Matter list, card-wrapping links,
"By <Company>" headers, MM/DD/YYYY dates, hex ids, Zigbee products and
platforms in the unfiltered list); its truth is computed from the catalogue,
not from our profile.  The profile is used unmodified, only the host swapped.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

import pytest

from crawler.siteprofile import load_profile
from demoshop.catalogue import Catalogue
from demoshop.process import ShopProcess
from tests.conftest import expected_fields, run_crawl

PRODUCTS, SEED = 240, 11


def swap_host(url: str, base: str) -> str:
    """``url`` with the scheme and host:port of ``base``."""
    parts, shop = urlsplit(url), urlsplit(base)
    return urlunsplit((shop.scheme, shop.netloc, parts.path, parts.query, parts.fragment))


def db_rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def real_crawl(tmp_path_factory):
    work = tmp_path_factory.mktemp("real")
    with ShopProcess(products=PRODUCTS, seed=SEED) as shop:
        start = swap_host(load_profile("csa_iot").start_urls[0], shop.url)
        result = run_crawl(start, work / "csa.db", work / "stats")
        yield shop, work / "csa.db", result


def test_shipped_profile_saves_every_matter_product_field_by_field(real_crawl):
    shop, db, result = real_crawl
    assert result.returncode == 0, result.stderr[-3000:]
    truth = {t["key"]: t for t in Catalogue(PRODUCTS, SEED).truth()}
    saved = {k: json.loads(d) for k, d in db_rows(db, "SELECT key, data FROM products")}
    wanted = {k for k, t in truth.items() if t["expected"] == "saved"}
    assert len(wanted) > PRODUCTS * 0.9
    assert set(saved) == wanted, f"missing {sorted(wanted - set(saved))[:5]}, extra {sorted(set(saved) - wanted)[:5]}"
    for key in wanted:
        assert saved[key] == expected_fields(truth[key], shop.url), key


def test_no_non_matter_product_is_stored(real_crawl):
    _, db, _ = real_crawl
    everything = list(Catalogue(PRODUCTS, SEED).truth(matter_only=False))
    others = {t["key"] for t in everything if not t.get("matter", True)}
    assert others, "the unfiltered list should hold Zigbee products and platforms"
    stored = {k for (k,) in db_rows(db, "SELECT key FROM products")}
    rejected = {u.rstrip("/").rsplit("/", 1)[1] for (u,) in db_rows(db, "SELECT url FROM rejected_items")}
    assert not (stored | rejected) & others


def test_invalid_pages_are_rejected_by_field_and_problem(real_crawl):
    shop, db, result = real_crawl
    truth = [t for t in Catalogue(PRODUCTS, SEED).truth() if t["expected"] == "rejected"]
    assert {t["reject_field"] for t in truth} == {"certificate_id", "certification_date"}
    rejected = {url: (reason, json.loads(data)) for url, reason, data in
                db_rows(db, "SELECT url, reason, data FROM rejected_items")}
    assert set(rejected) == {urljoin(shop.url, t["path"]) for t in truth}
    for line in truth:
        reason, data = rejected[urljoin(shop.url, line["path"])]
        assert reason.startswith(line["reject_field"] + ": "), reason
        assert data["_reject"]["field"] == line["reject_field"]
    stats = result.stats
    assert sum(v for k, v in stats.items() if k.startswith("validation/rejected/")) == len(truth)


def test_unparseable_optional_values_are_null_with_a_warning(real_crawl):
    _, _, result = real_crawl
    truth = [t for t in Catalogue(PRODUCTS, SEED).truth() if t["expected"] == "saved"]
    expected_pid_warnings = sum("pid" in t["warnings"] for t in truth)
    assert expected_pid_warnings > 0, "the shop should serve unparseable Product IDs"
    stats = result.stats
    assert stats.get("validation/warnings/pid/not_a_hex_integer", 0) == expected_pid_warnings
    assert "pid stored as null" in result.stderr


def test_the_list_is_read_again_once_when_nothing_moved(real_crawl):
    _, _, result = real_crawl
    stats = result.stats
    assert stats["catalog/recheck_rounds"] == 1
    assert stats["catalog/recheck_list_pages"] == 1
    assert stats.get("catalog/recheck_new_products", 0) == 0
    assert stats["catalog/expected_products"] == PRODUCTS
    assert stats["products/identity_holds"] is True, stats["products/identity"]


def test_a_catalogue_that_grows_during_the_crawl_loses_nothing(tmp_path):
    """New products appear at the top while the list pages are fetched at once."""
    grow = 30
    args = ["--grow", str(grow), "--grow-every", "1"]
    with ShopProcess(products=PRODUCTS, seed=SEED, extra_args=args) as shop:
        start = swap_host(load_profile("csa_iot").start_urls[0], shop.url)
        result = run_crawl(start, tmp_path / "moving.db", tmp_path / "stats")
    assert result.returncode == 0, result.stderr[-3000:]
    truth = list(Catalogue(PRODUCTS, SEED).truth(grow=grow))
    assert len(truth) == PRODUCTS + grow
    wanted = {t["key"] for t in truth if t["expected"] == "saved"}
    stored = {k for (k,) in db_rows(tmp_path / "moving.db", "SELECT key FROM products")}
    assert stored == wanted, f"missing {sorted(wanted - stored)[:5]}"
    stats = result.stats
    assert stats["catalog/recheck_new_products"] > 0
    assert stats["products/identity_holds"] is True, stats["products/identity"]


LIST_ONLY = """
[site]
name = "csa_cards"
start_urls = ["https://csa-iot.org/csa-iot_products/?p_keywords=&p_type%5B%5D=14&p_program_type%5B%5D=1049"]
key = "slug"
detail_pages = false

[list]
cards = "div.post-feed article.product"
product_links = "a::attr(href)"
next_page = "a.next.page-numbers::attr(href)"

[fields.slug]
source = "url"
regex = '/csa_product/([^/?#]+)'

[fields.title]
css = "h3.entry-title"
required = true

[fields.manufacturer]
css = "p.entry-company"

[fields.device_type]
xpath = "."
attr = "class"
regex = 'product_device_type-(\\S+)'

[fields.certificate_id]
css = "p.entry-certificate-id"
strip_prefix = "Certificate ID:"
"""


def test_a_list_only_profile_stores_each_card(tmp_path):
    """The same shop read from its cards alone, walking the "next" links (no detail requests)."""
    profile = tmp_path / "csa_cards.toml"
    profile.write_text(LIST_ONLY)
    with ShopProcess(products=60, seed=SEED) as shop:
        start = swap_host(load_profile(str(profile)).start_urls[0], shop.url)
        result = run_crawl(start, tmp_path / "cards.db", tmp_path / "stats", site=str(profile))
    assert result.returncode == 0, result.stderr[-3000:]
    truth = {t["key"]: t for t in Catalogue(60, SEED).truth()}
    stored = {k: json.loads(d) for k, d in db_rows(tmp_path / "cards.db", "SELECT key, data FROM products")}
    assert set(stored) == set(truth)
    for key, data in stored.items():
        fields = truth[key]["fields"]
        assert data["title"] == fields["title"]
        assert data["manufacturer"] == fields["manufacturer"]
        assert data["device_type"] == fields["device_type"]
        assert data["certificate_id"] in (fields["certificate_id"], None)  # some cards show no certificate id
    stats = result.stats
    assert stats.get("catalog/detail_requests", 0) == 0
    assert stats["products/saved"] == 60
    assert stats["products/identity_holds"] is True, stats["products/identity"]
