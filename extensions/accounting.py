"""Nothing-lost accounting: every product the crawl discovers ends somewhere.

A *product* is a detail-stage request (``meta["stage"] == "detail"``) the
first time it is scheduled; it gets ``meta["product_ref"]``, which its
retries and parked copies keep.  In a list-only catalogue (no detail pages)
each item a list page yields is a product, discovered when it is scraped.
Each product ends in exactly one bucket:

* ``saved``: its row *committed* in the products table;
* ``rejected``: its row committed in ``rejected_items`` (invalid page, or a
  product row the database refused);
* ``failed``: its row could not be written (the store's ``items_stored``
  report after the batch);
* ``dead_lettered``: it was given up and its dead letter *committed* in the
  dead-letter queue (``dead_letters_stored``; a dead letter that could not be
  written makes it ``failed``);
* ``duplicates``: the dupefilter dropped it (another link to the same page);
* ``filtered``: a policy ignored it (robots.txt, offsite);
* ``pending``: left in the scheduler (queued, waiting for a retry's backoff
  or in a gate's line) when the crawl stopped early, *read from the
  scheduler* at close (:meth:`GatedScheduler.pending_requests
  <crawler.scheduler.GatedScheduler.pending_requests>`), not computed as the
  rest: a product with no outcome that is not there either is lost, even on
  an early stop.  (The engine lets requests in flight finish before it
  closes, and the store commits what it holds, so those end on their own.)

With the store pipeline open (``item_store_opened``) an item that passed the
pipelines is only *on its way* to the database: it ends when the store
reports its batch (``items_stored``, after the transaction), so
``products/saved`` counts committed rows.  Without a store, ``item_scraped``
ends it as saved.

The verdict is computed when the engine stops, after every ``spider_closed``
handler (the store's and the dead-letter queue's last writes) has finished.
It checks
``discovered == saved + rejected + dead_lettered + duplicates + filtered + failed + pending``.
On a crawl that finished, nothing may be pending: a product with no outcome
is *lost* (counted in ``products/lost``, its URLs logged) and the identity
fails.  The terms and the verdict are stats (``products/*``), so they are in
the JSON stats dump.  A detail callback that raises is dead-lettered with
reason ``callback_error``, so it can be replayed.

Public API for other components: :meth:`ProductAccounting.count`,
:meth:`~ProductAccounting.outstanding`, :meth:`~ProductAccounting.ended`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Hashable
from typing import Any, Self

from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.http import Response
from twisted.python.failure import Failure as TwistedFailure

from crawler import signals as crawler_signals
from crawler.failures import PERMANENT, Failure
from crawler.item_adapter import adapt, is_item
from crawler.middlewares import give_up

logger = logging.getLogger(__name__)

REF = "product_ref"
TERMS = ("saved", "rejected", "dead_lettered", "duplicates", "filtered", "failed", "pending")


class ProductAccounting:
    """Count every product into one outcome and check the identity at close."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self._ids = itertools.count(1)
        self._outstanding: dict[int, str] = {}  # product_ref -> url
        self._counts = dict.fromkeys(("discovered", *TERMS), 0)
        #: a store is open: items end when their rows commit (``items_stored``), not when scraped
        self._await_commit = False
        self._store_commits = CommitReports()  # keyed by the item's (site, url)
        #: a dead-letter queue is open: dead letters end products when they commit (``dead_letters_stored``)
        self._await_dlq = False
        self._dlq_commits = CommitReports()  # keyed by the request fingerprint
        self._reason: str | None = None
        #: refs whose outcome is decided and waits for a commit report: no other signal ends them
        self._settling: set[int] = set()
        self._left: set[Hashable] | None = None  # product refs the scheduler held when it closed

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        ext = cls(crawler)
        connect = crawler.signals.connect
        connect(ext.request_scheduled, signal=signals.request_scheduled)
        connect(ext.request_dropped, signal=signals.request_dropped)
        connect(ext.item_scraped, signal=signals.item_scraped)
        connect(ext.item_dropped, signal=signals.item_dropped)
        connect(ext.spider_error, signal=signals.spider_error)
        connect(ext.dead_lettered, signal=crawler_signals.request_dead_lettered)
        connect(ext.filtered, signal=crawler_signals.request_filtered)
        connect(ext.item_store_opened, signal=crawler_signals.item_store_opened)
        connect(ext.items_stored, signal=crawler_signals.items_stored)
        connect(ext.dead_letter_queue_opened, signal=crawler_signals.dead_letter_queue_opened)
        connect(ext.dead_letters_stored, signal=crawler_signals.dead_letters_stored)
        connect(ext.engine_stopped, signal=signals.engine_stopped)
        connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    # -- public API (progress, the adaptive controller, metrics read these) ----
    def count(self, term: str) -> int:
        """Products counted so far in ``term`` (``"discovered"`` or one of :data:`TERMS`)."""
        return self._counts[term]

    def outstanding(self) -> int:
        """Products discovered that have no outcome yet (queued, waiting or in flight)."""
        return len(self._outstanding)

    def ended(self, terms: tuple[str, ...] = TERMS) -> int:
        """Products that ended in one of ``terms`` (all outcomes by default)."""
        return sum(self._counts[t] for t in terms)

    # -- events ---------------------------------------------------------------
    def request_scheduled(self, request: Request, spider: Spider) -> None:
        if request.meta.get("stage") != "detail" or REF in request.meta:
            return
        ref = next(self._ids)
        request.meta[REF] = ref
        self._outstanding[ref] = request.url
        self._count("discovered")

    def request_dropped(self, request: Request, spider: Spider) -> None:
        self._end(request, "duplicates")

    def item_scraped(self, item: Any, response: Response, spider: Spider) -> None:
        self._item_ended(item, response, "saved")

    def item_dropped(self, item: Any, response: Response, exception: BaseException, spider: Spider) -> None:
        rejected = bool(adapt(item).get("reject_reason")) if is_item(item) else False
        if rejected or _from_list_page(response):
            self._item_ended(item, response, "rejected")
            return
        if not self._end(response.request, "dead_lettered"):
            return
        if not rejected:  # dropped by some other pipeline: keep it replayable
            give_up(self.crawler, response.request, Failure(PERMANENT, "item_dropped"), attempts=1, exception=exception)

    def spider_error(self, failure: TwistedFailure, response: Response, spider: Spider) -> None:
        request = response.request
        if request is None or request.meta.get(REF) not in self._outstanding:
            return
        give_up(self.crawler, request, Failure(PERMANENT, "callback_error"), attempts=1, exception=failure.value)

    def item_store_opened(self) -> None:
        self._await_commit = True

    def items_stored(
        self, saved: list[tuple[str, str]], rejected: list[tuple[str, str]], failed: list[tuple[str, str]], **_: Any
    ) -> None:
        """A batch committed (or failed): end the products whose rows it held."""
        for places, term in ((saved, "saved"), (rejected, "rejected"), (failed, "failed")):
            for place in places:
                self._reported(self._store_commits, place, term)

    def dead_letter_queue_opened(self) -> None:
        self._await_dlq = True

    def dead_lettered(self, request: Request, **kwargs: Any) -> None:
        if not self._await_dlq:
            self._end(request, "dead_lettered")
            return
        ref = request.meta.get(REF)
        if ref is None or ref not in self._outstanding or ref in self._settling:
            return
        self._settle(self._dlq_commits, self.crawler.request_fingerprinter.fingerprint(request).hex(), ref)

    def dead_letters_stored(self, stored: list[str], failed: list[str], **_: Any) -> None:
        """A batch of dead letters committed (or failed): end the products they hold."""
        for fingerprints, term in ((stored, "dead_lettered"), (failed, "failed")):
            for fingerprint in fingerprints:
                self._reported(self._dlq_commits, fingerprint, term)

    def filtered(self, request: Request, **kwargs: Any) -> None:
        self._end(request, "filtered")

    def spider_closed(self, spider: Spider, reason: str) -> None:
        self._reason = reason
        # the scheduler closed before spider_closed: what it held is what the crawl left
        pending_requests = getattr(self.crawler.engine.scheduler, "pending_requests", None)
        if pending_requests is not None:
            self._left = {request.meta.get(REF) for request in pending_requests()} - {None}

    def engine_stopped(self) -> None:
        """The verdict, once every ``spider_closed`` handler has finished (the last writes committed)."""
        reason = self._reason
        leftover = len(self._outstanding)
        lost = 0
        if reason == "finished":
            lost = leftover
        elif self._left is None:  # a scheduler that cannot say what it holds: all that is left is pending
            self._counts["pending"] = leftover
        else:
            pending = [ref for ref in self._outstanding if ref in self._left]
            self._counts["pending"] = len(pending)
            lost = leftover - len(pending)
            for ref in pending:
                del self._outstanding[ref]  # the rest, if any, are lost: named below
        self.stats.set_value("products/pending", self._counts["pending"])
        self.stats.set_value("products/lost", lost)
        c = self._counts
        total = sum(c[t] for t in TERMS)
        holds = c["discovered"] == total and lost == 0
        terms = " + ".join(f"{t} {c[t]}" for t in TERMS)
        equation = f"discovered {c['discovered']} {'==' if c['discovered'] == total else '!='} {terms}"
        self.stats.set_value("products/identity", equation)
        self.stats.set_value("products/identity_holds", holds)
        if holds:
            logger.info("Nothing lost: %s", equation)
        else:
            sample = ", ".join(list(self._outstanding.values())[:5])
            logger.error("Products unaccounted for (%d lost): %s; e.g. %s", lost, equation, sample)

    # -- internals --------------------------------------------------------------
    def _item_ended(self, item: Any, response: Response, term: str) -> None:
        """An item passed the pipelines (``saved``) or was stored as a reject: end it now, or at its commit."""
        if _from_list_page(response):  # a list-only catalogue's card: discovered here
            ref = next(self._ids)
            self._outstanding[ref] = getattr(response, "url", "")
            self._count("discovered")
        else:
            request = response.request if response is not None else None
            ref = request.meta.get(REF) if request is not None else None
            if ref is None or ref not in self._outstanding or ref in self._settling:
                return
        if not self._await_commit:
            self._end_ref(ref, term)
            return
        adapter = adapt(item) if is_item(item) else None
        place = (str(adapter.get("site") or ""), str(adapter.get("url") or "")) if adapter else ("", "")
        self._settle(self._store_commits, place, ref)

    def _settle(self, commits: CommitReports, key: Hashable, ref: int) -> None:
        """``ref``'s outcome waits for the commit report of ``key`` (or takes the one already there)."""
        term = commits.wait(key, ref)
        if term is None:
            self._settling.add(ref)
        else:
            self._end_ref(ref, term)

    def _reported(self, commits: CommitReports, key: Hashable, term: str) -> None:
        ref = commits.report(key, term)
        if ref is not None:
            self._end_ref(ref, term)

    def _end_ref(self, ref: int, term: str) -> None:
        self._settling.discard(ref)
        if self._outstanding.pop(ref, None) is not None:
            self._count(term)

    def _count(self, term: str) -> None:
        self._counts[term] += 1
        self.stats.inc_value(f"products/{term}")

    def _end(self, request: Request | None, term: str) -> bool:
        """Record the outcome of a product once; False if not an outstanding product."""
        if request is None:
            return False
        ref = request.meta.get(REF)
        if ref is None or ref in self._settling or self._outstanding.pop(ref, None) is None:
            return False
        self._count(term)
        return True


