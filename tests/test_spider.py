"""The two-stage spider's requests: one bound callback per stage, as Scrapy's callback cache needs."""

from __future__ import annotations

from scrapy.utils.misc import _generator_callbacks_cache, is_generator_with_return_value

from crawler.request_records import request_from_record, request_to_record
from crawler.siteprofile import load_profile
from crawler.spiders.catalog import CatalogSpider


def _spider() -> CatalogSpider:
    return CatalogSpider(load_profile("csa_iot").with_start_url("http://127.0.0.1:8000/csa-iot_products/"))


def test_every_request_of_a_stage_shares_one_bound_callback_and_records_still_name_it():
    spider = _spider()
    first, second = spider.detail_request("http://a.test/p/1/", 1, 1), spider.detail_request("http://a.test/p/2/", 1, 2)
    assert first.callback is second.callback
    pages = spider.list_request("http://a.test/?paged=2", 2), spider.list_request("http://a.test/", 1)
    assert pages[0].callback is pages[1].callback
    record = request_to_record(first, spider)
    assert record["callback"] == "parse_detail" and "dropped" not in record
    assert request_from_record(record, spider).callback.__func__ is CatalogSpider.parse_detail


def test_scrapys_generator_callback_cache_forgets_a_callback_once_its_object_is_freed():
    """Why the callbacks are bound once: the cache is weak-keyed, so a per-request bound method leaves it."""
    spider = _spider()
    callback = spider.detail_request("http://a.test/p/1/", 1, 1).callback
    is_generator_with_return_value(callback)
    assert callback in _generator_callbacks_cache
    fresh = spider.parse_list
    is_generator_with_return_value(fresh)
    assert fresh in _generator_callbacks_cache
    del fresh
    assert spider.parse_list not in _generator_callbacks_cache
    assert callback in _generator_callbacks_cache


def test_html_root_parses_as_scrapys_selector_would_and_skips_what_is_not_a_page():
    from scrapy.http import HtmlResponse, JsonResponse, Response, TextResponse, XmlResponse
    from scrapy.selector import Selector as ScrapySelector

    from crawler.spiders.catalog import html_root

    url = "http://shop.test/p/1/"
    html = b'<html><head><base href="http://cdn.test/"></head><body><h1 class="t">\xc3\xa9 One</h1></body></html>'
    pages = [
        HtmlResponse(url, body=html, encoding="utf-8"),
        XmlResponse(url, body=b"<?xml version='1.0'?><items><item id='1'>x</item></items>", encoding="utf-8"),
        TextResponse(url, body=html, encoding="utf-8"),
    ]
    for response in pages:
        root = html_root(response)
        expected = ScrapySelector(response).root
        assert root is not None and root.tag == expected.tag, type(response)
        assert root.xpath("string()") == expected.xpath("string()")
        assert type(root) is type(expected)
    assert html_root(pages[0]).xpath("string(//h1)") == "é One"
    assert html_root(JsonResponse(url, body=b'{"a": 1}')) is None
    assert html_root(TextResponse(url, body=b'{"a": [1, 2]}', encoding="utf-8")) is None
    assert html_root(Response(url, body=b"\x89PNG")) is None
