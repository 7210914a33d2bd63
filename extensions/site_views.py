"""The site's SQL view, created or replaced when a crawl of the site starts.

On ``spider_opened`` a spider with a public ``site_profile`` attribute (the
catalog spider) gets the view ``products_<site>`` of ``DATABASE_URL``: one
column per profile field (:mod:`storage.views`), so the latest profile's
fields are what SQL users see.  The DDL runs in a thread
(``deferToThread``), never on the reactor; the crawl starts once it is done.
A failure is logged as a warning and counted (``site_views/errors``): the
crawl goes on without the view.  Stat ``site_views/name``: the view's name.

Setting: ``SITE_VIEWS_ENABLED`` (default True).
"""

from __future__ import annotations

import logging
from typing import Self

from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from crawler import defaults
from crawler.errors import ConfigError

logger = logging.getLogger(__name__)


def ensure_site_view(url: str, site: str, fields: list[tuple[str, str]]) -> tuple[str, bool]:
    """Create the ``products`` table if missing and create or replace the view of ``site`` (blocking)."""
    from storage.views import ViewStore

    store = ViewStore(url)
    try:
        store.create_schema()
        return store.ensure_view(site, fields)
    finally:
        store.close()


class SiteViews:
    """Create or replace the crawled site's view (``storage/views.py``) when the spider opens."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.url = str(defaults.get(crawler.settings, "DATABASE_URL"))

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("SITE_VIEWS_ENABLED", defaults.SITE_VIEWS_ENABLED):
            raise NotConfigured
        ext = cls(crawler)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        return ext

    async def spider_opened(self, spider: Spider) -> None:
        profile = getattr(spider, "site_profile", None)
        if profile is None:
            return
        from storage.views import profile_fields

        site = str(profile.name)
        d = deferToThread(ensure_site_view, self.url, site, profile_fields(profile))
        d.addCallbacks(self._created, self._failed, errbackArgs=(site,))
        await maybe_deferred_to_future(d)

    def _created(self, result: tuple[str, bool]) -> None:
        name, changed = result
        self.crawler.stats.set_value("site_views/name", name)
        logger.info("SQL view %s %s", name, "created" if changed else "is up to date")

    def _failed(self, failure: Failure, site: str) -> None:
        self.crawler.stats.inc_value("site_views/errors")
        error = failure.value
        message = " ".join(str(error).split()) if isinstance(error, ConfigError) else failure.getErrorMessage()
        logger.warning("Cannot create the SQL view of site %s: %s", site, message)
