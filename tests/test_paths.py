"""Where files go by default: DATA_DIR / STATS_DIR and what derives from them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scrapy.settings import Settings

from crawler import defaults, paths
from tests.conftest import ROOT

OUR_CFG = "[settings]\ndefault = crawler.settings\n"


def test_inside_the_project_the_project_directory(tmp_path):
    (tmp_path / "scrapy.cfg").write_text(OUR_CFG)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    env = {"HOME": str(tmp_path / "home")}
    assert paths.project_dir(deep) == tmp_path
    assert paths.default_data_dir(env, deep) == tmp_path / "data"
    assert paths.default_stats_dir(env, deep) == tmp_path / "stats"


def test_elsewhere_the_per_user_data_directory(tmp_path):
    env = {"HOME": "/home/u", "XDG_DATA_HOME": "/srv/xdg"}
    assert paths.default_data_dir(env, tmp_path) == Path("/srv/xdg/catalog-crawler/data")
    assert paths.default_stats_dir(env, tmp_path) == Path("/srv/xdg/catalog-crawler/stats")
    # unset or relative XDG_DATA_HOME: ~/.local/share (XDG base directory spec)
    for env in ({"HOME": "/home/u"}, {"HOME": "/home/u", "XDG_DATA_HOME": "rel"}):
        assert paths.default_data_dir(env, tmp_path) == Path("/home/u/.local/share/catalog-crawler/data")


def test_another_projects_scrapy_cfg_is_not_ours(tmp_path):
    (tmp_path / "scrapy.cfg").write_text("[settings]\ndefault = otherproject.settings\n")
    assert paths.project_dir(tmp_path) is None
    assert paths.default_data_dir({"HOME": "/home/u"}, tmp_path) == Path("/home/u/.local/share/catalog-crawler/data")


def test_environment_variables_win(tmp_path):
    (tmp_path / "scrapy.cfg").write_text(OUR_CFG)
    env = {"HOME": "/home/u", "CRAWLER_DATA_DIR": "/var/lib/crawler", "CRAWLER_STATS_DIR": "/var/log/crawler"}
    assert paths.default_data_dir(env, tmp_path) == Path("/var/lib/crawler")
    assert paths.default_stats_dir(env, tmp_path) == Path("/var/log/crawler")


def test_database_url_and_stats_dump_dir_derive_unless_set(tmp_path):
    settings = Settings({"DATA_DIR": str(tmp_path / "d"), "STATS_DIR": str(tmp_path / "s")})
    assert defaults.get(settings, "DATABASE_URL") == f"sqlite:///{tmp_path}/d/catalog.db"
    assert defaults.get(settings, "STATS_DUMP_DIR") == f"{tmp_path}/s"
    settings.set("DATABASE_URL", "sqlite:////elsewhere/x.db", priority="cmdline")
    settings.set("STATS_DUMP_DIR", "/elsewhere/stats", priority="cmdline")
    assert defaults.get(settings, "DATABASE_URL") == "sqlite:////elsewhere/x.db"
    assert defaults.get(settings, "STATS_DUMP_DIR") == "/elsewhere/stats"


def test_project_settings_default_to_absolute_directories():
    """``scrapy settings`` in the project, and in a directory outside any project (as scrapyd runs jobs)."""
    code = (
        "from scrapy.utils.project import get_project_settings; from crawler import defaults;"
        "s = get_project_settings();"
        "print(defaults.get(s, 'DATABASE_URL')); print(defaults.get(s, 'STATS_DUMP_DIR'))"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": "/home/someone", "PYTHONPATH": str(ROOT)}
    inside = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert inside.stdout.splitlines() == [f"sqlite:///{ROOT}/data/catalog.db", f"{ROOT}/stats"], inside.stderr
    outside = subprocess.run(
        [sys.executable, "-c", code], cwd="/", capture_output=True, text=True,
        env={**env, "SCRAPY_SETTINGS_MODULE": "crawler.settings"},
    )  # fmt: skip
    share = "/home/someone/.local/share/catalog-crawler"
    assert outside.stdout.splitlines() == [f"sqlite:///{share}/data/catalog.db", f"{share}/stats"], outside.stderr
