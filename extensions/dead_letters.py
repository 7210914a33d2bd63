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

:class:`DeadLetterRequeueMiddleware` (spider middleware, active only with
``DLQ_REQUEUE = True``) replays dead letters instead of the spider's start
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

import base64
import inspect
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from scrapy import Request, Spider, signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.request import request_from_dict
from twisted.internet.defer import Deferred, DeferredList
from twisted.python.failure import Failure

from crawler import defaults
from crawler.errors import ConfigError
from crawler.redaction import REDACTED_HEADERS, REDACTED_META_KEYS, redact_record, strip_url_credentials
from crawler.signals import dead_letter_queue_opened, dead_letters_stored, request_dead_lettered
from storage.dead_letters import (
    DeadLetterFilter,
    DeadLetterRow,
    DeadLetterStore,
    DeadLetterWriteError,
    WriteResult,
    canonical_args,
)
from storage.writer import FlushTimer, WriterThread

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

#: ``request.meta`` key of a replayed dead letter: its row id.
DLQ_ID = "dlq_id"
#: Rows handed to the writer thread at once (a fuller buffer is written at once).
BATCH_SIZE = 500
#: Dead letters read per query when requeueing.
REQUEUE_PAGE = 500
#: Longest ``last_exception`` stored.
EXCEPTION_LENGTH = 2000

#: Meta keys that Scrapy, the project's middlewares or this queue manage per
#: download or per crawl: not stored, so a replay starts with a fresh state.
MANAGED_META_KEYS = frozenset(
    {
        "download_slot",
        "download_latency",
        "download_timeout",
        "retry_times",
        "redirect_times",
        "redirect_ttl",
        "redirect_urls",
        "redirect_reasons",
        "is_start_request",
        "not_before",  # crawler.scheduler.NOT_BEFORE: backoff / parking time
        "product_ref",  # extensions.accounting.REF: per-crawl product counter
        DLQ_ID,
    }
)
#: Meta keys starting with these are managed too (``_breaker_allowed``, ``retry_*``, ``dlq_*``, ...).
MANAGED_META_PREFIXES = ("_", "retry_", "dlq_")

_UNRESOLVED = object()


# --- requests <-> JSON records --------------------------------------------------------


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def _managed(key: Any, extra: Iterable[str] = ()) -> bool:
    return not isinstance(key, str) or key in MANAGED_META_KEYS or key.startswith(MANAGED_META_PREFIXES) or key in extra


def _method_name(spider: Spider | None, func: Any) -> Any:
    """The name of the spider method ``func`` (a callback), None for None, else ``_UNRESOLVED``."""
    if func is None or isinstance(func, str):
        return func
    target = getattr(func, "__func__", None)
    if spider is None or target is None or getattr(func, "__self__", None) is not spider:
        return _UNRESOLVED
    name = getattr(func, "__name__", "")
    if getattr(getattr(spider, name, None), "__func__", None) is target:
        return name
    for member, bound in inspect.getmembers(spider, predicate=inspect.ismethod):
        if bound.__func__ is target:
            return member
    return _UNRESOLVED


