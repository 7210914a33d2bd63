"""``source = "script"``: fields, cards and product links read from JSON in a page's ``<script>`` elements.

Unit tests of the path language (crawler/scriptdata.py), the profile keys
(crawler/siteprofile.py), the extraction and its typing; ``scrapy profile check``
run as users run it; and crawls of the demo shop's JavaScript variant over plain
HTTP (tests/profiles/csa_iot_js_script.toml against the shipped csa_iot profile
on the HTML variant, both compared with the shop's truth).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from parsel import Selector

from crawler.errors import ProfileError
from crawler.extraction import card_count, extract_fields, list_entries, list_problems
from crawler.scriptdata import (
    MALFORMED_JSON,
    NOT_A_VALUE,
    PathError,
    ScriptDataError,
    compile_path,
    load_json,
    marker_problem,
    problem_marker,
    to_strings,
)
from crawler.siteprofile import ScriptSource, load_profile, parse_profile
from crawler.validation import Rejected, validate
from demoshop.catalogue import Catalogue
from demoshop.process import ShopProcess
from tests.conftest import expected_fields, run_crawl
from tests.test_real_site import swap_host

ROOT = Path(__file__).resolve().parents[1]
SCRIPT_PROFILE = ROOT / "tests" / "profiles" / "csa_iot_js_script.toml"
PAGE_URL = "https://shop.example/p/lamp-1/"
LIST_URL = "https://shop.example/list/"


def root_of(html: str) -> Any:
    return Selector(text=html).root


def profile_of(toml: str, tmp_path: Path | None = None) -> Any:
    import tomllib

    return parse_profile(tomllib.loads(toml), (tmp_path or Path("/profiles")) / "shop.toml")


# --- the path language -------------------------------------------------------------------------------------------

DOC = {
    "products": [
        {"url": "/p/1/", "name": "Lamp", "price": 12.5, "stock": 3, "new": True, "tags": ["a", "b"], "sku": None},
        {"url": "/p/2/", "name": "Plug", "price": 7, "stock": 0, "new": False, "tags": [], "sku": "P-2"},
    ],
    "details": [{"label": "Vendor ID", "value": "0x1552"}, {"label": "Product ID", "value": "0x0D02"}],
    "@type": "Product",
}


@pytest.mark.parametrize(
    ("expr", "strings"),
    [
        ("products[*].url", ["/p/1/", "/p/2/"]),  # a wildcard over a list
        ("products[0].name", ["Lamp"]),  # a list index
        ("products[-1].sku", ["P-2"]),
        ("products[*].price", ["12.5", "7"]),  # numbers as JSON writes them
        ("products[*].stock", ["3", "0"]),
        ("products[*].new", ["true", "false"]),  # booleans as true/false
        ("products[*].sku", ["P-2"]),  # null dropped
        ("products[*].tags", ["a", "b"]),  # nested lists flattened
        ("details[?label == 'Product ID'].value", ["0x0D02"]),  # a filter
        ("details[?label == 'Nope'].value", []),
        ('"@type"', ["Product"]),  # a key that needs quoting
        ("nothing.here", []),
        ("length(products)", ["2"]),
    ],
)
def test_paths_select_json_values_as_strings(expr: str, strings: list[str]) -> None:
    assert to_strings(compile_path(expr).search(DOC)) == strings


def test_a_path_selecting_an_object_is_a_problem() -> None:
    with pytest.raises(ScriptDataError) as caught:
        to_strings(compile_path("products[0]").search(DOC))
    assert caught.value.problem == NOT_A_VALUE


@pytest.mark.parametrize("expr", ["products[", "products[*].", "details[?label == ]", "", "  ", 3])
def test_invalid_paths_are_one_line_errors(expr: Any) -> None:
    with pytest.raises(PathError) as caught:
        compile_path(expr)
    assert "\n" not in str(caught.value)


def test_json_is_read_from_the_start_of_the_text() -> None:
    assert load_json('  {"a": [1, 2]};\nwindow.x = 1;') == {"a": [1, 2]}  # the rest of an assignment is ignored
    assert load_json("[1]") == [1]
    with pytest.raises(ScriptDataError) as caught:
        load_json('{"a": 1,, "b": 2}')
    error = caught.value
    assert error.problem == MALFORMED_JSON and "line 1 column 9" in error.detail
    assert str(error) == (
        "'{\"a\": 1,, \"b\": 2}' is malformed JSON (Expecting property name enclosed in double quotes: line 1 column 9)"
    )


def test_a_problem_marker_survives_json_and_names_the_problem() -> None:
    error = ScriptDataError(MALFORMED_JSON, "{" + "x" * 200, "Expecting ':'")
    marker = json.loads(json.dumps(problem_marker(error)))  # request.meta, the store
    again = marker_problem(marker)
    assert again is not None and again.problem == MALFORMED_JSON and len(again.text) <= 80
    assert marker_problem("text") is None and marker_problem(["a"]) is None and marker_problem(None) is None


# --- profile keys ------------------------------------------------------------------------------------------------

BASE_PROFILE = """
[site]
start_urls = ["https://shop.example/list/"]
key = "sku"
[list]
{list}
[fields.sku]
{sku}
"""


def profile(list_: str = 'product_links = "a::attr(href)"', sku: str = 'source = "script"\npath = "sku"') -> str:
    return BASE_PROFILE.format(list=list_, sku=sku)


@pytest.mark.parametrize(
    ("list_", "sku", "message"),
    [
        (None, 'css = "p"\npath = "sku"', 'fields.sku.path: only with source = "script"'),
        (None, 'source = "script"', 'fields.sku.path: required with source = "script"'),
        (None, 'source = "script"\nlabel = "SKU"\npath = "sku"',
         'fields.sku.source: "script" cannot be combined with label'),
        (None, 'source = "script"\npath = "sku[?"', "fields.sku.path: invalid JMESPath expression 'sku[?'"),
        (None, 'source = "script"\npath = "sku"\nattr = "data-x"', "fields.sku.attr: needs css or xpath"),
        (None, 'source = "script"\npath = "sku"\nregex = "("', "fields.sku.regex: invalid regex"),
        (None, 'source = "json"\npath = "sku"', "fields.sku.source: unknown source 'json' (one of: url, script)"),
        ('product_links = { path = "url" }', None, 'list.product_links.path: only with source = "script"'),
        ('product_links = { source = "script" }', None, 'list.product_links.path: required with source = "script"'),
        ('product_links = { source = "url", path = "u" }', None, "list.product_links.source: unknown source 'url'"),
        ('product_links = { source = "script", path = "u", label = "x" }', None,
         "list.product_links.label: unknown key"),
        ('cards = { source = "script", path = "products" }\nproduct_links = "a::attr(href)"', None,
         "list.product_links: list.cards come from a script"),
        ('cards = { source = "script", path = "products" }\n'
         'product_links = { source = "script", css = "script", path = "url" }', None,
         "list.product_links: list.cards come from a script"),
        ('cards = { source = "script", path = "products" }\nproduct_links = { source = "script", path = "url" }',
         'from = "card"\ncss = "span.sku"', "fields.sku: list.cards come from a script"),
        ('cards = { source = "script", path = "products" }\nproduct_links = { source = "script", path = "url" }',
         'from = "card"\nsource = "script"\ncss = "script"\npath = "sku"', "fields.sku: list.cards come from a script"),
    ],
)  # fmt: skip
def test_bad_script_keys_are_one_line_profile_errors(list_: str | None, sku: str | None, message: str) -> None:
    text = profile(**{k: v for k, v in (("list_", list_), ("sku", sku)) if v is not None})
    with pytest.raises(ProfileError) as caught:
        profile_of(text)
    assert str(caught.value).startswith("/profiles/shop.toml: ") and message in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_js_variant_profile_loads() -> None:
    loaded = load_profile(str(SCRIPT_PROFILE))
    assert isinstance(loaded.cards, ScriptSource) and isinstance(loaded.product_links, ScriptSource)
    assert loaded.get_field("vid").path is not None and loaded.get_field("vid").type == "int"
    assert loaded.cards.expr == r"products in script ~ /window\.__DATA__\s*=\s*(.*)/"


# --- extraction --------------------------------------------------------------------------------------------------

DETAIL_PAGE = """<html><head>
<script type="application/ld+json">{"@context": "https://schema.org", "@type": "Product", "name": "Lamp\\u00a0 One",
 "brand": {"@type": "Brand", "name": "Acme"}, "offers": {"price": "12.50"}}</script>
