"""Defaults of every setting this project adds to Scrapy, in one place.

``crawler/settings.py`` imports them, so ``scrapy crawl`` sees them; each
component also falls back to the value here, so it works with any settings
module.  Every name is documented in README.md ("Settings").
"""

from __future__ import annotations

from typing import Any

# --- storage (pipelines/store.py) -------------------------------------------
#: SQLAlchemy URL of the database products are saved to.
DATABASE_URL = "sqlite:///data/catalog.db"
#: Rows written per transaction.
STORE_BATCH_SIZE = 1000
#: A partial batch is written at least this often (seconds).
STORE_FLUSH_INTERVAL = 2.0
#: Batches queued for the writer thread before item processing waits.
STORE_MAX_PENDING_BATCHES = 4
#: Attempts of a failed batch before it is split to isolate bad rows.
STORE_RETRY_TIMES = 2
#: Seconds between those attempts.
STORE_RETRY_DELAY = 0.5

# --- stats dump (extensions/stats_dump.py) ----------------------------------
#: Enable the JSON stats dump written when the spider closes.
STATS_DUMP_ENABLED = True
#: Directory of the dumps: ``<dir>/<spider>-<UTC timestamp>.json``.
STATS_DUMP_DIR = "stats"

# --- site profiles (crawler/siteprofile.py) ---------------------------------
#: Directory searched for ``-a site=NAME`` (``NAME.toml``); empty: the
#: profiles shipped in ``crawler/sites``.
SITE_PROFILES_DIR = ""


def get(settings: Any, name: str) -> Any:
    """Return setting ``name`` from ``settings``, or this module's default."""
    value = settings.get(name) if settings is not None else None
    return globals()[name] if value is None else value

# --- retry (crawler/middlewares/retry.py) -------------------------------------
#: Backoff between retries: "fixed", "linear" or "exponential".
RETRY_BACKOFF = "exponential"
#: First backoff delay in seconds (fixed: every delay).
RETRY_BACKOFF_BASE = 0.5
#: Cap of a backoff delay, before jitter (seconds).
RETRY_BACKOFF_MAX = 30.0
#: Jitter: "full" (uniform 0..delay), "equal" (delay/2 + uniform 0..delay/2) or "none".
RETRY_JITTER = "full"
#: A server's Retry-After is honoured up to this many seconds.
RETRY_AFTER_MAX = 120.0
#: Per-stage overrides of the retry policy, e.g. {"list": {"max_retries": 10}}.
RETRY_POLICIES: dict = {}
#: Extra failure classification rules: {"pkg.module.ErrorClass": ["transient", "reason"]}.
FAILURE_EXCEPTIONS: dict = {}

# --- circuit breakers (crawler/middlewares/circuit_breaker.py) ---------------
#: Enable per-domain circuit breakers.
CIRCUIT_BREAKER_ENABLED = True
#: Breaker tuning: fields of crawler.circuit_breaker.BreakerConfig.
CIRCUIT_BREAKER: dict = {}
#: Seconds a parked request waits before checking a half-open breaker again.
CIRCUIT_BREAKER_RECHECK = 0.5