def request_to_record(
    request: Request,
    spider: Spider | None,
    drop_meta: Iterable[str] = (),
    redact_headers: Iterable[str] = REDACTED_HEADERS,
    redact_meta: Iterable[str] = REDACTED_META_KEYS,
) -> dict[str, Any]:
    """A JSON-safe dict to rebuild ``request`` with :func:`request_from_record`.

    What ``request.to_dict(spider=spider)`` holds, without credentials
    (:func:`crawler.redaction.redact_record`: no ``Authorization``,
    ``Proxy-Authorization`` or ``Cookie`` header, no cookies, no
    ``http_user``/``http_pass``, no ``user:password@`` in the URL or the proxy;
    ``"redacted"`` lists what was removed): url, method, headers (text), body (text, or base64 with
    ``"body_encoding": "base64"``), callback and errback by NAME (methods of
    ``spider``), cb_kwargs, priority, flags, encoding, cookies, the subclass
    (``_class``) and its attributes, and the JSON-serialisable meta keys
    except those managed per download or per crawl (:data:`MANAGED_META_KEYS`,
    :data:`MANAGED_META_PREFIXES`, ``drop_meta``).  Values that cannot be
    stored are listed in ``"dropped"`` (``"callback"`` when the callback is
    not a method of the spider: such a record cannot be replayed).
    """
    extra = frozenset(drop_meta)
    dropped: list[str] = []
    record: dict[str, Any] = {"url": request.url, "method": request.method}
    for name in ("callback", "errback"):
        method = _method_name(spider, getattr(request, name))
        if method is _UNRESOLVED:
            dropped.append(name)
            method = None
        record[name] = method
    record["headers"] = {
        key.decode("latin-1"): [value.decode("latin-1") for value in values] for key, values in request.headers.items()
    }
    body = request.body
    try:
        record["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        record["body"] = base64.b64encode(body).decode("ascii")
        record["body_encoding"] = "base64"
    meta: dict[str, Any] = {}
    for key, value in request.meta.items():
        if _managed(key, extra):
            continue
        if _is_json(value):
            meta[key] = value
        else:
            dropped.append(f"meta.{key}")
    record["meta"] = meta
    # what request.to_dict() holds, with the callbacks resolved above (to_dict() raises for a non-method)
    attributes = {name: getattr(request, name) for name in request.attributes}
    if type(request) is not Request:
        attributes["_class"] = f"{type(request).__module__}.{type(request).__name__}"
    for name, value in attributes.items():
        if name in record:
            continue
        if name == "cb_kwargs":
            kwargs = {}
            for key, arg in (value or {}).items():
                if isinstance(key, str) and _is_json(arg):
                    kwargs[key] = arg
                else:
                    dropped.append(f"cb_kwargs.{key}")
            record[name] = kwargs
        elif _is_json(value):
            record[name] = value
        else:
            dropped.append(name)
    if dropped:
        record["dropped"] = dropped
    return redact_record(record, redact_headers, redact_meta)


def request_from_record(
    record: Mapping[str, Any], spider: Spider, *, dlq_id: int | None = None, drop_meta: Iterable[str] = ()
) -> Request:
    """The request ``record`` (:func:`request_to_record`) describes, for a replay by ``spider``.

    ``dont_filter`` is set, managed meta keys are left out (a fresh retry
    state) and ``meta["dlq_id"]`` is ``dlq_id``.  Raises ValueError when the
    record cannot be replayed (its callback or errback was not a spider
    method, or is not one of this spider).
    """
    lost = [name for name in ("callback", "errback") if name in (record.get("dropped") or ())]
    if lost:
        raise ValueError(f"its {' and '.join(lost)} was not a method of the spider")
    data = {key: value for key, value in record.items() if key not in ("body_encoding", "dropped")}
    body = record.get("body") or ""
    data["body"] = base64.b64decode(body) if record.get("body_encoding") == "base64" else str(body).encode("utf-8")
    headers: dict[bytes, list[bytes]] = {}
    for key, values in (record.get("headers") or {}).items():
        values = values if isinstance(values, list) else [values]
        headers[str(key).encode("latin-1")] = [str(v).encode("latin-1") for v in values]
    data["headers"] = headers
    extra = frozenset(drop_meta)
    meta = {key: value for key, value in (record.get("meta") or {}).items() if not _managed(key, extra)}
    if dlq_id is not None:
        meta[DLQ_ID] = dlq_id
    data["meta"] = meta
    data["dont_filter"] = True
    try:
        return request_from_dict(data, spider=spider)
    except (TypeError, KeyError, AttributeError, ImportError) as e:
        raise ValueError(f"invalid request record: {' '.join(str(e).split())}") from None


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
        self.crawler.signals.send_catch_log(signal=dead_letter_queue_opened)

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



# --- the requeue middleware -------------------------------------------------------------------


class DeadLetterRequeueMiddleware:
    """With ``DLQ_REQUEUE``: replay dead letters instead of the spider's start requests.

    The selection is ``DLQ_REQUEUE_FILTER`` (spider, site, reason,
    failure_class, stage, ids, spider_args), always narrowed to this spider's
    name and, unless the filter names them, to its current ``-a`` arguments
    (``dead_letter_args``): a letter is only replayed by a spider made like
    the one that gave it up.  Each request is rebuilt with
    :func:`request_from_record` (``dont_filter``, fresh retry state,
    ``meta["dlq_id"]``).  When the callback of a replayed request has run to
    the end on a response below 400 and the request was not dead-lettered
    again, its dead letter is removed.  Without ``DLQ_REQUEUE`` the
    middleware is not loaded at all.
    """

    def __init__(self, crawler: Crawler, queue: DeadLetterQueue, filters: DeadLetterFilter) -> None:
        self.crawler = crawler
        self.queue = queue
        self.filters = filters

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not settings.getbool("DLQ_REQUEUE", defaults.DLQ_REQUEUE):
            raise NotConfigured
        filters = parse_filter(settings.get("DLQ_REQUEUE_FILTER", defaults.DLQ_REQUEUE_FILTER))
        queue = crawler.get_extension(DeadLetterQueue)
        if queue is None:
            raise ConfigError("DLQ_REQUEUE needs the dead-letter queue: DLQ_ENABLED and the DeadLetterQueue extension")
        return cls(crawler, queue, filters)

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """Ignore the spider's start requests; yield the selected dead letters, by id."""
        closer = getattr(start, "aclose", None)
        if closer is not None:
            await closer()
        spider = self.crawler.spider
        filters = replace(self.filters, spider=self.filters.spider or spider.name)
        if filters.spider_args is None:
            filters = replace(filters, spider_args=canonical_args(spider_args_of(spider)))
        logger.info("Requeueing dead letters instead of the start requests: %s", json.dumps(filters.to_dict()))
        stats = self.crawler.stats
        requeued = skipped = 0
        async for row in self._rows(filters):
            try:
                request = request_from_record(
                    json.loads(row["request"]), spider, dlq_id=int(row["id"]), drop_meta=self.queue.drop_meta
                )
            except ValueError as e:
                skipped += 1
                stats.inc_value("dlq/requeue_skipped")
                logger.warning("Dead letter %s (%s) cannot be replayed: %s", row["id"], row["url"], e)
                continue
            requeued += 1
            stats.inc_value("dlq/requeued")
            yield request
        level = logging.INFO if requeued else logging.WARNING
        logger.log(level, "Requeued %d dead letters (%d could not be replayed)", requeued, skipped)

    async def _rows(self, filters: DeadLetterFilter) -> AsyncIterator[dict[str, Any]]:
        store = self.queue.store
        if filters.ids is not None:
            ids = list(filters.ids)
            for start in range(0, len(ids), REQUEUE_PAGE):
                chunk = replace(filters, ids=tuple(ids[start : start + REQUEUE_PAGE]))
                for row in await maybe_deferred_to_future(self.queue.read(store.list, chunk, limit=None)):
                    yield row
            return
        last: int | None = None
        while True:
            rows = await maybe_deferred_to_future(
                self.queue.read(store.list, filters, limit=REQUEUE_PAGE, after_id=last)
            )
            for row in rows:
                yield row
            if len(rows) < REQUEUE_PAGE:
                return
            last = rows[-1]["id"]

    async def process_spider_output(self, response: Response, result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """Pass the output on; once a replayed request's callback has finished, it has recovered."""
        async for item in result:
            yield item
        request = getattr(response, "request", None)
        if request is not None and DLQ_ID in request.meta and response.status < 400:
            self.queue.request_recovered(request)
