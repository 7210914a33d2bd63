"""JSON stats dump: the crawl's full stats, rewritten atomically during the crawl and at close.

One file per crawl, ``STATS_DUMP_DIR/<spider>-<UTC timestamp>-<pid>.json``
(``STATS_DUMP_DIR`` unset: ``STATS_DIR``, an absolute directory, see
:mod:`crawler.paths`; ``crawler.defaults.get`` derives it).  While
the spider runs it is rewritten every ``STATS_DUMP_INTERVAL`` seconds with
``"running": true`` (so cron jobs and dashboards can read a live file), and
a last time at close with ``"running": false``.  Every write is atomic (a
temporary file renamed over the old one): a reader always sees a whole JSON
document.  The document::

    {
      "spider": "catalog", "site": "csa_iot", "finish_reason": null | "finished" | ...,
      "running": true | false,
      "updated_at": "2026-11-26T06:15:02.123456+00:00",
      "profile": "balanced",                        # CRAWL_PROFILE
      "progress": {"fraction", "eta_seconds", "detail_rate", "list_rate", "basis",
                   "expected_total", "updated_at"}, # the progress/* stats (None if absent)
      "stages": {"<stage>": {"started", "finished", "mean_seconds", "p95_seconds"}},
      "domains": {"<domain>": {"concurrency", "delay", "breaker"}},
      "stats": {...every stat...}
    }

``domains`` gathers the ``adaptive/concurrency/<domain>``,
``adaptive/delay/<domain>`` and ``breaker/state/<domain>`` stats (None where
a domain has no such stat: a breaker that never changed state is closed).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Self

from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.utils.asyncio import create_looping_call

from crawler import defaults
from crawler.errors import ConfigError

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


#: ``progress`` of the document: the stats ``progress/<key>``.
PROGRESS_KEYS = ("fraction", "eta_seconds", "detail_rate", "list_rate", "basis", "expected_total", "updated_at")
#: ``stages/<stage>/<field>`` stats gathered under ``stages``.
STAGE_FIELDS = ("started", "finished", "mean_seconds", "p95_seconds")
#: ``domains`` of the document: field -> stat prefix.
DOMAIN_STATS = {"concurrency": "adaptive/concurrency/", "delay": "adaptive/delay/", "breaker": "breaker/state/"}


def progress_section(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The ``progress/*`` stats (None where absent)."""
    return {key: stats.get(f"progress/{key}") for key in PROGRESS_KEYS}