<script>window.dataLayer = window.dataLayer || []; dataLayer.push({"event": "view"});</script>
</head><body><main></main>
<script id="state">window.__STATE__ = {"product": {"sku": "L-1", "vid": "0x1552", "tested": true, "stock": 4,
 "released": "06/27/2025", "doc": "/files/l-1.zip", "transports": ["Wi-Fi", "Thread"], "nothing": null}};</script>
</body></html>"""

DETAIL_PROFILE = """
[site]
start_urls = ["https://shop.example/list/"]
key = "sku"
[list]
product_links = "a::attr(href)"
[fields.sku]
source = "script"
css = "script#state"
regex = 'window\\.__STATE__\\s*=\\s*(.*)'
path = "product.sku"
[fields.name]
source = "script"
css = 'script[type="application/ld+json"]'
path = "name"
required = true
[fields.brand]
source = "script"
path = "brand.name"
[fields.price]
source = "script"
path = "offers.price"
type = "decimal"
[fields.vid]
source = "script"
regex = '__STATE__\\s*=\\s*(.*)'
path = "product.vid"
type = "int"
int_base = 16
[fields.tested]
source = "script"
regex = '__STATE__\\s*=\\s*(.*)'
path = "product.tested"
type = "bool"
[fields.stock]
source = "script"
regex = '__STATE__\\s*=\\s*(.*)'
path = "product.stock"
type = "int"
[fields.released]
source = "script"
regex = '__STATE__\\s*=\\s*(.*)'
path = "product.released"
type = "date"
date_format = "%m/%d/%Y"
[fields.doc]
source = "script"
regex = '__STATE__\\s*=\\s*(.*)'
path = "product.doc"
type = "url"
[fields.transports]
source = "script"
regex = '__STATE__\\s*=\\s*(.*)'
path = "product.transports"
type = "list"
[fields.nothing]
source = "script"
regex = '__STATE__\\s*=\\s*(.*)'
path = "product.nothing"
"""


def test_fields_from_scripts_are_typed_like_other_fields() -> None:
    shop = profile_of(DETAIL_PROFILE)
    raw = extract_fields(shop, root_of(DETAIL_PAGE), PAGE_URL)
    assert raw["sku"] == "L-1" and raw["name"] == "Lamp One"  # whitespace (NBSP) normalised
    result = validate(shop, raw)
    assert result.fields == {
        "sku": "L-1",
        "name": "Lamp One",
        "brand": "Acme",  # every script tried; the JS code ones (dataLayer) are skipped
        "price": "12.50",
        "vid": 0x1552,
        "tested": True,
        "stock": 4,
        "released": "2025-06-27",
        "doc": "https://shop.example/files/l-1.zip",  # resolved against the page
        "transports": ["Wi-Fi", "Thread"],
        "nothing": None,
    }
    assert result.warnings == []


def broken(page: str, old: str, new: str) -> str:
    assert old in page
    return page.replace(old, new)


def test_malformed_json_rejects_a_required_field_and_warns_for_an_optional_one() -> None:
    shop = profile_of(DETAIL_PROFILE)
    page = broken(DETAIL_PAGE, '"name": "Lamp\\u00a0 One",', '"name": "Lamp One",,')  # the ld+json block
    raw = extract_fields(shop, root_of(page), PAGE_URL)
    with pytest.raises(Rejected) as caught:
        validate(shop, raw)
    problem = caught.value.problem
    assert problem.reason == "name: malformed JSON" and problem.stat_key == "name/malformed_JSON"
    assert "Expecting property name enclosed in double quotes: line 1 column" in problem.message
    # the same page with the field optional: stored as null with a warning; the other scripts still read
    optional = profile_of(DETAIL_PROFILE.replace("required = true\n", ""))
    result = validate(optional, extract_fields(optional, root_of(page), PAGE_URL))
    assert result.fields["name"] is None and result.fields["vid"] == 0x1552
    # brand and price read every script: no other one holds them, so the broken block is named too
    assert [(w.field, w.problem) for w in result.warnings] == [
        ("name", MALFORMED_JSON), ("brand", MALFORMED_JSON), ("price", MALFORMED_JSON)
    ]  # fmt: skip
    assert result.fields["brand"] is None and result.fields["tested"] is True


def test_json_in_an_attribute() -> None:
    page = """<div id="app" data-product='{"sku": "A-1", "ids": [1, 2]}'></div>"""
    shop = profile_of(profile(sku='source = "script"\ncss = "#app"\nattr = "data-product"\npath = "sku"'))
    assert extract_fields(shop, root_of(page), PAGE_URL)["sku"] == "A-1"


def test_a_path_selecting_an_object_warns() -> None:
    shop = profile_of(DETAIL_PROFILE.replace('path = "brand.name"', 'path = "brand"'))
    result = validate(shop, extract_fields(shop, root_of(DETAIL_PAGE), PAGE_URL))
    assert result.fields["brand"] is None
    assert [(w.field, w.problem) for w in result.warnings] == [("brand", NOT_A_VALUE)]


LIST_PAGE = """<html><body><div class="grid"></div>
<script>window.__DATA__ = {"page": 1, "products": [
  {"url": "/p/lamp-1/", "sku": "L-1", "name": "Lamp", "price": 12.5},
  {"url": "/p/plug-2/", "sku": "P-2", "name": "Plug", "price": 7},
  {"url": "/p/lamp-1/", "sku": "L-1", "name": "Lamp (again)", "price": 12.5}]};</script>
