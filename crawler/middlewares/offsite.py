"""Scrapy's offsite filter, reporting what it filters.

Scrapy 2.19 drops an offsite request in a ``request_scheduled`` handler (its
``OffsiteMiddleware`` raises ``IgnoreRequest`` there, and the engine drops the
request without any further signal), so a product link to another host would
be counted as discovered and never end: "lost".  This subclass sends the
project's ``request_filtered`` signal (reason ``offsite: <domain>``) before it
drops the request, so the accounting counts the product as *filtered*.
Everything else is Scrapy's: ``allowed_domains``, ``allow_offsite``,
``dont_filter``, the ``offsite/*`` stats.
"""

from __future__ import annotations

from scrapy import Request, Spider
from scrapy.downloadermiddlewares.offsite import OffsiteMiddleware as ScrapyOffsiteMiddleware
from scrapy.exceptions import IgnoreRequest

from crawler.signals import request_filtered


class OffsiteMiddleware(ScrapyOffsiteMiddleware):
    """``scrapy.downloadermiddlewares.offsite.OffsiteMiddleware`` that reports filtered requests."""

    def request_scheduled(self, request: Request, spider: Spider) -> None:
        try:
            super().request_scheduled(request, spider)
        except IgnoreRequest as exc:
            self.crawler.signals.send_catch_log(signal=request_filtered, request=request, reason=f"offsite: {exc}")
            raise