def stages_section(stats: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{stage: {started, finished, mean_seconds, p95_seconds}}`` from the ``stages/<stage>/<field>`` stats."""
    stages: dict[str, dict[str, Any]] = {}
    for key in sorted(k for k in stats if isinstance(k, str) and k.startswith("stages/")):
        stage, _, field = key[len("stages/") :].rpartition("/")
        if stage and field in STAGE_FIELDS:
            stages.setdefault(stage, dict.fromkeys(STAGE_FIELDS))[field] = stats[key]
    return stages


def domains_section(stats: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{domain: {concurrency, delay, breaker}}`` from the adaptive and breaker stats."""
    domains: dict[str, dict[str, Any]] = {}
    for field, prefix in DOMAIN_STATS.items():
        for key in sorted(k for k in stats if isinstance(k, str) and k.startswith(prefix) and len(k) > len(prefix)):
            value = stats[key]
            if field == "breaker":
                value = getattr(value, "value", value)  # a BreakerState or its string
            domains.setdefault(key[len(prefix) :], dict.fromkeys(DOMAIN_STATS))[field] = value
    return dict(sorted(domains.items()))


class StatsDump:
    """Write ``STATS_DUMP_DIR/<spider>-<UTC timestamp>-<pid>.json`` during the crawl and when the spider closes.

    The document (see the module docstring) holds the spider name, the site,
    the close reason, live sections (progress, stages, domains) and every stat
    (Scrapy's and the project's).  Its path is logged and kept in the
    ``stats_dump/path`` stat.  Disable with ``STATS_DUMP_ENABLED = False``;
    ``STATS_DUMP_INTERVAL = 0`` writes it only at close.

    The final write happens in ``spider_closed`` (this extension comes after
    the others in ``EXTENSIONS``, so their synchronous handlers have set their
    stats).  Asynchronous ``spider_closed`` handlers run concurrently with it
    and may still change stats (the dead-letter queue's last writes), so the
    file is written once more at ``engine_stopped`` if the stats changed.
    """

    def __init__(self, crawler: Crawler, directory: Path, interval: float = 0.0) -> None:
        self.crawler = crawler
        self.directory = directory
        self.interval = interval
        self.path: Path | None = None
        self.profile = str(defaults.get(crawler.settings, "CRAWL_PROFILE"))
        self._loop: Any = None
        self._closed: tuple[Spider, str, str] | None = None  # (spider, reason, stats as written)
        self._warned = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("STATS_DUMP_ENABLED", defaults.STATS_DUMP_ENABLED):
            raise NotConfigured
        try:
            interval = float(defaults.get(crawler.settings, "STATS_DUMP_INTERVAL") or 0)
        except (TypeError, ValueError):
            interval = -1.0
        if not interval >= 0:
            raise ConfigError(
                f"STATS_DUMP_INTERVAL: expected seconds >= 0 (0: only at close), "
                f"got {crawler.settings.get('STATS_DUMP_INTERVAL')!r}"
            )
        ext = cls(crawler, Path(defaults.get(crawler.settings, "STATS_DUMP_DIR")), interval)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(ext.engine_stopped, signal=signals.engine_stopped)
        return ext

    def spider_opened(self, spider: Spider) -> None:
        # microseconds and the process id: two runs never share a file
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        self.path = self.directory / f"{spider.name}-{stamp}-{os.getpid()}.json"
        self.crawler.stats.set_value("stats_dump/path", str(self.path))
        if self.interval > 0:
            self._loop = create_looping_call(self.write_live, spider)
            self._loop.start(self.interval, now=True)

    def document(self, spider: Spider, reason: str | None, running: bool = False) -> dict[str, Any]:
        stats = self.crawler.stats.get_stats()
        return {
            "spider": spider.name,
            "site": getattr(spider, "site", None),
            "finish_reason": reason,
            "running": running,
            "updated_at": datetime.now(UTC).isoformat(),
            "profile": self.profile,
            "progress": progress_section(stats),
            "stages": stages_section(stats),
            "domains": domains_section(stats),
            "stats": stats,
        }

    def write_live(self, spider: Spider) -> None:
        """The periodic write (``running: true``); a failure is logged once, the crawl goes on."""
        if self.path is None or self._closed is not None:
            return
        try:
            write_json_atomic(self.path, self.document(spider, None, running=True))
        except (OSError, TypeError, ValueError) as exc:
            if not self._warned:
                self._warned = True
                logger.warning("Cannot write the live stats dump %s: %s", self.path, exc)

    def spider_closed(self, spider: Spider, reason: str) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        assert self.path is not None
        write_json_atomic(self.path, self.document(spider, reason))
        self._closed = (spider, reason, self._stats_text())
        logger.info("Stats written to %s", self.path)

    def engine_stopped(self) -> None:
        """Write the final document again if a stat changed after ``spider_closed`` (async handlers)."""
        if self._closed is None or self.path is None:
            return
        spider, reason, written = self._closed
        now = self._stats_text()
        if now != written:
            write_json_atomic(self.path, self.document(spider, reason))
            self._closed = (spider, reason, now)
            logger.debug("Stats rewritten to %s (changed after spider_closed)", self.path)

    def _stats_text(self) -> str:
        return json.dumps(self.crawler.stats.get_stats(), sort_keys=True, default=_jsonable)
