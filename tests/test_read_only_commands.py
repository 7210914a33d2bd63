"""Commands that only read refuse a database that does not exist instead of creating an empty one."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import ROOT, scrapy_command


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        scrapy_command(*args), cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


@pytest.mark.parametrize(
    "args", [["list"], ["show", "1"], ["count"], ["export", "-o", "OUT"], ["requeue", "--dry-run"], ["requeue"]]
)
def test_dlq_refuses_a_missing_database(tmp_path, args):
    missing = tmp_path / "typo" / "catalog.db"
    args = [str(tmp_path / "out.jsonl") if a == "OUT" else a for a in args]
    result = run("dlq", *args, "-s", f"DATABASE_URL=sqlite:///{missing}")
    assert result.returncode == 2
    assert result.stderr == (
        f"error: no database at sqlite:///{missing} ({missing} does not exist):"
        " check DATABASE_URL / CRAWLER_DATABASE_URL, or crawl first\n"
    )
    assert result.stdout == ""
    assert not (tmp_path / "typo").exists() and not (tmp_path / "out.jsonl").exists()


def test_a_mistyped_environment_url_is_refused_too(tmp_path):
    missing = tmp_path / "catalgo.db"
    result = run("dlq", "list", env={"CRAWLER_DATABASE_URL": f"sqlite:///{missing}"})
    assert result.returncode == 2 and result.stderr.startswith(f"error: no database at sqlite:///{missing} ")
    assert not missing.exists()
