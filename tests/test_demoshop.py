"""Tests of the local demo shop (demoshop/).

Pages are parsed with parsel the way an independent user of the site would (label
texts, card classes, hrefs): nothing here comes from the crawler.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from parsel import Selector

from demoshop.catalogue import (
    FIELDS,
    PER_PAGE,
    QUIRKS,
    REJECT_FIELDS,
    REQUIRED_FIELDS,
    URL_FIELDS,
    Catalogue,
    normalise_text,
)
from demoshop.pages import MATTER_QUERY, ShopPages, page_url, pagination, render_detail_page
from demoshop.process import ShopProcess

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BASE = "http://shop.test:8000/"
LIST = "/csa-iot_products/"
#: The Matter list query with unencoded brackets and the parameters in another order.
RAW_MATTER_QUERY = "p_program_type[]=1049&p_type[]=14&p_keywords="
LABELS = {
    "Certificate ID": "certificate_id",
    "Certified Date": "certification_date",
    "Vendor ID": "vid",
    "Product ID": "pid",
    "Primary Device Type ID": "primary_device_type_id",
    "Firmware Version": "firmware_version",
    "Hardware Version": "hardware_version",
    "Specification Version": "specification_version",
    "Transport Interface": "transport_interface",
    "TIS/TRP Tested": "tis_trp_tested",
    "Compliance Document": "compliance_document_url",
    "Family SKU": "family_sku",
    "Family Variant SKU": "family_variant_sku",
    "Family ID": "family_id",
}
_HEX = re.compile(r"0x[0-9A-Fa-f]+")


@pytest.fixture(scope="module")
def shop300() -> Catalogue:
    return Catalogue(300, 1)


@pytest.fixture(scope="module")
def truth300(shop300: Catalogue) -> list[dict[str, Any]]:
    return list(shop300.truth())


@pytest.fixture(scope="module")
def pages300(shop300: Catalogue) -> ShopPages:
    return ShopPages(shop300, BASE)


# --- an independent parser ---------------------------------------------------------------------------------------


def text_of(selection: Any) -> str:
    """All descendant text joined with "", whitespace collapsed."""
    return normalise_text("".join(selection.xpath(".//text()").getall()))


def target_of(url: str, base: str = BASE) -> str:
    """The request target of an absolute shop URL."""
    assert url.startswith(base), url
    return "/" + url[len(base) :]


def parse_hex(text: str) -> int | None:
    return int(text, 16) if _HEX.fullmatch(text) else None


def parse_card(card: Any) -> dict[str, Any]:
    """What a list card says: its link, classes and texts."""
    classes = card.attrib["class"].split()

    def tagged(prefix: str) -> str | None:
        return next((c.removeprefix(prefix) for c in classes if c.startswith(prefix)), None)

    excerpt = card.css("div.entry-excerpt")
    certificate = text_of(card.css("p.entry-certificate-id"))
    return {
        "href": card.xpath("./a/@href").get(),
        "product_type": tagged("product_type-"),
        "category_class": tagged("product_category-"),
        "device_type": tagged("product_device_type-"),
        "company": text_of(card.css("p.entry-company")),
        "title": text_of(card.css("h3.entry-title")),
        "category": text_of(card.css("p.entry-category")),
        "certificate_id": certificate.removeprefix("Certificate ID: ") if certificate else None,
        "description": text_of(excerpt) if excerpt else None,
        "title_has_link": bool(card.css("h3.entry-title a")),
    }


def list_cards(body: bytes) -> list[dict[str, Any]]:
    sel = Selector(text=body.decode("utf-8"))
    feed = sel.css("div.wp-block-crown-blocks-product-index > div.post-feed.item-count-12 > div.inner")
    assert len(feed) == 1 and feed.attrib.get("class") == "inner"
    return [parse_card(card) for card in feed.xpath("./article")]


def parse_detail(body: bytes) -> tuple[dict[str, Any], list[str], Selector]:
    """The fields a detail page shows (typed), the fields it shows unparseably, and the page."""
    sel = Selector(text=body.decode("utf-8"))
    article = sel.xpath("//main/article")
    assert len(article) == 1
    company = text_of(article.css("header.entry-header p.entry-company"))
    assert company.startswith("By ")
    fields: dict[str, Any] = {
        "title": text_of(article.css("header h1.entry-title")),
        "manufacturer": company.removeprefix("By "),
        "category": text_of(article.css("header h6.entry-category")),
    }
    warnings = []
    labels = []
    for row in article.css("div.entry-product-details > div > ul > li"):
        label = text_of(row.css("span.label"))
        labels.append(label)
        name = LABELS[label]
        value = text_of(row.css("span.value"))
        parsed: Any = value
        if name in ("vid", "pid"):
            parsed = parse_hex(value)
        elif name == "primary_device_type_id":
            parsed = [parse_hex(v.strip()) for v in value.split(",")]
            parsed = None if None in parsed else parsed
        elif name == "certification_date":
            try:
                parsed = dt.datetime.strptime(value, "%m/%d/%Y").date().isoformat()
            except ValueError:
                parsed = None
        elif name == "tis_trp_tested":
            parsed = {"Yes": True, "No": False}.get(value)
        elif name == "transport_interface":
            parsed = [v.strip() for v in value.split(",")]
        elif name == "compliance_document_url":
            href = row.css("span.value a::attr(href)").get()
            assert href is not None and href.startswith("http://") and value == "Download"
            parsed = urlsplit(href).path
        if parsed is None and name not in ("certification_date",):
            warnings.append(name)
        fields[name] = parsed
    assert labels == [label for label in LABELS if label in labels], "rows out of order"
    return fields, warnings, sel


def product_fields(card: dict[str, Any], detail: dict[str, Any]) -> dict[str, Any]:
    """Truth-shaped fields from a card and its detail page."""
    fields = dict.fromkeys(FIELDS)
    fields.update({k: v for k, v in detail.items() if k in fields})
    fields["device_type"] = card["device_type"]
    fields["description"] = card["description"]
    return fields


def crawl(pages: ShopPages, start: str) -> list[dict[str, Any]]:
    """Every card of a list, following the "next" links from ``start`` (a target)."""
    cards: list[dict[str, Any]] = []
    target: str | None = start
    page = 0
    while target is not None:
        response = pages.respond(target)
        assert response.status == 200, target
        page += 1
        for position, card in enumerate(list_cards(response.body), 1):
            cards.append({**card, "page": page, "position": position})
        nxt = Selector(text=response.body.decode()).css("nav.pagination a.next.page-numbers::attr(href)").get()
        target = target_of(nxt, pages.base_url) if nxt else None
    return cards


# --- catalogue and truth -----------------------------------------------------------------------------------------


def test_truth_is_deterministic_and_seed_dependent(truth300: list[dict[str, Any]]) -> None:
    assert list(Catalogue(300, 1).truth()) == truth300
    assert list(Catalogue(300, 2).truth()) != truth300
    assert [t["key"] for t in Catalogue(300, 2).truth()] != [t["key"] for t in truth300]
    assert list(Catalogue(300, 1).truth(matter_only=False)) == list(Catalogue(300, 1).truth(matter_only=False))


@pytest.mark.parametrize("small", [5, 40, 150])
def test_product_does_not_depend_on_shop_size(small: int) -> None:
    big = Catalogue(400, 7)
    little = Catalogue(small, 7)
    assert list(little.truth()) == list(big.truth())[:small]
    assert little.entries() == big.entries()[: len(little.entries())]
    assert list(little.truth(matter_only=False)) == list(big.truth(matter_only=False))[: len(little.entries())]
    for entry in little.entries():
        assert render_detail_page(little.entry(entry), BASE) == render_detail_page(big.entry(entry), BASE)
    # growth is just a bigger catalogue whose newest products show up later
    assert list(Catalogue(small - 3, 7, grow=3).truth()) == list(little.truth())
    assert list(Catalogue(small - 3, 7).truth(grow=3)) == list(little.truth())


def test_page_and_position_maths(truth300: list[dict[str, Any]]) -> None:
    assert Catalogue(300, 1).pages == 25
    assert Catalogue(301, 1).pages == 26
    assert Catalogue(12, 1).pages == 1
    assert Catalogue(0, 1).pages == 1
    assert Catalogue(290, 1, grow=10).pages == 25 and len(Catalogue(290, 1, grow=10)) == 300
    for index, line in enumerate(truth300):
        assert line["list_page"] == index // PER_PAGE + 1
        assert line["list_position"] == index % PER_PAGE + 1
        assert line["path"] == f"/csa_product/{line['key']}/"


def test_truth_lines_are_complete_and_typed(truth300: list[dict[str, Any]]) -> None:
    keys = ["key", "path", "host", "list_page", "list_position", "expected", "dead_reason", "reject_field",
            "quirks", "warnings", "fields"]  # fmt: skip
    assert len({t["key"] for t in truth300}) == 300
    ids = [t["fields"]["certificate_id"] for t in truth300 if t["fields"]["certificate_id"]]
    assert len(ids) == len(set(ids))
    dates = [t["fields"]["certification_date"] for t in truth300 if t["fields"]["certification_date"]]
    assert dates == sorted(dates, reverse=True)
    types = {
        "vid": int, "pid": int, "tis_trp_tested": bool, "primary_device_type_id": list, "transport_interface": list,
    }  # fmt: skip
    for line in truth300:
        assert list(line) == keys
        fields = line["fields"]
        assert tuple(fields) == FIELDS
        assert set(line["quirks"]) <= set(QUIRKS)
        assert line["warnings"] == (["pid"] if "unparseable_pid" in line["quirks"] else [])
        if line["expected"] == "saved":
            assert line["reject_field"] is None
            assert all(fields[name] is not None for name in REQUIRED_FIELDS)
        else:
            assert line["expected"] == "rejected" and line["reject_field"] in REJECT_FIELDS
            assert fields[line["reject_field"]] is None
        assert fields["primary_device_type_id"] and all(isinstance(v, int) for v in fields["primary_device_type_id"])
        dt.date.fromisoformat(fields["certification_date"] or "2000-01-01")
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", fields["device_type"])
        for name, value in fields.items():
            if value is None:
                continue
            assert isinstance(value, types.get(name, str)), name
            if isinstance(value, str):
                assert normalise_text(value) == value
        for name in URL_FIELDS:
            assert fields[name] is None or fields[name].startswith("/wp-content/uploads/compliance/")
        json.dumps(line)  # JSON-ready


@pytest.mark.parametrize(("products", "seed"), [(300, 1), (100, 2), (100, 3), (100, 99), (120, 12345)])
def test_every_quirk_and_reject_kind_occurs(products: int, seed: int) -> None:
    truth = list(Catalogue(products, seed).truth())
    assert {q for t in truth for q in t["quirks"]} == set(QUIRKS)
    assert {t["reject_field"] for t in truth} == {None, *REJECT_FIELDS}
    rejected = sum(t["expected"] == "rejected" for t in truth)
    assert rejected < products * 0.15


def test_field_shares() -> None:
    truth = list(Catalogue(2000, 4).truth())
    share = Counter[str]()
    for line in truth:
        fields = line["fields"]
        for name, value in fields.items():
            share[f"absent {name}"] += value is None
        share["unparseable pid"] += "pid" in line["warnings"]
        share["several types"] += len(fields["primary_device_type_id"]) > 1
        share["rejected"] += line["expected"] == "rejected"
    for name in REQUIRED_FIELDS:
        assert share[f"absent {name}"] <= 40, name
    assert share["absent primary_device_type_id"] == 0
    assert 0.20 * 2000 <= share["absent pid"] <= 0.32 * 2000  # ~15% absent + ~10% unparseable
    assert 0.07 * 2000 <= share["unparseable pid"] <= 0.13 * 2000
    assert 0.11 * 2000 <= share["several types"] <= 0.19 * 2000
    for name in ("family_sku", "family_variant_sku", "family_id"):
        assert 0.6 * 2000 <= share[f"absent {name}"] <= 0.85 * 2000, name  # on a minority
    for name in ("description", "firmware_version", "hardware_version", "specification_version",
                 "transport_interface", "tis_trp_tested", "compliance_document_url"):  # fmt: skip
        assert 0.04 * 2000 <= share[f"absent {name}"] <= 0.4 * 2000, name
    assert 0.01 * 2000 <= share["rejected"] <= 0.035 * 2000


# --- the Matter list and detail pages ----------------------------------------------------------------------------


def test_every_matter_product_round_trips(pages300: ShopPages, truth300: list[dict[str, Any]]) -> None:
    cards = crawl(pages300, page_url(1))
    assert [target_of(c["href"]) for c in cards] == [t["path"] for t in truth300]
    for card, line in zip(cards, truth300, strict=True):
        assert (card["page"], card["position"]) == (line["list_page"], line["list_position"])
        assert (card["product_type"], card["category_class"], card["category"]) == ("product", "matter", "Matter")
        assert not card["title_has_link"]
        response = pages300.respond(line["path"])
        assert response.status == 200 and response.content_type == b"text/html; charset=utf-8"
        detail, warnings, _ = parse_detail(response.body)
        assert detail["category"] == "Matter"
        assert product_fields(card, detail) == line["fields"], line["key"]
        assert (card["title"], card["company"]) == (detail["title"], detail["manufacturer"])
        if card["certificate_id"] is not None:
            assert card["certificate_id"] == line["fields"]["certificate_id"]
        else:
            assert "card_no_certificate" in line["quirks"] or line["reject_field"] == "certificate_id"
        assert [w for w in warnings if w != "certification_date"] == line["warnings"], line["key"]
    assert 0.03 < sum(c["certificate_id"] is None for c in cards) / len(cards) < 0.15
    assert any("–" in t["fields"]["title"] for t in truth300)  # UTF-8 names
    assert any("ü" in t["fields"]["manufacturer"] for t in truth300)


def test_invalid_and_quirky_pages(pages300: ShopPages, truth300: list[dict[str, Any]]) -> None:
    seen = set()
    for line in truth300:
        body = pages300.respond(line["path"]).body
        _, _, sel = parse_detail(body)
        labels = [text_of(s) for s in sel.css("div.entry-product-details li span.label")]
        assert "Manufacturer" not in labels and "Device Type" not in labels
        assert not sel.css("li[class]") and not sel.css(".entry-description")
        if line["reject_field"] == "certificate_id":
            assert "Certificate ID" not in labels
            seen.add("certificate_id")
        if line["reject_field"] == "certification_date":
            row = sel.xpath('//li[span[@class="label"]="Certified Date"]/span[@class="value"]')
            assert text_of(row) == "TBD"
            seen.add("certification_date")
        if "unparseable_pid" in line["quirks"]:
            row = sel.xpath('//li[span[@class="label"]="Product ID"]/span[@class="value"]')
            assert text_of(row) in ("N/A", "TBD", "Various", "See family")
        if "several_device_types" in line["quirks"]:
            row = sel.xpath('//li[span[@class="label"]="Primary Device Type ID"]/span[@class="value"]')
            assert re.fullmatch(r"0x[0-9A-F]{4}(, 0x[0-9A-F]{4})+", text_of(row))
    assert seen == set(REJECT_FIELDS)
    noisy = b"".join(pages300.respond(t["path"]).body for t in truth300 if "whitespace_entities" in t["quirks"])
    for marker in (b"&nbsp;", b"\t", b"&#"):
        assert marker in noisy


def test_more_by_section(shop300: Catalogue, pages300: ShopPages, truth300: list[dict[str, Any]]) -> None:
    with_section = 0
    for line in truth300[:100]:
        _, _, sel = parse_detail(pages300.respond(line["path"]).body)
        section = sel.css("article section.more-by")
        if not section:
            continue
        with_section += 1
        assert text_of(section.css("h2")) == f"More by {line['fields']['manufacturer']}"
        cards = [parse_card(c) for c in section.xpath(".//article")]
        assert 1 <= len(cards) <= 3
        keys = {t["key"]: t for t in truth300}
        for card in cards:
            assert card["company"] == line["fields"]["manufacturer"] and card["product_type"] == "product"
            other = keys[target_of(card["href"]).split("/")[2]]
            assert other["key"] != line["key"] and other["list_page"] >= line["list_page"]
    assert with_section >= 90


def test_list_page_markup(pages300: ShopPages, truth300: list[dict[str, Any]]) -> None:
    body = pages300.respond(page_url(1)).body
    sel = Selector(text=body.decode())
    card = sel.css("div.post-feed article")[0]
    assert card.xpath("./a/div[@class='inner']/div[@class='entry-image']/img/@src").get().startswith("/wp-content/")
    assert card.css("a div.contents p.cta::text").get() == "Learn More"
    assert "p.results-count" not in body.decode() and not sel.css(".results-count")
    assert sel.css("div.post-feed::attr(data-item-count)").get() == "12"
    assert b"charset" in body[:200] and body.decode("utf-8")


def test_pagination_links(pages300: ShopPages) -> None:
    for page in (1, 5, 25):
        sel = Selector(text=pages300.respond(page_url(page)).body.decode())
        nav = sel.css("nav.navigation.pagination div.nav-links")
        assert text_of(nav.css("span.page-numbers.current > span")) == str(page)
        assert nav.css("span.current").attrib["aria-current"] == "page"
        for link in nav.css("a.page-numbers"):
            href = link.attrib["href"]
            assert href.startswith(BASE) and href.endswith("?" + MATTER_QUERY)  # the query is kept
            number = link.css(":scope > span::text").get()
            if "next" in link.attrib["class"] or "prev" in link.attrib["class"]:
                assert number is None
            else:
                assert href == BASE[:-1] + page_url(int(number))  # the number is inside a <span>
    body = pages300.respond(page_url(5)).body.decode()
    assert "&#038;p_type%5B%5D=14" in body  # WordPress's esc_url
    sel = Selector(text=pagination(5, 10, BASE, "a=1&b=2"))
    assert sel.css("a.prev::attr(href)").get() == BASE + "csa-iot_products/page/4/?a=1&b=2"
    assert sel.css("a.next::attr(href)").get() == BASE + "csa-iot_products/page/6/?a=1&b=2"
    items = [text_of(s) for s in sel.xpath("/html/body/*")]
    assert items == ["« Previous", "1", "…", "3", "4", "5", "6", "7", "…", "10", "Next »"]
    first = Selector(text=pagination(2, 3, BASE, "")).css("a.page-numbers:not(.prev)::attr(href)").getall()
    assert first == [BASE + "csa-iot_products/", BASE + "csa-iot_products/page/3/", BASE + "csa-iot_products/page/3/"]
    assert [text_of(s) for s in Selector(text=pagination(1, 1)).xpath("/html/body/*")] == ["1"]
    last = [text_of(s) for s in Selector(text=pagination(25, 25)).xpath("/html/body/*")]
    assert last == ["« Previous", "1", "…", "23", "24", "25"]


def test_page_url_forms_and_the_end(pages300: ShopPages) -> None:
    for query in (MATTER_QUERY, RAW_MATTER_QUERY, ""):
        assert pages300.respond(f"{LIST}page/1/?{query}").body == pages300.respond(f"{LIST}?{query}").body
        for page in (2, 7):
            by_path = pages300.respond(f"{LIST}page/{page}/?{query}")
            by_param = pages300.respond(f"{LIST}?{query}&paged={page}")
            assert by_path.status == by_param.status == 200 and by_path.body == by_param.body
            assert pages300.respond(f"{LIST}?paged={page}&{query}").body == by_path.body
    assert pages300.respond(page_url(25)).status == 200
    assert pages300.respond(page_url(26)).status == 404
    assert pages300.respond(f"{LIST}?{MATTER_QUERY}&paged=26").status == 404
    all_pages = -(-len(Catalogue(300, 1).entries()) // PER_PAGE)
    assert all_pages > 25  # page numbering is per filtered view
    assert pages300.respond(page_url(all_pages, "")).status == 200
    assert pages300.respond(page_url(all_pages + 1, "")).status == 404


def test_filters(shop300: Catalogue, pages300: ShopPages, truth300: list[dict[str, Any]]) -> None:
    matter = [t["path"] for t in truth300]

    def kinds(query: str) -> tuple[list[str], Counter[tuple[str, str]]]:
        cards = crawl(pages300, page_url(1, query))
        return [target_of(c["href"]) for c in cards], Counter((c["product_type"], c["category"]) for c in cards)

    assert kinds(MATTER_QUERY)[0] == matter
    assert kinds(RAW_MATTER_QUERY)[0] == matter  # unencoded brackets, another order
    assert kinds("p_type%5B%5D=14&p_program_type%5B%5D=1049&p_keywords=&p_family=&foo=bar")[0] == matter
    every, counts = kinds("")
    assert [p for p in every if p in set(matter)] == matter
    assert set(counts) == {("product", "Matter"), ("product", "Zigbee"), ("platform", "Matter"),
                           ("software-component", "Matter")}  # fmt: skip
    assert 0.18 < 1 - counts[("product", "Matter")] / len(every) < 0.32  # about a quarter is not Matter
    by_type = kinds("p_type%5B%5D=14")[1]
    assert set(by_type) == {("product", "Matter"), ("product", "Zigbee")}
    by_program = kinds("p_program_type%5B%5D=1049")[1]
    assert set(by_program) == {("product", "Matter"), ("platform", "Matter"), ("software-component", "Matter")}
    assert kinds("p_type%5B%5D=999")[0] == []  # an id no entry has
    assert kinds("p_type%5B%5D=&p_program_type%5B%5D=")[0] == every  # empty filters filter nothing
    # the unfiltered list in --all truth order; non-Matter entries have detail pages too
    everything = list(shop300.truth(matter_only=False))
    assert [t["path"] for t in everything] == every
    assert {t["kind"] for t in everything if not t["matter"]} == {"zigbee", "platform", "software-component"}
    assert [{k: v for k, v in t.items() if k not in ("matter", "kind", "all_page", "all_position")}
            for t in everything if t["matter"]] == truth300  # fmt: skip
    for line in everything[:60]:
        number = every.index(line["path"])
        assert (line["all_page"], line["all_position"]) == (number // PER_PAGE + 1, number % PER_PAGE + 1)
        if not line["matter"]:
            response = pages300.respond(line["path"])
            assert response.status == 200
            detail, _, sel = parse_detail(response.body)
            assert detail["title"] == line["fields"]["title"] and line["expected"] == "excluded"
            assert sel.css("article").attrib["class"].split()[1:3] == ["product", "type-product"]


def test_routes(shop300: Catalogue) -> None:
    pages = ShopPages(shop300, BASE)
    assert pages.respond("/").status == 302 and pages.respond("/").location == b"/csa-iot_products/"
    assert pages.respond("/robots.txt").body == b"User-agent: *\nDisallow: /wp-admin/\n"
    for missing in ("/csa-iot_products/page/0/", "/csa_product/nope-00001/", "/csa_product/x-99999/",
                    "/wp-admin/", "/csa_product/", "/csa-iot_products/page/x/", "/csa_product/a-00001-9/"):  # fmt: skip
        assert pages.respond(missing).status == 404, missing
    product = shop300.product(3)
    assert pages.respond(product.path).status == 200
    assert pages.respond(product.path + "?utm=1").status == 200
    redirect = pages.respond(product.path.rstrip("/"))
    assert (redirect.status, redirect.location) == (301, product.path.encode())
    redirect = pages.respond(f"/csa-iot_products?{MATTER_QUERY}")
    assert (redirect.status, redirect.location) == (301, f"/csa-iot_products/?{MATTER_QUERY}".encode())
    pages.base_url = "http://elsewhere:1/"  # links follow the base URL
    assert b'href="http://elsewhere:1/csa_product/' in pages.respond(page_url(1)).body


# --- growth ------------------------------------------------------------------------------------------------------


def test_growth_adds_products_at_the_top() -> None:
    catalogue = Catalogue(30, 5, grow=4)
    truth = list(catalogue.truth())
    assert len(truth) == 34
    pages = ShopPages(catalogue, BASE, grow_every=3)

    def hrefs(page: int, query: str = MATTER_QUERY) -> list[str]:
        return [target_of(c["href"]) for c in list_cards(pages.respond(page_url(page, query), count=False).body)]

    paths = [t["path"] for t in truth]
    assert hrefs(1) == paths[4:16] and hrefs(2) == paths[16:28] and hrefs(3) == paths[28:34]
    assert pages.respond(page_url(4), count=False).status == 404
    assert pages.respond(paths[3]).status == 404  # not added yet
    assert pages.respond(paths[4]).status == 200
    for _ in range(2):
        pages.respond(page_url(1))
    assert hrefs(1) == paths[4:16]  # two list requests: nothing yet
    pages.respond(page_url(9, ""))  # any list page counts, even a 404 of the unfiltered list
    assert hrefs(1) == paths[3:15] and hrefs(2) == paths[15:27]  # pushed across the page boundary
    assert pages.respond(paths[3]).status == 200
    for _ in range(3):
        pages.respond(paths[0])  # detail pages do not count
    assert pages.respond(paths[2]).status == 404
    for _ in range(30):
        pages.respond(page_url(1))
    assert pages.start == 0
    assert hrefs(3) == paths[24:34] and pages.respond(page_url(4), count=False).status == 404
    cards = crawl(pages, page_url(1))
    assert [(target_of(c["href"]), c["page"], c["position"]) for c in cards] == [
        (t["path"], t["list_page"], t["list_position"]) for t in truth
    ]
    every = [target_of(c["href"]) for c in crawl(pages, page_url(1, ""))]
    assert every == [t["path"] for t in catalogue.truth(matter_only=False)]


# --- Twisted resource, command line and the real server ---------------------------------------------------------


def test_interceptors_run_before_the_pages(shop300: Catalogue) -> None:
    from twisted.web.server import NOT_DONE_YET
    from twisted.web.test.requesthelper import DummyRequest

    from demoshop.server import ShopResource

    class Teapot:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def intercept(self, request: Any, target: str) -> bool:
            self.seen.append(target)
            if not target.startswith("/teapot/"):
                return False
            request.setResponseCode(418)
            request.write(b"short and stout")
            request.finish()
            return True

    teapot = Teapot()
    resource = ShopResource(ShopPages(shop300), [teapot])
    request = DummyRequest([b"teapot", b""])
    request.uri = b"/teapot/?sugar=2"
    assert resource.render(request) is NOT_DONE_YET
    assert request.responseCode == 418 and request.finished
    request = DummyRequest([b"robots.txt"])
    request.uri = b"/robots.txt"
    assert resource.render(request) == b"User-agent: *\nDisallow: /wp-admin/\n"
    assert teapot.seen == ["/teapot/?sugar=2", "/robots.txt"]


def truth_command(*args: str) -> list[dict[str, Any]]:
    command = [sys.executable, "-m", "demoshop", "truth", *args]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, check=True, timeout=30)
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def test_truth_command_prints_json_lines() -> None:
    assert truth_command("--products", "30", "--seed", "3") == list(Catalogue(30, 3).truth())
    assert truth_command("--products", "27", "--seed", "3", "--grow", "3") == list(Catalogue(30, 3).truth())
    every = truth_command("--products", "30", "--seed", "3", "--all")
    assert every == list(Catalogue(30, 3).truth(matter_only=False))
    assert {t["matter"] for t in every} == {True, False} and sum(t["matter"] for t in every) == 30


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    assert url.startswith("http://127.0.0.1:")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_real_server(tmp_path: Path) -> None:
    log_path = tmp_path / "requests.jsonl"
    truth = list(Catalogue(120, 4).truth())
    with ShopProcess(products=120, seed=4, request_log=log_path) as shop:
        assert shop.url.startswith("http://127.0.0.1:") and shop.url.endswith("/")
        assert shop.list_url == f"{shop.url}csa-iot_products/?{MATTER_QUERY}"
        assert shop.all_url == f"{shop.url}csa-iot_products/"
        status, headers, body = fetch(shop.list_url)
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        cards = list_cards(body)
        assert cards[0]["href"] == shop.url.rstrip("/") + truth[0]["path"]  # absolute, on the shop's own address
        next_page = Selector(text=body.decode()).css("a.next.page-numbers::attr(href)").get()
        assert next_page == f"{shop.url}csa-iot_products/page/2/?{MATTER_QUERY}"
        assert [c["href"] for c in list_cards(fetch(next_page)[2])] == [
            shop.url.rstrip("/") + t["path"] for t in truth[12:24]
        ]
        status, _, body = fetch(shop.all_url)
        assert status == 200 and len(list_cards(body)) == PER_PAGE
        status, headers, body = fetch(cards[1]["href"])
        detail, _, _ = parse_detail(body)
        assert status == 200 and product_fields(cards[1], detail) == truth[1]["fields"]
        assert fetch(shop.url + "robots.txt")[2] == b"User-agent: *\nDisallow: /wp-admin/\n"
        status, headers, body = fetch(shop.url + "no/such/page")
        assert status == 404 and b"Page not found" in body
        deadline = time.monotonic() + 3
        while len(log_path.read_text().splitlines()) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)  # the log is flushed every 0.5 s while the shop runs
        assert len(log_path.read_text().splitlines()) == 6
        assert shop.pid > 0
    assert shop.process is not None and shop.process.returncode == 0
    log = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("GET", f"/csa-iot_products/?{MATTER_QUERY}", 200),  # the path with its query
        ("GET", f"/csa-iot_products/page/2/?{MATTER_QUERY}", 200),
        ("GET", "/csa-iot_products/", 200),
        ("GET", truth[1]["path"], 200),
        ("GET", "/robots.txt", 200),
        ("GET", "/no/such/page", 404),
    ]
    assert all(isinstance(e["t"], float) and e["bytes"] > 0 for e in log)


def test_growth_on_the_real_server() -> None:
    truth = list(Catalogue(30, 2, grow=2).truth())
    with ShopProcess(products=30, seed=2, extra_args=["--grow", "2", "--grow-every", "1"]) as shop:
        assert fetch(shop.url + truth[1]["path"][1:])[0] == 404
        firsts = [list_cards(fetch(shop.list_url)[2])[0]["href"] for _ in range(4)]
        assert firsts == [shop.url.rstrip("/") + truth[i]["path"] for i in (2, 1, 0, 0)]
        assert fetch(shop.url + truth[1]["path"][1:])[0] == 200


def test_shop_process_reports_a_failed_start() -> None:
    with pytest.raises(RuntimeError, match="unrecognized arguments"):
        ShopProcess(products=10, extra_args=["--no-such-option"]).start()