</body></html>"""

SCRIPT_CARDS = """
[site]
start_urls = ["https://shop.example/list/"]
key = "sku"
[list]
cards = { source = "script", regex = '__DATA__\\s*=\\s*(.*)', path = "products" }
product_links = { source = "script", path = "url" }
[fields.sku]
from = "card"
source = "script"
path = "sku"
[fields.price]
from = "card"
source = "script"
path = "price"
type = "decimal"
[fields.link]
from = "card"
source = "url"
regex = '/p/([^/]+)/'
[fields.title]
css = "h1"
"""


def test_cards_and_product_links_from_a_script() -> None:
    shop = profile_of(SCRIPT_CARDS)
    root = root_of(LIST_PAGE)
    entries = list_entries(shop, root, LIST_URL)
    assert [(e.link, e.position, e.card) for e in entries] == [
        ("https://shop.example/p/lamp-1/", 1, {"sku": "L-1", "price": "12.5", "link": "lamp-1"}),
        ("https://shop.example/p/plug-2/", 2, {"sku": "P-2", "price": "7", "link": "plug-2"}),
    ]  # a link already seen counts once
    assert card_count(shop, root) == 3 and list_problems(shop, root) == []


def test_page_level_product_links_from_a_script_with_a_wildcard() -> None:
    links = 'product_links = { source = "script", regex = "__DATA__ = (.*)", path = "products[*].url" }'
    shop = profile_of(profile(links))
    entries = list_entries(shop, root_of(LIST_PAGE), LIST_URL)
    assert [e.link for e in entries] == ["https://shop.example/p/lamp-1/", "https://shop.example/p/plug-2/"]


def test_script_fields_inside_html_cards() -> None:
    """With HTML cards, a script field reads the scripts inside its card."""
    page = """<ul>
      <li class="card"><a href="/p/1/">One</a><script type="application/json">{"sku": "S-1"}</script></li>
      <li class="card"><a href="/p/2/">Two</a><script type="application/json">{"sku": "S-2"}</script></li>
    </ul>"""
    shop = profile_of(profile('cards = "li.card"\nproduct_links = "a::attr(href)"',
                              'from = "card"\nsource = "script"\ncss = "script"\npath = "sku"'))  # fmt: skip
    assert [e.card["sku"] for e in list_entries(shop, root_of(page), LIST_URL)] == ["S-1", "S-2"]


def test_a_list_page_with_malformed_json_yields_no_product_and_says_why() -> None:
    shop = profile_of(SCRIPT_CARDS)
    root = root_of(broken(LIST_PAGE, '"price": 7}', '"price": 7'))
    assert list_entries(shop, root, LIST_URL) == [] and card_count(shop, root) == 0
    [problem] = list_problems(shop, root)
    assert problem.startswith("list.cards: '{\"page\": 1, ")
    assert problem.endswith("is malformed JSON (Expecting property name enclosed in double quotes: line 4 column 3)")


# --- scrapy profile check ----------------------------------------------------------------------------------------


def profile_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scrapy", "profile", "check", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_profile_check_shows_script_fields_and_malformed_json(tmp_path: Path) -> None:
    site = tmp_path / "shop.toml"
    site.write_text(DETAIL_PROFILE)
    good = tmp_path / "good.html"
    good.write_text(DETAIL_PAGE)
    result = profile_check(str(site), str(good), "--url", PAGE_URL, "--page", "detail", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    fields = {f["name"]: f for f in report["fields"]}
    assert (fields["vid"]["from"], fields["vid"]["path"], fields["vid"]["raw"], fields["vid"]["value"]) == (
        "script", "product.vid", "0x1552", 0x1552)  # fmt: skip
    bad = tmp_path / "bad.html"
    bad.write_text(broken(DETAIL_PAGE, '"name": "Lamp\\u00a0 One",', '"name": "Lamp One",,'))
    result = profile_check(str(site), str(bad), "--url", PAGE_URL, "--page", "detail")
    assert result.returncode == 1, result.stderr
    name_line = next(line for line in result.stdout.splitlines() if line.startswith("name "))
    assert name_line.split()[1:3] == ["script", "required"] and "REJECTED: malformed JSON" in name_line
    assert "verdict: rejected: name: malformed JSON" in result.stdout


def test_profile_check_on_a_list_page_with_script_cards(tmp_path: Path) -> None:
    site = tmp_path / "shop.toml"
    site.write_text(SCRIPT_CARDS)
    page = tmp_path / "list.html"
    page.write_text(LIST_PAGE)
    result = profile_check(str(site), str(page), "--url", LIST_URL)
    assert result.returncode == 0, result.stderr
    assert "list page" in result.stdout and "product links  2" in result.stdout
    assert "https://shop.example/p/plug-2/" in result.stdout
    page.write_text(broken(LIST_PAGE, '"price": 7}', '"price": 7'))
    result = profile_check(str(site), str(page), "--url", LIST_URL, "--page", "list")
    assert result.returncode == 1
    assert "note: list.cards: " in result.stdout and "is malformed JSON" in result.stdout


# --- crawling the JavaScript variant over plain HTTP -------------------------------------------------------------

PRODUCTS, SEED = 60, 11


def stored(db: Path) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Saved products (key -> fields) and rejected pages (slug -> reason) of a crawl's database."""
    with sqlite3.connect(db) as conn:
        saved = {k: json.loads(d) for k, d in conn.execute("SELECT key, data FROM products")}
        rows = conn.execute("SELECT url, reason FROM rejected_items")
        rejected = {url.rstrip("/").rsplit("/", 1)[1]: reason for url, reason in rows}
    return saved, rejected


