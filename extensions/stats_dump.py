"""JSON stats dump: the crawl's full stats, written atomically at close."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Self

from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from crawler import defaults

logger = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (Decimal, Path)):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


def write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` so readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=2, sort_keys=True, default=_jsonable)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StatsDump:
    """Write ``STATS_DUMP_DIR/<spider>-<UTC timestamp>.json`` when the spider closes.

    The document holds the spider name, the site, the close reason and every
    stat (Scrapy's and the project's).  Its path is logged and kept in the
    ``stats_dump/path`` stat.  Disable with ``STATS_DUMP_ENABLED = False``.
    """

    def __init__(self, crawler: Crawler, directory: Path) -> None:
        self.crawler = crawler
        self.directory = directory
        self.path: Path | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("STATS_DUMP_ENABLED", defaults.STATS_DUMP_ENABLED):
            raise NotConfigured
        ext = cls(crawler, Path(defaults.get(crawler.settings, "STATS_DUMP_DIR")))
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self, spider: Spider) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.path = self.directory / f"{spider.name}-{stamp}.json"
        self.crawler.stats.set_value("stats_dump/path", str(self.path))

    def document(self, spider: Spider, reason: str | None) -> dict[str, Any]:
        return {
            "spider": spider.name,
            "site": getattr(spider, "site", None),
            "finish_reason": reason,
            "stats": self.crawler.stats.get_stats(),
        }

    def spider_closed(self, spider: Spider, reason: str) -> None:
        assert self.path is not None
        write_json_atomic(self.path, self.document(spider, reason))
        logger.info("Stats written to %s", self.path)
