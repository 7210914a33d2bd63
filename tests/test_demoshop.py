"""Tests of the local demo shop (demoshop/)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from parsel import Selector

from demoshop.catalogue import FIELDS, PER_PAGE, QUIRKS, REJECT_FIELDS, REQUIRED_FIELDS, Catalogue, normalise_text
from demoshop.pages import (
    DETAIL_ROWS,
    HTML_CP1252,
    HTML_UTF8,
    ShopPages,
    pagination,
    render_detail_page,
    render_list_page,
)
from demoshop.process import ShopProcess

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LABEL_TO_FIELD = {label: name for name, label in DETAIL_ROWS}


@pytest.fixture(scope="module")
def shop300() -> Catalogue:
    return Catalogue(300, 1)


@pytest.fixture(scope="module")
def truth300(shop300: Catalogue) -> list[dict[str, Any]]:
    return list(shop300.truth())


def text_of(selection: Any) -> str:
    """The crawler's normalisation: all descendant text joined with "", whitespace collapsed."""
    return normalise_text("".join(selection.xpath(".//text()").getall()))


def parse_detail(body: bytes, charset: str) -> dict[str, Any]:
    """Extract every field from a detail page the way the crawler stores it."""
    sel = Selector(text=body.decode(charset))
    fields: dict[str, Any] = dict.fromkeys(FIELDS)
    fields["title"] = text_of(sel.css("h1.entry-title"))
    for item in sel.css("div.entry-product-details li.item"):
        name = LABEL_TO_FIELD[text_of(item.css("span.label"))]
        values = [text_of(v) for v in item.css("span.value")]
        if name in ("vid", "pid", "primary_device_type_id"):
            fields[name] = int(values[0], 16)
        elif name == "certification_date":
            try:
                fields[name] = dt.datetime.strptime(values[0], "%B %d, %Y").date().isoformat()
            except ValueError:
                fields[name] = None
        elif name == "tis_trp_tested":
            fields[name] = {"Yes": True, "No": False}[values[0]]
        elif name == "transport_interface":
            fields[name] = [v.strip() for v in values[0].split(",")]
        elif name == "application_categories":
            fields[name] = values
        elif name == "compliance_document_url":
            fields[name] = item.css("span.value a::attr(href)").get()
        else:
            fields[name] = values[0]
    description = sel.css("div.entry-description")
    if description:
        fields["description"] = text_of(description)
    return fields


# --- catalogue and truth -----------------------------------------------------------------------------------------


def test_truth_is_deterministic_and_seed_dependent(truth300: list[dict[str, Any]]) -> None:
    assert list(Catalogue(300, 1).truth()) == truth300
    assert list(Catalogue(300, 2).truth()) != truth300
    assert [t["key"] for t in Catalogue(300, 2).truth()] != [t["key"] for t in truth300]


@pytest.mark.parametrize("small", [5, 40, 150])
def test_product_does_not_depend_on_shop_size(small: int) -> None:
    big = Catalogue(400, 7)
    little = Catalogue(small, 7)
    assert list(little.truth()) == list(big.truth())[:small]
    for index in range(small):
        assert render_detail_page(little.product(index)) == render_detail_page(big.product(index))


def test_page_and_position_maths(truth300: list[dict[str, Any]]) -> None:
    assert Catalogue(300, 1).pages == 25
    assert Catalogue(301, 1).pages == 26
    assert Catalogue(12, 1).pages == 1
    assert Catalogue(0, 1).pages == 1
    for index, line in enumerate(truth300):
        assert line["list_page"] == index // PER_PAGE + 1
        assert line["list_position"] == index % PER_PAGE + 1
        assert line["path"] == f"/csa_product/{line['key']}/"


def test_truth_lines_are_complete_and_consistent(truth300: list[dict[str, Any]]) -> None:
    assert len({t["key"] for t in truth300}) == 300
    ids = [t["fields"]["certificate_id"] for t in truth300 if t["fields"]["certificate_id"]]
    assert len(ids) == len(set(ids))
    dates = [t["fields"]["certification_date"] for t in truth300 if t["fields"]["certification_date"]]
    assert dates == sorted(dates, reverse=True)
    for line in truth300:
        fields = line["fields"]
        assert tuple(fields) == FIELDS
        assert set(line["quirks"]) <= set(QUIRKS)
        if line["expected"] == "saved":
            assert line["reject_field"] is None
            assert all(fields[name] is not None for name in REQUIRED_FIELDS)
        else:
            assert line["expected"] == "rejected" and line["reject_field"] in REJECT_FIELDS
            assert fields[line["reject_field"]] is None
        for value in fields.values():
            if isinstance(value, str):
                assert normalise_text(value) == value
        json.dumps(line)  # JSON-ready


