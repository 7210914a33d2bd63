"""The garbage-collector tuning: start-up objects frozen and a higher generation-0 threshold during a crawl only."""

from __future__ import annotations

import gc

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from crawler.errors import ConfigError
from extensions.gc_tuning import GcTuning
from tests.conftest import run_crawl


@pytest.fixture
def interpreter_gc():
    """The test leaves the interpreter's collector as it found it."""
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    assert frozen == 0
    yield threshold
    gc.set_threshold(*threshold)
    gc.unfreeze()


def _tuning(**settings) -> GcTuning:
    crawler = get_crawler(settings_dict=settings)
    crawler.stats.open_spider()
    return GcTuning.from_crawler(crawler)


def test_the_crawl_runs_frozen_with_the_higher_threshold_and_the_interpreter_gets_its_own_back(interpreter_gc):
    ext = _tuning(GC_THRESHOLD=5000, GC_FREEZE=True)
    ext.engine_started()
    assert gc.get_threshold() == (5000, *interpreter_gc[1:])
    assert gc.get_freeze_count() > 1000  # the modules and objects of this process
    assert ext.crawler.stats.get_value("gc/frozen") == gc.get_freeze_count()
    garbage = []
    for _ in range(3):
        cycle: list = []
        cycle.append(cycle)
        garbage.append(cycle)
    del garbage
    gc.collect(0)
    ext.engine_stopped()
    assert gc.get_threshold() == interpreter_gc
    assert gc.get_freeze_count() == 0
    assert ext.crawler.stats.get_value("gc/collections/gen0") >= 1


def test_the_last_of_two_crawls_to_stop_restores_the_collector(interpreter_gc):
    first, second = _tuning(GC_THRESHOLD=4000), _tuning(GC_THRESHOLD=6000)
    first.engine_started()
    second.engine_started()
    assert gc.get_threshold()[0] == 6000
    first.engine_stopped()
    assert gc.get_threshold()[0] == 6000 and gc.get_freeze_count() > 0
    second.engine_stopped()
    assert gc.get_threshold() == interpreter_gc and gc.get_freeze_count() == 0


def test_threshold_zero_keeps_the_interpreters_and_freeze_off_freezes_nothing(interpreter_gc):
    ext = _tuning(GC_THRESHOLD=0, GC_FREEZE=True)
    ext.engine_started()
    assert gc.get_threshold() == interpreter_gc
    ext.engine_stopped()
    ext = _tuning(GC_THRESHOLD=9000, GC_FREEZE=False)
    ext.engine_started()
    assert gc.get_freeze_count() == 0 and gc.get_threshold()[0] == 9000
    assert ext.crawler.stats.get_value("gc/frozen") is None
    ext.engine_stopped()


def test_both_off_is_not_configured_and_a_bad_threshold_is_one_line():
    with pytest.raises(NotConfigured):
        _tuning(GC_THRESHOLD=0, GC_FREEZE=False)
    with pytest.raises(ConfigError, match=r"^invalid setting GC_THRESHOLD='many': expected int >= 0$"):
        _tuning(GC_THRESHOLD="many")


def test_a_crawl_counts_its_collections(shop, tmp_path):
    result = run_crawl(shop.list_url, tmp_path / "catalog.db", tmp_path / "stats")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stats["gc/frozen"] > 10000
    assert {"gc/collections/gen0", "gc/collections/gen1", "gc/collections/gen2"} <= set(result.stats)
