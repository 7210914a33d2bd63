"""Where a crawl's files go by default: ``DATA_DIR`` (databases) and ``STATS_DIR`` (stats dumps).

The same rule for ``scrapy crawl`` in a checkout, cron and scrapyd:

1. the environment variables ``CRAWLER_DATA_DIR`` / ``CRAWLER_STATS_DIR``, when set;
2. else, when the working directory is inside this project (a ``scrapy.cfg``
   there or above whose ``[settings]`` name ``crawler.settings``, as Scrapy
   finds it): ``<project>/data`` and ``<project>/stats``;
3. else (scrapyd started elsewhere, a deployed egg, any other directory): the
   per-user data directory ``$XDG_DATA_HOME/catalog-crawler/data`` and
   ``.../stats`` (``~/.local/share/catalog-crawler/...`` when ``XDG_DATA_HOME``
   is unset or not absolute, as the XDG base directory spec says).

Every path returned is absolute, so the files never depend on the directory a
process happens to run in.  Pure: no Scrapy component, no file is created.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from pathlib import Path

#: Name of the per-user directory (``$XDG_DATA_HOME/<APP_NAME>``).
APP_NAME = "catalog-crawler"
#: Environment variables that set the directories (below ``-s DATA_DIR=...``).
DATA_DIR_ENV = "CRAWLER_DATA_DIR"
STATS_DIR_ENV = "CRAWLER_STATS_DIR"
#: The settings module a ``scrapy.cfg`` of this project names.
SETTINGS_MODULE = "crawler.settings"


def project_dir(cwd: str | Path | None = None) -> Path | None:
    """The directory of this project's ``scrapy.cfg`` at or above ``cwd`` (default: the working directory)."""
    here = Path(cwd if cwd is not None else os.getcwd()).absolute()
    for directory in (here, *here.parents):
        cfg = directory / "scrapy.cfg"
        if cfg.is_file():
            return directory if _names_our_settings(cfg) else None
    return None


def user_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/catalog-crawler`` (``~/.local/share/catalog-crawler`` by default)."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(base):
        home = environ.get("HOME") or str(Path.home())
        base = os.path.join(home, ".local", "share")
    return Path(base) / APP_NAME


def default_data_dir(environ: Mapping[str, str] | None = None, cwd: str | Path | None = None) -> Path:
    """Default of ``DATA_DIR``: see the module's docstring."""
    return _default_dir("data", DATA_DIR_ENV, environ, cwd)


def default_stats_dir(environ: Mapping[str, str] | None = None, cwd: str | Path | None = None) -> Path:
    """Default of ``STATS_DIR``: see the module's docstring."""
    return _default_dir("stats", STATS_DIR_ENV, environ, cwd)


def absolute(path: str | Path) -> Path:
    """``path`` with ``~`` expanded, made absolute against the working directory."""
    return Path(os.path.expanduser(str(path))).absolute()


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of the SQLite file ``path`` (made absolute)."""
    return f"sqlite:///{absolute(path)}"


def _default_dir(kind: str, env_name: str, environ: Mapping[str, str] | None, cwd: str | Path | None) -> Path:
    environ = os.environ if environ is None else environ
    if environ.get(env_name):
        return absolute(environ[env_name])
    project = project_dir(cwd)
    if project is not None:
        return project / kind
    return user_data_dir(environ) / kind


def _names_our_settings(cfg: Path) -> bool:
    parser = configparser.ConfigParser()
    try:
        parser.read(cfg, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return False
    if not parser.has_section("settings"):
        return False
    return SETTINGS_MODULE in {value.strip() for value in parser["settings"].values()}
