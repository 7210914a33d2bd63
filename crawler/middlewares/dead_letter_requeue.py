"""Replaying dead letters instead of the start requests (``scrapy dlq requeue``).

:class:`DeadLetterRequeueMiddleware` is a spider middleware, loaded only with
``DLQ_REQUEUE = True``; it reads the dead-letter queue through the
:class:`extensions.dead_letters.DeadLetterQueue` extension's public methods.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Self

from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future

from crawler import defaults
from crawler.errors import ConfigError
from crawler.request_records import DLQ_ID, request_from_record
from extensions.dead_letters import DeadLetterQueue, parse_filter, spider_args_of
from storage.dead_letters import DeadLetterFilter, canonical_args

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

#: Dead letters read per query when requeueing.
REQUEUE_PAGE = 500


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
