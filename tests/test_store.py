"""The product store (storage/products.py) on real SQLite files, and the store pipeline in a real crawl."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_mock_engine
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from crawler.items import canonical_json, content_hash
from storage.engine import DatabaseError, utc_iso
from storage.products import ProductRow, ProductStore, RejectRow, StoreWriteError
from storage.schema import products, rejected_items

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SITE = "shop"


def product(i: int, *, version: int = 0, at: datetime = T0, key: str | None = None, site: str = SITE) -> ProductRow:
    data = {"sku": f"k{i}", "title": f"Product {i}", "price": f"{i}.99", "version": version, "tags": ["a", "b"]}
    return ProductRow(
        site=site,
        key=f"k{i}" if key is None else key,
        url=f"https://shop.test/p/{i}",
        data=canonical_json(data),
        content_hash=content_hash(data),
        list_page=1 + i // 10,
        list_position=1 + i % 10,
        seen_at=at,
    )


def reject(url: str, reason: str = "missing required field: price", at: datetime = T0) -> RejectRow:
    return RejectRow(site=SITE, url=url, key=None, reason=reason, data={"title": "x", "price": None}, seen_at=at)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "catalog.db"


@pytest.fixture
def store(db_path: Path):
    s = ProductStore(f"sqlite:///{db_path}")
    s.create_schema()
    yield s
    s.close()


def rows(db: Path, sql: str, *params: Any) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# --- counts and upsert semantics -------------------------------------------------


def test_insert_update_unchanged_counts_over_two_writes(store: ProductStore, db_path: Path) -> None:
    first = store.write_batch([product(i) for i in range(10)])
    assert (first.inserted, first.updated, first.unchanged) == (10, 0, 0)
    assert (first.rejected, first.isolated, first.failed, first.retries) == (0, 0, 0, 0)
    assert first.seconds > 0

    second_rows = [product(i, version=1 if i < 3 else 0) for i in range(10)] + [product(10), product(11)]
    second = store.write_batch(second_rows)
    assert (second.inserted, second.updated, second.unchanged) == (2, 3, 7)
    assert rows(db_path, "SELECT count(*) FROM products") == [(12,)]
    stored = rows(db_path, "SELECT data, content_hash, list_page, list_position FROM products WHERE key = 'k1'")
    data, digest, page, position = stored[0]
    assert json.loads(data)["version"] == 1
    assert data == product(1, version=1).data  # the canonical JSON, as hashed
    assert digest == product(1, version=1).content_hash
    assert (page, position) == (1, 2)


def test_updated_at_changes_only_with_the_content(store: ProductStore, db_path: Path) -> None:
    t1, t2, t3 = T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    store.write_batch([product(1, at=t1)])
    assert store.write_batch([product(1, at=t2)]).unchanged == 1
    sql = "SELECT first_seen, last_seen, updated_at FROM products WHERE key = 'k1'"
    assert rows(db_path, sql) == [(utc_iso(t1), utc_iso(t2), utc_iso(t1))]
    assert store.write_batch([product(1, version=2, at=t3)]).updated == 1
    assert rows(db_path, sql) == [(utc_iso(t1), utc_iso(t3), utc_iso(t3))]
    assert utc_iso(t1) == "2024-05-01T12:00:00.000Z"


def test_duplicate_keys_in_a_batch_last_one_wins_counted_once(store: ProductStore, db_path: Path) -> None:
    result = store.write_batch([product(1, version=1), product(2), product(1, version=2)])
    assert (result.inserted, result.updated, result.unchanged) == (2, 0, 0)
    (data,) = rows(db_path, "SELECT data FROM products WHERE key = 'k1'")[0]
    assert json.loads(data)["version"] == 2


def test_same_key_on_two_sites_are_two_products(store: ProductStore) -> None:
    result = store.write_batch([product(1), product(1, site="other")])
    assert result.inserted == 2


def test_rejects_upsert_then_disappear_when_the_page_saves(store: ProductStore, db_path: Path) -> None:
    url = product(5).url
    first = store.write_batch([], [reject(url, at=T0)])
    assert first.rejected == 1
    later = T0 + timedelta(hours=1)
    store.write_batch([product(1)], [reject(url, "invalid price: 'abc'", at=later)])
    sql = "SELECT reason, first_seen, last_seen, times, data FROM rejected_items WHERE url = ?"
    reason, first_seen, last_seen, times, data = rows(db_path, sql, url)[0]
    assert (reason, first_seen, last_seen, times) == ("invalid price: 'abc'", utc_iso(T0), utc_iso(later), 2)
    assert json.loads(data) == {"title": "x", "price": None}
    assert rows(db_path, "SELECT count(*) FROM rejected_items") == [(1,)]

    saved = store.write_batch([product(5, at=later + timedelta(hours=1))])
    assert saved.inserted == 1
    assert rows(db_path, "SELECT count(*) FROM rejected_items") == [(0,)]


def test_duplicate_rejects_in_a_batch_count_their_times(store: ProductStore, db_path: Path) -> None:
    result = store.write_batch([], [reject("u1", "first"), reject("u1", "second"), reject("u2")])
    assert result.rejected == 2
    assert rows(db_path, "SELECT url, reason, times FROM rejected_items ORDER BY url") == [
        ("u1", "second", 2),
        ("u2", "missing required field: price", 1),
    ]


def test_reject_superseded_by_a_later_save_in_the_same_batch(store: ProductStore, db_path: Path) -> None:
    p = product(1, at=T0 + timedelta(seconds=5))
    result = store.write_batch([p], [reject(p.url, at=T0)])
    assert (result.inserted, result.rejected) == (1, 1)
    assert rows(db_path, "SELECT count(*) FROM rejected_items") == [(0,)]


# --- bad rows ------------------------------------------------------------------------


def test_one_bad_row_in_100_is_isolated_as_a_reject(store: ProductStore, db_path: Path) -> None:
    batch = [product(i) for i in range(100)]
    batch[37] = product(37, key="")  # violates CHECK (length(key) > 0): bypassed validation
    result = store.write_batch(batch)
    assert (result.inserted, result.isolated, result.failed) == (99, 1, 0)
    assert rows(db_path, "SELECT count(*) FROM products") == [(99,)]
    ((url, key, reason),) = rows(db_path, "SELECT url, key, reason FROM rejected_items")
    assert url == batch[37].url and key == ""
    assert reason.startswith("store error: IntegrityError: ") and "CHECK constraint failed" in reason
    assert "\n" not in reason
    assert result.errors and "stored as reject" in result.errors[0]


# --- transient errors ----------------------------------------------------------------


def locker(db_path: Path) -> sqlite3.Connection:
    """Another connection holding the SQLite write lock."""
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO rejected_items (site, url, reason, data, first_seen, last_seen, times)"
                 " VALUES ('lock', 'lock', 'lock', '{}', '', '', 1)")  # fmt: skip
    return conn


def test_a_locked_database_is_retried(db_path: Path) -> None:
    ProductStore(f"sqlite:///{db_path}").create_schema()
    lock = locker(db_path)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # the retry delay: release the lock now
        sleeps.append(seconds)
        lock.execute("COMMIT")

    store = ProductStore(f"sqlite:///{db_path}", retries=2, retry_delay=0.25, sqlite_busy_timeout=0.05, sleep=sleep)
    try:
        result = store.write_batch([product(i) for i in range(5)])
    finally:
        store.close()
        lock.close()
    assert (result.inserted, result.retries, result.isolated, result.failed) == (5, 1, 0, 0)
    assert sleeps == [0.25]


def test_a_database_that_stays_locked_raises_store_write_error(db_path: Path) -> None:
    ProductStore(f"sqlite:///{db_path}").create_schema()
    lock = locker(db_path)
    sleeps: list[float] = []
    store = ProductStore(f"sqlite:///{db_path}", retries=2, retry_delay=0.0, sqlite_busy_timeout=0.02,
                         sleep=sleeps.append)  # fmt: skip
    try:
        with pytest.raises(StoreWriteError) as caught:
            store.write_batch([product(i) for i in range(6)], [reject("u")])
    finally:
        store.close()
        lock.rollback()
        lock.close()
    error = caught.value
    assert len(sleeps) == 2 and error.result.retries == 2
    assert error.unwritten == 7
    assert "database is locked" in str(error) and "\n" not in str(error)


# --- configuration errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "invalid DATABASE_URL 'not a url': Could not parse SQLAlchemy URL"),
        ("foo://", "invalid DATABASE_URL 'foo://': unsupported database dialect 'foo'"),
        ("mysql://u:secret@db/x", "invalid DATABASE_URL 'mysql://u:***@db/x': unsupported database dialect 'mysql'"),
        (
            "postgresql+nosuchdriver://u:secret@db/x",
            "invalid DATABASE_URL 'postgresql+nosuchdriver://u:***@db/x': unknown database dialect/driver",
        ),
    ],
)
def test_invalid_urls_are_one_line_errors(url: str, expected: str) -> None:
    with pytest.raises(DatabaseError) as caught:
        ProductStore(url)
    message = str(caught.value)
    assert message.startswith(expected)
    assert "\n" not in message and "secret" not in message


def test_unparsable_url_with_a_password_is_masked() -> None:
    with pytest.raises(DatabaseError) as caught:
        ProductStore("postgres//admin:secret@db/x")
    assert "secret" not in str(caught.value) and "admin:***@" in str(caught.value)


def test_sqlite_file_under_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    with pytest.raises(DatabaseError) as caught:
        ProductStore(f"sqlite:///{blocker}/x.db")
    message = str(caught.value)
    assert message == (
        f"cannot open database sqlite:///{blocker}/x.db: cannot create directory {blocker}: Not a directory"
    )


def test_sqlite_file_that_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError) as caught:
        ProductStore(f"sqlite:///{tmp_path}")  # a directory
    assert str(caught.value) == f"cannot open database sqlite:///{tmp_path}: unable to open database file"


def test_database_error_is_a_config_error() -> None:
    from crawler.errors import ConfigError

    assert issubclass(DatabaseError, ConfigError)


# --- engine set-up ------------------------------------------------------------------------


def test_parent_directory_created_and_pragmas_set(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "c.db"
    store = ProductStore(f"sqlite:///{path}", sqlite_busy_timeout=1.5)
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1500
    finally:
        store.close()
    assert path.exists()


@pytest.mark.parametrize("url", ["file", "sqlite://", "sqlite:///:memory:"])
def test_store_created_in_one_thread_works_in_another(url: str, tmp_path: Path) -> None:
    store = ProductStore(f"sqlite:///{tmp_path / 'c.db'}" if url == "file" else url)
    store.create_schema()
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(store.write_batch([product(1), product(2)])))
    worker.start()
    worker.join()
    assert results and results[0].inserted == 2
    assert store.count(products) == 2  # the same database from this thread
    store.close()


def test_postgresql_statements_compile() -> None:
    """No PostgreSQL server here: check the same code builds valid PostgreSQL SQL."""
    engine = create_mock_engine("postgresql://", lambda *a, **k: None)
    store = ProductStore.__new__(ProductStore)
    store.engine = engine  # type: ignore[assignment]
    store.dialect = "postgresql"
    store._build_statements(postgresql.insert)
    dialect = postgresql.dialect()
    upsert = str(store.product_upsert.compile(dialect=dialect))
    assert "ON CONFLICT (site, key) DO UPDATE SET" in upsert
    assert "CASE WHEN (products.content_hash = excluded.content_hash) THEN products.updated_at" in upsert
    assert "first_seen" not in upsert.split("DO UPDATE SET")[1]
    rejects = str(store.reject_upsert.compile(dialect=dialect))
    assert "ON CONFLICT (site, url) DO UPDATE SET" in rejects and "rejected_items.times + excluded.times" in rejects
    ddl = str(CreateTable(products).compile(dialect=dialect))
    assert "CHECK (length(key) > 0)" in ddl and "UNIQUE (site, key)" in ddl
    assert "UNIQUE (site, url)" in str(CreateTable(rejected_items).compile(dialect=dialect))

    calls: list[tuple[Any, Any]] = []

    class FakeConnection:
        def execute(self, statement: Any, params: Any) -> None:
            calls.append((statement, params))

    store._upsert_products(FakeConnection(), [("s", "k", "u", "{}", "h", None, None, "t", "t", "t")])  # type: ignore[arg-type]
    assert calls[0][0] is store.product_upsert
    assert calls[0][1] == [
        {"site": "s", "key": "k", "url": "u", "data": "{}", "content_hash": "h", "list_page": None,
         "list_position": None, "first_seen": "t", "last_seen": "t", "updated_at": "t"}
    ]  # fmt: skip


# --- the pipeline in a real (network-free) crawl ----------------------------------------

CRAWL_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys, time, warnings
    warnings.simplefilter("always")
    from scrapy import Request, Spider
    from scrapy.crawler import CrawlerProcess
    from crawler.items import ProductItem, content_hash
    import storage.products

    url, n, mode, batch_size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    original = storage.products.ProductStore.write_batch

    def write_batch(self, products, rejects):
        if mode == "slow":
            time.sleep(0.05)
        if mode == "fail":
            result = storage.products.BatchResult(retries=2)
            raise storage.products.StoreWriteError("cannot write to db: disk I/O error", result, 5)
        return original(self, products, rejects)

    storage.products.ProductStore.write_batch = write_batch

    class Items(Spider):
        name = "items"

        async def start(self):
            yield Request("data:,catalogue")  # no network

        async def parse(self, response):
            for i in range(n):
                item = ProductItem(url=f"https://shop.test/p/{i}", site="shop", raw={"i": str(i)},
                                   crawled_at="2024-05-01T12:00:00+00:00")
                if i % 10 == 3:
                    item.reject_reason = f"missing required field: price\\n(page {i})"
                elif i % 10 == 7:
                    pass  # never validated
                else:
                    item.key = f"k{i}"
                    item.fields = {"sku": f"k{i}", "n": i}
                    item.content_hash = content_hash(item.fields)
                yield item
            if mode == "timer":
                print("parse() sleeping", file=sys.stderr, flush=True)
                await asyncio.sleep(1.0)
                print("parse() done", file=sys.stderr, flush=True)

    process = CrawlerProcess(settings={
        "ITEM_PIPELINES": {"pipelines.store.StorePipeline": 800},
        "DATABASE_URL": url,
        "STORE_BATCH_SIZE": batch_size,
        "STORE_MAX_PENDING_BATCHES": 1,
        "STORE_FLUSH_INTERVAL": 0.2,
        "LOG_LEVEL": "DEBUG",
        "TELNETCONSOLE_ENABLED": False,
    })
    crawler = process.create_crawler(Items)
    process.crawl(crawler)
    process.start()
    print(json.dumps({k: v for k, v in crawler.stats.get_stats().items() if not hasattr(v, "isoformat")}))
    """
)


