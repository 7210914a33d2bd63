"""List-stage backpressure: list pages wait while too many products are outstanding.

List pages are the stage that creates work: each one schedules a page's worth
of product requests.  While more than ``BACKPRESSURE_DETAIL_HIGH_WATER``
products are discovered and not yet ended (the ledger's
:meth:`~extensions.accounting.ProductAccounting.outstanding`: queued,
waiting, in flight, or awaiting their commit), list requests wait in the
scheduler's line ``backpressure:list`` (a scheduler gate, order 100,
:class:`~crawler.scheduler.GatedScheduler`), so memory stays bounded on a
catalogue of any size.  While the process's memory is above 80% of
``ADAPTIVE_MEMORY_LIMIT_MB`` the mark is a quarter of that.  The line is
checked as the scheduler hands requests out, not re-scheduled in a loop.

0 turns it off.  Stats: ``scheduler/held/backpressure`` (list pages that waited).
"""

from __future__ import annotations

import os
import time
from typing import Self

import psutil
from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from crawler import defaults
from crawler.scheduler import Hold, require_gated_scheduler
from extensions.accounting import ProductAccounting

#: Order of backpressure among the scheduler's gates (first: it holds whole stages).
GATE_ORDER = 100
#: Memory above this share of ADAPTIVE_MEMORY_LIMIT_MB: the high-water mark is a quarter.
MEMORY_HIGH_RATIO = 0.8
#: Seconds between memory readings.
MEMORY_SAMPLE_INTERVAL = 1.0
HOLD = Hold("backpressure:list", None)


class Backpressure:
    """A scheduler gate holding list requests while the ledger's outstanding products exceed the mark."""

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        self.high_water = defaults.get_number(settings, "BACKPRESSURE_DETAIL_HIGH_WATER", int, 0)
        if not self.high_water:
            raise NotConfigured
        require_gated_scheduler(settings, "BACKPRESSURE_DETAIL_HIGH_WATER")
        limit_mb = float(defaults.get(settings, "ADAPTIVE_MEMORY_LIMIT_MB") or 0)
        self.memory_limit = int(limit_mb * 2**20) if limit_mb > 0 else None
        self.crawler = crawler
        self.ledger: ProductAccounting | None = None
        self._process = psutil.Process(os.getpid())
        self._memory_high = False
        self._sampled = 0.0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        ext = cls(crawler)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        return ext

    def spider_opened(self, spider: Spider) -> None:
        self.ledger = self.crawler.get_extension(ProductAccounting)
        if self.ledger is not None:
            self.crawler.engine.scheduler.add_gate(self, GATE_ORDER)

    def mark(self) -> int:
        """The high-water mark in force now."""
        return self.high_water // 4 if self._memory_is_high() else self.high_water

    # -- scheduler gate ------------------------------------------------------------
    def hold(self, request: Request, now: float) -> Hold | None:
        if request.meta.get("stage") != "list" or self.ledger is None:
            return None
        return HOLD if self.ledger.outstanding() > self.mark() else None

    def admitted(self, request: Request) -> None:
        return None

    def _memory_is_high(self) -> bool:
        if self.memory_limit is None:
            return False
        now = time.monotonic()
        if now - self._sampled >= MEMORY_SAMPLE_INTERVAL:
            self._sampled = now
            self._memory_high = self._process.memory_info().rss >= MEMORY_HIGH_RATIO * self.memory_limit
        return self._memory_high