@pytest.mark.parametrize(("products", "seed"), [(300, 1), (100, 2), (100, 3), (100, 99), (120, 12345)])
def test_every_quirk_and_reject_kind_occurs(products: int, seed: int) -> None:
    truth = list(Catalogue(products, seed).truth())
    assert {q for t in truth for q in t["quirks"]} == set(QUIRKS)
    assert {t["reject_field"] for t in truth} == {None, *REJECT_FIELDS}
    rejected = sum(t["expected"] == "rejected" for t in truth)
    assert rejected < products * 0.15


def test_optional_fields_are_sometimes_absent(truth300: list[dict[str, Any]]) -> None:
    for name in FIELDS:
        missing = sum(t["fields"][name] is None for t in truth300)
        if name in REQUIRED_FIELDS:
            assert missing <= 20, name
        else:
            assert 10 <= missing <= 120, name


# --- rendering ---------------------------------------------------------------------------------------------------


def test_detail_pages_round_trip_to_truth(shop300: Catalogue, truth300: list[dict[str, Any]]) -> None:
    for index, line in enumerate(truth300):
        product = shop300.product(index)
        body = render_detail_page(product)
        assert parse_detail(body, product.charset) == line["fields"], line["key"]


def test_quirk_pages_look_the_part(shop300: Catalogue, truth300: list[dict[str, Any]]) -> None:
    by_quirk: dict[str, list[int]] = {}
    for index, line in enumerate(truth300):
        for quirk in line["quirks"]:
            by_quirk.setdefault(quirk, []).append(index)
    for index in by_quirk["charset_cp1252"]:
        body = render_detail_page(shop300.product(index))
        text = body.decode("cp1252")
        assert b'<meta charset="windows-1252">' in body and not text.isascii()
        with pytest.raises(UnicodeDecodeError):
            body.decode("utf-8")
    noisy = b"".join(render_detail_page(shop300.product(i)) for i in by_quirk["whitespace_entities"])
    for marker in (b"&nbsp;", b"\t", b"&#"):
        assert marker in noisy
    for index in by_quirk["markup_description"]:
        body = render_detail_page(shop300.product(index)).decode(shop300.product(index).charset)
        for tag in ("<p>", "<b>", "<em>", "<a href=", "<ul>", "<li>", "<br>"):
            assert tag in body
    for index, line in enumerate(truth300):
        if line["reject_field"] == "certification_date":
            product = shop300.product(index)
            sel = Selector(text=render_detail_page(product).decode(product.charset))
            row = sel.xpath('//li[@class="item"][span[@class="label"]="Certification Date"]/span[@class="value"]')
            assert text_of(row) == "TBD"


def test_list_pages_match_truth(shop300: Catalogue, truth300: list[dict[str, Any]]) -> None:
    for page in range(1, shop300.pages + 1):
        sel = Selector(text=render_list_page(shop300, page).decode("utf-8"))
        expected = [t for t in truth300 if t["list_page"] == page]
        posts = sel.css("div.post-feed article.post")
        assert [p.css("h3.entry-title a::attr(href)").get() for p in posts] == [t["path"] for t in expected]
        for post, line in zip(posts, expected, strict=True):
            assert text_of(post.css("p.entry-company")) == line["fields"]["manufacturer"]
            assert text_of(post.css("h3.entry-title")) == line["fields"]["title"]
        assert sel.css("p.results-count::text").get() == "300 products"
        assert sel.css("nav.pagination span.current::text").get() == str(page)
        numbers = sel.css("nav.pagination .page-numbers:not(.next):not(.prev):not(.dots)::text").getall()
        assert numbers[0] == "1" and numbers[-1] == "25"
    first = Selector(text=render_list_page(shop300, 1).decode())
    assert first.css("nav.pagination a.next::attr(href)").get() == "/csa-iot_products/page/2/"
    assert "25" in first.css("nav.pagination a.page-numbers::text").getall()
    assert not first.css("nav.pagination a.prev")


def test_pagination_links() -> None:
    sel = Selector(text=pagination(5, 10))
    assert sel.css("a.prev::attr(href)").get() == "/csa-iot_products/page/4/"
    assert sel.css("a.next::attr(href)").get() == "/csa-iot_products/page/6/"
    items = [text_of(s) for s in sel.xpath("/html/body/*")]
    assert items == ["« Previous", "1", "…", "3", "4", "5", "6", "7", "…", "10", "Next »"]
    assert Selector(text=pagination(1, 25)).css("a::attr(href)").getall()[0] == "/csa-iot_products/page/2/"
    assert [text_of(s) for s in Selector(text=pagination(1, 1)).xpath("/html/body/*")] == ["1"]
    last = [text_of(s) for s in Selector(text=pagination(25, 25)).xpath("/html/body/*")]
    assert last == ["« Previous", "1", "…", "23", "24", "25"]


