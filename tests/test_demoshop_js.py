"""Tests of the demo shop's JavaScript variant (demoshop/jspages.py, the ``/js/`` pages).

Pages are read the way an independent user would: the embedded JSON with ``json``,
the rendered DOM from the system Chromium (``chromium --headless --dump-dom``) with
the HTML variant's independent parser of tests/test_demoshop.py.  Nothing here comes
from the crawler.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest
from parsel import Selector

from demoshop.catalogue import FIELDS, Catalogue
from demoshop.faults import FAULTED_PREFIXES, Gone
from demoshop.pages import MATTER_QUERY, ShopPages, page_url
from demoshop.process import ShopProcess
from tests.test_demoshop import BASE, LABELS, fetch, list_cards, parse_detail, parse_hex, product_fields, target_of

PRODUCTS, SEED = 60, 3
JS_BASE = BASE + "js/"
_DATA = re.compile(r"window\.__DATA__ = (\{.*\});</script>")


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue(PRODUCTS, SEED)


@pytest.fixture(scope="module")
def pages(catalogue: Catalogue) -> ShopPages:
    return ShopPages(catalogue, BASE)


def list_data(body: bytes) -> dict[str, Any]:
    """The ``window.__DATA__`` of a JS list page."""
    match = _DATA.search(body.decode())
    assert match is not None
    return json.loads(match[1])


def script_json(body: bytes, css: str) -> Any:
    texts = Selector(text=body.decode()).css(f"{css}::text").getall()
    assert len(texts) == 1, css
    return json.loads(texts[0])


def fields_from_json(card: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Truth-shaped fields read from a card's JSON and a detail page's JSON, like a reader of the page would."""
    text = " ".join  # collapse whitespace: the JSON holds the page's text, NBSPs included
    fields: dict[str, Any] = dict.fromkeys(FIELDS)
    fields["title"] = text(data["title"].split())
    fields["manufacturer"] = text(data["company"].split())
    fields["device_type"] = card["terms"]["product_device_type"]
    fields["description"] = None if card["excerpt"] is None else text(card["excerpt"].split())
    for row in data["details"]:
        name, value = LABELS[row["label"]], text(row["value"].split())
        if name in ("vid", "pid"):
            fields[name] = parse_hex(value)
        elif name == "primary_device_type_id":
            parsed = [parse_hex(v.strip()) for v in value.split(",")]
            fields[name] = None if None in parsed else parsed
        elif name == "certification_date":
            month, day, year = (value.split("/") + ["", ""])[:3]
            fields[name] = f"{year}-{month}-{day}" if year.isdigit() else None
        elif name == "tis_trp_tested":
            fields[name] = {"Yes": True, "No": False}.get(value)
        elif name == "transport_interface":
            fields[name] = [v.strip() for v in value.split(",")]
        elif name == "compliance_document_url":
            assert value == "Download"
            fields[name] = urlsplit(row["url"]).path
        else:
            fields[name] = value
    return fields


def test_js_pages_hold_no_card_link_or_row_before_rendering(pages: ShopPages, catalogue: Catalogue) -> None:
    """A plain HTTP client finds no product on the JS variant: the cards and rows are only in the JSON."""
    truth = list(catalogue.truth())
    for page in range(1, catalogue.pages + 1):
        response = pages.respond("/js" + page_url(page), count=False)
        assert response.status == 200
        sel = Selector(text=response.body.decode())
        assert sel.css("div.post-feed > div.inner").get() is not None  # the empty feed the script fills
        assert not sel.css("article") and not sel.css("a[href*='/csa_product/']")
        assert list_cards(response.body) == []
        # The frame keeps the pagination, on the JS variant
        numbers = sel.css("a.page-numbers::attr(href)").getall()
        assert numbers and all(h.startswith(JS_BASE + "csa-iot_products/") for h in numbers)
        data = list_data(response.body)
        assert (data["page"], data["last_page"], data["total"]) == (page, catalogue.pages, PRODUCTS)
        paths = [target_of(p["url"], JS_BASE) for p in data["products"]]
        assert paths == [t["path"] for t in truth if t["list_page"] == page]
    for line in truth:
        response = pages.respond("/js" + line["path"])
        assert response.status == 200
        sel = Selector(text=response.body.decode())
        assert not sel.css("article, li, span.label, h1, a")
        assert sel.css("main div.loading").get() is not None
        assert b"/csa_product/" not in response.body.split(b"<script", 1)[0]  # no link outside the scripts


