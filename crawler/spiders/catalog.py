"""The ``catalog`` spider: any catalogue site described by a site profile."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Self

import scrapy
from parsel import Selector as ParselSelector
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DontCloseSpider
from scrapy.http import HtmlResponse, JsonResponse, Response, TextResponse, XmlResponse
from sqlalchemy.exc import SQLAlchemyError
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

from crawler import defaults
from crawler.browser import enable_browser, render_meta
from crawler.errors import ConfigError, ProfileError
from crawler.extraction import (
    ListEntry,
    extract_fields,
    last_page_number,
    list_entries,
    list_problems,
    next_page_link,
    total_count,
)
from crawler.items import ProductItem
from crawler.siteprofile import SiteProfile, load_profile
from crawler.spiders.base import TwoStageSpider
from crawler.validation import coerce_field
from storage.engine import DatabaseError
from storage.known import BY_KEY, BY_URL, KnownProducts, load_known

#: ``meta["recheck"]`` of list pages re-read after the first pass: the walk from
#: page 1 while pages show unseen products, then the full pass when the catalogue moved.
TOP, FULL = "top", "full"
#: ``-a mode=``: fetch every product (the default), or only those not stored yet.
MODE_FULL, MODE_INCREMENTAL = "full", "incremental"
MODES = (MODE_FULL, MODE_INCREMENTAL)
#: ``incremental/stop_reason``: where the incremental list walk ended.
STOP_KNOWN, STOP_END, STOP_NOTHING_STORED = "known_pages", "end_of_list", "nothing_stored"


class CatalogSpider(TwoStageSpider):
    """Crawl the site of a profile: ``scrapy crawl catalog -a site=NAME``.

    Arguments (``-a``):

    * ``site``: a profile name in ``SITE_PROFILES_DIR`` (default
      ``crawler/sites``) or a path to a ``.toml`` file.  Required.
    * ``start_url``: crawl from this URL instead of the profile's start URLs;
      the allowed domain follows it.
    * ``allowed_domains``: comma-separated domains to allow instead (e.g. a
      catalogue whose products live on a second host).
    * ``mode``: ``full`` (default) fetches every product; ``incremental``
      only those not stored yet (see below).

    The profile's ``[settings]`` are applied at ``spider`` priority: above
    the project settings, below ``-s`` on the command line.

    List stage: each list page's products (cards or links, see
    :func:`crawler.extraction.list_entries`) become detail requests carrying
    their card's raw fields in ``meta["card"]`` (merged into the item), or,
    for list-only profiles, items.  With ``list.page_url`` and a last page
    number on page 1, every list page is requested at once; otherwise the
    "next" links are followed.

    A catalogue can move while it is crawled (new products at the top push
    others across page boundaries, so a page fetched late can miss products
    that slid onto a page fetched early).  So when the crawl goes idle, page 1
    is read again, and the following pages while they show unseen products;
    when that finds any, every list page is walked once more, and a further
    round follows, up to ``LIST_RECHECK_ROUNDS`` rounds.  Stats:
    ``catalog/recheck_rounds``, ``catalog/recheck_list_pages``,
    ``catalog/recheck_new_products``.

    Incremental mode (``-a mode=incremental``), for a catalogue listed newest
    first: when the spider opens, the products of this site already stored
    (:func:`storage.known.load_known`: saved or rejected, by detail URL, or by
    key for list-only profiles) are read once, in a thread.  The list pages
    are then walked one after the other from page 1 (never all at once); a
    stored product is not requested again (counted in ``products/carried``
    and ``incremental/skipped_products``, never "discovered"), and the walk
    stops after ``INCREMENTAL_STOP_AFTER`` consecutive list pages without a
    product that is neither stored nor seen earlier in the run.  The site's
    stated size (``catalog/expected_*``) is only recorded when the walk
    reached the end of the list (else ``incremental/site_products`` and
    ``incremental/site_list_pages``), so a run that stops early is not judged
    incomplete and the ETA does not wait for pages that will not be read.
    The re-check rounds read page 1 again (and on while pages show new
    products) but never walk every page again: a serial walk from the newest
    page cannot miss older products that new ones push down (they move to
    pages not read yet), only products added above pages already read, which
    the re-read of page 1 finds.  With nothing stored yet the run is a full
    run.  Stats: ``incremental/known_products``, ``incremental/load_seconds``,
    ``incremental/list_pages``, ``incremental/skipped_products``,
    ``incremental/new_products``, ``incremental/stopped_at_page``,
    ``incremental/stop_reason`` (``known_pages``, ``end_of_list``,
    ``nothing_stored``).
    """

    name = "catalog"

    def __init__(self, site_profile: SiteProfile, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.site_profile = site_profile
        self.site = site_profile.name
        self.start_urls = list(site_profile.start_urls)
        self.allowed_domains = list(site_profile.allowed_domains)
        #: render = "js" stages: their requests go through the browser (crawler/middlewares/browser.py).
        self.stage_meta = {
            stage: render_meta(render)
            for stage, render in (("list", site_profile.list_render), ("detail", site_profile.detail_render))
            if render is not None
        }
        #: Products found on list pages (links; list-only cards without a link: their key).
        self._seen: set[str] = set()
        self._list_pages_parsed = 0
        self._page_size: int | None = None
        self._recheck_rounds = 0
        self._round = 0
        self._moved = False
        self.mode = MODE_FULL
        self._stop_after = defaults.INCREMENTAL_STOP_AFTER
        #: The stored products (incremental mode, once loaded); None: a full walk.
        self._known: KnownProducts | None = None
        #: Consecutive list pages of the incremental walk without a new product.
        self._known_streak = 0

    @classmethod
    def from_crawler(
        cls,
        crawler: Crawler,
        site: str | None = None,
        start_url: str | None = None,
        allowed_domains: str | None = None,
        mode: str | None = None,
        **kwargs: Any,
    ) -> Self:
        mode = (mode or MODE_FULL).strip().lower()
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r} (-a mode=: one of {', '.join(MODES)})")
        if not site:
            raise ProfileError("the catalog spider needs a site profile: -a site=NAME or -a site=path/to/file.toml")
        profile = load_profile(site, defaults.get(crawler.settings, "SITE_PROFILES_DIR"))
        if start_url:
            profile = profile.with_start_url(start_url)
        if allowed_domains:
            profile = profile.with_allowed_domains(d.strip() for d in allowed_domains.split(",") if d.strip())
        crawler.settings.setdict(profile.settings, priority="spider")
        if profile.browser_stages:
            # Chromium checked (one line, exit status 2) and scrapy-playwright enabled, before any request
            schemes = {url.split(":", 1)[0].lower() for url in profile.start_urls}
            enable_browser(crawler.settings, profile.browser_stages, schemes)
        spider = super().from_crawler(crawler, site_profile=profile, **kwargs)
        spider._recheck_rounds = defaults.get_number(crawler.settings, "LIST_RECHECK_ROUNDS", int, 0, ConfigError)
        spider._stop_after = defaults.get_number(crawler.settings, "INCREMENTAL_STOP_AFTER", int, 1, ConfigError)
        spider.mode = mode
        crawler.signals.connect(spider.spider_idle, signal=signals.spider_idle)
        if mode == MODE_INCREMENTAL:
            crawler.signals.connect(spider.load_known_products, signal=signals.spider_opened)
        return spider

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
        if self.mode != MODE_FULL:
            args["mode"] = self.mode
        return args

    # --- incremental mode: what is stored already -----------------------------
    def load_known_products(self) -> Deferred[None]:
        """(``spider_opened``, incremental mode) Read the stored products of the site, in a thread.

        Scrapy waits for the returned Deferred before the first request.  A
        database that cannot be read is logged and the run walks every page
        (nothing is missed; only more is fetched).
        """
        url = str(defaults.get(self.crawler.settings, "DATABASE_URL"))
        by = BY_URL if self.site_profile.detail_pages else BY_KEY
        began = time.monotonic()

        def loaded(known: KnownProducts) -> None:
            stats = self.crawler.stats
            stats.set_value("incremental/known_products", len(known))
            stats.set_value("incremental/load_seconds", round(time.monotonic() - began, 3))
            if len(known):
                self._known = known
                self.logger.info(
                    "Incremental mode: %d products of site %r stored (%s); list pages walked from page 1"
                    " until %d in a row show none new (INCREMENTAL_STOP_AFTER)",
                    len(known), self.site, "detail URLs" if by == BY_URL else "keys", self._stop_after,
                )
            else:
                stats.set_value("incremental/stop_reason", STOP_NOTHING_STORED)
                self.logger.info("Incremental mode: no product of site %r stored yet: a full run", self.site)

        def failed(failure: Any) -> None:
            if not failure.check(DatabaseError, SQLAlchemyError):
                return failure
            self.crawler.stats.set_value("incremental/load_error", str(failure.value).splitlines()[0][:300])
            self.logger.error(
                "Incremental mode: cannot read the stored products (%s): every list page is walked",
                str(failure.value).splitlines()[0],
            )
            return None

        d = deferToThread(load_known, url, self.site, by)
        d.addCallbacks(loaded, failed)
        return d

    def _is_known(self, entry: ListEntry) -> bool:
        """Whether a list entry is a stored product (incremental mode)."""
        known = self._known
        if known is None:
            return False
        if known.by == BY_URL:
            return entry.link is not None and entry.link in known
        profile = self.site_profile
        spec = next((s for s in profile.fields if s.name == profile.key), None)
        raw = entry.card.get(profile.key)
        if spec is None or raw is None:
            return False
        try:
            value = coerce_field(spec, raw)
        except ValueError:
            return False
        return value is not None and str(value) in known

    # --- list stage -----------------------------------------------------------
    def parse_list(self, response: Response) -> Iterator[Any]:
        stats = self.crawler.stats
        meta = response.meta
        page = meta.get("list_page", 1)
        recheck = meta.get("recheck")
        stats.inc_value("catalog/list_pages")
        if recheck:
            stats.inc_value("catalog/recheck_list_pages")
        else:
            self._list_pages_parsed += 1
        root = html_root(response)
        if root is None:
            stats.inc_value("catalog/empty_list_pages")
            self.logger.warning("list page %s (page %s): not an HTML page: no products read", response.url, page)
            return
        profile = self.site_profile
        entries = list_entries(profile, root, response.url)
        if not entries:
            stats.inc_value("catalog/empty_list_pages")
            why = "".join(f"; {problem}" for problem in list_problems(profile, root))
            self.logger.warning("list page %s (page %s): no product links found%s", response.url, page, why)
        elif page == 1 and not recheck:
            self._page_size = len(entries)
        unseen = 0
        for entry in entries:
            ident = entry.link or f"{profile.key}={entry.card.get(profile.key)}"
            if ident in self._seen:
                stats.inc_value("catalog/repeated_products")
                continue
            self._seen.add(ident)
            if self._known is not None and self._is_known(entry):
                # stored by an earlier run: found, not fetched again (incremental mode)
                stats.inc_value("products/carried")
                stats.inc_value("incremental/skipped_products")
                continue
            unseen += 1
            if recheck:
                stats.inc_value("catalog/recheck_new_products")
            if self._known is not None:
                stats.inc_value("incremental/new_products")
            yield self._product(response, page, entry)
        start = meta.get("start_url", response.url)
        if recheck == TOP:
            yield from self._recheck_walk(response, root, page, start, unseen)
        elif recheck == FULL:
            if not meta.get("enumerated"):
                yield from self._next_page(response, root, page, start, True, recheck=FULL)
        elif self._known is not None:
            yield from self._incremental_walk(response, root, page, start, len(entries), unseen)
        else:
            yield from self._more_list_pages(response, root, page, start, len(entries))

    def _product(self, response: Response, page: int, entry: ListEntry) -> Any:
        """A detail request for the entry, or (list-only profile) the card's item."""
        if self.site_profile.detail_pages:
            assert entry.link is not None
            self.crawler.stats.inc_value("catalog/detail_requests")
            meta = {"card": entry.card} if entry.card else {}
            return self.detail_request(entry.link, page, entry.position, **meta)
        self.crawler.stats.inc_value("catalog/card_items")
        return ProductItem(
            url=entry.link or f"{response.url}#card-{entry.position}",
            site=self.site,
            raw=dict(entry.card),
            list_page=page,
            list_position=entry.position,
            crawled_at=self.now(),
        )

    def _more_list_pages(
        self, response: Response, root: Any, page: int, start: str, found: int
    ) -> Iterator[scrapy.Request]:
        profile = self.site_profile
        stats = self.crawler.stats
        enumerated = response.meta.get("enumerated")
        if page == 1 and not enumerated:
            expected = total_count(profile, root)
            if expected is not None:
                stats.set_value("catalog/expected_products", expected)
            last = last_page_number(profile, root)
            if last is not None:
                stats.set_value("catalog/expected_list_pages", max(last, 1))
                if last <= 1 and expected is None:
                    stats.set_value("catalog/expected_products", found)
                if profile.page_url is not None:
                    # Every list page at once instead of a serial "next" chain.
                    yield from self._list_pages(start, 2, last, False)
                    return
        following = [] if enumerated else list(self._next_page(response, root, page, start, False))
        if not following:
            self._note_last_page(page, found)
        yield from following

    def _incremental_walk(
        self, response: Response, root: Any, page: int, start: str, found: int, unseen: int
    ) -> Iterator[scrapy.Request]:
        """The next list page of the incremental walk, unless it stops here (see the class docstring)."""
        profile = self.site_profile
        stats = self.crawler.stats
        stats.inc_value("incremental/list_pages")
        last = last_page_number(profile, root)
        if page == 1:
            # the site's size, for the record: expected_* only once the walk reached the end
            expected = total_count(profile, root)
            if expected is not None:
                stats.set_value("incremental/site_products", expected)
            if last is not None:
                stats.set_value("incremental/site_list_pages", max(last, 1))
        self._known_streak = self._known_streak + 1 if found and not unseen else 0
        if self._known_streak >= self._stop_after:
            self._stop_walk(page, STOP_KNOWN)
            self.logger.info(
                "Incremental mode: list pages %d-%d show no new product: not reading further",
                page - self._known_streak + 1, page,
            )
            return
        following: list[scrapy.Request] = []
        if last is None or page < last:
            following = list(self._next_page(response, root, page, start, False))
            if not following and last is not None and profile.page_url is not None:
                url = profile.page_link(start, page + 1)
                following = [self.list_request(url, page + 1, False, start_url=start)]
        if following:
            yield from following
            return
        # the end of the list: the whole catalogue was walked, so the site's size can be checked
        self._stop_walk(page, STOP_END)
        stated = stats.get_value("incremental/site_products")
        if stated is not None:
            stats.set_value("catalog/expected_products", stated)
        stats.set_value("catalog/expected_list_pages", page)
        self._note_last_page(page, found)

    def _stop_walk(self, page: int, reason: str) -> None:
        self.crawler.stats.set_value("incremental/stopped_at_page", page)
        self.crawler.stats.set_value("incremental/stop_reason", reason)

    def _next_page(
        self, response: Response, root: Any, page: int, start: str, dont_filter: bool, **meta: Any
    ) -> Iterator[scrapy.Request]:
        """The request of the page the "next" link points to, if there is one."""
        link = next_page_link(self.site_profile, root)
        if link:
            yield self.list_request(response.urljoin(link), page + 1, dont_filter, start_url=start, **meta)

    def _list_pages(
        self, start: str, first: int, last: int, dont_filter: bool, **meta: Any
    ) -> Iterator[scrapy.Request]:
        """Requests of list pages ``first``..``last`` from the profile's ``page_url``."""
        for number in range(first, last + 1):
            url = self.site_profile.page_link(start, number)
            yield self.list_request(url, number, dont_filter, start_url=start, enumerated=True, **meta)

    def _note_last_page(self, page: int, found: int) -> None:
        """On the last list page: the catalogue's size, when the site does not state it."""
        stats = self.crawler.stats
        last = stats.get_value("catalog/expected_list_pages")
        if last is None or page != last or self._page_size is None or self.site_profile.total_count is not None:
            return
        if stats.get_value("catalog/expected_products") is None:
            stats.set_value("catalog/expected_products", (page - 1) * self._page_size + found)

    def _recheck_walk(
        self, response: Response, root: Any, page: int, start: str, unseen: int
    ) -> Iterator[scrapy.Request]:
        """Go on from a re-read page while pages show unseen products; then, if any did, walk the rest."""
        profile = self.site_profile
        last = last_page_number(profile, root)
        enumerable = profile.page_url is not None and last is not None
        if unseen:
            self._moved = True
            if last is not None and page >= last:
                return
            if enumerable:
                url = profile.page_link(start, page + 1)
                yield self.list_request(url, page + 1, True, start_url=start, recheck=TOP)
            else:
                yield from self._next_page(response, root, page, start, True, recheck=TOP)
            return
        if not self._moved:
            return
        if self._known is not None:
            # incremental: the serial walk from page 1 missed nothing older (see the class docstring)
            return
        # The catalogue moved during the crawl: products may have slid past any page
        # boundary, so every page after this one is read again.
        self.logger.info("The catalogue moved during the crawl: reading list pages %d+ again", page + 1)
        if enumerable:
            assert last is not None
            yield from self._list_pages(start, page + 1, last, True, recheck=FULL)
        else:
            yield from self._next_page(response, root, page, start, True, recheck=FULL)

    def spider_idle(self) -> None:
        """Start a re-check round of the list pages (see the class docstring)."""
        if not self._recheck_rounds or not self._list_pages_parsed:
            return
        if self._round and not self._moved:
            return  # the last round found nothing new: the list is complete
        if self._round >= self._recheck_rounds:
            if self._moved:
                self._moved = False
                self.logger.warning(
                    "The catalogue was still moving after %d re-check rounds (LIST_RECHECK_ROUNDS): "
                    "products added during the last round may be missing",
                    self._round,
                )
            return
        self._round += 1
        self._moved = False
        self.crawler.stats.set_value("catalog/recheck_rounds", self._round)
        for start in self.start_urls:
            self.crawler.engine.crawl(self.list_request(start, 1, True, start_url=start, recheck=TOP))
        raise DontCloseSpider

    # --- detail stage ---------------------------------------------------------
    def parse_product(self, response: Response) -> ProductItem:
        item = ProductItem(
            url=response.url,
            site=self.site,
            list_page=response.meta.get("list_page"),
            list_position=response.meta.get("list_position"),
            crawled_at=self.now(),
        )
        card = response.meta.get("card") or {}
        root = html_root(response)
        if root is None:
            content_type = response.headers.get(b"Content-Type", b"").decode("latin-1") or "none"
            item.raw = dict(card)
            item.reject_reason = f"malformed page: not an HTML page (content type {content_type})"
            return item
        item.raw = {**card, **extract_fields(self.site_profile, root, response.url)}
        return item


def html_root(response: Response) -> Any:
    """The parsed HTML/XML tree of a response, or None (binary, JSON, ...).

    Parsed by a parsel selector of its own, not ``response.selector``: Scrapy
    caches that one on the response and it refers back to the response, a
    reference cycle that keeps the response, its body and its whole lxml tree
    (C memory the garbage collector's thresholds do not see) alive until a
    cyclic collection, often a full one.  The tree returned here is freed as
    soon as the callback lets go of it.

    The type is the one Scrapy's selector would give (XML for an
    ``XmlResponse``, HTML for an ``HtmlResponse``, JSON for a ``JsonResponse``,
    else parsel's guess from the body).  Unlike Scrapy's selector it does not
    look for the page's ``<base href>`` (a regular expression over the start of
    every page) to record it in the tree: nothing reads the tree's base URL
    (links are resolved against the page's URL, :mod:`crawler.extraction`).
    """
    if not isinstance(response, TextResponse) or isinstance(response, JsonResponse):
        return None
    kind = "xml" if isinstance(response, XmlResponse) else "html" if isinstance(response, HtmlResponse) else None
    selector = ParselSelector(text=response.text, type=kind, base_url=response.url)
    return selector.root if selector.type in ("html", "xml") else None
