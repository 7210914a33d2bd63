"""Public retry helpers for spider code.

``from crawler.retry import get_retry_request`` instead of
``from scrapy.downloadermiddlewares.retry import get_retry_request``: the same
signature and return value, with this project's classification, time and
count budgets, backoff without a slot, and dead letters
(:func:`crawler.middlewares.retry.get_retry_request`).
"""

from __future__ import annotations

from crawler.middlewares.retry import get_retry_request

__all__ = ["get_retry_request"]