def test_embedded_json_holds_every_field_of_the_truth(pages: ShopPages, catalogue: Catalogue) -> None:
    cards = {}
    for page in range(1, catalogue.pages + 1):
        for card in list_data(pages.respond("/js" + page_url(page), count=False).body)["products"]:
            cards[target_of(card["url"], JS_BASE)] = card
    for line in catalogue.truth():
        body = pages.respond("/js" + line["path"]).body
        data = script_json(body, "script#product-data")
        assert data["url"] == JS_BASE.rstrip("/") + line["path"]
        if line["expected"] == "rejected":
            continue
        assert fields_from_json(cards[line["path"]], data) == line["fields"], line["key"]
        ld = script_json(body, 'script[type="application/ld+json"]')
        assert ld["@type"] == "Product" and ld["name"] == line["fields"]["title"]
        assert ld["brand"]["name"] == line["fields"]["manufacturer"]
        assert ld["productID"] == line["fields"]["certificate_id"]


def test_json_in_scripts_cannot_close_the_script(pages: ShopPages) -> None:
    catalogue = Catalogue(120, 1)  # "Hart & Cole" and other names with &, quotes and non-ASCII letters
    pages = ShopPages(catalogue, BASE)
    bodies = [pages.respond("/js" + page_url(p), count=False).body for p in range(1, catalogue.pages + 1)]
    text = b"".join(bodies).decode()
    assert "\\u0026" in text and "Hart & Cole" not in text.split("<script", 1)[1]
    for body in bodies:
        for script in Selector(text=body.decode()).css("script::text").getall():
            assert "</" not in script


def test_js_routes_redirects_and_not_found(pages: ShopPages, catalogue: Catalogue) -> None:
    product = catalogue.product(2)
    redirect = pages.respond("/js" + product.path.rstrip("/"))
    assert (redirect.status, redirect.location) == (301, ("/js" + product.path).encode())
    redirect = pages.respond(f"/js/csa-iot_products?{MATTER_QUERY}")
    assert (redirect.status, redirect.location) == (301, f"/js/csa-iot_products/?{MATTER_QUERY}".encode())
    assert pages.respond("/js" + page_url(catalogue.pages + 1)).status == 404
    assert pages.respond("/js/csa_product/nope-00001/").status == 404
    assert pages.respond("/js/").status == 404
    every = list_data(pages.respond("/js/csa-iot_products/", count=False).body)  # the unfiltered list
    assert {p["category"] for p in every["products"]} >= {"Matter"} and every["total"] > PRODUCTS


def test_never_rendering_pages_are_seeded_and_in_the_truth() -> None:
    catalogue = Catalogue(PRODUCTS, SEED, js_never_render=0.3, js_never_render_seed=7)
    pages = ShopPages(catalogue, BASE)
    truth = list(catalogue.truth())
    stalled_lists = {p for p in range(1, catalogue.pages + 1) if "STALL = true" in
                     pages.respond("/js" + page_url(p), count=False).body.decode()}  # fmt: skip
    stalled_details = {t["key"] for t in truth if "STALL = true" in pages.respond("/js" + t["path"]).body.decode()}
    assert 0 < len(stalled_details) < PRODUCTS and stalled_lists
    for line in truth:
        expected = [k for k, hit in (("list", line["list_page"] in stalled_lists),
                                     ("detail", line["key"] in stalled_details)) if hit]  # fmt: skip
        assert line["js_never_renders"] == expected
    # the HTML variant is unaffected, other seeds stall other pages, "detail" only stalls detail pages
    assert "STALL" not in pages.respond(page_url(1), count=False).body.decode()
    other = Catalogue(PRODUCTS, SEED, js_never_render=0.3, js_never_render_seed=8)
    assert {t["key"] for t in other.truth() if "detail" in t["js_never_renders"]} != stalled_details
    details_only = Catalogue(PRODUCTS, SEED, js_never_render=0.3, js_never_render_on=frozenset({"detail"}),
                             js_never_render_seed=7)  # fmt: skip
    assert all(t["js_never_renders"] in ([], ["detail"]) for t in details_only.truth())
    assert "js_never_renders" not in next(Catalogue(PRODUCTS, SEED).truth())


