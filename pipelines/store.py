"""Item pipeline saving products (and rejected pages) to the database.

``StorePipeline`` (order 800, after the ValidationPipeline) turns each item
into a :class:`~storage.products.ProductRow` (valid product) or a
:class:`~storage.products.RejectRow` (``reject_reason`` set, or not
validated at all: the item is then dropped), buffers them and hands batches
of ``STORE_BATCH_SIZE`` rows to ONE writer thread, so the reactor never waits
on the database.  A partial batch is written after ``STORE_FLUSH_INTERVAL``
seconds; when more than ``STORE_MAX_PENDING_BATCHES`` batches wait for the
writer, item processing waits too (backpressure).  Closing the spider (normal
finish or the first Ctrl-C) writes the last batch and waits for every write; a
forced stop (a second Ctrl-C) still writes the buffered rows before the process exits.

Settings (defaults in ``crawler/defaults.py``): DATABASE_URL, STORE_BATCH_SIZE,
STORE_FLUSH_INTERVAL, STORE_MAX_PENDING_BATCHES, STORE_RETRY_TIMES,
STORE_RETRY_DELAY.  Stats: ``store/inserted``, ``store/updated``,
``store/unchanged``, ``store/changed`` (products whose content changed: their
previous version went to ``product_versions``) and ``store/changed_fields/<field>``
(products whose field changed), ``store/rejected``, ``store/isolated``, ``store/failed``,
``store/batches``, ``store/retries``, ``store/write_seconds`` and
``store/backpressure_waits`` (items that waited for the writer).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import DropItem
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from twisted.internet.defer import Deferred, DeferredList
from twisted.python.failure import Failure

from crawler import defaults
from crawler.item_adapter import adapt
from crawler.items import canonical_json, hash_text
from crawler.signals import item_store_opened, items_stored
from storage.engine import DatabaseError
from storage.products import BatchResult, ProductRow, ProductStore, RejectRow, StoreWriteError
from storage.writer import FlushTimer, WriterThread, before_shutdown

if TYPE_CHECKING:
    from typing import Self

    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

NOT_VALIDATED = "not validated (is ValidationPipeline enabled?)"
#: Key of the rejection's details (field, problem, offending value) in a reject row's ``data``.
REJECT_DETAILS_KEY = "_reject"
#: Log level of the "Dropped: <reason>" line of rejected pages.
DROP_LOG_LEVEL = "INFO"
#: Reason the spider is closed with when the database cannot be written to.
CLOSE_REASON = "store_error"

STAT_KEYS = (
    "inserted",
    "updated",
    "unchanged",
    "changed",
    "rejected",
    "isolated",
    "failed",
    "batches",
    "retries",
)


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _seen_at(crawled_at: Any) -> datetime:
    """``crawled_at`` (ISO-8601 text or datetime; naive = UTC), else now."""
    if isinstance(crawled_at, datetime):
        moment = crawled_at
    elif isinstance(crawled_at, str) and crawled_at:
        try:
            moment = datetime.fromisoformat(crawled_at)
        except ValueError:
            return datetime.now(UTC)
    else:
        return datetime.now(UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class StorePipeline:
    """Saves validated products and rejected pages, in batches, from one writer thread."""

    def __init__(
        self,
        crawler: Crawler,
        store: ProductStore,
        *,
        batch_size: int = defaults.STORE_BATCH_SIZE,
        flush_interval: float = defaults.STORE_FLUSH_INTERVAL,
        max_pending: int = defaults.STORE_MAX_PENDING_BATCHES,
    ) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.store = store
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self._products: list[ProductRow] = []
        self._rejects: list[RejectRow] = []
        self._timer = FlushTimer(self.flush_interval, self._flush)
        self._writer = WriterThread("store-writer")
        self._pending = 0  # batches handed to the writer, not finished
        self._inflight: set[Deferred[None]] = set()
        self._room_waiters: list[Deferred[None]] = []
        self._closing = False
        self._closed = False
        self._warned_not_validated = False
        self._asked_to_close = False
        self._totals = dict.fromkeys(STAT_KEYS, 0)
        self._write_seconds = 0.0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        """Open the database and create the schema now: a bad DATABASE_URL fails before any request.

        Raises :class:`~storage.engine.DatabaseError` (one line) when the
        database cannot be used or a STORE_* setting is invalid.
        """
        url = str(defaults.get(crawler.settings, "DATABASE_URL"))
        batch_size = defaults.get_number(crawler.settings, "STORE_BATCH_SIZE", int, 1, DatabaseError)
        flush_interval = defaults.get_number(crawler.settings, "STORE_FLUSH_INTERVAL", float, 0.0, DatabaseError)
        max_pending = defaults.get_number(crawler.settings, "STORE_MAX_PENDING_BATCHES", int, 1, DatabaseError)
        retries = defaults.get_number(crawler.settings, "STORE_RETRY_TIMES", int, 0, DatabaseError)
        retry_delay = defaults.get_number(crawler.settings, "STORE_RETRY_DELAY", float, 0.0, DatabaseError)
        store = ProductStore(url, retries=retries, retry_delay=retry_delay)
        try:
            store.create_schema()
        except DatabaseError:
            store.close()
            raise
        pipeline = cls(
            crawler, store, batch_size=batch_size, flush_interval=flush_interval, max_pending=max_pending
        )
        crawler.signals.connect(pipeline.engine_stopped, signal=signals.engine_stopped)
        return pipeline

    # -- Scrapy pipeline methods (Scrapy 2.19 style: no spider argument)

    def open_spider(self) -> None:
        """Start the writer thread and zero the stats."""
        for name in (*STAT_KEYS, "backpressure_waits"):
            self.stats.set_value(f"store/{name}", 0)
        self.stats.set_value("store/write_seconds", 0.0)
        self._writer.start()
        before_shutdown(self._flush_at_forced_stop)
        self.crawler.signals.send_catch_log(signal=item_store_opened)

    async def process_item(self, item: Any) -> Any:
        """Buffer the item's row; drop rejected items (after buffering them); wait when the writer lags."""
        adapter = adapt(item)
        reason = adapter.get("reject_reason")
        key = adapter.get("key")
        fields = adapter.get("fields")
        site = adapter.get("site") or self._spider_name()
        url = adapter.get("url") or ""
        seen = _seen_at(adapter.get("crawled_at"))
        drop: str | None = None
        if reason:
            drop = _one_line(reason)
            data = dict(adapter.get("raw") or {})
            details = adapter.get("reject_details")
            if details:
                data[REJECT_DETAILS_KEY] = details
            self._add_reject(RejectRow(site, url, key or None, drop, data, seen))
        elif key and fields is not None:
            try:
                data = canonical_json(fields)
            except (TypeError, ValueError, RecursionError) as exc:
                drop = f"store error: fields are not JSON: {_one_line(str(exc))}"
                self._add_reject(RejectRow(site, url, key, drop, {"fields": repr(fields)}, seen))
            else:
                # serialised once: the stored text is the hashed text
                digest = hash_text(data)
                adapter["content_hash"] = digest
                page, position = adapter.get("list_page"), adapter.get("list_position")
                self._add_product(ProductRow(site, key, url, data, digest, page, position, seen))
        else:
            drop = NOT_VALIDATED
            if not self._warned_not_validated:
                self._warned_not_validated = True
                logger.warning("Item without key/fields nor reject_reason: storing it as rejected (%s)", drop)
            self._add_reject(RejectRow(site, url, key or None, drop, adapter.get("raw") or {}, seen))
        if self._pending > self.max_pending:
            self.stats.inc_value("store/backpressure_waits")
            await maybe_deferred_to_future(self._wait_for_room())
        if drop is not None:
            raise DropItem(drop, log_level=DROP_LOG_LEVEL)
        return item

    async def close_spider(self) -> None:
        """Write the last partial batch, wait for every queued write, stop the writer thread."""
        if self._closed:
            return
        self._closing = True
        self._flush()
        if self._inflight:
            await maybe_deferred_to_future(DeferredList(list(self._inflight), consumeErrors=True))
        self._release_waiters()
        self._writer.stop()
        self.store.close()
        self._closed = True
        t = self._totals
        logger.info(
            "Store: %d inserted, %d updated, %d unchanged, %d rejected, %d isolated (store errors),"
            " %d failed, in %d batches (%.2f s writing, %d retries) to %s",
            t["inserted"],
            t["updated"],
            t["unchanged"],
            t["rejected"],
            t["isolated"],
            t["failed"],
            t["batches"],
            self._write_seconds,
            t["retries"],
            self.store.url_shown,
        )

    def _flush_at_forced_stop(self) -> None:
        """The reactor stops before the spider closed (a second Ctrl-C): write what was parsed."""
        if self._closing or self._closed:
            return
        self._closing = True
        rows = len(self._products) + len(self._rejects)
        if rows:
            logger.warning("Store: forced stop: writing the %d buffered rows before exiting", rows)
        self._flush()

    def engine_stopped(self) -> None:
        """Signal handler: make sure the thread is stopped and the connections closed."""
        self._writer.stop()
        self.store.close()

    # -- buffering

    def _spider_name(self) -> str:
        spider = getattr(self.crawler, "spider", None)
        return getattr(spider, "name", None) or ""

    def _add_product(self, row: ProductRow) -> None:
        self._products.append(row)
        self._buffered()

    def _add_reject(self, row: RejectRow) -> None:
        self._rejects.append(row)
        self._buffered()

    def _buffered(self) -> None:
        size = len(self._products) + len(self._rejects)
        if size >= self.batch_size:
            self._flush()
        elif size == 1 and not self._closing:
            self._timer.arm()

    def _flush(self) -> None:
        """Hand the buffered rows to the writer thread."""
        self._timer.cancel()
        if not self._products and not self._rejects:
            return
        products, rejects = self._products, self._rejects
        self._products, self._rejects = [], []
        if self._closed:  # an item after close_spider(): write it here rather than lose it
            logger.warning("Store: %d rows arrived after the spider closed", len(products) + len(rejects))
            try:
                self._written(self.store.write_batch(products, rejects), products, rejects)
            except Exception:
                self._write_failed(Failure(), len(products) + len(rejects), products, rejects)
            return
        self._pending += 1
        rows = len(products) + len(rejects)
        d: Deferred[Any] = self._writer.run(self.store.write_batch, products, rejects)
        d.addCallbacks(
            self._written, self._write_failed, callbackArgs=(products, rejects), errbackArgs=(rows, products, rejects)
        )
        d.addBoth(self._batch_done)
        self._inflight.add(d)

    def _wait_for_room(self) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        self._room_waiters.append(waiter)
        return waiter

    def _release_waiters(self) -> None:
        waiters, self._room_waiters = self._room_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    # -- results (reactor thread)

    def _batch_done(self, _result: Any) -> None:
        self._pending -= 1
        for d in [d for d in self._inflight if d.called]:
            self._inflight.discard(d)
        if self._pending <= self.max_pending:
            self._release_waiters()

    def _count(self, result: BatchResult) -> None:
        counts = {
            "inserted": result.inserted,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "changed": result.changed,
            "rejected": result.rejected,
            "isolated": result.isolated,
            "failed": result.failed,
            "retries": result.retries,
            "batches": 1,
        }
        for name, value in counts.items():
            if value:
                self._totals[name] += value
                self.stats.inc_value(f"store/{name}", value)
        for name, value in result.changed_fields.items():
            self.stats.inc_value(f"store/changed_fields/{name}", value)
        self._write_seconds += result.seconds
        self.stats.inc_value("store/write_seconds", result.seconds, start=0.0)

    def _report(self, result: BatchResult | None, products: list[ProductRow], rejects: list[RejectRow]) -> None:
        """Send ``items_stored``: each row of the batch saved, rejected or failed, as committed."""
        saved_keys = result.saved_keys if result is not None else set()
        rejected_urls = result.rejected_urls if result is not None else set()
        saved: list[tuple[str, str]] = []
        rejected: list[tuple[str, str]] = []
        failed: list[tuple[str, str]] = []
        for row in products:
            place = (row.site, row.url)
            if (row.site, row.key) in saved_keys:
                saved.append(place)
            elif place in rejected_urls:
                rejected.append(place)  # refused by the database, stored as a reject
            else:
                failed.append(place)
        for rrow in rejects:
            place = (rrow.site, rrow.url)
            (rejected if place in rejected_urls else failed).append(place)
        self.crawler.signals.send_catch_log(signal=items_stored, saved=saved, rejected=rejected, failed=failed)

    def _written(self, result: BatchResult, products: list[ProductRow], rejects: list[RejectRow]) -> None:
        self._count(result)
        self._report(result, products, rejects)
        logger.debug(
            "Stored a batch in %.3f s: %d inserted, %d updated, %d unchanged, %d rejected,"
            " %d isolated, %d failed, %d retries",
            result.seconds,
            result.inserted,
            result.updated,
            result.unchanged,
            result.rejected,
            result.isolated,
            result.failed,
            result.retries,
        )
        for message in result.errors:
            logger.warning("Store: %s", message)

    def _write_failed(
        self, failure: Failure, rows: int, products: list[ProductRow], rejects: list[RejectRow]
    ) -> None:
        error = failure.value
        self._report(error.result if isinstance(error, StoreWriteError) else None, products, rejects)
        if isinstance(error, StoreWriteError):
            self._count(error.result)
            lost = error.unwritten
            logger.error("Store: %d rows of a batch not stored: %s", lost, error)
        else:
            lost = rows
            logger.error(
                "Store: %d rows of a batch not stored: unexpected error", lost, exc_info=_exc_info(failure)
            )
        self._totals["failed"] += lost
        self.stats.inc_value("store/failed", lost)
        self._close_spider_on_error()

    def _close_spider_on_error(self) -> None:
        """The database cannot be written to: stop crawling pages that would not be saved."""
        if self._closing or self._asked_to_close:
            return
        engine = getattr(self.crawler, "engine", None)
        if engine is None or getattr(self.crawler, "spider", None) is None:
            return
        self._asked_to_close = True
        d = deferred_from_coro(engine.close_spider_async(reason=CLOSE_REASON))
        if isinstance(d, Deferred):
            d.addErrback(lambda f: logger.error("Store: cannot close the spider: %s", f.getErrorMessage()))



def _exc_info(failure: Failure) -> tuple[Any, Any, Any]:
    """``exc_info`` of a Twisted ``Failure``, for ``logger.error(..., exc_info=...)``."""
    return (failure.type, failure.value, failure.getTracebackObject())
