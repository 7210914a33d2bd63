"""``scrapy cleanup``: old stats dumps and old crawler logs go, everything else stays.

Files of several ages (set with ``os.utime``) in a stats directory and two
log directories; the command runs as users run it (a subprocess), first with
``--dry-run``, then for real.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from crawler.commands.cleanup import is_crawler_log, is_stats_dump
from tests.conftest import ROOT, scrapy_command

DAY = 86400
SCRAPY_START = "2026-01-02 03:04:05 [scrapy.utils.log] INFO: Scrapy 2.19.0 started (bot: crawler)\n"


def make(path: Path, days_old: float, text: str = "{}\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    moment = time.time() - days_old * DAY
    os.utime(path, (moment, moment))
    return path


def cleanup(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(scrapy_command("cleanup", *args), cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_cleanup_removes_only_old_stats_dumps_and_crawler_logs(tmp_path: Path) -> None:
    stats, logs, more_logs = tmp_path / "stats", tmp_path / "logs", tmp_path / "cron-logs"
    old = [
        make(stats / "catalog-20260101T000000.000001Z-123.json", 10),
        make(stats / "catalog-20260105T000000.000001Z-124.json", 5),
        make(stats / ".catalog-20260105T000000.000001Z-125.json.x1y2.tmp", 6),  # a killed write's leftover
        make(logs / "crawl.log.1", 8, SCRAPY_START + "more lines\n"),
        make(more_logs / "2026-01-01.log", 30, '{"logger": "scrapy.utils.log", "message": "Scrapy 2.19.0 started'
             ' (bot: crawler)"}\n'),  # fmt: skip
    ]
    kept = [
        make(stats / "catalog-20260110T000000.000001Z-126.json", 1),  # recent
        make(stats / "notes.json", 20),  # not a stats dump
        make(stats / "demo-crawl.log", 20, SCRAPY_START),  # a log, but not in a log directory
        make(logs / "other-app.log", 20, "2026-01-02 INFO something else started\n"),  # not the crawler's
        make(logs / "other-bot.log", 20, SCRAPY_START.replace("bot: crawler", "bot: someoneelse")),
        make(logs / "recent.log", 2, SCRAPY_START),  # recent
    ]
    (logs / "subdir").mkdir()
    make(logs / "subdir" / "deep.log", 20, SCRAPY_START)  # not searched recursively
    kept.append(logs / "subdir" / "deep.log")
    common = ("--older-than", "3", "-s", f"STATS_DUMP_DIR={stats}", "--log-dir", str(more_logs))
    common += ("-s", f"LOG_FILE={logs / 'crawl.log'}")

    dry = cleanup(*common, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert all(p.exists() for p in old + kept)
    listed = [line for line in dry.stdout.splitlines() if line.startswith("would remove ")]
    assert sorted(line.split()[2] for line in listed) == sorted(str(p) for p in old)
    assert f"dry run: would remove {len(old)} files" in dry.stdout

    real = cleanup(*common)
    assert real.returncode == 0, real.stderr
    assert not any(p.exists() for p in old), real.stdout
    assert all(p.exists() for p in kept)
    removed = [line.split()[1] for line in real.stdout.splitlines() if line.startswith("removed /")]
    assert sorted(removed) == sorted(str(p) for p in old)
    assert f"removed {len(old)} files" in real.stdout
    assert f"removed {old[0]} (stats dump, 10.0 days old)" in real.stdout
    assert f"removed {old[3]} (log, 8.0 days old)" in real.stdout

    again = cleanup(*common)
    assert "removed 0 files" in again.stdout


def test_cleanup_errors() -> None:
    for args, text in (
        ((), "needs --older-than"),
        (("--older-than", "-2"), "invalid --older-than"),
        (("--older-than", "ten"), "invalid --older-than"),
        (("--older-than", "1", "--log-dir", "/nonexistent/logs"), "no log directory"),
    ):
        result = cleanup(*args)
        assert result.returncode == 2, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.stderr


def test_what_counts_as_a_stats_dump_or_a_crawler_log(tmp_path: Path) -> None:
    assert is_stats_dump(Path("catalog-20261129T071111.321321Z-16666.json"))
    assert is_stats_dump(Path("my-spider-20261129T071111.321321Z-1.json"))
    assert not is_stats_dump(Path("catalog-20261129.json"))
    assert not is_stats_dump(Path("catalog-20261129T071111.321321Z-16666.json.bak"))
    log = make(tmp_path / "x.txt", 0, "x" * 1000 + SCRAPY_START)
    assert is_crawler_log(log, "crawler")
    assert not is_crawler_log(log, "crawl")
    late = make(tmp_path / "late.log", 0, "x" * 70_000 + SCRAPY_START)  # not at the head: not a crawl's log
    assert not is_crawler_log(late, "crawler")