def test_routes(shop300: Catalogue) -> None:
    pages = ShopPages(shop300)
    assert pages.respond("/").status == 302 and pages.respond("/").location == b"/csa-iot_products/"
    assert pages.respond("/robots.txt").body == b"User-agent: *\nDisallow: /wp-admin/\n"
    assert pages.respond("/csa-iot_products/page/1/").body == pages.respond("/csa-iot_products/").body
    assert pages.respond("/csa-iot_products/page/25/").status == 200
    for missing in ("/csa-iot_products/page/26/", "/csa-iot_products/page/0/", "/csa_product/nope-00001/",
                    "/csa_product/x-99999/", "/wp-admin/", "/csa_product/"):
        assert pages.respond(missing).status == 404, missing
    product = shop300.product(3)
    assert pages.respond(product.path).status == 200
    redirect = pages.respond(product.path.rstrip("/"))
    assert (redirect.status, redirect.location) == (301, product.path.encode())
    content_types = {pages.respond(shop300.product(i).path).content_type for i in range(300)}
    assert content_types == {HTML_UTF8, HTML_CP1252}


def test_interceptors_run_before_the_pages(shop300: Catalogue) -> None:
    from twisted.web.server import NOT_DONE_YET
    from twisted.web.test.requesthelper import DummyRequest

    from demoshop.server import ShopResource

    class Teapot:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def intercept(self, request: Any, path: str) -> bool:
            self.seen.append(path)
            if path != "/teapot/":
                return False
            request.setResponseCode(418)
            request.write(b"short and stout")
            request.finish()
            return True

    teapot = Teapot()
    resource = ShopResource(ShopPages(shop300), [teapot])
    request = DummyRequest([b"teapot", b""])
    request.path = b"/teapot/"
    assert resource.render(request) is NOT_DONE_YET
    assert request.responseCode == 418 and request.finished
    request = DummyRequest([b"robots.txt"])
    request.path = b"/robots.txt"
    assert resource.render(request) == b"User-agent: *\nDisallow: /wp-admin/\n"
    assert teapot.seen == ["/teapot/", "/robots.txt"]


# --- command line and the real server ----------------------------------------------------------------------------


def test_truth_command_prints_json_lines() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "demoshop", "truth", "--products", "30", "--seed", "3"],
        cwd=PROJECT_ROOT, capture_output=True, check=True, timeout=30,
    )
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert lines == list(Catalogue(30, 3).truth())


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
    catalogue = Catalogue(120, 4)
    truth = list(catalogue.truth())
    cp1252 = next(t for t in truth if "charset_cp1252" in t["quirks"])
    with ShopProcess(products=120, seed=4, request_log=log_path) as shop:
        assert shop.url.startswith("http://127.0.0.1:") and shop.url.endswith("/")
        assert shop.list_url == shop.url + "csa-iot_products/"
        status, headers, body = fetch(shop.list_url)
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        assert Selector(text=body.decode()).css("h3.entry-title a::attr(href)").get() == truth[0]["path"]
        status, headers, body = fetch(shop.url + truth[1]["path"].lstrip("/"))
        assert status == 200 and parse_detail(body, "utf-8") == truth[1]["fields"]
        status, headers, body = fetch(shop.url + cp1252["path"].lstrip("/"))
        assert status == 200 and headers["Content-Type"] == "text/html; charset=windows-1252"
        assert parse_detail(body, "cp1252") == cp1252["fields"]
        assert fetch(shop.url + "robots.txt")[2] == b"User-agent: *\nDisallow: /wp-admin/\n"
        status, headers, body = fetch(shop.url + "no/such/page")
        assert status == 404 and b"Page not found" in body
        deadline = time.monotonic() + 3
        while len(log_path.read_text().splitlines()) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)  # the log is flushed every 0.5 s while the shop runs
        assert len(log_path.read_text().splitlines()) == 5
        assert shop.pid > 0
    assert shop.process is not None and shop.process.returncode == 0
    log = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("GET", "/csa-iot_products/", 200),
        ("GET", truth[1]["path"], 200),
        ("GET", cp1252["path"], 200),
        ("GET", "/robots.txt", 200),
        ("GET", "/no/such/page", 404),
    ]
    assert all(isinstance(e["t"], float) and e["bytes"] > 0 for e in log)


def test_shop_process_reports_a_failed_start() -> None:
    with pytest.raises(RuntimeError, match="unrecognized arguments"):
        ShopProcess(products=10, extra_args=["--no-such-option"]).start()
