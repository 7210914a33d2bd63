"""Scrapy's remote control, loaded only when it is turned on.

Scrapy 2.19 enables :class:`scrapy.extensions.remote_control.RemoteControl`
by default: an HTTP server on a random localhost port that runs Python code
posted to it (for Scrapy's MCP server), with its port and token written to a
job file in the user's profile directory.  A scheduled catalogue crawl has no
use for a code-execution endpoint, a killed run leaves its job file behind,
and merely loading that extension imports aiohttp, about 8 MB of the crawl's
resident memory whether the server runs or not.

So the project turns it off (``REMOTE_CONTROL_ENABLED = False``) and replaces
Scrapy's entry in ``EXTENSIONS`` with this one, which imports Scrapy's
extension only when ``-s REMOTE_CONTROL_ENABLED=True`` asks for it and then
builds it exactly as Scrapy would (all ``REMOTE_CONTROL_*`` settings apply).
"""

from __future__ import annotations

from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.utils.misc import build_from_crawler


class RemoteControl:
    """Builds Scrapy's RemoteControl when ``REMOTE_CONTROL_ENABLED``; not configured otherwise."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Any:  # noqa: ANN401  (Scrapy's extension instance)
        if not crawler.settings.getbool("REMOTE_CONTROL_ENABLED"):
            raise NotConfigured
        from scrapy.extensions.remote_control import RemoteControl as ScrapyRemoteControl

        return build_from_crawler(ScrapyRemoteControl, crawler)