def test_faults_and_gone_products_apply_to_the_js_variant() -> None:
    assert "/js/csa_product/x/".startswith(FAULTED_PREFIXES)
    assert f"/js/csa-iot_products/?{MATTER_QUERY}".startswith(FAULTED_PREFIXES)
    from twisted.web.test.requesthelper import DummyRequest

    catalogue = Catalogue(PRODUCTS, SEED, gone_share=0.2)
    gone = Gone(catalogue.gone_paths())
    path, status = next(iter(catalogue.gone_paths().items()))
    request = DummyRequest([b""])
    assert gone.intercept(request, "/js" + path) and request.responseCode == status


def test_truth_command_with_js_flags() -> None:
    import sys

    from tests.test_demoshop import PROJECT_ROOT

    args = ["--products", "30", "--seed", "3", "--js-never-render", "0.4", "--js-never-render-on", "detail"]
    result = subprocess.run([sys.executable, "-m", "demoshop", "truth", *args], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, check=True)  # fmt: skip
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    expected = Catalogue(30, 3, js_never_render=0.4, js_never_render_on=frozenset({"detail"}))
    assert lines == list(expected.truth())
    assert any(t["js_never_renders"] == ["detail"] for t in lines)
    bad = subprocess.run([sys.executable, "-m", "demoshop", "truth", "--js-never-render-on", "cards"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "--js-never-render-on" in bad.stderr


# --- rendered in a real browser ---------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def rendered(url: str) -> bytes:
    """The DOM of ``url`` after its scripts ran, as the system Chromium serialises it."""
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--virtual-time-budget=2000", "--dump-dom", url]  # fmt: skip
    result = subprocess.run(command, capture_output=True, timeout=60, check=True)
    return result.stdout


def without_js(card: dict[str, Any], shop_url: str) -> dict[str, Any]:
    return {**card, "href": card["href"].replace(shop_url + "js/", shop_url)}


@pytest.mark.skipif(CHROMIUM is None, reason="needs the system Chromium (apt-get install chromium)")
def test_a_browser_renders_the_markup_of_the_html_variant() -> None:
    """Rendered by Chromium, a JS page reads exactly as the HTML page does (same cards, header, rows)."""
    details = frozenset({"detail"})
    catalogue = Catalogue(PRODUCTS, SEED, js_never_render=0.1, js_never_render_on=details, js_never_render_seed=6)
    truth = list(catalogue.truth())
    args = ["--js-never-render", "0.1", "--js-never-render-seed", "6", "--js-never-render-on", "detail"]
    with ShopProcess(products=PRODUCTS, seed=SEED, extra_args=args) as shop:
        html_cards = list_cards(fetch(shop.list_url)[2])
        assert shop.js_list_url == shop.url + "js/" + shop.list_url[len(shop.url) :]
        js_list = rendered(shop.js_list_url)
        assert [without_js(c, shop.url) for c in list_cards(js_list)] == html_cards
        assert len(html_cards) == 12
        nav = Selector(text=js_list.decode()).css("a.next.page-numbers::attr(href)").get()
        assert nav == f"{shop.url}js/csa-iot_products/page/2/?{MATTER_QUERY}"
        # quirky pages: noisy whitespace and entities (23), an unparseable Product ID (37), several device types
        # (49), no certificate on the card (31), and a page that never renders
        stalled = next(t for t in truth if t["js_never_renders"] == ["detail"])
        picks = [truth[i] for i in (0, 23, 31, 37, 49)]
        assert all(not t["js_never_renders"] for t in picks)
        for line in picks:
            html_detail, html_warnings, html_sel = parse_detail(fetch(shop.url + line["path"][1:])[2])
            js_body = rendered(shop.url + "js" + line["path"])
            js_detail, js_warnings, sel = parse_detail(js_body)
            assert (js_detail, js_warnings) == (html_detail, html_warnings), line["key"]
            more = "section.more-by div.post-feed > div.inner > article a::attr(href)"
            assert [h.replace("/js/", "/") for h in sel.css(more).getall()] == html_sel.css(more).getall()
            assert sel.css("article").attrib["class"] == html_sel.css("article").attrib["class"]
            card = next(c for c in html_cards if c["href"].endswith(line["path"])) if line["list_page"] == 1 else None
            if card is not None:
                assert product_fields(card, js_detail) == line["fields"]
        body = rendered(shop.url + "js" + stalled["path"])
        sel = Selector(text=body.decode())
        assert not sel.css("article") and not sel.css("li") and sel.css("main div.loading")
