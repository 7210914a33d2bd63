"""Shared fixtures: a real demo shop on loopback and a way to run real crawls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import pytest

from demoshop.catalogue import URL_FIELDS
from demoshop.process import ShopProcess

ROOT = Path(__file__).resolve().parents[1]

def _worker_postgres_url(url: str, worker: str) -> str:
    """``url`` with the database ``<name>_<worker>``, created when missing (the role needs CREATEDB).

    Under pytest-xdist each worker gets its own PostgreSQL database: the
    PostgreSQL tests drop and create the tables and take the run lock, so two
    workers must not share one.
    """
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(url)
    own = base.set(database=f"{base.database}_{worker}")
    with psycopg.connect(
        host=base.host, port=base.port, user=base.username, password=base.password, dbname=base.database,
        autocommit=True,
    ) as conn:  # fmt: skip
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (own.database,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{own.database}"')
    return own.render_as_string(hide_password=False)


# Before the test modules read it (at import): this worker's own database.
if os.environ.get("TEST_POSTGRES_URL") and os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["TEST_POSTGRES_URL"] = _worker_postgres_url(
        os.environ["TEST_POSTGRES_URL"], os.environ["PYTEST_XDIST_WORKER"]
    )

#: The small shop the integration tests crawl (big ones belong to bench/).
SHOP_PRODUCTS = 300
SHOP_SEED = 3


@dataclass
class CrawlResult:
    returncode: int
    stdout: str
    stderr: str
    stats_dir: Path

    @property
    def stats(self) -> dict:
        """The ``stats`` of the run's JSON stats dump."""
        dumps = sorted(self.stats_dir.glob("catalog-*.json"))
        assert len(dumps) == 1, f"expected one stats dump in {self.stats_dir}, found {dumps}\n{self.stderr[-3000:]}"
        return json.loads(dumps[0].read_text())["stats"]


def expected_fields(line: dict, base: str) -> dict:
    """A truth line's fields as the crawler stores them: the key as ``slug``, URL fields
    (paths in the truth) joined with the shop's base URL."""
    fields = dict(line["fields"])
    for name in URL_FIELDS:
        if fields.get(name) is not None:
            fields[name] = urljoin(base, fields[name])
    return {**fields, "slug": line["key"]}


def scrapy_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "scrapy", *args]


def catalog_command(start_url: str, *extra: str, site: str = "csa_iot") -> list[str]:
    """``scrapy crawl catalog -a site=... -a start_url=...`` plus ``extra`` arguments."""
    return scrapy_command("crawl", "catalog", "-a", f"site={site}", "-a", f"start_url={start_url}", *extra)


def run_crawl(
    start_url: str, db: Path, stats_dir: Path, *extra: str, site: str = "csa_iot", timeout: float = 300
) -> CrawlResult:
    """Run ``scrapy crawl catalog`` in a subprocess, as users do."""
    cmd = catalog_command(
        start_url, "-s", f"DATABASE_URL=sqlite:///{db}", "-s", f"STATS_DUMP_DIR={stats_dir}", *extra, site=site
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    return CrawlResult(proc.returncode, proc.stdout, proc.stderr, stats_dir)


@pytest.fixture(scope="session")
def shop() -> Iterator[ShopProcess]:
    with ShopProcess(products=SHOP_PRODUCTS, seed=SHOP_SEED) as running:
        yield running
