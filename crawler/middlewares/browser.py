"""Browser requests: their wait and timeouts, and bounded, recycled browser contexts.

A request of a ``render = "js"`` stage carries ``meta["playwright"] = True`` and
``meta["browser_render"]`` (``{"wait_for": css or None, "timeout": seconds or
None}``: JSON, so a dead letter or a resumed run replays it as it was).  Right
before such a request reaches scrapy-playwright's download handler, this
middleware gives it:

* ``playwright_page_goto_kwargs``: the navigation timeout (the stage's
  ``render_timeout``, else ``BROWSER_RENDER_TIMEOUT``); with ``wait_for``, the
  navigation ends at ``domcontentloaded`` (without: at ``load``, Playwright's default);
* ``playwright_page_methods``: with ``wait_for``, a wait for that CSS selector
  in the page (same timeout), so the page is read once its script rendered it;
* ``playwright_context``: one of ``PLAYWRIGHT_MAX_CONTEXTS`` browser contexts
  ("lanes"), the least busy.

Chromium frees a page's memory for good only when its context closes, so a
context is **recycled** after ``BROWSER_CONTEXT_RECYCLE_PAGES`` requests: its
lane takes no new request, and once its last page is done the context is
closed and the lane opens a fresh one.  While every lane is draining, browser
requests wait here (holding no browser resource).  So at most
``PLAYWRIGHT_MAX_CONTEXTS`` contexts are open at once, each with at most
``PLAYWRIGHT_MAX_PAGES_PER_CONTEXT`` pages (scrapy-playwright's limit), and the
browser's memory stays bounded however many pages the crawl renders.

Pages are scrapy-playwright's to close: it closes each one when its response
is read and when its download fails (``playwright_include_page`` is never set).

Stats: ``browser/requests/<stage>``, ``browser/contexts_recycled``,
``browser/waits`` (requests that waited for a lane), ``browser/contexts_open``
(at close), beside scrapy-playwright's ``playwright/*``.

Enabled in ``DOWNLOADER_MIDDLEWARES`` at 950 (next to the download handler, so
it sees each download's end before any other middleware); requests without
``meta["playwright"]`` pass through untouched.  The browser serves the scheme of
the site's start URLs (one Playwright, one browser); a browser request of the
other scheme is fetched over plain HTTP, with a warning and ``browser/unrouted/<scheme>``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Self

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.http import Response

from crawler import defaults
from crawler.browser import browser_limits, routed_schemes
from crawler.errors import ConfigError

logger = logging.getLogger(__name__)

#: ``request.meta`` key of a browser request's rendering: ``{"wait_for": ..., "timeout": ...}``.
RENDER = "browser_render"
#: ``request.meta`` key: the lane ticket of the current attempt (managed per download: never stored).
TICKET = "_browser_ticket"


@dataclass
class _Lane:
    """One browser context at a time: the current generation's."""

    index: int
    generation: int = 0
    assigned: int = 0
    in_flight: int = 0
    draining: bool = False
    context: Any = None

    @property
    def name(self) -> str:
        return f"lane{self.index}-{self.generation}"


