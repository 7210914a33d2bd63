"""The project under a real scrapyd on 127.0.0.1: deploy with scrapyd-deploy, schedule, read the job's log.

scrapyd runs in a subprocess with its own configuration (a free port; eggs,
logs and dbs in a temporary directory) and its own HOME, so a job's default
data directory is ``$HOME/.local/share/catalog-crawler``; the project reaches
it only as the egg ``scrapyd-deploy`` builds (no PYTHONPATH to the checkout).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crawler import outcome
from demoshop.catalogue import Catalogue
from tests.conftest import ROOT, SHOP_PRODUCTS, SHOP_SEED

BIN = Path(sys.executable).parent
PROJECT = "crawler"


@dataclass
class Scrapyd:
    url: str
    work: Path
    home: Path
    env: dict[str, str]

    def get(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            return json.load(response)

    def post(self, path: str, fields: list[tuple[str, str]]) -> dict:
        data = urllib.parse.urlencode(fields).encode()
        with urllib.request.urlopen(f"{self.url}{path}", data=data, timeout=10) as response:
            return json.load(response)

    def schedule(self, spider: str, args: dict[str, str], settings: dict[str, str]) -> str:
        fields = [("project", PROJECT), ("spider", spider), *args.items()]
        fields += [("setting", f"{name}={value}") for name, value in settings.items()]
        answer = self.post("schedule.json", fields)
        assert answer["status"] == "ok", answer
        return answer["jobid"]

    def wait_finished(self, jobs: set[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            finished = {job["id"] for job in self.get("listjobs.json", project=PROJECT)["finished"]}
            if jobs <= finished:
                return
            time.sleep(0.3)
        raise AssertionError(f"jobs {jobs} not finished after {timeout} s; scrapyd log:\n{self.log()[-3000:]}")

    def job_log(self, spider: str, job: str) -> str:
        return (self.work / "logs" / PROJECT / spider / f"{job}.log").read_text()

    def log(self) -> str:
        path = self.work / "scrapyd.log"
        return path.read_text() if path.exists() else ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def scrapyd(tmp_path_factory) -> Iterator[Scrapyd]:
    work = tmp_path_factory.mktemp("scrapyd")
    home = work / "home"
    home.mkdir()
    port = free_port()
    (work / "scrapyd.conf").write_text(
        "[scrapyd]\n"
        "bind_address = 127.0.0.1\n"
        f"http_port = {port}\n"
        f"eggs_dir = {work / 'eggs'}\n"
        f"logs_dir = {work / 'logs'}\n"
        f"dbs_dir = {work / 'dbs'}\n"
        "items_dir =\n"
        "jobs_dir =\n"
        "poll_interval = 0.2\n"
        "max_proc = 2\n"
    )
    # a clean environment: no proxy, no PYTHONPATH to the checkout, HOME of our own
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    with open(work / "scrapyd.out", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scrapyd", "--logfile", str(work / "scrapyd.log"),
             "--pidfile", str(work / "scrapyd.pid")],
            cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Scrapyd(f"http://127.0.0.1:{port}/", work, home, env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if server.get("daemonstatus.json")["status"] == "ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"scrapyd did not start:\n{(work / 'scrapyd.out').read_text()}{server.log()}")
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def deployed(scrapyd: Scrapyd) -> Scrapyd:
    """``scrapyd-deploy`` as the README shows it, to a target naming the test's port."""
    config = scrapyd.home / ".config"
    config.mkdir()
    # a user-level scrapy.cfg adds a target; the project's scrapy.cfg keeps its default (127.0.0.1:6800)
    (config / "scrapy.cfg").write_text(f"[deploy:test]\nurl = {scrapyd.url}\nproject = {PROJECT}\n")
    env = {**scrapyd.env, "XDG_CONFIG_HOME": str(config)}
    deploy = subprocess.run(
        [str(BIN / "scrapyd-deploy"), "test", "-v", "r1"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    answer = json.loads(deploy.stdout)
    assert answer["status"] == "ok" and answer["spiders"] >= 1, answer
    assert scrapyd.get("listspiders.json", project=PROJECT)["spiders"] == ["catalog"]
    return scrapyd


def test_scheduled_crawl_saves_the_shop_and_a_bad_site_is_in_the_jobs_log(deployed, shop, tmp_path):
    db = tmp_path / "scheduled.db"
    good = deployed.schedule(
        "catalog", {"site": "csa_iot", "start_url": shop.list_url}, {"DATABASE_URL": f"sqlite:///{db}"}
    )
    bad = deployed.schedule("catalog", {"site": "nope"}, {"DATABASE_URL": f"sqlite:///{tmp_path / 'bad.db'}"})
    deployed.wait_finished({good, bad})

    # the crawl: every product of the shop's truth is in the database named by -d setting=DATABASE_URL=...
    good_log = deployed.job_log("catalog", good)
    assert "Outcome: exit status 0" in good_log, good_log[-3000:]
    wanted = {t["key"] for t in Catalogue(SHOP_PRODUCTS, SHOP_SEED).truth() if t["expected"] == "saved"}
    with sqlite3.connect(db) as conn:
        saved = {key for (key,) in conn.execute("SELECT key FROM products")}
    assert saved == wanted
    # the stats dump went to the per-user data directory (scrapyd's working directory is no project)
    dumps = list((deployed.home / ".local/share/catalog-crawler/stats").glob("catalog-*.json"))
    assert len(dumps) == 1, dumps
    assert json.loads(dumps[0].read_text())["stats"]["outcome/exit_status"] == outcome.OK

    # the bad site: the one-line error and the exit status are in the job's log; scrapyd's log shows the exit
    bad_log = deployed.job_log("catalog", bad)
    assert "ERROR: unknown site 'nope'" in bad_log, bad_log[-3000:]
    assert f"(exit status {outcome.CONFIG})" in bad_log
    # looked up inside the zipped egg, where the shipped profiles are
    assert f"no {deployed.work}/eggs/{PROJECT}/r1.egg/crawler/sites/nope.toml (known sites: csa_iot)" in bad_log
    assert not (tmp_path / "bad.db").exists()
    scrapyd_log = deployed.log()
    died = [line for line in scrapyd_log.splitlines() if "Process died" in line and bad in line]
    assert died and f"exitstatus={outcome.CONFIG}" in died[0], scrapyd_log[-3000:]
    assert any("Process finished" in line and good in line for line in scrapyd_log.splitlines())