@pytest.fixture(scope="module")
def js_crawls(tmp_path_factory: pytest.TempPathFactory) -> Any:
    work = tmp_path_factory.mktemp("js")
    with ShopProcess(products=PRODUCTS, seed=SEED) as shop:
        html_start = swap_host(load_profile("csa_iot").start_urls[0], shop.url)
        js_start = swap_host(load_profile(str(SCRIPT_PROFILE)).start_urls[0], shop.url)
        html = run_crawl(html_start, work / "html.db", work / "html-stats")
        script = run_crawl(js_start, work / "js.db", work / "js-stats", site=str(SCRIPT_PROFILE))
        shipped = run_crawl(js_start, work / "shipped.db", work / "shipped-stats")
        yield shop, work, html, script, shipped


def test_the_script_profile_stores_what_the_html_variant_stores(js_crawls: Any) -> None:
    shop, work, html, script, _ = js_crawls
    assert html.returncode == 0, html.stderr[-3000:]
    assert script.returncode == 0, script.stderr[-3000:]
    html_saved, html_rejected = stored(work / "html.db")
    js_saved, js_rejected = stored(work / "js.db")
    truth = {t["key"]: t for t in Catalogue(PRODUCTS, SEED).truth()}
    wanted = {k for k, t in truth.items() if t["expected"] == "saved"}
    assert set(js_saved) == set(html_saved) == wanted
    for key in wanted:
        assert js_saved[key] == html_saved[key] == expected_fields(truth[key], shop.url), key
    assert js_rejected == html_rejected
    assert set(js_rejected) == {k for k, t in truth.items() if t["expected"] == "rejected"}
    stats = script.stats
    assert stats["catalog/expected_products"] == PRODUCTS
    assert stats["products/identity_holds"] is True, stats["products/identity"]
    pid_warnings = "validation/warnings/pid/not_a_hex_integer"
    assert stats.get(pid_warnings) == html.stats.get(pid_warnings)


def test_the_shipped_profile_finds_no_product_on_the_js_variant(js_crawls: Any) -> None:
    """Without a browser or the script profile, the JS variant's list pages hold no product link."""
    _, work, _, _, shipped = js_crawls
    saved, rejected = stored(work / "shipped.db")
    assert saved == {} and rejected == {}
    stats = shipped.stats
    pages = Catalogue(PRODUCTS, SEED).pages
    assert stats["catalog/empty_list_pages"] >= pages and stats.get("catalog/detail_requests", 0) == 0
    assert shipped.returncode == 3, shipped.stderr[-2000:]  # nothing_found
    assert "no product links found" in shipped.stderr
