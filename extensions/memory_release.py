"""Give freed heap memory back to the operating system during a crawl (glibc).

A crawl allocates and frees a few hundred kilobytes per page (the response
body, its lxml tree, the item), from the reactor thread and from the
database writer threads.  glibc's malloc keeps freed memory in its arenas
and gives a thread its own arena on first use, so the resident size of a
long crawl ratchets up with fragmentation that nothing will reuse:
``bench/memory.py`` measured it as most of the difference between a
20,000-product crawl and plain Scrapy.  This extension

* caps glibc's malloc arenas at ``MALLOC_ARENA_MAX`` (``mallopt(M_ARENA_MAX)``,
  what the ``MALLOC_ARENA_MAX`` environment variable does, but set by the
  crawl itself, before its writer threads start); 0 leaves glibc's default
  (8 per core);
* every ``MEMORY_RELEASE_INTERVAL`` seconds calls ``malloc_trim(0)``, which
  returns the free pages of every arena to the system (on the reactor
  thread); 0 turns that off.

Not configured where the C library is not glibc (``malloc_trim`` missing,
e.g. musl or macOS), or with both settings at 0.  Stats:
``memory_release/trims`` (calls) and ``memory_release/released`` (calls
that found memory to return).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any, Self

from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from twisted.internet.task import LoopingCall

from crawler import defaults

#: ``mallopt`` parameter number of the arena cap (glibc's malloc.h).
M_ARENA_MAX = -8


def glibc() -> Any | None:  # noqa: ANN401  (a ctypes library)
    """The C library when it is glibc (it has ``malloc_trim`` and ``mallopt``), else None."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


class MemoryRelease:
    """Caps glibc's arenas at start and trims its free memory periodically (see module doc)."""

    def __init__(self, crawler: Crawler, libc: Any, interval: float, arena_max: int) -> None:  # noqa: ANN401
        self.crawler = crawler
        self.libc = libc
        self.interval = interval
        self.loop: LoopingCall | None = None
        if arena_max > 0:
            libc.mallopt(M_ARENA_MAX, arena_max)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        interval = settings.getfloat("MEMORY_RELEASE_INTERVAL", defaults.MEMORY_RELEASE_INTERVAL)
        arena_max = settings.getint("MALLOC_ARENA_MAX", defaults.MALLOC_ARENA_MAX)
        if interval <= 0 and arena_max <= 0:
            raise NotConfigured("MEMORY_RELEASE_INTERVAL and MALLOC_ARENA_MAX are 0")
        libc = glibc()
        if libc is None:
            raise NotConfigured("the C library is not glibc (no malloc_trim)")
        ext = cls(crawler, libc, interval, arena_max)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self, spider: Spider) -> None:
        if self.interval > 0:
            self.loop = LoopingCall(self.release)
            self.loop.start(self.interval, now=False)

    def release(self) -> None:
        """Return every arena's free pages to the system now."""
        stats = self.crawler.stats
        stats.inc_value("memory_release/trims")
        if self.libc.malloc_trim(0):
            stats.inc_value("memory_release/released")

    def spider_closed(self, spider: Spider) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
