"""Defaults of every setting this project adds to Scrapy, in one place.

``crawler/settings.py`` imports them, so ``scrapy crawl`` sees them; each
component also falls back to the value here, so it works with any settings
module.  Every name is documented in README.md ("Settings").
"""

from __future__ import annotations

from typing import Any

from crawler import paths
from crawler.errors import ConfigError

# --- where files go (crawler/paths.py) ------------------------------------------
#: Directory of the default database (and its lock files): ``<project>/data`` when
#: run inside the project (a scrapy.cfg naming crawler.settings in the working
#: directory or above), else ``$XDG_DATA_HOME/catalog-crawler/data``; the
#: environment variable CRAWLER_DATA_DIR sets it.
DATA_DIR = str(paths.default_data_dir())
#: Directory of the JSON stats dumps: ``<project>/stats`` or
#: ``$XDG_DATA_HOME/catalog-crawler/stats`` as above; CRAWLER_STATS_DIR sets it.
STATS_DIR = str(paths.default_stats_dir())

# --- storage (pipelines/store.py) -------------------------------------------
#: SQLAlchemy URL of the database products are saved to; empty:
#: ``sqlite:///<DATA_DIR>/catalog.db``.
DATABASE_URL = ""
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

# --- run lock (extensions/run_lock.py) -----------------------------------------
#: One run at a time per site and database (a file lock for SQLite, an advisory
#: lock for PostgreSQL); a second run exits at once with status 7.
RUN_LOCK_ENABLED = True

# --- site views (extensions/site_views.py, storage/views.py) -------------------
#: Create or replace the SQL view ``products_<site>`` (one column per profile
#: field) when a crawl of the site starts.
SITE_VIEWS_ENABLED = True

# --- crash-safe resume (crawler/middlewares/resume.py, storage/frontier.py) ----------
#: Record each run's frontier (the requests it discovered, pending or done) in the
#: database, so the same command resumes a killed or interrupted run.
RESUME_ENABLED = True
#: Start afresh: close an open run of the same command instead of resuming it.
RESUME_DISCARD = False
#: Buffered frontier records are written at least this often (seconds).
RESUME_FLUSH_INTERVAL = 1.0

# --- outcome and exit status (extensions/outcome.py, crawler/outcome.py) ------
#: Dead letters a crawl may leave and still exit 0: a count, or a share of the
#: discovered products ("2%").
MAX_DEAD_LETTERS: int | str = 0

# --- logs (crawler/jsonlog.py) ------------------------------------------------
#: Write the log as one JSON object per line (time, level, logger, message, and the
#: request's url and stage where there is one; a traceback as one field), to LOG_FILE
#: or stderr, for log shippers.
LOG_JSON = False

# --- stats dump (extensions/stats_dump.py) ----------------------------------
#: Enable the JSON stats dump written when the spider closes.
STATS_DUMP_ENABLED = True
#: Directory of the dumps: ``<dir>/<spider>-<UTC timestamp>-<pid>.json``; empty: STATS_DIR.
STATS_DUMP_DIR = ""

# --- site profiles (crawler/siteprofile.py) ---------------------------------
#: Directory searched for ``-a site=NAME`` (``NAME.toml``); empty: the
#: profiles shipped in ``crawler/sites``.
SITE_PROFILES_DIR = ""

# --- list stage (crawler/spiders/catalog.py) ---------------------------------
#: A catalogue can gain products while it is crawled, pushing products across
#: page boundaries.  After the list pages are done the spider re-reads page 1
#: (and on while pages show unseen products); when it finds new products, it
#: walks every list page once more.  At most this many rounds; 0 turns it off.
LIST_RECHECK_ROUNDS = 3
#: ``-a mode=incremental``: the list walk from page 1 stops after this many list
#: pages in a row without a product that is not stored yet (at least 1).
INCREMENTAL_STOP_AFTER = 2


def get(settings: Any, name: str) -> Any:
    """Return setting ``name`` from ``settings``, or this module's default.

    A setting derived from another when empty (DATABASE_URL from DATA_DIR,
    STATS_DUMP_DIR from STATS_DIR) returns the derived value: ``-s DATA_DIR=...``
    moves the default database, ``-s DATABASE_URL=...`` still wins.
    """
    value = settings.get(name) if settings is not None else None
    if value is None:
        value = globals()[name]
    if value == "" and name in _DERIVED:
        return _DERIVED[name](settings)
    return value


