"""Baseline for bench/throughput.py: a minimal plain Scrapy list → detail spider.

No project code, no pipeline: Scrapy's defaults plus the concurrency given.
Same request graph as the catalog spider (page 1 announces the last page in
its pagination hrefs, every list page is requested at once with the start
URL's filter query, each product's card and detail page are parsed into a
dict).  Prints the crawl's stats as one JSON line at the end.

    python bench/plain_spider.py LIST_URL [CONCURRENT_REQUESTS] [PER_DOMAIN] [NAME=VALUE ...]

``NAME=VALUE`` arguments are more Scrapy settings (bench/throughput.py passes
the project's own values of the settings both sides share, e.g.
``CONCURRENT_ITEMS=16 ROBOTSTXT_OBEY=True``); values are parsed as JSON when
they can be, else kept as strings.
"""

from __future__ import annotations

import json
import re
import sys
from urllib.parse import urlsplit, urlunsplit

import scrapy
from scrapy.crawler import CrawlerProcess


class PlainCatalogSpider(scrapy.Spider):
    name = "plain"

    def __init__(self, start_url: str, **kwargs):
        super().__init__(**kwargs)
        self.start_urls = [start_url]

    def parse(self, response):
        for card in response.css("div.post-feed article.product"):
            item = {
                "device_type": next(
                    (c.removeprefix("product_device_type-") for c in card.attrib.get("class", "").split()
                     if c.startswith("product_device_type-")), None),
                "description": " ".join(card.css("div.entry-excerpt *::text").getall()).strip() or None,
            }  # fmt: skip
            href = card.css("a::attr(href)").get()
            if href:
                yield response.follow(href, self.parse_detail, priority=10, cb_kwargs={"item": item})
        if response.url == self.start_urls[0]:
            hrefs = response.css("a.page-numbers::attr(href)").getall()
            numbers = [int(m[1]) for h in hrefs if (m := re.search(r"/page/(\d+)/", h))]
            start = urlsplit(self.start_urls[0])
            for page in range(2, max(numbers, default=1) + 1):
                url = urlunsplit(start._replace(path=f"{start.path.rstrip('/')}/page/{page}/"))
                yield scrapy.Request(url, self.parse)

    def parse_detail(self, response, item):
        item["url"] = response.url
        item["title"] = response.css("h1.entry-title::text").get("").strip()
        item["manufacturer"] = response.css(".entry-header .entry-company::text").get("").strip().removeprefix("By ")
        for row in response.css("div.entry-product-details li"):
            item[row.css("span.label::text").get("")] = " ".join(row.css("span.value *::text").getall()).strip()
        yield item


def main() -> None:
    url = sys.argv[1]
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    per_domain = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    settings: dict = {
        "CONCURRENT_REQUESTS": concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": per_domain,
        "LOG_LEVEL": "WARNING",
    }
    for arg in sys.argv[4:]:
        name, _, value = arg.partition("=")
        try:
            settings[name] = json.loads(value.lower() if value in ("True", "False") else value)
        except json.JSONDecodeError:
            settings[name] = value
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(PlainCatalogSpider)
    process.crawl(crawler, start_url=url)
    process.start()
    print(json.dumps(crawler.stats.get_stats(), default=str))


if __name__ == "__main__":
    main()
