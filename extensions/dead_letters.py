"""The dead-letter queue: every request given up on is stored, replayable.

:class:`DeadLetterQueue` (extension) listens to
:data:`crawler.signals.request_dead_lettered` (sent by the retry and
circuit-breaker middlewares) and records each request in the table
``dead_letters`` of the products' database (``DATABASE_URL``), with its
failure (class, reason, last status and exception, attempts) and what is
needed to replay it: the spider and its ``-a`` arguments
(``spider.dead_letter_args``, a dict, if the spider defines it) and the
request as a JSON object (:func:`request_to_record`).  Rows are built on the
reactor thread and written by ONE writer thread in batches, at least every
``DLQ_FLUSH_INTERVAL`` seconds, and all of them before the spider finishes
closing (``spider_closed`` is awaited by Scrapy's engine).

:class:`crawler.middlewares.dead_letter_requeue.DeadLetterRequeueMiddleware`
(spider middleware, active only with ``DLQ_REQUEUE = True``) replays dead letters instead of the spider's start
requests (``DLQ_REQUEUE_FILTER`` selects them); a replayed request whose
callback then runs to the end on a non-error response is removed from the
queue, one that fails again updates its dead letter (``times`` + 1).
``scrapy dlq requeue`` runs such crawls.

Settings (defaults in ``crawler/defaults.py``): ``DLQ_ENABLED``,
``DLQ_FLUSH_INTERVAL``, ``DLQ_REQUEUE``, ``DLQ_REQUEUE_FILTER``,
``DLQ_DROP_META_KEYS``; the database is ``DATABASE_URL`` and write retries
follow ``STORE_RETRY_TIMES`` / ``STORE_RETRY_DELAY``.  Stats: ``dlq/added``,
``dlq/added/<reason>``, ``dlq/added/stage/<stage>``, ``dlq/removed``,
``dlq/failed`` (not stored), ``dlq/requeued``, ``dlq/requeue_skipped``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from scrapy import Request, Spider, signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import Deferred, DeferredList
from twisted.python.failure import Failure

from crawler import defaults
from crawler.errors import ConfigError
from crawler.redaction import REDACTED_HEADERS, REDACTED_META_KEYS, strip_url_credentials
from crawler.request_records import DLQ_ID, request_to_record
from crawler.signals import dead_letter_queue_opened, dead_letters_stored, request_dead_lettered
from storage.dead_letters import (
    DeadLetterFilter,
    DeadLetterRow,
    DeadLetterStore,
    DeadLetterWriteError,
    WriteResult,
    canonical_args,
)
from storage.writer import FlushTimer, WriterThread, before_shutdown

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

#: Rows handed to the writer thread at once (a fuller buffer is written at once).
BATCH_SIZE = 500
#: Longest ``last_exception`` stored.
EXCEPTION_LENGTH = 2000

def spider_args_of(spider: Spider | None) -> dict[str, str]:
    """The ``-a`` arguments that recreate ``spider``: ``spider.dead_letter_args`` (a dict) or ``{}``."""
    args = getattr(spider, "dead_letter_args", None)
    if callable(args):
        args = args()
    if not isinstance(args, Mapping):
        return {}
    return {str(key): str(value) for key, value in args.items() if value is not None}


def parse_filter(value: Any) -> DeadLetterFilter:
    """``DLQ_REQUEUE_FILTER``: empty, a dict, its JSON text, or ``@FILE`` (JSON in a file).

    Raises :class:`~crawler.errors.ConfigError` (one line) when invalid.
    """
    where = "DLQ_REQUEUE_FILTER"
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("@"):
            where = f"DLQ_REQUEUE_FILTER file {text[1:]}"
            try:
                text = Path(text[1:]).read_text(encoding="utf-8")
            except OSError as e:
                raise ConfigError(f"cannot read {where}: {e.strerror or e}") from None
        if not text.strip():
            return DeadLetterFilter()
        try:
            value = json.loads(text)
        except ValueError as e:
            raise ConfigError(f"invalid {where}: not JSON: {e}") from None
    if value is None:
        return DeadLetterFilter()
    try:
        return DeadLetterFilter.from_dict(value)
    except ValueError as e:
        raise ConfigError(f"invalid {where}: {e}") from None


def _one_line(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, Failure):
        value = value.value
    if isinstance(value, BaseException):
        message = " ".join(str(value).split())
        value = f"{type(value).__name__}: {message}" if message else type(value).__name__
    text = " ".join(str(value).split())
    return text[:limit] if text else None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _exc_info(failure: Failure) -> tuple[Any, Any, Any]:
    return (failure.type, failure.value, failure.getTracebackObject())


# --- the extension -------------------------------------------------------------------------


class DeadLetterQueue:
    """Records the requests given up on in ``dead_letters``, from one writer thread."""

    def __init__(
        self,
        crawler: Crawler,
        store: DeadLetterStore,
        *,
        flush_interval: float = defaults.DLQ_FLUSH_INTERVAL,
        drop_meta: Iterable[str] = (),
        redact_headers: Iterable[str] = REDACTED_HEADERS,
        redact_meta: Iterable[str] = REDACTED_META_KEYS,
    ) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.store = store
        self.flush_interval = flush_interval
        self.drop_meta = frozenset(drop_meta)
        self.redact_headers = tuple(redact_headers)
        self.redact_meta = tuple(redact_meta)
        self._rows: list[DeadLetterRow] = []
        self._removals: set[int] = set()
        self._failed_again: set[int] = set()  # dlq ids dead-lettered again in this crawl
        self._timer = FlushTimer(self.flush_interval, self._flush)
        self._writer = WriterThread("dlq-writer")
        self._inflight: set[Deferred[Any]] = set()
        self._closing = False
        self._closed = False
        self.added: Counter[str] = Counter()  # reason -> dead letters recorded
        self.removed = 0
        self.failed = 0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        """Open the database and create the table now: a bad DATABASE_URL fails before any request.

        Raises :class:`~storage.engine.DatabaseError` (a ConfigError, one line).
        """
        if not crawler.settings.getbool("DLQ_ENABLED", defaults.DLQ_ENABLED):
            raise NotConfigured
        flush_interval = defaults.get_number(crawler.settings, "DLQ_FLUSH_INTERVAL", float, 0.0)
        retries = defaults.get_number(crawler.settings, "STORE_RETRY_TIMES", int, 0)
        retry_delay = defaults.get_number(crawler.settings, "STORE_RETRY_DELAY", float, 0.0)
        drop_meta = crawler.settings.getlist("DLQ_DROP_META_KEYS", list(defaults.DLQ_DROP_META_KEYS))
        store = DeadLetterStore(str(defaults.get(crawler.settings, "DATABASE_URL")), retries=retries,
                                retry_delay=retry_delay)  # fmt: skip
        try:
            store.create_schema()
        except ConfigError:
            store.close()
            raise
        redact_headers = (*REDACTED_HEADERS, *crawler.settings.getlist("DLQ_REDACT_HEADERS", []))
        redact_meta = (*REDACTED_META_KEYS, *crawler.settings.getlist("DLQ_REDACT_META_KEYS", []))
        ext = cls(
            crawler, store, flush_interval=flush_interval, drop_meta=drop_meta,
            redact_headers=redact_headers, redact_meta=redact_meta,
        )  # fmt: skip
        crawler.signals.connect(ext.request_dead_lettered, signal=request_dead_lettered)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(ext.engine_stopped, signal=signals.engine_stopped)
        return ext

    # -- signals

    def spider_opened(self, spider: Spider) -> None:
        self.stats.set_value("dlq/added", 0)
        self.stats.set_value("dlq/removed", 0)
        before_shutdown(self._flush_at_forced_stop)
        self.crawler.signals.send_catch_log(signal=dead_letter_queue_opened)

    def _flush_at_forced_stop(self) -> None:
        """The reactor stops before the spider closed (a second Ctrl-C): write what is buffered."""
        if not self._closing and not self._closed:
            self._closing = True
            self._flush()

    def request_dead_lettered(
        self,
        request: Request,
        failure_class: str | None = None,
        reason: str | None = None,
        status: int | None = None,
        exception: Any = None,
        attempts: int | None = None,
        **_: Any,
    ) -> None:
        """Record ``request`` (see :mod:`crawler.signals` for the arguments)."""
        row = self.build_row(request, failure_class, reason, status, exception, attempts)
        dlq_id = _int_or_none(request.meta.get(DLQ_ID))
        if dlq_id is not None:
            self._failed_again.add(dlq_id)
            if dlq_id in self._removals:  # not written yet: keep it after all
                self._removals.discard(dlq_id)
                self._uncount_removals(1)
        self.added[row.reason] += 1
        self.stats.inc_value("dlq/added")
        self.stats.inc_value(f"dlq/added/{row.reason}")
        if row.stage:
            self.stats.inc_value(f"dlq/added/stage/{row.stage}")
        page = request.meta.get("list_page")
        if row.stage == "list" and isinstance(page, int):
            # the list pages never crawled, by number: the outcome names them
            pages = list(self.stats.get_value("dlq/list_pages") or [])
            self.stats.set_value("dlq/list_pages", sorted({*pages, page}))
        logger.warning(
            "Dead letter: %(method)s %(url)s: %(class)s %(reason)s after %(attempts)d attempt(s)%(status)s",
            {
                "method": row.method,
                "url": row.url,
                "class": row.failure_class,
                "reason": row.reason,
                "attempts": row.attempts,
                "status": f" (last status {row.last_status})" if row.last_status is not None else "",
            },
            extra={"request": request},  # url and stage of a JSON log line (crawler/jsonlog.py)
        )
        self._rows.append(row)
        self._buffered()

    def build_row(
        self,
        request: Request,
        failure_class: str | None,
        reason: str | None,
        status: Any,
        exception: Any,
        attempts: Any,
    ) -> DeadLetterRow:
        """The dead letter of ``request`` (reactor thread: the request and its meta are read now)."""
        spider = getattr(self.crawler, "spider", None)
        stage = request.meta.get("stage")
        site = getattr(spider, "site", None)
        return DeadLetterRow(
            spider=getattr(spider, "name", None) or "",
            site=site if isinstance(site, str) else None,
            spider_args=canonical_args(spider_args_of(spider)),
            fingerprint=self.crawler.request_fingerprinter.fingerprint(request).hex(),
            url=strip_url_credentials(request.url),
            method=request.method,
            stage=stage if isinstance(stage, str) else None,
            request=request_to_record(request, spider, self.drop_meta, self.redact_headers, self.redact_meta),
            failure_class=_one_line(failure_class, 16) or "unknown",
            reason=_one_line(reason, 200) or "unknown",
            last_status=_int_or_none(status),
            last_exception=_one_line(exception, EXCEPTION_LENGTH),
            attempts=_int_or_none(attempts) or 0,
            failed_at=datetime.now(UTC),
        )

    def request_recovered(self, request: Request) -> None:
        """A replayed dead letter was processed: remove it (unless it failed again in this crawl)."""
        dlq_id = _int_or_none(request.meta.get(DLQ_ID))
        if dlq_id is None or dlq_id in self._failed_again or dlq_id in self._removals:
            return
        # counted now, not when written: the last removals are written while the
        # spider closes, after the stats dump has read the stats
        self.removed += 1
        self.stats.inc_value("dlq/removed")
        self._removals.add(dlq_id)
        self._buffered()

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        """Write what is buffered and wait for every write (Scrapy awaits this handler)."""
        if self._closed:
            return
        self._closing = True
        self._flush()
        while self._inflight:
            await maybe_deferred_to_future(DeferredList(list(self._inflight), consumeErrors=True))
        self._writer.stop()
        self.store.close()
        self._closed = True
        reasons = ", ".join(f"{name} {n}" for name, n in self.added.most_common())
        logger.info(
            "Dead-letter queue: %d added%s, %d removed, %d not stored, in %s",
            sum(self.added.values()),
            f" ({reasons})" if reasons else "",
            self.removed,
            self.failed,
            self.store.url_shown,
        )

    def engine_stopped(self) -> None:
        """Make sure the writer thread is stopped and the connections closed."""
        self._writer.stop()
        self.store.close()

    # -- reads for the requeue middleware

    def read(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Run ``func(*args, **kwargs)`` (a store read) on the writer thread, in order with the writes."""
        return self._writer.run(func, *args, **kwargs)

    # -- buffering and writing

    def _buffered(self) -> None:
        size = len(self._rows) + len(self._removals)
        if size >= BATCH_SIZE or self._closing:
            self._flush()
        elif not self._timer.armed:
            self._timer.arm()

    def _flush(self) -> None:
        self._timer.cancel()
        if not self._rows and not self._removals:
            return
        rows, removals = self._rows, self._removals
        self._rows, self._removals = [], set()
        if self._closed:  # a dead letter after spider_closed: write it here rather than lose it
            try:
                self._written(self.store.write(rows, removals), rows)
            except Exception:
                self._write_failed(Failure(), rows, removals)
            return
        d: Deferred[Any] = self._writer.run(self.store.write, rows, removals)
        d.addCallbacks(self._written, self._write_failed, callbackArgs=(rows,), errbackArgs=(rows, removals))
        d.addBoth(self._write_done, d)
        self._inflight.add(d)

    def _write_done(self, _result: Any, d: Deferred[Any]) -> None:
        self._inflight.discard(d)

    def _uncount_removals(self, n: int) -> None:
        self.removed -= n
        self.stats.inc_value("dlq/removed", -n)

    def _written(self, result: WriteResult, rows: list[DeadLetterRow]) -> None:
        self.crawler.signals.send_catch_log(
            signal=dead_letters_stored, stored=[row.fingerprint for row in rows], failed=[]
        )
        logger.debug(
            "Dead-letter queue: wrote %d, removed %d in %.3f s (%d retries)",
            result.added,
            result.removed,
            result.seconds,
            result.retries,
        )

    def _write_failed(self, failure: Failure, rows: list[DeadLetterRow], removals: set[int]) -> None:
        self.crawler.signals.send_catch_log(
            signal=dead_letters_stored, stored=[], failed=[row.fingerprint for row in rows]
        )
        self.failed += len(rows)
        if rows:
            self.stats.inc_value("dlq/failed", len(rows))
        if removals:
            self._uncount_removals(len(removals))
        what = f"{len(rows)} dead letters not stored, {len(removals)} recovered not removed"
        if isinstance(failure.value, DeadLetterWriteError):
            logger.error("Dead-letter queue: %s: %s", what, failure.value)
        else:
            logger.error("Dead-letter queue: %s: unexpected error", what, exc_info=_exc_info(failure))
        for row in rows:  # at least the log keeps them
            logger.error("Dead letter not stored: %s %s: %s %s", row.method, row.url, row.failure_class, row.reason)
