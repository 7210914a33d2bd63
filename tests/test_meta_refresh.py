"""The meta-refresh middleware: Scrapy's redirects, skipped only on pages that cannot redirect."""

from __future__ import annotations

import pytest
from scrapy import Request
from scrapy.downloadermiddlewares.redirect import MetaRefreshMiddleware as ScrapyMetaRefreshMiddleware
from scrapy.http import HtmlResponse, TextResponse
from scrapy.utils.project import get_project_settings
from scrapy.utils.test import get_crawler

from crawler.middlewares.meta_refresh import SCANNED, MetaRefreshMiddleware, may_refresh

URL = "http://shop.test/products/1/"
PADDING = "<p>" + "x" * 60 + "</p>\n"
META = '<meta http-equiv="refresh" content="0; url={}">'

PAGES = {
    "none": "<html><head><title>t</title></head><body><h1>Product</h1></body></html>",
    "refresh": '<html><head><meta http-equiv="refresh" content="0; url=/moved/"></head></html>',
    "upper case": '<html><head><META HTTP-EQUIV="REFRESH" CONTENT="0;URL=/moved/"></head></html>',
    "content first": "<html><head><meta content='1; url=http://shop.test/other/' http-equiv='Refresh'></head></html>",
    "in a script": "<html><head><script>var s = '" + META.format("/s/") + "';</script></head></html>",
    "in noscript": '<html><head><noscript><meta http-equiv="refresh" content="0; url=/n/"></noscript></head></html>',
    "long delay": '<html><head><meta http-equiv="refresh" content="1000; url=/late/"></head></html>',
    "word elsewhere": "<html><head><title>Refresh rate 60 Hz</title></head><body>refresh</body></html>",
    "with a base": '<html><head><base href="http://cdn.test/a/">' + META.format("b/") + "</head></html>",
    "refresh within the scan": "<html><head>" + PADDING * 40 + META.format("/in/") + "</head>",
    "refresh after the scan": "<html><head>" + PADDING * 80 + META.format("/out/") + "</head>",
    "multi-byte text": "<html><head><title>" + "é" * 3000 + '</title><meta http-equiv="refresh" content="0; url=/u/">',
}


def _middlewares():
    crawler = get_crawler(settings_dict={"METAREFRESH_MAXDELAY": 100})
    return MetaRefreshMiddleware.from_crawler(crawler), ScrapyMetaRefreshMiddleware.from_crawler(crawler)


def _outcome(result, response):
    if result is response:
        return "kept"
    assert isinstance(result, Request)
    return result.url


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_page_gets_the_outcome_of_scrapys_own_middleware(name):
    ours, scrapys = _middlewares()
    response = HtmlResponse(URL, body=PAGES[name].encode("utf-8"), encoding="utf-8", request=Request(URL))
    assert _outcome(ours.process_response(Request(URL), response), response) == _outcome(
        scrapys.process_response(Request(URL), response), response
    )


def test_the_pages_that_redirect_do_redirect_and_the_others_are_kept():
    ours, _ = _middlewares()
    outcomes = {}
    for name, html in PAGES.items():
        response = HtmlResponse(URL, body=html.encode("utf-8"), encoding="utf-8", request=Request(URL))
        outcomes[name] = _outcome(ours.process_response(Request(URL), response), response)
    assert outcomes["refresh"] == outcomes["upper case"] == "http://shop.test/moved/"
    assert outcomes["content first"] == "http://shop.test/other/"
    assert outcomes["with a base"] == "http://cdn.test/a/b/"
    assert outcomes["refresh within the scan"] == "http://shop.test/in/"
    assert outcomes["multi-byte text"] == "http://shop.test/u/"
    for kept in ("none", "in noscript", "long delay", "word elsewhere", "refresh after the scan"):
        assert outcomes[kept] == "kept", kept


def test_the_check_reads_exactly_the_part_scrapy_scans():
    def page(at: int) -> HtmlResponse:
        html = "a" * at + "refresh"
        return HtmlResponse(URL, body=html.encode(), encoding="utf-8")

    assert may_refresh(page(SCANNED - len("refresh")))
    assert not may_refresh(page(SCANNED - len("refresh") + 1))


def test_non_html_responses_and_dont_redirect_go_to_scrapys_code():
    ours, _ = _middlewares()
    text = TextResponse(URL, body=b"refresh", encoding="utf-8")
    assert ours.process_response(Request(URL), text) is text
    html = HtmlResponse(URL, body=PAGES["refresh"].encode(), encoding="utf-8")
    assert ours.process_response(Request(URL, meta={"dont_redirect": True}), html) is html


def test_the_project_uses_it_in_place_of_scrapys():
    middlewares = get_project_settings().getwithbase("DOWNLOADER_MIDDLEWARES")
    assert middlewares["scrapy.downloadermiddlewares.redirect.MetaRefreshMiddleware"] is None
    assert middlewares["crawler.middlewares.meta_refresh.MetaRefreshMiddleware"] == 580


def test_lowercasing_makes_the_letters_of_refresh_from_ascii_capitals_only():
    import sys

    letters = set("refsh")
    made = [
        char
        for char in map(chr, range(sys.maxunicode + 1))
        if char.lower() != char and letters & set(char.lower()) and char not in "REFSH"
    ]
    assert made == []
