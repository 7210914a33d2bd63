"""Scrapy's downloader with the per-slot concurrency limit enforced.

In Scrapy 2.19, ``Downloader._process_queue`` starts each queued request with
``_schedule_coro(self._wait_for_download(...))`` and only the coroutine,
once it runs, adds the request to ``slot.transferring``.  The loop
``while slot.queue and slot.free_transfer_slots() > 0`` therefore sees no
request transferring and starts the whole queue at once: a slot's
``concurrency`` (``CONCURRENT_REQUESTS_PER_DOMAIN``, ``DOWNLOAD_SLOTS`` and
everything that adapts it) is not enforced; only ``CONCURRENT_REQUESTS`` is.
Seen on the demo shop: ``CONCURRENT_REQUESTS_PER_DOMAIN = 1`` with 15
requests transferring at once.

:class:`SlotLimitedDownloader` counts a request as transferring when it is
taken from the slot queue, before the coroutine is scheduled.  ``_download``
adds it again (a set: no change) and removes it when done, as before.

It also lets a slot be paused (:meth:`SlotLimitedDownloader.pause_slot`):
a server's ``Retry-After`` holds the domain's requests in the scheduler, and
the few already handed to the downloader wait in the slot's queue until the
pause ends instead of going out during it.

Enabled with ``DOWNLOADER = "crawler.downloader.SlotLimitedDownloader"``.
"""

from __future__ import annotations

from time import monotonic

from scrapy.core.downloader import Downloader, Slot
from scrapy.crawler import Crawler
from scrapy.utils.asyncio import call_later
from scrapy.utils.defer import _schedule_coro


class SlotLimitedDownloader(Downloader):
    """:class:`scrapy.core.downloader.Downloader` whose slots honour their ``concurrency`` and can be paused."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self._paused: dict[str, float] = {}

    def pause_slot(self, key: str, seconds: float) -> None:
        """Start none of slot ``key``'s queued requests for ``seconds`` (from now)."""
        self._paused[key] = max(self._paused.get(key, 0.0), monotonic() + seconds)

    def _pause_left(self, slot: Slot, now: float) -> float:
        for key, until in list(self._paused.items()):
            if until <= now:
                del self._paused[key]
            elif self.slots.get(key) is slot:
                return until - now
        return 0.0

    def _process_queue(self, slot: Slot) -> None:
        if slot.latercall:
            return  # a delayed call will process the queue
        now = monotonic()
        if self._paused:
            left = self._pause_left(slot, now)
            if left > 0:
                slot.latercall = call_later(left, self._latercall, slot)
                return
        delay = slot.download_delay()
        if delay:
            penalty = delay - now + slot.lastseen
            if penalty > 0:
                slot.latercall = call_later(penalty, self._latercall, slot)
                return
        while slot.queue and slot.free_transfer_slots() > 0:
            slot.lastseen = now
            request, queue_dfd = slot.queue.popleft()
            slot.transferring.add(request)  # counted now, not when the coroutine starts
            _schedule_coro(self._wait_for_download(slot, request, queue_dfd))
            if delay:  # one request per delay
                self._process_queue(slot)
                break