class CommitReports:
    """Products waiting for a commit report, matched by a key; reports that come first wait for them.

    A product's outcome is decided when its item (or dead letter) is handed to a
    writer, and known once the writer reports its batch.  The two signals can
    come in either order, and several products can share a key.
    """

    def __init__(self) -> None:
        self._refs: dict[Hashable, list[int]] = {}
        self._terms: dict[Hashable, list[str]] = {}

    def wait(self, key: Hashable, ref: int) -> str | None:
        """Wait for ``key``'s report: None, or the outcome a report already gave."""
        term = _take(self._terms, key)
        if term is None:
            _put(self._refs, key, ref)
        return term

    def report(self, key: Hashable, term: str) -> int | None:
        """``key`` ended as ``term``: the product waiting for it, or None (kept for the product to come)."""
        ref = _take(self._refs, key)
        if ref is None:
            _put(self._terms, key, term)
        return ref


def _take(queues: dict[Hashable, list[Any]], key: Hashable) -> Any:
    queue = queues.get(key)
    if not queue:
        return None
    value = queue.pop(0)
    if not queue:
        del queues[key]
    return value


def _put(queues: dict[Hashable, list[Any]], key: Hashable, value: Any) -> None:
    queues.setdefault(key, []).append(value)


def _from_list_page(response: Response | None) -> bool:
    """Whether an item came from a list page (a list-only catalogue's card)."""
    request = getattr(response, "request", None)
    return request is not None and request.meta.get("stage") == "list"