class BrowserContextsMiddleware:
    """See the module docstring."""

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        limits = browser_limits(settings)
        self.stats = crawler.stats
        self.lanes = [_Lane(i) for i in range(limits["contexts"])]
        self.recycle_pages = limits["recycle_pages"]
        self.default_timeout = defaults.get_number(settings, "BROWSER_RENDER_TIMEOUT", float, 0.001)
        self._tickets: dict[int, _Lane] = {}
        self._counter = itertools.count(1)
        #: Set when a drained lane opens again (created in the running loop, by the first waiter).
        self._lane_opened: asyncio.Event | None = None
        self._closing: set[asyncio.Task[None]] = set()
        #: The schemes scrapy-playwright downloads (those of the site's start URLs, crawler/browser.py).
        self.schemes = routed_schemes(settings)
        self._warned: set[str] = set()
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        try:
            return cls(crawler)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"browser settings: {exc}") from None

    # -- requests ------------------------------------------------------------------
    def process_request(self, request: Request) -> Awaitable[None] | None:
        if not request.meta.get("playwright"):
            return None
        scheme = request.url.split(":", 1)[0].lower()
        if scheme not in self.schemes:
            self._unrouted(request, scheme)
            return None
        self._prepare(request)
        lane = self._free_lane()
        if lane is None:
            self.stats.inc_value("browser/waits")
            return self._wait_for_lane(request)
        self._assign(request, lane)
        return None

    def process_response(self, request: Request, response: Response) -> Response:
        self._done(request)
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        self._done(request)
        return None

    def _prepare(self, request: Request) -> None:
        meta = request.meta
        render = meta.get(RENDER) or {}
        timeout_ms = int(1000 * float(render.get("timeout") or self.default_timeout))
        wait_for = render.get("wait_for")
        if wait_for:
            from scrapy_playwright.page import PageMethod

            # the selector's wait is what says the page is rendered: the navigation need not wait for "load"
            meta["playwright_page_goto_kwargs"] = {"timeout": timeout_ms, "wait_until": "domcontentloaded"}
            meta["playwright_page_methods"] = [
                PageMethod("wait_for_selector", f"css={wait_for}", state="attached", timeout=timeout_ms)
            ]
        else:
            meta["playwright_page_goto_kwargs"] = {"timeout": timeout_ms}
            meta.pop("playwright_page_methods", None)
        meta.pop("playwright_include_page", None)  # scrapy-playwright closes every page
        meta["playwright_page_init_callback"] = self._page_opened
        self.stats.inc_value(f"browser/requests/{meta.get('stage') or 'other'}")

    def _unrouted(self, request: Request, scheme: str) -> None:
        """A browser request of a scheme the browser does not serve: fetched over plain HTTP, said once."""
        self.stats.inc_value(f"browser/unrouted/{scheme}")
        if scheme not in self._warned:
            self._warned.add(scheme)
            logger.warning(
                "%s: %s pages are not rendered in the browser (only those of the start URLs' schemes: %s)",
                request.url, scheme, ", ".join(sorted(self.schemes)) or "none", extra={"request": request},
            )

    # -- lanes ---------------------------------------------------------------------
    def _counter_started(self) -> bool:
        return any(lane.generation or lane.assigned for lane in self.lanes)

    def _free_lane(self) -> _Lane | None:
        open_lanes = [lane for lane in self.lanes if not lane.draining]
        return min(open_lanes, key=lambda lane: lane.in_flight) if open_lanes else None

    async def _wait_for_lane(self, request: Request) -> None:
        while (lane := self._free_lane()) is None:
            if self._lane_opened is None:
                self._lane_opened = asyncio.Event()
            await self._lane_opened.wait()
        self._assign(request, lane)

    def _assign(self, request: Request, lane: _Lane) -> None:
        ticket = next(self._counter)
        self._tickets[ticket] = lane
        request.meta[TICKET] = ticket
        request.meta["playwright_context"] = lane.name
        lane.in_flight += 1
        lane.assigned += 1
        if self.recycle_pages and lane.assigned >= self.recycle_pages:
            lane.draining = True

    def _done(self, request: Request) -> None:
        lane = self._tickets.pop(request.meta.get(TICKET), None)  # type: ignore[arg-type]
        if lane is None:
            return  # not a browser request, or its end was counted already (a retry's copied meta)
        lane.in_flight -= 1
        if lane.draining and lane.in_flight == 0:
            task = asyncio.ensure_future(self._recycle(lane))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _page_opened(self, page: Any, request: Request) -> None:
        """(``playwright_page_init_callback``) Remember the context of the request's lane.

        The latest one: after a browser crash scrapy-playwright opens the lane's context
        again (the crashed one is closed already), and that one is the one to recycle.
        """
        lane = self._tickets.get(request.meta.get(TICKET))  # type: ignore[arg-type]
        if lane is not None and request.meta.get("playwright_context") == lane.name:
            lane.context = page.context

    async def _recycle(self, lane: _Lane) -> None:
        """Close the drained lane's context, then open the lane with a fresh one."""
        context, lane.context = lane.context, None
        try:
            if context is not None:
                # counted when it leaves service, not when its close returns: a crawl closing
                # meanwhile counts it neither open nor recycled otherwise
                self.stats.inc_value("browser/contexts_recycled")
                await context.close()
                logger.info("Browser context %s recycled after %d pages", lane.name, lane.assigned)
        except Exception as exc:  # noqa: BLE001 - a crashed browser: its contexts are gone already
            logger.debug("Browser context %s: close failed (%s)", lane.name, exc)
        finally:
            lane.generation += 1
            lane.assigned = 0
            lane.draining = False
            if self._lane_opened is not None:
                self._lane_opened.set()
                self._lane_opened = None

    def spider_closed(self) -> None:
        if not self._counter_started():
            return
        self.stats.set_value("browser/contexts_open", sum(1 for lane in self.lanes if lane.context is not None))