#: Settings whose empty value means "derived from another setting".
_DERIVED = {
    "DATABASE_URL": lambda settings: paths.sqlite_url(paths.absolute(get(settings, "DATA_DIR")) / "catalog.db"),
    "STATS_DUMP_DIR": lambda settings: str(paths.absolute(get(settings, "STATS_DIR"))),
}


def get_number(
    settings: Any, name: str, kind: type, minimum: float, error: type[Exception] = ConfigError
) -> Any:
    """Setting ``name`` as ``kind`` (int or float), at least ``minimum``; else a one-line ``error``."""
    value = get(settings, name)
    try:
        converted = kind(value)
    except (TypeError, ValueError):
        converted = None
    if converted is None or converted < minimum:
        raise error(f"invalid setting {name}={value!r}: expected {kind.__name__} >= {minimum}")
    return converted

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
#: Time budget: a transient failure is retried until this many seconds have passed since the
#: request's first failed attempt; then it is dead-lettered.  RETRY_TIMES (or meta
#: max_retry_times, a stage's max_retries) set explicitly also applies: whichever runs out
#: first.  0: no time budget (RETRY_TIMES alone, as in Scrapy).
RETRY_MAX_ELAPSED = 300.0
#: Per-stage overrides of the retry policy, e.g. {"list": {"max_retries": 10, "max_elapsed": 600}}.
RETRY_POLICIES: dict = {}
#: Extra failure classification rules: {"pkg.module.ErrorClass": ["transient", "reason"]}.
FAILURE_EXCEPTIONS: dict = {}

# --- circuit breakers (crawler/middlewares/circuit_breaker.py) ---------------
#: Enable per-domain circuit breakers.
CIRCUIT_BREAKER_ENABLED = True
#: Breaker tuning: fields of crawler.circuit_breaker.BreakerConfig.
CIRCUIT_BREAKER: dict = {}

# --- dead-letter queue (extensions/dead_letters.py, scrapy dlq) ---------------
#: Record the requests given up on in the table ``dead_letters`` of DATABASE_URL.
DLQ_ENABLED = True
#: Buffered dead letters are written at least this often (seconds).
DLQ_FLUSH_INTERVAL = 1.0
#: Replay dead letters instead of the spider's start requests (``scrapy dlq requeue`` sets it).
DLQ_REQUEUE = False
#: Which dead letters a requeue replays: a JSON object with any of spider, site,
#: reason, failure_class, stage, ids, spider_args (or ``@FILE`` holding it); empty: all
#: of this spider (with its current ``-a`` arguments).
DLQ_REQUEUE_FILTER = ""
#: More ``request.meta`` keys not to store in dead letters (state managed per download).
DLQ_DROP_META_KEYS: list = []
#: More request headers never stored in dead letters, besides Authorization,
#: Proxy-Authorization, Cookie, Set-Cookie and X-Api-Key (crawler/redaction.py).
DLQ_REDACT_HEADERS: list = []
#: More request meta keys never stored in dead letters, besides http_user,
#: http_pass, http_auth_domain and proxy credentials.
DLQ_REDACT_META_KEYS: list = []

# --- crawl profiles and adaptive concurrency (crawler/crawl_profiles.py,
# --- crawler/middlewares/adaptive.py) ----------------------------------------
#: Crawl profile: "performance", "balanced" or "saver" (also -a profile=...).
CRAWL_PROFILE = "balanced"
#: Adapt each domain's concurrency (AIMD) within the profile's bounds.
ADAPTIVE_ENABLED = True
#: Per-domain concurrency bounds (the profile sets them).
ADAPTIVE_CONCURRENCY_MIN = 1
ADAPTIVE_CONCURRENCY_START = 4
ADAPTIVE_CONCURRENCY_MAX = 16
#: Per-domain delay bounds in seconds; the delay grows only when a domain
#: is overloaded at its minimum concurrency.
ADAPTIVE_DELAY_MIN = 0.0
ADAPTIVE_DELAY_MAX = 5.0
#: Seconds between decisions.
ADAPTIVE_INTERVAL = 1.0
#: AIMD tuning: fields of crawler.adaptive.AimdConfig.
ADAPTIVE_AIMD: dict = {}
#: Pace tuning (429 / Retry-After): fields of crawler.pace.PaceConfig
#: (retry_after_max defaults to RETRY_AFTER_MAX).
ADAPTIVE_PACE: dict = {}
#: Process limits: CPU share of one core, reactor lag (s); above them the controller never increases.
ADAPTIVE_CPU_MAX = 0.95
ADAPTIVE_LAG_MAX = 0.25
#: Memory limit (MB, 0 = none): above 80% of it the list stage is slowed first.
ADAPTIVE_MEMORY_LIMIT_MB = 0
# --- backpressure (extensions/backpressure.py) ----------------------------------
#: List pages wait in the scheduler while more products than this are discovered
#: and not yet ended (a quarter of it while memory is above 80% of ADAPTIVE_MEMORY_LIMIT_MB).
BACKPRESSURE_DETAIL_HIGH_WATER = 2000

