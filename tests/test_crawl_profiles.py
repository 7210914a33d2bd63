"""Crawl profiles (performance / balanced / saver): what each one sets, and who wins.

A profile is applied by the ``CrawlProfiles`` add-on at priority 25: above the
project's settings, below a site profile's ``[settings]`` (spider priority)
and ``-s`` (cmdline).  The effective settings are checked in-process, the way
``scrapy crawl`` builds them (project settings, ``-s`` at cmdline priority, the
spider's ``from_crawler``, then the add-ons); real crawls against the demo shop
check that the bounds hold on the wire.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from scrapy.crawler import Crawler
from scrapy.statscollectors import MemoryStatsCollector
from scrapy.utils.project import get_project_settings

from crawler.adaptive import Bounds
from crawler.crawl_profiles import DEFAULT_PROFILE, PRIORITY, PROFILES
from crawler.middlewares.adaptive import AdaptiveConcurrencyMiddleware
from crawler.spiders.catalog import CatalogSpider
from demoshop.process import ShopProcess
from tests.conftest import ROOT, run_crawl, scrapy_command

DOMAIN = "127.0.0.1"
ERROR = "error: unknown crawl profile 'x' (valid: balanced, performance, saver)"


def effective(cmdline: dict[str, Any] | None = None, site: str = "csa_iot", **spider_args: Any) -> Crawler:
    """A crawler with the settings ``scrapy crawl catalog -a site=SITE -a ... -s ...`` would run with."""
    settings = get_project_settings()
    settings.setdict(cmdline or {}, priority="cmdline")
    crawler = Crawler(CatalogSpider, settings)
    CatalogSpider.from_crawler(crawler, site=site, **spider_args)  # -a profile=, the site's [settings]
    crawler.addons.load_settings(crawler.settings)  # the CrawlProfiles add-on
    crawler.stats = MemoryStatsCollector(crawler)
    return crawler


def controller(crawler: Crawler) -> AdaptiveConcurrencyMiddleware:
    return AdaptiveConcurrencyMiddleware(crawler)


@pytest.fixture(autouse=True)
def _project_settings(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("SCRAPY_SETTINGS_MODULE", "crawler.settings")


# --- what each profile sets -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_each_profile_sets_its_values_and_bounds(name):
    crawler = effective({"CRAWL_PROFILE": name})
    s, profile = crawler.settings, PROFILES[name]
    for key, value in profile.items():
        assert s.get(key) == value, key
        assert s.getpriority(key) == PRIORITY, key  # above the project (20), below spider (30) and -s (40)
    mw = controller(crawler)
    assert mw.bounds == Bounds(
        profile["ADAPTIVE_CONCURRENCY_MIN"], profile["ADAPTIVE_CONCURRENCY_START"], profile["ADAPTIVE_CONCURRENCY_MAX"]
    )
    assert (mw.delay_min, mw.delay_max) == (profile["ADAPTIVE_DELAY_MIN"], profile["ADAPTIVE_DELAY_MAX"])
    assert mw.bounds.max <= s.getint("CONCURRENT_REQUESTS_PER_DOMAIN") <= s.getint("CONCURRENT_REQUESTS")


def test_profiles_are_ordered_fast_to_gentle():
    fast, mid, gentle = (PROFILES[n] for n in ("performance", "balanced", "saver"))
    for key in ("CONCURRENT_REQUESTS", "ADAPTIVE_CONCURRENCY_START", "ADAPTIVE_CONCURRENCY_MAX", "RETRY_MAX_ELAPSED"):
        assert fast[key] >= mid[key] >= gentle[key], key
    assert fast["ADAPTIVE_DELAY_MIN"] <= mid["ADAPTIVE_DELAY_MIN"] < gentle["ADAPTIVE_DELAY_MIN"]


def test_balanced_is_the_default():
    assert DEFAULT_PROFILE == "balanced"
    crawler = effective()
    for key, value in PROFILES["balanced"].items():
        assert crawler.settings.get(key) == value, key


# --- who wins -------------------------------------------------------------------------------------------------


def test_explicit_settings_beat_the_profile():
    crawler = effective({"CRAWL_PROFILE": "performance", "ADAPTIVE_CONCURRENCY_MAX": "3", "STORE_BATCH_SIZE": "7"})
    s = crawler.settings
    assert s.getint("STORE_BATCH_SIZE") == 7
    assert s.getint("CONCURRENT_REQUESTS") == PROFILES["performance"]["CONCURRENT_REQUESTS"]  # the rest stays
    bounds = controller(crawler).bounds
    assert bounds.max == 3 and bounds.start == 3  # the profile's start of 8 is clamped to the explicit max


def test_per_domain_limit_stays_a_hard_cap():
    bounds = controller(effective({"CRAWL_PROFILE": "performance", "CONCURRENT_REQUESTS_PER_DOMAIN": "5"})).bounds
    assert bounds == Bounds(1, 5, 5)


def test_site_profile_settings_beat_the_crawl_profile(tmp_path):
    site = (ROOT / "crawler" / "sites" / "csa_iot.toml").read_text()
    assert "[settings]" in site
    custom = tmp_path / "gentle_site.toml"
    custom.write_text(site.replace("[settings]", "[settings]\nRETRY_TIMES = 1\nADAPTIVE_CONCURRENCY_MAX = 2", 1))
    crawler = effective({"CRAWL_PROFILE": "performance"}, site=str(custom))
    assert crawler.settings.getint("RETRY_TIMES") == 1
    assert controller(crawler).bounds.max == 2
    # and -s beats the site profile
    crawler = effective({"CRAWL_PROFILE": "performance", "RETRY_TIMES": "4"}, site=str(custom))
    assert crawler.settings.getint("RETRY_TIMES") == 4


def test_profile_argument_works_like_the_setting():
    by_arg = effective(profile="saver").settings
    by_setting = effective({"CRAWL_PROFILE": "saver"}).settings
    assert by_arg.get("CRAWL_PROFILE") == by_setting.get("CRAWL_PROFILE") == "saver"
    for key, value in PROFILES["saver"].items():
        assert by_arg.get(key) == by_setting.get(key) == value, key
    # like the setting, it stays below an explicit -s
    assert effective({"STORE_BATCH_SIZE": "7"}, profile="saver").settings.getint("STORE_BATCH_SIZE") == 7


# --- real crawls ----------------------------------------------------------------------------------------------


def request_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def peak_in_flight(entries: list[dict], latency: float, slack: float = 0.002) -> int:
    """Most requests the shop served at once (each is logged at its end: it arrived ``latency`` s before)."""
    events = sorted(
        [(e["t"] - latency + slack, 1) for e in entries if e["path"] != "/robots.txt"]
        + [(e["t"] - slack, -1) for e in entries if e["path"] != "/robots.txt"]
    )
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def test_explicit_max_holds_on_the_wire_with_performance(tmp_path):
    # an unlimited shop with some latency: the controller would climb to the profile's 64
    log = tmp_path / "requests.jsonl"
    with ShopProcess(products=240, seed=31, request_log=log, extra_args=["--latency", "0.05"]) as shop:
        result = run_crawl(
            shop.list_url, tmp_path / "db.sqlite", tmp_path / "stats",
            "-s", "CRAWL_PROFILE=performance", "-s", "ADAPTIVE_CONCURRENCY_MAX=3", timeout=120,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    stats = result.stats
    assert stats["products/identity_holds"] is True
    assert stats[f"adaptive/concurrency/{DOMAIN}"] == 3  # at the explicit max, never above
    assert peak_in_flight(request_log(log), 0.05) <= 3


def test_saver_profile_by_argument_on_the_wire(tmp_path):
    # a small shop: saver spaces requests by ADAPTIVE_DELAY_MIN = 0.25 s (+-50% jitter)
    log = tmp_path / "requests.jsonl"
    with ShopProcess(products=24, seed=32, request_log=log) as shop:
        result = run_crawl(
            shop.list_url, tmp_path / "db.sqlite", tmp_path / "stats", "-a", "profile=saver", timeout=120,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    stats = result.stats
    assert stats["products/identity_holds"] is True
    saver = PROFILES["saver"]
    assert 1 <= stats[f"adaptive/concurrency/{DOMAIN}"] <= saver["ADAPTIVE_CONCURRENCY_MAX"]
    assert stats[f"adaptive/delay/{DOMAIN}"] == saver["ADAPTIVE_DELAY_MIN"]
    times = sorted(e["t"] for e in request_log(log))
    assert len(times) >= 26  # robots.txt, 2 list pages, 24 products
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.5 * saver["ADAPTIVE_DELAY_MIN"] - 0.01, min(gaps)  # one request per delay


# --- unknown profile ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", [["-s", "CRAWL_PROFILE=x"], ["-a", "profile=x"]])
def test_unknown_profile_is_one_line_and_exit_status_2(tmp_path, how):
    proc = subprocess.run(
        scrapy_command(
            "crawl", "catalog", "-a", "site=csa_iot", "-a", "start_url=http://127.0.0.1:9/",
            "-s", f"DATABASE_URL=sqlite:///{tmp_path / 'db.sqlite'}", "-s", f"STATS_DUMP_DIR={tmp_path}", *how,
        ),
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [ERROR], proc.stderr[-2000:]