def run_crawl(
    tmp_path: Path, db: Path, n: int, mode: str = "ok", batch_size: int = 7
) -> tuple[dict[str, Any], str]:
    script = tmp_path / "crawl_items.py"
    script.write_text(CRAWL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(script), f"sqlite:///{db}", str(n), mode, str(batch_size)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_pipeline_saves_products_and_drops_rejects(tmp_path: Path) -> None:
    db = tmp_path / "crawl" / "c.db"
    stats, log = run_crawl(tmp_path, db, 100)
    assert stats["finish_reason"] == "finished"
    assert stats["store/inserted"] == 80 == stats["item_scraped_count"]
    assert stats["store/rejected"] == 20 == stats["item_dropped_count"]
    assert stats["store/batches"] >= 100 // 7
    assert (stats["store/isolated"], stats["store/failed"], stats["store/retries"]) == (0, 0, 0)
    assert stats["store/write_seconds"] > 0
    assert rows(db, "SELECT count(*) FROM products") == [(80,)]
    reasons = dict(rows(db, "SELECT url, reason FROM rejected_items"))
    assert reasons["https://shop.test/p/3"] == "missing required field: price (page 3)"
    assert reasons["https://shop.test/p/7"] == "not validated (is ValidationPipeline enabled?)"
    assert rows(db, "SELECT last_seen FROM products WHERE key = 'k1'") == [("2024-05-01T12:00:00.000Z",)]
    assert "INFO: Dropped: missing required field: price (page 3)" in log
    assert "[pipelines.store] INFO: Store: 80 inserted, 0 updated, 0 unchanged, 20 rejected" in log
    assert "[pipelines.store] DEBUG: Stored a batch" in log
    assert "Deprecat" not in log, [line for line in log.splitlines() if "Deprecat" in line]

    again, _ = run_crawl(tmp_path, db, 100)
    assert (again["store/inserted"], again["store/unchanged"], again["store/rejected"]) == (0, 80, 20)
    assert rows(db, "SELECT min(times) FROM rejected_items") == [(2,)]


def test_pipeline_waits_for_a_slow_writer_and_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    stats, _ = run_crawl(tmp_path, db, 120, mode="slow")
    assert stats["store/backpressure_waits"] > 0
    assert stats["store/inserted"] == 96 and stats["store/rejected"] == 24
    assert rows(db, "SELECT count(*) FROM products") == [(96,)]


def test_pipeline_flushes_a_partial_batch_after_the_interval(tmp_path: Path) -> None:
    stats, log = run_crawl(tmp_path, tmp_path / "c.db", 10, mode="timer", batch_size=1000)
    assert stats["store/inserted"] == 8 and stats["store/batches"] == 1
    sleeping, stored, done = (log.index(s) for s in ("parse() sleeping", "Stored a batch", "parse() done"))
    assert sleeping < stored < done  # written by the flush timer, not at close


def test_pipeline_closes_the_spider_when_the_database_fails(tmp_path: Path) -> None:
    stats, log = run_crawl(tmp_path, tmp_path / "c.db", 30, mode="fail")
    assert stats["finish_reason"] == "store_error"
    assert stats["store/failed"] >= 5 and stats["store/retries"] >= 2
    assert "ERROR: Store: 5 rows of a batch not stored: cannot write to db: disk I/O error" in log


def test_pipeline_bad_url_fails_in_from_crawler(tmp_path: Path) -> None:
    from scrapy.utils.test import get_crawler

    from pipelines.store import StorePipeline

    blocker = tmp_path / "afile"
    blocker.write_text("")
    crawler = get_crawler(settings_dict={"DATABASE_URL": f"sqlite:///{blocker}/x.db"})
    with pytest.raises(DatabaseError, match="cannot create directory"):
        StorePipeline.from_crawler(crawler)
    crawler = get_crawler(settings_dict={"DATABASE_URL": f"sqlite:///{tmp_path}/ok.db", "STORE_BATCH_SIZE": "zero"})
    with pytest.raises(DatabaseError, match="invalid setting STORE_BATCH_SIZE='zero'"):
        StorePipeline.from_crawler(crawler)