# --- memory (extensions/memory_release.py) ---------------------------------------
#: Seconds between two calls of glibc's malloc_trim(0), which returns freed heap
#: memory to the system; 0 turns it off.
MEMORY_RELEASE_INTERVAL = 1.0
#: Cap on glibc's malloc arenas (mallopt M_ARENA_MAX), set when the crawl starts;
#: 0 keeps glibc's default (8 per core).
MALLOC_ARENA_MAX = 2

# --- garbage collector (extensions/gc_tuning.py) --------------------------------
#: When the engine starts: collect once and freeze the start-up objects (gc.freeze()),
#: so the crawl's collections no longer walk them.
GC_FREEZE = True
#: Generation-0 threshold of the cyclic garbage collector during the crawl (CPython's
#: default is 700); 0 keeps the interpreter's thresholds.
GC_THRESHOLD = 7000

# --- Prometheus exporter (extensions/prometheus.py) ---------------------------
#: Serve the crawl's metrics for Prometheus over HTTP while the spider runs.
PROMETHEUS_ENABLED = True
#: Port, or [first, last] ports tried in turn until one binds (like TELNETCONSOLE_PORT); 0: any free port.
PROMETHEUS_PORT: int | list[int] = [9410, 9430]
#: Interface to listen on; loopback by default ("0.0.0.0" exposes the metrics to the network).
PROMETHEUS_HOST = "127.0.0.1"
#: URL path of the metrics page: http://HOST:PORT/PATH.
PROMETHEUS_PATH = "metrics"

# --- progress and ETA (extensions/progress.py) --------------------------------
#: Estimate the crawl's progress and ETA, count per-stage timings, log the progress line.
PROGRESS_ENABLED = True
#: Seconds between progress estimates (the ``progress/*`` and ``stages/*`` stats); 0: only
#: at each progress line and at close.  The line itself comes every ``LOGSTATS_INTERVAL``.
PROGRESS_INTERVAL = 1.0
#: Seconds of the recent window the ETA's rate is measured over; while the rate stays
#: within 10% of it, the window stretches back up to 60 s (crawler/eta.py).
PROGRESS_RATE_WINDOW = 3.0

# --- live stats dump (extensions/stats_dump.py) -------------------------------
#: Rewrite the JSON stats dump (atomically) this often during the crawl (seconds); 0: only at close.
STATS_DUMP_INTERVAL = 10.0

# --- browser: render = "js" stages (crawler/browser.py, crawler/middlewares/browser.py) ---
#: Chromium to launch for stages with ``render = "js"``: a path or a command on PATH;
#: empty: Debian's /usr/bin/chromium (apt-get install chromium), else chromium on PATH.
BROWSER_EXECUTABLE = ""
#: Seconds a browser page's navigation, then its ``wait_for`` selector, may each take
#: (a stage's ``render_timeout`` overrides it).
BROWSER_RENDER_TIMEOUT = 30.0
#: A browser context is closed and replaced after this many pages (Chromium frees a
#: page's memory only when its context closes, and a context's pages share its renderer
#: process, which grows with the pages it served); 0: never.
BROWSER_CONTEXT_RECYCLE_PAGES = 50
#: Resource types the browser does not load (Playwright's resource types), unless
#: PLAYWRIGHT_ABORT_REQUEST is set.
BROWSER_BLOCK_RESOURCES: list = ["image", "font", "media"]
#: Chromium's renderer process limit (--renderer-process-limit): past it a new page joins a
#: renderer its browser context already has (one per open context at least); 0: Chromium's own
#: (a process per page).
BROWSER_RENDERER_PROCESSES = 1
#: scrapy-playwright's limits (the crawl profile sets them): browser contexts open at
#: once, and pages open at once in each.
PLAYWRIGHT_MAX_CONTEXTS = 2
PLAYWRIGHT_MAX_PAGES_PER_CONTEXT = 4
