"""The crawl's outcome: an exit status and a one-line reason, after every write committed.

:class:`CrawlOutcome` judges the final stats (:func:`crawler.outcome.judge`)
when the engine has stopped: by then every ``spider_closed`` handler has
finished, so the store and the dead-letter queue have committed (or counted as
failed) every write.  It sets ``outcome/exit_status``, ``outcome/name`` and
``outcome/reason`` (so the JSON stats dump records them) and logs the reason;
``scrapy crawl`` (``crawler/commands/crawl.py``) exits with that status and
prints the reason on stderr when it is not 0.

Setting: ``MAX_DEAD_LETTERS`` (default 0): dead letters a crawl may leave and
still exit 0, a count or a share of the discovered products (``"2%"``).
"""

from __future__ import annotations

import logging
from typing import Self

from scrapy import signals
from scrapy.crawler import Crawler

from crawler import defaults
from crawler.errors import ConfigError
from crawler.outcome import DeadLetterLimit, Outcome, judge

logger = logging.getLogger(__name__)

#: Stats keys of the outcome.
STATUS_KEY, NAME_KEY, REASON_KEY = "outcome/exit_status", "outcome/name", "outcome/reason"


class CrawlOutcome:
    """Judge the crawl once the engine has stopped; record the outcome in the stats."""

    def __init__(self, crawler: Crawler, limit: DeadLetterLimit) -> None:
        self.crawler = crawler
        self.limit = limit
        self.outcome: Outcome | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        try:
            limit = DeadLetterLimit.parse(defaults.get(crawler.settings, "MAX_DEAD_LETTERS"))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        ext = cls(crawler, limit)
        crawler.signals.connect(ext.engine_stopped, signal=signals.engine_stopped)
        return ext

    def engine_stopped(self) -> None:
        stats = self.crawler.stats
        outcome = judge(stats.get_stats(), self.limit)
        self.outcome = outcome
        stats.set_value(STATUS_KEY, outcome.status)
        stats.set_value(NAME_KEY, outcome.name)
        stats.set_value(REASON_KEY, outcome.reason)
        if outcome.ok:
            logger.info("Outcome: exit status 0 (%s)", outcome.reason)
        else:
            logger.error("Outcome: exit status %d (%s): %s", outcome.status, outcome.name, outcome.reason)


def outcome_of(crawler: Crawler) -> tuple[int, str] | None:
    """The exit status and reason a finished crawl recorded, or None (the extension did not run)."""
    stats = getattr(crawler, "stats", None)
    if stats is None:
        return None
    status = stats.get_value(STATUS_KEY)
    if status is None:
        return None
    return int(status), str(stats.get_value(REASON_KEY) or "")
