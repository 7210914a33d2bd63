"""The README's crontab line, run as cron runs it: ``/bin/sh -c`` with a minimal environment.

The line comes from README.md ("Nightly with cron"); the test swaps only the
project directory, adds the demo shop's ``start_url`` and sends the log file to
a temporary directory; the database and the stats directory come through the
environment, as crontab variables would give them.
"""

from __future__ import annotations

import fcntl
import json
import re
import shlex
import sqlite3
import subprocess
from pathlib import Path

import pytest

from crawler import outcome
from demoshop.catalogue import Catalogue
from tests.conftest import ROOT, SHOP_PRODUCTS, SHOP_SEED

#: The project directory the README's line changes to.
README_PROJECT = "/srv/catalog-crawler"


def crontab_entry() -> str:
    """The one command line of the README's crontab block (variable lines and comments aside)."""
    block = (ROOT / "README.md").read_text().split("```crontab\n", 1)[1].split("```", 1)[0]
    entries = [
        line for line in block.splitlines()
        if line.strip() and not line.startswith("#") and not re.match(r"^[A-Za-z_]\w*\s*=", line)
    ]  # fmt: skip
    assert len(entries) == 1, entries
    fields = entries[0].split(None, 5)
    assert len(fields) == 6 and all(re.fullmatch(r"[\d*/,-]+", f) for f in fields[:5]), entries[0]
    return fields[5]


def as_cron_runs_it(entry: str) -> str:
    """What cron hands to the shell: the text before the first unescaped ``%``, ``\\%`` made ``%``."""
    return re.split(r"(?<!\\)%", entry, maxsplit=1)[0].replace("\\%", "%")


def test_cron_semantics_of_percent():
    assert as_cron_runs_it(r"echo $(date +\%F) % stdin") == "echo $(date +%F) "


@pytest.fixture
def cron(shop, tmp_path):
    if not (ROOT / ".venv" / "bin" / "scrapy").exists():
        pytest.skip("the README's line calls the project's .venv/bin/scrapy, which this checkout lacks")
    command = as_cron_runs_it(crontab_entry())
    assert command.startswith(f"cd {README_PROJECT} && .venv/bin/scrapy crawl catalog -a site=csa_iot "), command
    assert "-a mode=incremental" in command and "--logfile stats/" in command
    command = command.replace(f"cd {README_PROJECT} ", f"cd {shlex.quote(str(ROOT))} ")
    command = command.replace("-a site=csa_iot ", f"-a site=csa_iot -a start_url={shlex.quote(shop.list_url)} ")
    command = command.replace("--logfile stats/", f"--logfile {tmp_path}/logs/")
    (tmp_path / "logs").mkdir()
    home = tmp_path / "home"
    home.mkdir()
    db = tmp_path / "cron.db"
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(home), "SHELL": "/bin/sh", "LOGNAME": "crawler",
        "CRAWLER_DATABASE_URL": f"sqlite:///{db}", "CRAWLER_STATS_DIR": str(tmp_path / "stats"),
    }  # fmt: skip

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["/bin/sh", "-c", command], cwd=home, env=env, capture_output=True, text=True, timeout=180
        )

    return run, db, tmp_path


def dumps(stats_dir: Path) -> list[dict]:
    return [json.loads(p.read_text())["stats"] for p in sorted(stats_dir.glob("catalog-*.json"))]


def test_readme_crontab_line_crawls_incrementally_logs_to_its_file_and_honours_the_lock(cron):
    run, db, tmp_path = cron
    first = run()
    assert first.returncode == 0, first.stderr[-3000:]
    assert (first.stdout, first.stderr) == ("", "")  # nothing for cron to mail on a good night
    (log,) = (tmp_path / "logs").glob("cron-csa_iot-*.log")
    assert re.fullmatch(r"cron-csa_iot-\d{4}-\d{2}-\d{2}\.log", log.name)
    text = log.read_text()
    assert "[scrapy.core.engine] INFO: Spider closed (finished)" in text
    assert "[extensions.outcome] INFO: Outcome: exit status 0" in text
    wanted = {t["key"] for t in Catalogue(SHOP_PRODUCTS, SHOP_SEED).truth() if t["expected"] == "saved"}
    with sqlite3.connect(db) as conn:
        assert {key for (key,) in conn.execute("SELECT key FROM products")} == wanted

    # the next night: incremental, every product already stored is carried, not fetched again
    second = run()
    assert second.returncode == 0, second.stderr[-3000:]
    first_stats, second_stats = dumps(tmp_path / "stats")
    assert first_stats["incremental/stop_reason"] == "nothing_stored"
    assert second_stats["incremental/skipped_products"] > 0
    assert second_stats.get("products/discovered", 0) < first_stats["products/discovered"]

    # a run still going (its lock held): the new one stops at once with status 7, one line, also in the log
    with open(f"{db}.csa_iot.lock", "a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        locked = run()
    assert locked.returncode == outcome.LOCKED
    assert locked.stdout == "" and locked.stderr.count("\n") == 1
    assert locked.stderr.startswith("error: another run of site 'csa_iot' holds the lock file")
    assert f"(exit status {outcome.LOCKED})" in log.read_text().splitlines()[-1]
