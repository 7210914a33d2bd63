"""The crawl's stats collector: Scrapy's in-memory one, without a wrapper on every access.

Scrapy 2.19's ``StatsCollector`` defines ``__getattribute__`` to warn when a
caller still passes the deprecated ``spider`` argument: every attribute read
on the collector goes through a Python function, and a read of an attribute
that is not one of the wrapped methods (``self._stats`` inside every
``inc_value``) raises and catches an ``AttributeError`` first.  A crawl
makes dozens of stats calls per page (Scrapy's own downloader stats, the
project's components), so this costs about 2% of a page's CPU time.

:class:`StatsCollector` is ``scrapy.statscollectors.MemoryStatsCollector``
(``STATS_CLASS``; the stats of the last run stay in ``spider_stats``) with
plain attribute access, and the same methods, which still accept ``spider``
and warn about it as Scrapy does.
"""

from __future__ import annotations

import warnings
from typing import Any

from scrapy import Spider
from scrapy.exceptions import ScrapyDeprecationWarning
from scrapy.statscollectors import MemoryStatsCollector, StatsT


def _spider_argument(method: str) -> None:
    warnings.warn(
        f"Passing a 'spider' argument to StatsCollector.{method}() is deprecated and "
        "the argument will be removed in a future Scrapy version.",
        category=ScrapyDeprecationWarning,
        stacklevel=3,
    )


class StatsCollector(MemoryStatsCollector):
    """``MemoryStatsCollector`` with plain attribute access (see the module doc)."""

    __getattribute__ = object.__getattribute__

    def get_value(self, key: str, default: Any = None, spider: Spider | None = None) -> Any:  # noqa: ANN401
        if spider is not None:
            _spider_argument("get_value")
        return self._stats.get(key, default)

    def get_stats(self, spider: Spider | None = None) -> StatsT:
        if spider is not None:
            _spider_argument("get_stats")
        return self._stats

    def set_value(self, key: str, value: Any, spider: Spider | None = None) -> None:  # noqa: ANN401
        if spider is not None:
            _spider_argument("set_value")
        self._stats[key] = value

    def set_stats(self, stats: StatsT, spider: Spider | None = None) -> None:
        if spider is not None:
            _spider_argument("set_stats")
        self._stats = stats

    def inc_value(self, key: str, count: int = 1, start: int = 0, spider: Spider | None = None) -> None:
        if spider is not None:
            _spider_argument("inc_value")
        d = self._stats
        d[key] = d.get(key, start) + count

    def max_value(self, key: str, value: Any, spider: Spider | None = None) -> None:  # noqa: ANN401
        if spider is not None:
            _spider_argument("max_value")
        d = self._stats
        d[key] = max(d.setdefault(key, value), value)

    def min_value(self, key: str, value: Any, spider: Spider | None = None) -> None:  # noqa: ANN401
        if spider is not None:
            _spider_argument("min_value")
        d = self._stats
        d[key] = min(d.setdefault(key, value), value)

    def clear_stats(self, spider: Spider | None = None) -> None:
        if spider is not None:
            _spider_argument("clear_stats")
        self._stats.clear()

    def open_spider(self, spider: Spider | None = None) -> None:
        if spider is not None:
            _spider_argument("open_spider")

    def close_spider(self, spider: Spider | None = None, reason: str | None = None) -> None:
        if spider is not None:
            _spider_argument("close_spider")
        super().close_spider(reason=reason)
