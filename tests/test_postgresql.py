"""The same store code on PostgreSQL: real writes and a real crawl.

Runs when ``TEST_POSTGRES_URL`` names a PostgreSQL database the tests may
empty (``.ci/run`` starts a local server and sets it); skipped otherwise.
"""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import text

from demoshop.catalogue import Catalogue
from storage.products import ProductStore
from storage.schema import metadata
from tests.conftest import SHOP_PRODUCTS, SHOP_SEED, expected_fields, run_crawl
from tests.test_store import product, reject

URL = os.environ.get("TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="TEST_POSTGRES_URL is not set (no PostgreSQL server)")


@pytest.fixture
def store():
    assert URL
    store = ProductStore(URL)
    metadata.drop_all(store.engine)
    store.create_schema()
    yield store
    store.close()


def test_batches_upsert_and_count_on_postgresql(store: ProductStore) -> None:
    first = store.write_batch([product(i) for i in range(50)], [reject("https://shop.test/bad")])
    assert (first.inserted, first.updated, first.unchanged, first.rejected) == (50, 0, 0, 1)
    second = store.write_batch([product(i, version=1 if i < 5 else 0) for i in range(50)])
    assert (second.inserted, second.updated, second.unchanged) == (0, 5, 45)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM products")).scalar_one() == 50
        assert conn.execute(text("SELECT times FROM rejected_items")).scalar_one() == 1


def test_one_bad_row_is_isolated_on_postgresql(store: ProductStore) -> None:
    batch = [product(i) for i in range(20)]
    batch[7] = product(7, key="")  # violates the CHECK constraint
    result = store.write_batch(batch)
    assert (result.inserted, result.isolated) == (19, 1)


def test_crawl_into_postgresql_equals_the_truth(shop, tmp_path) -> None:
    assert URL
    fresh = ProductStore(URL)
    metadata.drop_all(fresh.engine)  # the crawl creates the tables
    fresh.close()
    result = run_crawl(shop.list_url, tmp_path / "unused.db", tmp_path / "stats", "-s", f"DATABASE_URL={URL}")
    assert result.returncode == 0, result.stderr[-3000:]
    truth = {t["key"]: t for t in Catalogue(SHOP_PRODUCTS, SHOP_SEED).truth()}
    check = ProductStore(URL)
    try:
        with check.engine.connect() as conn:
            saved = {k: json.loads(d) for k, d in conn.execute(text("SELECT key, data FROM products"))}
            rejected = conn.execute(text("SELECT count(*) FROM rejected_items")).scalar_one()
    finally:
        check.close()
    wanted = {k for k, t in truth.items() if t["expected"] == "saved"}
    assert set(saved) == wanted
    assert all(saved[k] == expected_fields(truth[k], shop.url) for k in wanted)
    assert rejected == len(truth) - len(wanted)
    assert result.stats["products/identity_holds"] is True


def test_a_second_run_on_postgresql_is_refused_by_the_advisory_lock(tmp_path) -> None:
    from crawler import outcome
    from tests.test_exit_status import error_lines, second_run_while_the_first_holds_the_lock

    assert URL
    second, _ = second_run_while_the_first_holds_the_lock(tmp_path, URL)
    assert second.returncode == outcome.LOCKED, second.stderr[-2000:]
    assert "PostgreSQL advisory lock" in error_lines(second.stderr)[0]


def test_two_processes_creating_the_schema_at_once(tmp_path) -> None:
    """Schema creation is serialised on PostgreSQL: neither of two concurrent starts fails."""
    import subprocess
    import sys

    assert URL
    fresh = ProductStore(URL)
    metadata.drop_all(fresh.engine)
    fresh.close()
    code = (
        "import sys; from storage.products import ProductStore; "
        "s = ProductStore(sys.argv[1]); s.create_schema(); s.close()"
    )
    from tests.conftest import ROOT

    procs = [
        subprocess.Popen([sys.executable, "-c", code, URL], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors


def test_a_crawl_killed_on_postgresql_resumes_to_the_truth(tmp_path) -> None:
    """Crash-safe resume on PostgreSQL: SIGKILL mid-crawl, the same command again."""
    import signal
    import time

    from crawler.siteprofile import load_profile
    from demoshop.process import ShopProcess
    from tests.test_real_site import swap_host
    from tests.test_resume import LATENCY, PRODUCTS, SEED, start_crawl, wait_for

    assert URL
    fresh = ProductStore(URL)
    metadata.drop_all(fresh.engine)
    fresh.create_schema()

    def stored() -> int:
        with fresh.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM products")).scalar_one())

    pg = ("-s", f"DATABASE_URL={URL}")
    with ShopProcess(products=PRODUCTS, seed=SEED, extra_args=("--latency", LATENCY)) as shop:
        start = swap_host(load_profile("csa_iot").start_urls[0], shop.url)
        proc = start_crawl(start, tmp_path / "unused.db", tmp_path / "stats", *pg)
        wait_for(lambda: stored() >= 30 or proc.poll() is not None)
        assert proc.poll() is None, "the crawl ended before the kill"
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert 0 < stored() < PRODUCTS
        result = run_crawl(start, tmp_path / "unused.db", tmp_path / "final", *pg)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Resuming run 1 (attempt 2)" in result.stderr
        truth = {t["key"]: t for t in Catalogue(PRODUCTS, SEED).truth()}
        with fresh.engine.connect() as conn:
            saved = {k: json.loads(d) for k, d in conn.execute(text("SELECT key, data FROM products"))}
            left = conn.execute(text("SELECT count(*) FROM crawl_frontier")).scalar_one()
        fresh.close()
        wanted = {k for k, t in truth.items() if t["expected"] == "saved"}
        assert set(saved) == wanted
        assert all(saved[k] == expected_fields(truth[k], shop.url) for k in wanted)
        assert left == 0
        stats = result.stats
        assert stats["products/discovered"] + stats.get("products/carried", 0) == PRODUCTS
