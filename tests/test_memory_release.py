"""Memory: glibc's free memory returned during a crawl, and Scrapy's remote control not loaded unless asked for."""

from __future__ import annotations

import subprocess
import sys

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

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
