"""JSON logs (crawler/jsonlog.py): the formatter, and real crawls with LOG_JSON."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse, Request
from scrapy.settings import Settings

from crawler.jsonlog import JsonFormatter, json_handler, start_json_logging, uninstall_json_handler
from demoshop.catalogue import Catalogue
from demoshop.process import ShopProcess
from tests.conftest import ROOT, catalog_command

FIELDS = ("time", "level", "logger", "message")


def record(msg: str, args: object = None, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    if isinstance(args, dict):
        args = (args,)  # as logger.info(msg, {...}) passes it
    rec = logging.LogRecord("crawler.test", level, __file__, 1, msg, args, None)  # type: ignore[arg-type]
    rec.__dict__.update(extra)
    return rec


def line(rec: logging.LogRecord) -> dict:
    text = JsonFormatter().format(rec)
    assert "\n" not in text
    return json.loads(text)


# --- the formatter -------------------------------------------------------------------


def test_a_line_has_time_level_logger_message() -> None:
    rec = record("Stored %d rows\nin %s", (3, "one batch"), logging.WARNING)
    out = line(rec)
    assert list(out) == list(FIELDS)
    assert (out["level"], out["logger"], out["message"]) == ("WARNING", "crawler.test", "Stored 3 rows\nin one batch")
    assert out["time"].endswith("Z")
    assert abs(datetime.fromisoformat(out["time"]).timestamp() - rec.created) < 0.002


def test_url_and_stage_come_from_the_request_in_extra() -> None:
    request = Request("http://shop.test/p/1", meta={"stage": "detail"})
    out = line(record("Dead letter", request=request))
    assert (out["url"], out["stage"]) == ("http://shop.test/p/1", "detail")


def test_url_and_stage_come_from_scrapy_style_dict_arguments() -> None:
    request = Request("http://shop.test/list?page=2", meta={"stage": "list"})
    out = line(record("Crawled (%(status)s) %(request)s", {"status": 200, "request": request}))
    assert out["message"] == "Crawled (200) <GET http://shop.test/list?page=2>"
    assert (out["url"], out["stage"]) == ("http://shop.test/list?page=2", "list")
    response = HtmlResponse("http://shop.test/p/2", request=Request("http://shop.test/p/2", meta={"stage": "detail"}))
    out = line(record("Scraped from %(src)s", {"src": response}))
    assert (out["url"], out["stage"]) == ("http://shop.test/p/2", "detail")


def test_no_request_no_url_field_and_explicit_url_extra() -> None:
    assert "url" not in line(record("Progress"))
    assert line(record("x", url="http://a.test/", stage="list"))["stage"] == "list"


def test_url_passwords_are_masked() -> None:
    out = line(record("x", request=Request("http://user:secret@shop.test/p")))
    assert "secret" not in out["url"] and out["url"].startswith("http://user:***@shop.test")


def test_an_exception_is_one_field_with_the_whole_traceback() -> None:
    try:
        raise ValueError("bad row")
    except ValueError:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    out = line(rec)
    assert out["exception"].startswith("Traceback (most recent call last):")
    assert out["exception"].rstrip().endswith("ValueError: bad row")


def test_handler_follows_scrapy_log_settings(tmp_path: Path) -> None:
    settings = Settings({"LOG_FILE": str(tmp_path / "x.log"), "LOG_LEVEL": "WARNING", "LOG_FILE_APPEND": True})
    handler = json_handler(settings)
    try:
        assert isinstance(handler, logging.FileHandler) and handler.level == logging.WARNING
        assert isinstance(handler.formatter, JsonFormatter)
    finally:
        handler.close()


def test_start_json_logging_only_with_log_json() -> None:
    settings = Settings({"LOG_JSON": False})
    assert start_json_logging(settings) is False
    assert settings.getbool("LOG_INSTALL_ROOT_HANDLER")
    settings = Settings({"LOG_JSON": True, "LOG_ENABLED": False})
    try:
        assert start_json_logging(settings) is True
        assert not settings.getbool("LOG_INSTALL_ROOT_HANDLER")  # Scrapy installs no text handler
    finally:
        uninstall_json_handler()


# --- real crawls -----------------------------------------------------------------------

PRODUCTS, SEED, GONE = 36, 3, 0.1


@pytest.fixture(scope="module")
def small_shop() -> Iterator[ShopProcess]:
    with ShopProcess(products=PRODUCTS, seed=SEED, extra_args=("--gone-share", str(GONE))) as shop:
        yield shop


def crawl(shop: ShopProcess, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = catalog_command(
        shop.list_url,
        "-s", f"DATABASE_URL=sqlite:///{tmp / 'c.db'}",
        "-s", f"STATS_DUMP_DIR={tmp / 'stats'}",
        "-s", "MAX_DEAD_LETTERS=100%",
        "-s", "LOG_JSON=1",
        *extra,
    )  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def parsed(lines: list[str]) -> list[dict]:
    out = []
    for text in lines:
        entry = json.loads(text)  # every line is one JSON object
        assert isinstance(entry, dict) and all(isinstance(entry[f], str) for f in FIELDS), text
        datetime.fromisoformat(entry["time"])
        out.append(entry)
    return out


def test_a_crawl_with_log_json_and_log_file_writes_only_json_lines(small_shop: ShopProcess, tmp_path: Path) -> None:
    log = tmp_path / "crawl.log"
    proc = crawl(small_shop, tmp_path, "-s", f"LOG_FILE={log}", "-s", "LOG_LEVEL=DEBUG")
    assert proc.returncode == 0, proc.stderr[-3000:]
    entries = parsed(log.read_text(encoding="utf-8").splitlines())
    assert entries[0]["message"].startswith("Scrapy ") and entries[0]["logger"] == "scrapy.utils.log"
    stages = {e.get("stage") for e in entries if e["message"].startswith("Crawled (200)")}
    assert stages == {"list", "detail", None}  # None: robots.txt
    gone = [t for t in Catalogue(PRODUCTS, SEED, gone_share=GONE).truth() if t["expected"] == "dead_letter"]
    assert gone
    dead = [e for e in entries if e["message"].startswith("Dead letter:")]
    assert sorted(e["url"] for e in dead) == sorted(small_shop.url.rstrip("/") + t["path"] for t in gone)
    assert {e["stage"] for e in dead} == {"detail"}
    assert any(e["level"] == "INFO" and e["logger"] == "extensions.outcome" for e in entries)
    assert "Dead letter" not in proc.stderr  # the log went to the file


def test_a_crawl_with_log_json_writes_json_lines_to_stderr(small_shop: ShopProcess, tmp_path: Path) -> None:
    proc = crawl(small_shop, tmp_path, "-s", "LOG_LEVEL=INFO")
    assert proc.returncode == 0, proc.stderr[-3000:]
    entries = parsed(proc.stderr.splitlines())
    assert len(entries) > 10
    assert {e["level"] for e in entries} <= {"INFO", "WARNING", "ERROR", "CRITICAL"}


def test_the_extension_follows_the_crawlers_final_log_settings(tmp_path: Path) -> None:
    """As Scrapy re-installs its handler with a crawler's settings: another LOG_LEVEL or LOG_FILE
    (e.g. from a site profile's [settings]) rebuilds the JSON handler; the same settings keep it."""
    from crawler.jsonlog import JsonLog, install_json_handler

    first = Settings({"LOG_JSON": True, "LOG_FILE": str(tmp_path / "a.log"), "LOG_LEVEL": "INFO"})
    try:
        handler = install_json_handler(first)
        JsonLog(first)
        assert handler in logging.root.handlers
        JsonLog(Settings({**first.copy_to_dict(), "LOG_LEVEL": "WARNING"}))
        assert handler not in logging.root.handlers
        (now,) = [h for h in logging.root.handlers if isinstance(h.formatter, JsonFormatter)]
        assert now.level == logging.WARNING and now.baseFilename == str(tmp_path / "a.log")
    finally:
        uninstall_json_handler()
    assert not [h for h in logging.root.handlers if isinstance(h.formatter, JsonFormatter)]
