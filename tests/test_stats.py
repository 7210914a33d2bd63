"""The project's stats collector: Scrapy's in-memory collector's behaviour, with plain attribute access."""

from __future__ import annotations

import pytest
from scrapy.exceptions import ScrapyDeprecationWarning
from scrapy.statscollectors import MemoryStatsCollector
from scrapy.utils.project import get_project_settings
from scrapy.utils.test import get_crawler

from crawler.stats import StatsCollector


def _play(stats) -> dict:
    stats.open_spider()
    stats.inc_value("a")
    stats.inc_value("a", 2)
    stats.inc_value("b", 5, start=10)
    stats.set_value("c", "x")
    stats.max_value("m", 3)
    stats.max_value("m", 1)
    stats.max_value("m", 7)
    stats.min_value("n", 3)
    stats.min_value("n", 5)
    stats.min_value("n", -1)
    seen = {"get": stats.get_value("a"), "default": stats.get_value("missing", 42), "all": dict(stats.get_stats())}
    stats.set_stats({"z": 1})
    seen["replaced"] = dict(stats.get_stats())
    stats.clear_stats()
    seen["cleared"] = dict(stats.get_stats())
    stats.set_value("last", 1)
    return seen


def test_every_method_does_what_scrapys_memory_collector_does():
    crawler = get_crawler()
    assert _play(StatsCollector(crawler)) == _play(MemoryStatsCollector(crawler))


def test_the_last_runs_stats_are_kept_by_spider_name():
    from scrapy import Spider

    crawler = get_crawler(Spider)
    crawler.spider = Spider("shop")
    stats = StatsCollector(crawler)
    stats.open_spider()
    stats.inc_value("pages")
    stats.close_spider(reason="finished")
    assert stats.spider_stats == {"shop": {"pages": 1}}


@pytest.mark.parametrize("call", ["get_value", "set_value", "inc_value", "max_value", "min_value"])
def test_a_spider_argument_still_warns_as_in_scrapy(call):
    stats = StatsCollector(get_crawler())
    args = {"get_value": ("k",), "inc_value": ("k",)}.get(call, ("k", 1))
    with pytest.warns(ScrapyDeprecationWarning, match=f"'spider' argument to StatsCollector.{call}"):
        getattr(stats, call)(*args, spider=object())


def test_attribute_reads_are_plain():
    # Scrapy's collector routes every attribute read through a Python __getattribute__
    assert StatsCollector.__getattribute__ is object.__getattribute__
    assert MemoryStatsCollector.__getattribute__ is not object.__getattribute__


def test_the_project_uses_it():
    assert get_project_settings()["STATS_CLASS"] == "crawler.stats.StatsCollector"
