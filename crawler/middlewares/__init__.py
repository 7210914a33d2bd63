"""Downloader middlewares: retry with backoff, per-domain circuit breakers."""

from __future__ import annotations

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http.request import NO_CALLBACK

from crawler.failures import Failure
from crawler.signals import request_dead_lettered


def give_up(
    crawler: Crawler,
    request: Request,
    failure: Failure,
    *,
    attempts: int,
    status: int | None = None,
    exception: BaseException | None = None,
) -> None:
    """Announce that ``request`` is given up: the dead-letter queue records it.

    Sends :data:`crawler.signals.request_dead_lettered` and counts
    ``giveup/<kind>/<reason>`` in the stats.  Scrapy's own internal requests
    (``callback=NO_CALLBACK``, e.g. robots.txt) are not dead-lettered: their
    owner handles the failure (a missing robots.txt allows everything).
    """
    if request.callback is NO_CALLBACK:
        crawler.stats.inc_value("giveup/internal")
        return
    crawler.stats.inc_value(f"giveup/{failure.kind}/{failure.reason}")
    crawler.signals.send_catch_log(
        signal=request_dead_lettered,
        request=request,
        failure_class=failure.kind,
        reason=failure.reason,
        status=status,
        exception=one_line(exception) if exception is not None else None,
        attempts=attempts,
    )


def one_line(exception: BaseException) -> str:
    """``"ExcType: message"`` on one line."""
    message = " ".join(str(exception).split())
    name = type(exception).__name__
    return f"{name}: {message}" if message else name
