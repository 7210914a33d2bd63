"""Memory: glibc's free memory returned during a crawl, parsed pages freed without the cyclic collector, and Scrapy's
remote control not loaded unless asked for."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.http import HtmlResponse
from scrapy.utils.test import get_crawler

from crawler.spiders.catalog import html_root
from extensions.memory_release import MemoryRelease, glibc
from tests.conftest import ROOT, run_crawl

needs_glibc = pytest.mark.skipif(glibc() is None, reason="the C library is not glibc")


@needs_glibc
def test_release_trims_and_counts():
    crawler = get_crawler(settings_dict={"MEMORY_RELEASE_INTERVAL": 1.0, "MALLOC_ARENA_MAX": 0})
    ext = MemoryRelease.from_crawler(crawler)
    crawler.stats.open_spider()
    garbage = [bytearray(4096) for _ in range(20000)]  # ~80 MB of small blocks, then freed
    del garbage
    ext.release()
    ext.release()
    assert crawler.stats.get_value("memory_release/trims") == 2
    assert crawler.stats.get_value("memory_release/released", 0) >= 1


def test_both_settings_at_zero_turn_it_off():
    crawler = get_crawler(settings_dict={"MEMORY_RELEASE_INTERVAL": 0, "MALLOC_ARENA_MAX": 0})
    with pytest.raises(NotConfigured):
        MemoryRelease.from_crawler(crawler)


def test_the_project_settings_never_import_aiohttp():
    """Scrapy imports every extension its EXTENSIONS settings name; the remote control's module imports aiohttp."""
    code = (
        "import sys; from scrapy.utils.project import get_project_settings;"
        "s = get_project_settings(); s.getwithbase('EXTENSIONS');"
        "print('aiohttp' in sys.modules, s.getbool('REMOTE_CONTROL_ENABLED'))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@needs_glibc
def test_a_crawl_trims_and_the_remote_control_comes_back_when_asked_for(shop, tmp_path):
    result = run_crawl(
        shop.list_url, tmp_path / "catalog.db", tmp_path / "stats",
        "-s", "MEMORY_RELEASE_INTERVAL=0.05", "-s", "REMOTE_CONTROL_ENABLED=True",
        "-s", f"REMOTE_CONTROL_JOBS_DIR={tmp_path / 'jobs'}", "-s", "LOG_LEVEL=INFO",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stats["memory_release/trims"] >= 1
    assert "Remote control HTTP server listening" in result.stderr
    assert not list((tmp_path / "jobs").glob("*"))  # its job file is removed at the end


PAGE = b"<html><body>" + b"<div class='card'><a href='/p/1/'>product</a></div>" * 200 + b"</body></html>"


def _freed_by_refcount(parse) -> bool:  # noqa: ANN001
    """Whether a response parsed by ``parse`` is gone once dropped, with the cyclic collector off."""
    gc.disable()
    try:
        response = HtmlResponse("http://shop.test/list/", body=PAGE)
        root = parse(response)
        assert len(root.xpath("//a")) == 200
        gone = weakref.ref(response)
        del response, root
        return gone() is None
    finally:
        gc.enable()


def test_the_spiders_parsed_tree_is_freed_with_the_response_by_reference_counting():
    assert _freed_by_refcount(html_root)


def test_scrapys_cached_selector_keeps_the_response_in_a_reference_cycle():
    """Why html_root parses with a selector of its own: response.selector refers back to the response."""
    assert not _freed_by_refcount(lambda response: response.selector.root)
    gc.collect()
