"""Scrapy settings of the catalogue crawler.

The project's own settings and their defaults live in ``crawler/defaults.py``
(imported below); README.md ("Settings") documents every one.  Override any
of them with ``-s NAME=VALUE`` or in a site profile's ``[settings]`` table.
"""

import os

from scrapy.settings.default_settings import EXTENSIONS_BASE as _SCRAPY_EXTENSIONS_BASE

from crawler.defaults import *  # noqa: F403  (the project's own settings)
from crawler.defaults import DATABASE_URL as _DEFAULT_DATABASE_URL

#: An environment variable that sets DATABASE_URL (below -s and a site profile's
#: [settings]): a URL with a password never has to appear on a command line.
DATABASE_URL_ENV = "CRAWLER_DATABASE_URL"
DATABASE_URL = os.environ.get(DATABASE_URL_ENV) or _DEFAULT_DATABASE_URL

BOT_NAME = "crawler"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"
COMMANDS_MODULE = "crawler.commands"

# Politeness: robots.txt is obeyed; concurrency is Scrapy's stock 16 overall,
# 8 per domain, with no fixed delay (site profiles may add one).
USER_AGENT = "catalog-crawler/0.1 (+https://github.com/; product catalogue crawler)"
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 8
DOWNLOAD_DELAY = 0

# Scrapy 2.19 starts CONCURRENT_ITEMS asyncio workers for the output of every
# callback.  A catalogue callback yields one item (detail) or a page of
# requests (list), so the stock 100 workers per response only cost CPU:
# 16 keep the output parallel and make the whole crawl measurably faster.
CONCURRENT_ITEMS = 16

# Resilience: classified retries with backoff that waits in the scheduler (no
# slot held), per-domain circuit breakers, dead letters for what finally fails.
SCHEDULER = "crawler.scheduler.GatedScheduler"
# Scrapy 2.19's downloader does not enforce per-slot concurrency (see crawler/downloader.py).
DOWNLOADER = "crawler.downloader.SlotLimitedDownloader"
DOWNLOADER_MIDDLEWARES = {
    # Scrapy's offsite filter, reporting what it drops (crawler/middlewares/offsite.py)
    "scrapy.downloadermiddlewares.offsite.OffsiteMiddleware": None,
    "crawler.middlewares.offsite.OffsiteMiddleware": 50,
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "crawler.middlewares.retry.RetryMiddleware": 550,
    "crawler.middlewares.circuit_breaker.CircuitBreakerMiddleware": 560,
    # Scrapy's meta-refresh redirects, skipping pages that do not say "refresh" (crawler/middlewares/meta_refresh.py)
    "scrapy.downloadermiddlewares.redirect.MetaRefreshMiddleware": None,
    "crawler.middlewares.meta_refresh.MetaRefreshMiddleware": 580,
    "crawler.middlewares.adaptive.AdaptiveConcurrencyMiddleware": 580,
    # render = "js" stages: wait, timeouts, bounded and recycled browser contexts (next to the handler).
    # scrapy-playwright's download handler is enabled only when a stage needs it (crawler/browser.py).
    "crawler.middlewares.browser.BrowserContextsMiddleware": 950,
}

# Crawl profiles (performance / balanced / saver): CRAWL_PROFILE or -a profile=.
ADDONS = {"crawler.crawl_profiles.CrawlProfiles": 0}
DOWNLOAD_TIMEOUT = 30

ITEM_PIPELINES = {
    "pipelines.validate.ValidationPipeline": 300,
    "pipelines.store.StorePipeline": 800,
}

# Dead letters are replayed instead of the start requests only with DLQ_REQUEUE
# (scrapy dlq requeue): that middleware is not loaded otherwise.
SPIDER_MIDDLEWARES = {
    # Crash-safe resume: each run's frontier in the database (next to the engine, so
    # it records what the other spider middlewares let through).
    "crawler.middlewares.resume.ResumeMiddleware": 25,
    "crawler.middlewares.dead_letter_requeue.DeadLetterRequeueMiddleware": 950,
}

# Scrapy's remote control (an HTTP server running Python code posted to it) is off,
# and its module, which imports aiohttp, is loaded only when it is turned back on
# with -s REMOTE_CONTROL_ENABLED=True (extensions/remote_control.py).  It leaves
# EXTENSIONS_BASE: Scrapy imports every class named in EXTENSIONS_BASE and
# EXTENSIONS, even one mapped to None.
REMOTE_CONTROL_ENABLED = False
EXTENSIONS_BASE = {
    **{path: order for path, order in _SCRAPY_EXTENSIONS_BASE.items() if not path.endswith(".RemoteControl")},
    "extensions.remote_control.RemoteControl": 0,
}

EXTENSIONS = {
    # the progress line (every LOGSTATS_INTERVAL) replaces Scrapy's LogStats
    "scrapy.extensions.logstats.LogStats": None,
    # LOG_JSON: the JSON log handler follows the crawler's final LOG_* settings (crawler/jsonlog.py)
    "crawler.jsonlog.JsonLog": 0,
    "extensions.run_lock.RunLock": 50,
    "extensions.site_views.SiteViews": 60,
    "extensions.accounting.ProductAccounting": 100,
    "extensions.backpressure.Backpressure": 150,
    "extensions.progress.ProgressReporter": 200,
    # glibc: capped malloc arenas, freed memory returned to the system every second
    "extensions.memory_release.MemoryRelease": 250,
    # the cyclic garbage collector: start-up objects frozen, generation 0 collected a tenth as often
    "extensions.gc_tuning.GcTuning": 260,
    "extensions.dead_letters.DeadLetterQueue": 500,
    "extensions.outcome.CrawlOutcome": 850,
    "extensions.stats_dump.StatsDump": 900,
    "extensions.prometheus.PrometheusExporter": 950,
}

# Scrapy's in-memory stats collector without its per-access deprecation wrapper (crawler/stats.py).
STATS_CLASS = "crawler.stats.StatsCollector"

LOG_LEVEL = "INFO"
# Seconds between progress lines (extensions/progress.py); Scrapy's default is 60.
LOGSTATS_INTERVAL = 10.0
FEED_EXPORT_ENCODING = "utf-8"
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
