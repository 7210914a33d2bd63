"""With a log file (scrapyd gives every job one, cron lines use ``--logfile``), a crawl's error line is in it."""

from __future__ import annotations

import subprocess

import pytest

from crawler import outcome
from tests.conftest import ROOT, scrapy_command


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-a", "site=nope"], "unknown site 'nope'"),
        (["-a", "site=csa_iot", "-s", "CONCURRENT_REQUESTS=abc"],
         "invalid setting CONCURRENT_REQUESTS='abc': expected an integer"),
        (["-a", "site=csa_iot", "-s", "DATABASE_URL=sqlite:///{tmp}/a-file/x.db", "-s", "RUN_LOCK_ENABLED=0"],
         "cannot open database"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("log_option", ["--logfile", "LOG_FILE"])
def test_a_config_error_ends_the_log_file_with_its_line_and_status(tmp_path, args, message, log_option):
    (tmp_path / "a-file").write_text("not a directory")
    log = tmp_path / "crawl.log"
    option = ["--logfile", str(log)] if log_option == "--logfile" else ["-s", f"LOG_FILE={log}"]
    argv = scrapy_command("crawl", "catalog", *[a.format(tmp=tmp_path) for a in args], *option,
                          "-s", f"STATS_DUMP_DIR={tmp_path / 'stats'}")  # fmt: skip
    if not any(a.startswith("DATABASE_URL=") for a in argv):
        argv += ["-s", f"DATABASE_URL=sqlite:///{tmp_path / 'x.db'}"]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == outcome.CONFIG
    assert result.stderr.startswith(f"error: {message}") and result.stderr.count("\n") == 1, result.stderr
    last = log.read_text().splitlines()[-1]
    assert f"[crawler.commands.crawl] ERROR: {message}" in last and last.endswith(f"(exit status {outcome.CONFIG})")


def test_without_a_log_file_the_line_is_not_doubled(tmp_path):
    argv = scrapy_command("crawl", "catalog", "-a", "site=nope", "-s", f"DATABASE_URL=sqlite:///{tmp_path / 'x.db'}")
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == outcome.CONFIG
    assert [line for line in result.stderr.splitlines() if "unknown site" in line] == [
        result.stderr.splitlines()[-1]
    ]
