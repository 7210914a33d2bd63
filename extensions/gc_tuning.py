"""Python's cyclic garbage collector, tuned for a crawl: fewer, cheaper collections.

A crawl allocates millions of short-lived objects (requests, responses,
selectors, items), and CPython's collector runs a generation-0 collection
every 700 net allocations, a generation-1 every tenth of those, and a full
collection, which walks every tracked object of the process, whenever the
old generation has grown by a quarter.  Most of what a full collection walks
was created at start-up: the modules Scrapy, Twisted, lxml and SQLAlchemy
import, and the crawl's components.  Measured on a 2,400-product crawl of
the demo shop (``gc.callbacks`` timing every collection), the collector
took about 0.9 s of the reactor thread's CPU with the defaults and about
0.35 s with this extension.  When the engine starts, it

* collects once and **freezes** what exists (``gc.freeze()``): the start-up
  objects move to a permanent generation that collections no longer walk
  (``GC_FREEZE``; they are still freed by reference counting);
* raises the **generation-0 threshold** to ``GC_THRESHOLD`` (default 7000),
  so the collector runs a tenth as often and most of the crawl's objects have
  died by reference counting before it looks at them.  Reference cycles live
  a little longer (up to that many allocations).

When the engine stops, the thresholds are restored and the frozen objects
released to the collector (the last crawl of the process to stop does it
when several run in one process).  ``GC_THRESHOLD = 0`` keeps the
interpreter's thresholds; both settings off: not configured.  Stats:
``gc/collections/gen0``, ``gc/collections/gen1``, ``gc/collections/gen2``
(collections during the crawl) and ``gc/frozen`` (objects frozen at start).
"""

from __future__ import annotations

import gc
from typing import Self

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from crawler import defaults
from crawler.errors import ConfigError

#: Crawls of this process that have tuned the collector and not yet stopped, and the thresholds before the first.
_active: list[GcTuning] = []
_saved_threshold: tuple[int, ...] = ()


class GcTuning:
    """Freezes the start-up objects and raises the generation-0 threshold for the crawl (see module doc)."""

    def __init__(self, crawler: Crawler, *, freeze: bool, threshold: int) -> None:
        self.crawler = crawler
        self.freeze = freeze
        self.threshold = threshold
        self._started: list[int] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        freeze = settings.getbool("GC_FREEZE", defaults.GC_FREEZE)
        threshold = defaults.get_number(settings, "GC_THRESHOLD", int, 0, ConfigError)
        if not freeze and threshold == 0:
            raise NotConfigured("GC_FREEZE is off and GC_THRESHOLD is 0")
        ext = cls(crawler, freeze=freeze, threshold=threshold)
        crawler.signals.connect(ext.engine_started, signal=signals.engine_started)
        crawler.signals.connect(ext.engine_stopped, signal=signals.engine_stopped)
        return ext

    def engine_started(self) -> None:
        global _saved_threshold
        if not _active:
            _saved_threshold = gc.get_threshold()
        _active.append(self)
        if self.freeze:
            gc.collect()
            gc.freeze()
            self.crawler.stats.set_value("gc/frozen", gc.get_freeze_count())
        if self.threshold:
            gc.set_threshold(self.threshold, *_saved_threshold[1:])
        self._started = [generation["collections"] for generation in gc.get_stats()]

    def engine_stopped(self) -> None:
        if self._started is None:
            return
        for n, (before, now) in enumerate(zip(self._started, gc.get_stats(), strict=True)):
            self.crawler.stats.set_value(f"gc/collections/gen{n}", now["collections"] - before)
        self._started = None
        _active.remove(self)  # it joined when it started
        if not _active:
            gc.set_threshold(*_saved_threshold)
            gc.unfreeze()
