"""The ``catalog`` spider: any catalogue site described by a site profile."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Self

from scrapy.crawler import Crawler
from scrapy.http import Response, TextResponse

from crawler import defaults
from crawler.errors import ProfileError
from crawler.extraction import (
    extract_fields,
    last_page_number,
    next_page_link,
    product_links,
    total_count,
)
from crawler.items import ProductItem
from crawler.siteprofile import SiteProfile, load_profile
from crawler.spiders.base import TwoStageSpider


class CatalogSpider(TwoStageSpider):
    """Crawl the site of a profile: ``scrapy crawl catalog -a site=NAME``.

    Arguments (``-a``):

    * ``site``: a profile name in ``SITE_PROFILES_DIR`` (default
      ``crawler/sites``) or a path to a ``.toml`` file.  Required.
    * ``start_url``: crawl from this URL instead of the profile's start URLs;
      the allowed domain follows it.
    * ``allowed_domains``: comma-separated domains to allow instead (e.g. a
      catalogue whose products live on a second host).

    The profile's ``[settings]`` are applied at ``spider`` priority: above
    the project settings, below ``-s`` on the command line.
    """

    name = "catalog"

    def __init__(self, site_profile: SiteProfile, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.site_profile = site_profile
        self.site = site_profile.name
        self.start_urls = list(site_profile.start_urls)
        self.allowed_domains = list(site_profile.allowed_domains)

    @classmethod
    def from_crawler(
        cls,
        crawler: Crawler,
        site: str | None = None,
        start_url: str | None = None,
        allowed_domains: str | None = None,
        **kwargs: Any,
    ) -> Self:
        if not site:
            raise ProfileError("the catalog spider needs a site profile: -a site=NAME or -a site=path/to/file.toml")
        profile = load_profile(site, defaults.get(crawler.settings, "SITE_PROFILES_DIR"))
        if start_url:
            profile = profile.with_start_url(start_url)
        if allowed_domains:
            profile = profile.with_allowed_domains(d.strip() for d in allowed_domains.split(",") if d.strip())
        crawler.settings.setdict(profile.settings, priority="spider")
        return super().from_crawler(crawler, site_profile=profile, **kwargs)

    @property
    def dead_letter_args(self) -> dict[str, str]:
        """The ``-a`` arguments that recreate this spider (the dead-letter queue replays with them).

        ``site``: the profile's name when ``-a site=NAME`` finds this file
        (``SITE_PROFILES_DIR``), else its absolute path.  ``start_url``: when the
        spider crawls exactly one start URL (what ``-a start_url`` makes;
        recreating a profile of that shape with it changes nothing).
        ``allowed_domains``: unless they are what the other arguments make
        (the start URL's host), as ``-a allowed_domains`` (applied after
        ``start_url``) would set them.
        """
        from pathlib import Path
        from urllib.parse import urlsplit

        from crawler.siteprofile import PROFILES_DIR

        path = self.site_profile.path.resolve()
        directory = defaults.get(getattr(self, "settings", None), "SITE_PROFILES_DIR")
        by_name = (Path(directory) if directory else PROFILES_DIR) / f"{path.stem}.toml"
        args = {"site": path.stem if by_name.resolve() == path else str(path)}
        starts, domains = self.site_profile.start_urls, tuple(self.site_profile.allowed_domains)
        if len(starts) == 1:
            args["start_url"] = starts[0]
        if len(starts) != 1 or domains != ((urlsplit(starts[0]).hostname or ""),):
            args["allowed_domains"] = ",".join(domains)
        return args

    def product_urls(self, response: Response) -> Iterable[str]:
        return product_links(self.site_profile, response.selector.root)

    def more_list_pages(
        self, response: Response, page: int
    ) -> Iterable[tuple[int, str, dict[str, Any]]]:
        root = response.selector.root
        profile = self.site_profile
        if page == 1 and not response.meta.get("enumerated"):
            expected = total_count(profile, root)
            if expected is not None:
                self.crawler.stats.set_value("catalog/expected_products", expected)
            last = last_page_number(profile, root)
            if last is not None:
                self.crawler.stats.set_value("catalog/expected_list_pages", last)
                if profile.page_url is not None:
                    # Every list page at once instead of a serial "next" chain.
                    start = response.meta.get("start_url", response.url)
                    for number in range(2, last + 1):
                        url = profile.page_url.format(start_url=start, page=number)
                        yield number, url, {"enumerated": True}
                    return
        if response.meta.get("enumerated"):
            return
        link = next_page_link(profile, root)
        if link:
            yield page + 1, link, {}

    def parse_product(self, response: Response) -> ProductItem:
        item = ProductItem(
            url=response.url,
            site=self.site,
            list_page=response.meta.get("list_page"),
            list_position=response.meta.get("list_position"),
            crawled_at=self.now(),
        )
        if not isinstance(response, TextResponse):
            content_type = response.headers.get(b"Content-Type", b"").decode("latin-1") or "none"
            item.reject_reason = f"malformed page: not an HTML page (content type {content_type})"
            return item
        item.raw = extract_fields(self.site_profile, response.selector.root, response.url)
        return item
