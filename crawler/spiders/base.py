"""Two-stage catalogue crawling: list pages, then product detail pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Self

import scrapy
from scrapy.crawler import Crawler
from scrapy.http import Response

from crawler.crawl_profiles import profile_settings

#: ``request.meta["stage"]`` of list and detail requests.
LIST, DETAIL = "list", "detail"


class TwoStageSpider(scrapy.Spider):
    """Base class for list → detail crawls.

    The list stage parses list pages into detail requests (with the list
    page number and the 1-based position on that page) and further list
    pages; the detail stage turns each detail page into one item.  Every
    request carries ``meta["stage"]`` (``"list"`` or ``"detail"``) so
    middlewares and stats can tell them apart.  Detail requests get a higher
    priority, so products are finished before the crawl fans out further.

    Subclasses implement :meth:`product_urls`, :meth:`more_list_pages` and
    :meth:`parse_product`.
    """

    list_priority: int = 0
    detail_priority: int = 10
    #: More ``request.meta`` of each stage's requests, by stage (a ``render = "js"``
    #: stage: the browser's, :func:`crawler.browser.render_meta`).
    stage_meta: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, profile: str | None = None, **kwargs: Any) -> Self:
        """``-a profile=NAME`` picks the crawl profile (like ``-s CRAWL_PROFILE=NAME``)."""
        if profile:
            profile_settings(profile)  # an unknown name stops the crawl here, in one line
            crawler.settings.set("CRAWL_PROFILE", profile, priority="spider")
        return super().from_crawler(crawler, *args, **kwargs)

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.start_urls:
            yield self.list_request(url, page=1, start_url=url)

    @cached_property
    def _callbacks(self) -> dict[str, Any]:
        """Each stage's callback, bound once for the crawl and shared by all its requests.

        Scrapy remembers per callback object whether it is a generator that
        returns a value (``scrapy.utils.misc.is_generator_with_return_value``,
        a weak-keyed cache); with a new bound method per request the entry went
        whenever its request was freed, and the next response had the method's
        source read and parsed again (~3 ms, 205 times in a 2,600-page crawl).
        """
        return {LIST: self.parse_list, DETAIL: self.parse_detail}

    def list_request(self, url: str, page: int, dont_filter: bool = False, **meta: Any) -> scrapy.Request:
        return scrapy.Request(
            url,
            callback=self._callbacks[LIST],
            priority=self.list_priority,
            dont_filter=dont_filter,
            meta={"stage": LIST, "list_page": page, **self.stage_meta.get(LIST, {}), **meta},
        )

    def detail_request(self, url: str, page: int, position: int, **meta: Any) -> scrapy.Request:
        return scrapy.Request(
            url,
            callback=self._callbacks[DETAIL],
            priority=self.detail_priority,
            meta={
                "stage": DETAIL, "list_page": page, "list_position": position,
                **self.stage_meta.get(DETAIL, {}), **meta,
            },
        )

    def parse_list(self, response: Response) -> Iterator[scrapy.Request]:
        stats = self.crawler.stats
        stats.inc_value("catalog/list_pages")
        page = response.meta.get("list_page", 1)
        urls = list(self.product_urls(response))
        if not urls:
            stats.inc_value("catalog/empty_list_pages")
            self.logger.warning("list page %s (page %s): no product links found", response.url, page)
        for position, url in enumerate(urls, start=1):
            stats.inc_value("catalog/detail_requests")
            yield self.detail_request(response.urljoin(url), page, position)
        for number, url, meta in self.more_list_pages(response, page):
            yield self.list_request(response.urljoin(url), number, **meta)

    def parse_detail(self, response: Response) -> Iterator[Any]:
        self.crawler.stats.inc_value("catalog/detail_pages")
        yield self.parse_product(response)

    @staticmethod
    def now() -> str:
        """Crawl time stamp: UTC, ISO 8601, seconds."""
        return datetime.now(UTC).isoformat(timespec="seconds")

    # --- to implement -------------------------------------------------------
    def product_urls(self, response: Response) -> Iterable[str]:
        """Detail page links of a list page, in page order."""
        raise NotImplementedError

    def more_list_pages(
        self, response: Response, page: int
    ) -> Iterable[tuple[int, str, dict[str, Any]]]:
        """Further list pages to request: ``(page number, url, extra meta)``."""
        raise NotImplementedError

    def parse_product(self, response: Response) -> Any:
        """The item of one detail page."""
        raise NotImplementedError
