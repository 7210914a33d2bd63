"""Crash-safe resume: a run's frontier in the database, so a killed crawl loses nothing.

Scrapy's ``JOBDIR`` is pause/resume, not crash recovery: its queue index is
written only on a clean shutdown, and rows a pipeline buffered are lost with
the process.  :class:`ResumeMiddleware` (a spider middleware) keeps each
run's *frontier* in the products' database (:mod:`storage.frontier`):

* every list and product request the crawl discovers is recorded
  ``pending`` (as a JSON record, :mod:`crawler.request_records`) in the same
  transaction that marks its list page ``done``; a list page is done once
  its callback has finished and, for a list-only catalogue, its items'
  rows have committed;
* a product request is ``done`` once its row committed (the store's
  ``items_stored`` report) or its dead letter did (``dead_letters_stored``),
  or a policy filtered it (``request_filtered``).

Records are buffered and written by one writer thread at least every
``RESUME_FLUSH_INTERVAL`` seconds.  A run is the spider and its ``-a``
arguments.  When it ends on its own (finish reason ``finished`` or a
``closespider_*`` limit) its frontier is deleted; killed (SIGKILL, a power
cut, a second Ctrl-C) or interrupted (Ctrl-C, SIGTERM), it stays open, and
**the same command resumes it**: instead of the start requests it issues
the pending requests again and skips the done ones (when found again on a
list page); products done before count in ``products/carried``.  What was
in flight or buffered when the process died is pending, so it is fetched
again: a product is never missing, and the products table's unique key
(site, key) stores it once.  With ``JOBDIR`` after a clean stop, Scrapy's
own queue resumes instead (:mod:`crawler.jobdir` discards a ``JOBDIR`` a
killed run left inconsistent).

Settings: ``RESUME_ENABLED``, ``RESUME_DISCARD`` (start afresh: close an
open run of the same command), ``RESUME_FLUSH_INTERVAL``.  Off for
``scrapy dlq requeue`` runs.  Stats: ``resume/run_id``, ``resume/attempt``,
``resume/reissued``, ``resume/unreplayable``, ``resume/skipped_done``,
``resume/skipped_reissued``, ``resume/recorded``, ``resume/done``,
``resume/write_failures``, ``products/carried``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

from scrapy import Request, signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.python.failure import Failure

from crawler import defaults
from crawler import signals as crawler_signals
from crawler.errors import ConfigError
from crawler.item_adapter import adapt, is_item
from crawler.outcome import ran_to_its_end
from crawler.request_records import request_from_record, request_to_record
from extensions.dead_letters import spider_args_of
from storage.dead_letters import canonical_args
from storage.engine import DatabaseError
from storage.frontier import FrontierEntry, FrontierStore
from storage.writer import FlushTimer, WriterThread, before_shutdown

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

#: ``request.meta`` key: the URL the request has in the frontier (the URL it was discovered
#: with, kept through redirects and retries).  Starts with "_": never stored in a record.
FRONTIER = "_frontier"
#: The stages whose requests the frontier records (``meta["stage"]``).
STAGES = ("list", "detail")
#: Buffered records written at once (a fuller buffer is written at once).
BATCH_SIZE = 2000
#: One compact encoder for the records (``json.dumps`` with options builds a new one per call).
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def _now() -> datetime:
    return datetime.now(UTC)


class ResumeMiddleware:
    """Records the run's frontier and resumes an open run (see the module docstring)."""

    def __init__(self, crawler: Crawler, store: FrontierStore, *, flush_interval: float, discard: bool) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.store = store
        self.discard = discard
        self._writer = WriterThread("frontier-writer")
        self._timer = FlushTimer(flush_interval, self._flush)
        self._run_id: int | None = None
        self._discovered: list[FrontierEntry] = []
        self._done: list[FrontierEntry] = []
        #: URLs done in an earlier attempt of this run, and pending ones issued again at start
        self._done_before: set[str] = set()
        self._reissued: set[str] = set()
        #: (site, url) of an item on its way to the database -> its request's frontier URL
        self._items: dict[tuple[str, str], str] = {}
        #: list pages waiting for their items' rows: frontier URL -> rows not yet committed
        self._list_items: dict[str, int] = {}
        #: those whose callback has finished (done when their count reaches 0)
        self._list_open: set[str] = set()
        #: dead letters on their way to the queue: request fingerprint -> frontier URL
        self._dead: dict[str, str] = {}
        self._await_dlq = False
        self._reason: str | None = None
        self._stopped = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not settings.getbool("RESUME_ENABLED", defaults.RESUME_ENABLED):
            raise NotConfigured
        if settings.getbool("DLQ_REQUEUE", defaults.DLQ_REQUEUE):
            raise NotConfigured  # a replay of dead letters is not a run to resume
        interval = defaults.get_number(settings, "RESUME_FLUSH_INTERVAL", float, 0.0, ConfigError)
        retries = defaults.get_number(settings, "STORE_RETRY_TIMES", int, 0, DatabaseError)
        retry_delay = defaults.get_number(settings, "STORE_RETRY_DELAY", float, 0.0, DatabaseError)
        store = FrontierStore(str(defaults.get(settings, "DATABASE_URL")), retries=retries, retry_delay=retry_delay)
        try:
            store.create_schema()
        except DatabaseError:
            store.close()
            raise
        mw = cls(crawler, store, flush_interval=interval, discard=settings.getbool("RESUME_DISCARD"))
        connect = crawler.signals.connect
        connect(mw.items_stored, signal=crawler_signals.items_stored)
        connect(mw.dead_letter_queue_opened, signal=crawler_signals.dead_letter_queue_opened)
        connect(mw.request_dead_lettered, signal=crawler_signals.request_dead_lettered)
        connect(mw.dead_letters_stored, signal=crawler_signals.dead_letters_stored)
        connect(mw.request_filtered, signal=crawler_signals.request_filtered)
        connect(mw.spider_closed, signal=signals.spider_closed)
        connect(mw.engine_stopped, signal=signals.engine_stopped)
        # a forced stop (second Ctrl-C) skips engine_stopped: the buffer still goes to the
        # writer, which runs what it was given before the process exits
        before_shutdown(mw._flush_at_shutdown)
        return mw

    # -- start: a new run, or the pending requests of an open one -----------------------
    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        spider = self.crawler.spider
        args = canonical_args(spider_args_of(spider))
        state = await maybe_deferred_to_future(
            self._writer.run(self.store.open_run, spider.name, args, _now(), discard=self.discard)
        )
        self._run_id = state.run_id
        self.stats.set_value("resume/run_id", state.run_id)
        self.stats.set_value("resume/attempt", state.attempts)
        if not state.resumed or not (state.pending or state.done):
            # a new run, or one killed before it recorded anything: the start requests
            async for output in start:
                yield self._track_start(output)
            return
        self._done_before = state.done
        if state.done_products:
            self.stats.inc_value("products/carried", state.done_products)
        scheduler = self.crawler.engine.scheduler
        if scheduler.has_pending_requests():
            # JOBDIR after a clean stop: Scrapy's queue holds what was pending
            logger.info(
                "Resuming run %d (attempt %d) from the JOBDIR queue: %d products done before",
                state.run_id, state.attempts, state.done_products,
            )  # fmt: skip
            async for output in start:
                yield self._track_start(output)
            return
        closer = getattr(start, "aclose", None)
        if closer is not None:
            await closer()
        lists = sum(1 for entry in state.pending if entry.stage == "list")
        logger.info(
            "Resuming run %d (attempt %d) instead of the start requests: %d list pages and %d products"
            " pending, %d products done before (RESUME_DISCARD=True starts afresh)",
            state.run_id, state.attempts, lists, len(state.pending) - lists, state.done_products,
        )  # fmt: skip
        for entry in state.pending:
            try:
                request = request_from_record(json.loads(entry.request or "{}"), spider)
            except ValueError as e:
                self.stats.inc_value("resume/unreplayable")
                logger.warning("Pending request %s cannot be issued again: %s", entry.url, e)
                continue
            request.meta[FRONTIER] = entry.url
            self._reissued.add(entry.url)
            self.stats.inc_value("resume/reissued")
            yield request

    def _track_start(self, output: Any) -> Any:
        if isinstance(output, Request) and output.meta.get("stage") in STAGES:
            output.meta[FRONTIER] = output.url
            self._add(discovered=[self._entry(output)])
        return output

    # -- the spider's output: what each page discovered --------------------------------
    async def process_spider_output(self, response: Response, result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        request = response.request
        key = request.meta.get(FRONTIER) if request is not None else None
        stage = request.meta.get("stage") if request is not None else None
        discovered: list[FrontierEntry] = []
        list_page = stage == "list" and key is not None
        async for output in result:
            if isinstance(output, Request):
                if output.meta.get("stage") in STAGES:
                    url = output.url
                    if url in self._done_before:
                        self.stats.inc_value("resume/skipped_done")
                        continue
                    if url in self._reissued:
                        self.stats.inc_value("resume/skipped_reissued")
                        continue
                    output.meta[FRONTIER] = url
                    discovered.append(self._entry(output))
            elif key is not None and is_item(output):
                adapter = adapt(output)
                site = adapter.get("site") or self.crawler.spider.name
                self._items[(site, adapter.get("url") or "")] = key
                if list_page:  # a list-only catalogue: the page is done once its items committed
                    self._list_items[key] = self._list_items.get(key, 0) + 1
            yield output
        # the callback ran to its end: what it found is known
        if list_page:
            assert key is not None
            if self._list_items.get(key, 0) > 0:
                self._list_open.add(key)  # done when its last item commits
                self._add(discovered=discovered)
            else:
                self._list_items.pop(key, None)
                self._add(discovered=discovered, done=[FrontierEntry(key, stage)])
        elif discovered:
            self._add(discovered=discovered)

    def _entry(self, request: Request) -> FrontierEntry:
        record = request_to_record(request, self.crawler.spider)
        return FrontierEntry(request.url, request.meta.get("stage"), _COMPACT.encode(record))

    # -- outcomes that committed ----------------------------------------------------------
    def items_stored(
        self, saved: list[tuple[str, str]], rejected: list[tuple[str, str]], failed: list[tuple[str, str]], **_: Any
    ) -> None:
        done: list[FrontierEntry] = []
        for place in (*saved, *rejected):
            key = self._items.pop(place, None)
            if key is None:
                continue
            left = self._list_items.get(key)
            if left is None:
                done.append(FrontierEntry(key, "detail"))
                continue
            self._list_items[key] = left = left - 1
            if left <= 0 and key in self._list_open:  # its callback has finished too
                del self._list_items[key]
                self._list_open.discard(key)
                done.append(FrontierEntry(key, "list"))
        for place in failed:
            key = self._items.pop(place, None)  # not stored: stays pending, fetched again on resume
            if key is not None and key in self._list_items:
                self._list_items[key] = 10**9  # never done in this run
        if done:
            self._add(done=done)

    def dead_letter_queue_opened(self) -> None:
        self._await_dlq = True

    def request_dead_lettered(self, request: Request, **_: Any) -> None:
        key = request.meta.get(FRONTIER)
        if key is None:
            return
        if not self._await_dlq:
            self._add(done=[FrontierEntry(key, request.meta.get("stage"))])
            return
        self._dead[self.crawler.request_fingerprinter.fingerprint(request).hex()] = key

    def dead_letters_stored(self, stored: list[str], failed: list[str], **_: Any) -> None:
        done = [FrontierEntry(key, None) for fp in stored if (key := self._dead.pop(fp, None)) is not None]
        for fp in failed:
            self._dead.pop(fp, None)
        if done:
            self._add(done=done)

    def request_filtered(self, request: Request, **_: Any) -> None:
        key = request.meta.get(FRONTIER)
        if key is not None:
            self._add(done=[FrontierEntry(key, request.meta.get("stage"))])

    # -- the end of the run -----------------------------------------------------------------
    def spider_closed(self, reason: str, **_: Any) -> None:
        """The store and the dead-letter queue have reported their last commits: write them."""
        self._reason = reason
        self._flush()

    def engine_stopped(self) -> None:
        """After the last commits: write what is buffered; close the run if it ended on its own."""
        if self._stopped:
            return
        self._stopped = True
        self._flush()
        reason = self._reason or ""
        if self._run_id is not None:
            if ran_to_its_end(reason):
                self._writer.run(self.store.close_run, self._run_id, _now()).addErrback(self._failed, "close the run")
            else:
                logger.warning(
                    "Run %d stopped before its end (%s): the same command resumes it", self._run_id, reason or "killed"
                )
        self._writer.stop()  # runs what is queued, then joins
        self.store.close()

    def _flush_at_shutdown(self) -> None:
        if not self._stopped:
            self._flush()

    # -- buffering --------------------------------------------------------------------------
    def _add(self, discovered: Sequence[FrontierEntry] = (), done: Sequence[FrontierEntry] = ()) -> None:
        self._discovered.extend(discovered)
        self._done.extend(done)
        size = len(self._discovered) + len(self._done)
        if size >= BATCH_SIZE:
            self._flush()
        elif size and not self._timer.armed:
            self._timer.arm()

    def _flush(self) -> None:
        self._timer.cancel()
        if self._run_id is None or not (self._discovered or self._done):
            return
        discovered, done = self._discovered, self._done
        self._discovered, self._done = [], []
        self.stats.inc_value("resume/recorded", len(discovered))
        self.stats.inc_value("resume/done", len(done))
        d = self._writer.run(self.store.record, self._run_id, discovered, done, _now())
        d.addErrback(self._failed, f"record {len(discovered)} discovered and {len(done)} done requests")

    def _failed(self, failure: Failure, what: str) -> None:
        self.stats.inc_value("resume/write_failures")
        logger.error("Resume: cannot %s: %s (a resumed run fetches them again)", what, failure.getErrorMessage())
