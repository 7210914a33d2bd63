"""``scrapy crawl`` with one-line errors and an exit status that tells the outcome.

Same options and behaviour as Scrapy's own command, plus:

* bad input stops the crawl before any request with one line ``error: ...`` on
  stderr and exit status 2, never a traceback: a :class:`~crawler.errors.ConfigError`
  (bad site profile, unknown site, unusable database URL, ...), an unknown
  spider name, a numeric or boolean Scrapy setting that does not parse
  (``-s CONCURRENT_REQUESTS=abc``);
* another run of the same site into the same database (the run lock,
  :mod:`extensions.run_lock`) prints one line and exits 7;
* any other error before or during the crawl prints one line and exits 1;
* a crawl that ran exits with the status :mod:`extensions.outcome` recorded
  (see :mod:`crawler.outcome`: 0 only when every discovered product was saved
  or accounted for, after commit), printing the reason on stderr when not 0;
* with a log file (``LOG_FILE``, ``--logfile``; scrapyd gives every job one)
  the ``error: ...`` line goes to the log file too, with the exit status:
  scrapyd keeps a job's stderr only in its own log, so the job's log is where
  a failed job's reason can be read;
* ``LOG_JSON`` writes the log as JSON lines from its very first line
  (:mod:`crawler.jsonlog`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from typing import Any

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError
from scrapy.settings import BaseSettings, default_settings

from crawler.errors import ConfigError, RunLocked
from crawler.jsonlog import start_json_logging
from crawler.outcome import CONFIG, ERROR, INTERRUPTED, LOCKED
from crawler.redaction import install_log_filter
from extensions.outcome import CrawlOutcome, outcome_of

logger = logging.getLogger(__name__)

#: Scrapy settings read with getbool though their default is an int.
_BOOL_INTS = frozenset({"TELNETCONSOLE_ENABLED"})
#: Numeric Scrapy settings read with getint (the others with getfloat).
_INT_SETTINGS = frozenset({
    "CONCURRENT_ITEMS", "CONCURRENT_REQUESTS", "CONCURRENT_REQUESTS_PER_DOMAIN", "RETRY_TIMES",
    "RETRY_PRIORITY_ADJUST", "REDIRECT_MAX_TIMES", "REDIRECT_PRIORITY_ADJUST", "DEPTH_LIMIT", "DEPTH_PRIORITY",
    "CLOSESPIDER_ITEMCOUNT", "CLOSESPIDER_PAGECOUNT", "CLOSESPIDER_ERRORCOUNT", "CLOSESPIDER_PAGECOUNT_NO_ITEM",
    "DOWNLOAD_MAXSIZE", "DOWNLOAD_WARNSIZE", "URLLENGTH_LIMIT", "REACTOR_THREADPOOL_MAXSIZE", "DNSCACHE_SIZE",
    "MEMUSAGE_LIMIT_MB", "MEMUSAGE_WARNING_MB", "FEED_EXPORT_BATCH_ITEM_COUNT", "FEED_EXPORT_INDENT",
    "HTTP2_MAX_FRAME_SIZE", "MAIL_PORT", "SCRAPER_SLOT_MAX_ACTIVE_SIZE", "HTTPCACHE_EXPIRATION_SECS",
})  # fmt: skip


class Command(ScrapyCrawlCommand):
    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        # before Scrapy's CrawlerProcess exists: with LOG_JSON its first log lines are JSON too
        start_json_logging(self.settings)

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            raise UsageError("give exactly one spider name")
        assert self.crawler_process is not None
        install_log_filter()  # URL passwords masked in every log line (e.g. Scrapy's "Overridden settings")
        name = args[0]
        known = sorted(self.crawler_process.spider_loader.list())
        if name not in known:
            self._fail(CONFIG, f"unknown spider {name!r} (known spiders: {', '.join(known) or 'none'})")
            return
        try:
            crawler = self._create_crawler(name)
            check_scrapy_settings(crawler.settings)
            crawl = self.crawler_process.crawl(crawler, **opts.spargs)
            self.crawler_process.start()
        except ConfigError as exc:
            self._fail(CONFIG, str(exc))
            return
        except RunLocked as exc:
            self._fail(LOCKED, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - one line instead of a traceback, exit status 1
            self._fail(ERROR, one_line(exc))
            return
        error = _exception_of(crawl)
        if isinstance(error, ConfigError):
            self._fail(CONFIG, str(error))
            return
        if isinstance(error, RunLocked):
            self._fail(LOCKED, str(error))
            return
        if error is not None:
            self._fail(ERROR, one_line(error))
            return
        outcome = outcome_of(crawler)
        if outcome is None:
            if self.crawler_process.bootstrap_failed:
                self._fail(ERROR, "the crawl failed to start (see the log above)")
            elif crawler.stats.get_value("start_time") is not None and crawler.get_extension(CrawlOutcome):
                # the engine never stopped: a forced stop (second Ctrl-C) ended the reactor first
                self._fail(INTERRUPTED, "interrupted: forced stop before the crawl closed (run it again to resume)")
            return
        status, reason = outcome
        if status:
            self._fail(status, reason, logged=True)  # extensions/outcome.py logged the outcome

    def _fail(self, status: int, message: str, *, logged: bool = False) -> None:
        """``error: message`` on stderr (and in the log file, unless ``logged``), exit status ``status``."""
        print(f"error: {message}", file=sys.stderr, flush=True)
        if not logged and self.settings is not None and self.settings.get("LOG_FILE"):
            logger.error("%s (exit status %d)", message, status)
        self.exitcode = status


def check_scrapy_settings(settings: BaseSettings) -> None:
    """Raise :class:`ConfigError` naming the first numeric or boolean Scrapy setting that does not parse.

    A setting whose default is a bool must read as one; one Scrapy reads with
    ``getint`` must be an integer; any other numeric setting a number.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reading deprecated names (DNS_RESOLVER) warns
        for name in dir(default_settings):
            if not name.isupper():
                continue
            default = getattr(default_settings, name)
            value = settings.get(name)
            if value is None or value == default:
                continue
            if isinstance(default, bool) or name in _BOOL_INTS:
                read, kind = settings.getbool, "true or false"
            elif name in _INT_SETTINGS:
                read, kind = settings.getint, "an integer"
            elif isinstance(default, int | float):
                read, kind = settings.getfloat, "a number"
            else:
                continue
            try:
                read(name)
            except (TypeError, ValueError):
                raise ConfigError(f"invalid setting {name}={value!r}: expected {kind}") from None


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line."""
    text = " ".join(str(exc).split()) or repr(exc)
    return f"{type(exc).__name__}: {text}"


def _exception_of(crawl: Any) -> BaseException | None:
    """The exception a finished crawl task/Deferred ended with, if any."""
    done = getattr(crawl, "done", None)
    if done is not None:  # asyncio.Task (AsyncCrawlerProcess)
        if not done() or crawl.cancelled():
            return None
        return crawl.exception()
    result = getattr(crawl, "result", None)  # twisted Deferred (CrawlerProcess)
    if result is not None and hasattr(result, "value"):
        crawl.addErrback(lambda _failure: None)
        return result.value
    return None
