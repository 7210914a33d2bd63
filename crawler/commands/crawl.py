"""``scrapy crawl`` with one-line errors for bad configuration.

Same options and behaviour as Scrapy's own command; a
:class:`~crawler.errors.ConfigError` (bad site profile, unknown site,
unusable database URL, ...) prints ``error: <message>`` on stderr and exits
with status 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import sys

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError

from crawler.errors import ConfigError


class Command(ScrapyCrawlCommand):
    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            raise UsageError("give exactly one spider name")
        assert self.crawler_process is not None
        try:
            crawl = self.crawler_process.crawl(self._create_crawler(args[0]), **opts.spargs)
            self.crawler_process.start()
        except ConfigError as exc:
            self._fail(exc)
            return
        error = _exception_of(crawl)
        if isinstance(error, ConfigError):
            self._fail(error)
        elif error is not None or self.crawler_process.bootstrap_failed:
            self.exitcode = 1

    def _fail(self, exc: ConfigError) -> None:
        print(f"error: {exc}", file=sys.stderr)
        self.exitcode = 2


def _exception_of(crawl: object) -> BaseException | None:
    """The exception a finished crawl task/Deferred ended with, if any."""
    done = getattr(crawl, "done", None)
    if done is not None:  # asyncio.Task (AsyncCrawlerProcess)
        if not done() or crawl.cancelled():  # type: ignore[attr-defined]
            return None
        return crawl.exception()  # type: ignore[attr-defined]
    result = getattr(crawl, "result", None)  # twisted Deferred (CrawlerProcess)
    if result is not None and hasattr(result, "value"):
        crawl.addErrback(lambda _failure: None)  # type: ignore[attr-defined]
        return result.value
    return None
