"""Crawl profiles: coherent bundles of speed/politeness settings.

``-s CRAWL_PROFILE=performance`` (or ``-a profile=performance``) picks one
of :data:`PROFILES`; ``balanced`` is the default.  A profile sets the global
and per-domain concurrency bounds the adaptive controller works within, the
delay bounds, the retry budget, the store's batch size and the browser's
contexts and pages (``render = "js"`` stages).  It is applied by
the :class:`CrawlProfiles` add-on at priority :data:`PRIORITY`: above the
project's ``settings.py``, below a site profile's ``[settings]`` and ``-s``,
so a setting the user gives explicitly always wins.
"""

from __future__ import annotations

from typing import Any

from crawler.errors import ConfigError

#: Settings priority of a crawl profile: above "project" (20), below "spider" (30) and "cmdline" (40).
PRIORITY = 25

PROFILES: dict[str, dict[str, Any]] = {
    # As fast as the site allows: starts high, climbs fast, retries hard.
    "performance": {
        "CONCURRENT_REQUESTS": 64,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 64,
        "ADAPTIVE_CONCURRENCY_MIN": 1,
        "ADAPTIVE_CONCURRENCY_START": 8,
        "ADAPTIVE_CONCURRENCY_MAX": 64,
        "ADAPTIVE_DELAY_MIN": 0.0,
        "ADAPTIVE_DELAY_MAX": 2.0,
        "RETRY_MAX_ELAPSED": 600.0,
        "STORE_BATCH_SIZE": 1000,
        # a browser page is CPU-bound in Chromium: more contexts than balanced's add
        # memory (one renderer each) and no speed (bench/js.py: 4 x 8 was slower than 2 x 4)
        "PLAYWRIGHT_MAX_CONTEXTS": 2,
        "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": 8,
    },
    # The default: fast on a healthy site, backs off early.
    "balanced": {
        "CONCURRENT_REQUESTS": 32,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 16,
        "ADAPTIVE_CONCURRENCY_MIN": 1,
        "ADAPTIVE_CONCURRENCY_START": 4,
        "ADAPTIVE_CONCURRENCY_MAX": 16,
        "ADAPTIVE_DELAY_MIN": 0.0,
        "ADAPTIVE_DELAY_MAX": 5.0,
        "RETRY_MAX_ELAPSED": 300.0,
        "STORE_BATCH_SIZE": 1000,
        "PLAYWRIGHT_MAX_CONTEXTS": 2,
        "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": 4,
    },
    # Gentle on the site and the machine: few connections, a delay, small batches.
    "saver": {
        "CONCURRENT_REQUESTS": 8,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 4,
        "ADAPTIVE_CONCURRENCY_MIN": 1,
        "ADAPTIVE_CONCURRENCY_START": 1,
        "ADAPTIVE_CONCURRENCY_MAX": 4,
        "ADAPTIVE_DELAY_MIN": 0.25,
        "ADAPTIVE_DELAY_MAX": 10.0,
        "RETRY_MAX_ELAPSED": 120.0,
        "STORE_BATCH_SIZE": 200,
        "PLAYWRIGHT_MAX_CONTEXTS": 1,
        "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": 2,
    },
}

DEFAULT_PROFILE = "balanced"


def profile_settings(name: str) -> dict[str, Any]:
    """The settings of crawl profile ``name``; an unknown name is a one-line ConfigError."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"unknown crawl profile {name!r} (valid: {', '.join(sorted(PROFILES))})"
        ) from None


def apply_profile(settings: Any, name: str) -> None:
    """Set the profile's settings at :data:`PRIORITY` (explicit settings above it win)."""
    for key, value in profile_settings(name).items():
        settings.set(key, value, priority=PRIORITY)


class CrawlProfiles:
    """Scrapy add-on applying ``CRAWL_PROFILE`` (enabled in ``ADDONS``)."""

    def update_settings(self, settings: Any) -> None:
        apply_profile(settings, str(settings.get("CRAWL_PROFILE") or DEFAULT_PROFILE))
