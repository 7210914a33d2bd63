"""``scrapy demo`` keeps its own database under DATA_DIR and prints the commands that read it."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from tests.conftest import ROOT, scrapy_command


def test_demo_database_and_stats_follow_the_directories_and_its_commands_work(tmp_path):
    data, stats = tmp_path / "data", tmp_path / "stats"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    demo = subprocess.run(
        scrapy_command("demo", "--products", "30", "--seed", "5", "-s", f"DATA_DIR={data}", "-s", f"STATS_DIR={stats}"),
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    lines = demo.stdout.splitlines()
    assert f"database: {data / 'demo.db'} (tables products, rejected_items, dead_letters)" in lines
    assert (data / "demo.db").is_file() and not (data / "catalog.db").exists()
    assert len(list(stats.glob("catalog-*.json"))) == 1 and (stats / "demo-crawl.log").is_file()
    # the default database is named, and the printed commands read the demo's one
    assert f"apart from the default DATABASE_URL (sqlite:///{data / 'catalog.db'})" in demo.stdout
    commands = [line.strip() for line in lines if line.startswith("  scrapy dlq ")]
    assert [shlex.split(c)[:3] for c in commands] == [["scrapy", "dlq", "list"], ["scrapy", "dlq", "count"]]
    for command in commands:
        argv = [sys.executable, "-m", *shlex.split(command)]
        result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode == 0, (command, result.stderr)
    assert not (data / "catalog.db").exists()  # nothing read from (or created as) the default database


def test_the_demo_shop_keeps_its_port_when_free_else_takes_any() -> None:
    import socket

    from crawler.commands.demo import free_or_any

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert free_or_any(port) == 0  # taken: any free port
    assert free_or_any(port) == port  # free again: the same port, so a second demo finds its products unchanged
    assert free_or_any(0) == 0
