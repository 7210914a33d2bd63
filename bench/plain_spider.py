"""Baseline for bench/throughput.py: a minimal plain Scrapy list → detail spider.

No project code, no pipeline: Scrapy's defaults plus the concurrency given.
Same request graph as the catalog spider (page 1 announces the last page,
every list page is requested at once, each product's detail page is parsed
into a dict).  Prints the crawl's stats as one JSON line at the end.

    python bench/plain_spider.py LIST_URL [CONCURRENT_REQUESTS] [PER_DOMAIN]
"""

from __future__ import annotations

import json
import sys

import scrapy
from scrapy.crawler import CrawlerProcess


class PlainCatalogSpider(scrapy.Spider):
    name = "plain"

    def __init__(self, start_url: str, **kwargs):
        super().__init__(**kwargs)
        self.start_urls = [start_url]

    def parse(self, response):
        for href in response.css("div.post-feed article h3.entry-title a::attr(href)").getall():
            yield response.follow(href, self.parse_detail, priority=10)
        if response.url == self.start_urls[0]:
            numbers = [int(t) for t in response.css("a.page-numbers::text").getall() if t.strip().isdigit()]
            for page in range(2, max(numbers, default=1) + 1):
                yield scrapy.Request(f"{self.start_urls[0]}page/{page}/", self.parse)

    def parse_detail(self, response):
        item = {"url": response.url, "title": response.css("h1.entry-title::text").get("").strip()}
        for row in response.css("div.entry-product-details li.item"):
            item[row.css("span.label::text").get("")] = " ".join(row.css("span.value *::text").getall())
        item["description"] = " ".join(response.css("div.entry-description *::text").getall())
        yield item


def main() -> None:
    url = sys.argv[1]
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    per_domain = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    process = CrawlerProcess(
        {
            "CONCURRENT_REQUESTS": concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": per_domain,
            "LOG_LEVEL": "WARNING",
        }
    )
    crawler = process.create_crawler(PlainCatalogSpider)
    process.crawl(crawler, start_url=url)
    process.start()
    print(json.dumps(crawler.stats.get_stats(), default=str))


if __name__ == "__main__":
    main()
