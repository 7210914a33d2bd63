"""The dead-letter queue: its store on real SQLite files, the request records, and real crawls.

The integration test runs everything as users do, in subprocesses over
loopback: a crawl of a 50-product demo shop that asks for pages of products
the shop does not have (404: dead-lettered by the retry middleware), the
``scrapy dlq`` subcommands on that database, a requeue while the pages still
fail (the same letters, ``times`` 2), then a requeue against a 100-product
shop on the same port, where they all succeed: the queue empties and the
products are saved.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import sqlite3
import subprocess
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import scrapy
from scrapy.http import FormRequest
from scrapy.utils.request import RequestFingerprinter
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from crawler.errors import ConfigError
from crawler.request_records import DLQ_ID, request_from_record, request_to_record
from crawler.siteprofile import load_profile
from crawler.spiders.catalog import CatalogSpider
from demoshop.catalogue import Catalogue
from demoshop.process import ShopProcess
from extensions.dead_letters import parse_filter, spider_args_of
from storage.dead_letters import (
    COLUMNS,
    DeadLetterFilter,
    DeadLetterRow,
    DeadLetterStore,
    canonical_args,
    upsert_statement,
)
from storage.engine import DatabaseError
from storage.schema import dead_letters
from tests.conftest import ROOT, scrapy_command

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def letter(
    n: int,
    *,
    spider: str = "catalog",
    site: str | None = "shop",
    reason: str = "http_404",
    failure_class: str = "permanent",
    stage: str | None = "detail",
    at: datetime = T0,
    status: int | None = 404,
    attempts: int = 1,
    fingerprint: str | None = None,
) -> DeadLetterRow:
    url = f"https://shop.test/p/{n}"
    return DeadLetterRow(
        spider=spider,
        site=site,
        spider_args={"site": site or "", "start_url": "https://shop.test/"},
        fingerprint=fingerprint or f"{n:040x}",
        url=url,
        method="GET",
        stage=stage,
        request={"url": url, "method": "GET", "callback": "parse_detail", "meta": {"stage": stage}},
        failure_class=failure_class,
        reason=reason,
        last_status=status,
        last_exception=None if status else "TimeoutError: took too long",
        attempts=attempts,
        failed_at=at,
    )


@pytest.fixture
def store(tmp_path: Path):
    s = DeadLetterStore(f"sqlite:///{tmp_path / 'dlq.db'}")
    s.create_schema()
    yield s
    s.close()


# --- the store --------------------------------------------------------------------------


def test_same_spider_and_fingerprint_is_one_letter_updated(store: DeadLetterStore) -> None:
    store.add([letter(1, at=T0)])
    later = T0 + timedelta(hours=1)
    store.add([letter(1, at=later, reason="http_503", failure_class="transient", status=503, attempts=6)])
    (row,) = store.list()
    assert (row["reason"], row["failure_class"], row["last_status"], row["attempts"]) == (
        "http_503", "transient", 503, 6,
    )  # fmt: skip
    assert row["times"] == 2
    assert row["first_failed"] == "2024-05-01T12:00:00.000Z"
    assert row["last_failed"] == "2024-05-01T13:00:00.000Z"
    # twice in one batch: merged, counted twice
    store.add([letter(1, at=later), letter(1, at=later + timedelta(seconds=1), reason="timeout", status=None)])
    (row,) = store.list()
    assert row["times"] == 4 and row["reason"] == "timeout" and row["last_exception"] == "TimeoutError: took too long"
    # another spider with the same fingerprint is another letter
    store.add([letter(1, spider="other")])
    assert store.count() == 2


def test_remove_and_write_removes_before_adding(store: DeadLetterStore) -> None:
    store.add([letter(1), letter(2), letter(3)])
    ids = [r["id"] for r in store.list()]
    assert store.remove([ids[0], 999]) == 1
    assert [r["url"] for r in store.list()] == ["https://shop.test/p/2", "https://shop.test/p/3"]
    # a letter that recovered, then failed again before the write: it stays
    result = store.write([letter(2)], remove_ids=[ids[1]])
    assert result.removed == 1 and result.added == 1
    assert sorted(r["url"] for r in store.list()) == ["https://shop.test/p/2", "https://shop.test/p/3"]
    assert store.existing([ids[1], ids[2]]) == {ids[2]: 1}
    assert store.get(ids[0]) is None


def test_filters_paging_and_counts(store: DeadLetterStore) -> None:
    store.add(
        [
            letter(1),
            letter(2, reason="http_410"),
            letter(3, reason="timeout", failure_class="transient", status=None, stage="list"),
            letter(4, reason="timeout", failure_class="transient", status=None),
            letter(5, reason="circuit_open", failure_class="transient", status=None, site="other"),
            letter(6, spider="plain", site=None, stage=None),
        ]
    )
    urls = lambda rows: [r["url"].rsplit("/", 1)[1] for r in rows]  # noqa: E731
    assert urls(store.list(DeadLetterFilter(reason="timeout"))) == ["3", "4"]
    assert urls(store.list(DeadLetterFilter(failure_class="permanent", spider="catalog"))) == ["1", "2"]
    assert urls(store.list(DeadLetterFilter(stage="list"))) == ["3"]
    assert urls(store.list(DeadLetterFilter(site="other"))) == ["5"]
    assert urls(store.list(DeadLetterFilter(spider="plain"))) == ["6"]
    assert urls(store.list(limit=2, offset=1)) == ["2", "3"]
    first = store.list(limit=2)
    assert urls(store.list(limit=2, after_id=first[-1]["id"])) == ["3", "4"]
    ids = tuple(r["id"] for r in store.list(limit=None))
    assert urls(store.list(DeadLetterFilter(ids=(ids[0], ids[4])))) == ["1", "5"]
    assert urls(store.iter_all(chunk=2)) == ["1", "2", "3", "4", "5", "6"]
    assert urls(store.iter_all(DeadLetterFilter(ids=ids[1:4]), chunk=2)) == ["2", "3", "4"]
    args = canonical_args({"start_url": "https://shop.test/", "site": "other"})
    assert urls(store.list(DeadLetterFilter(spider_args=args))) == ["5"]
    assert store.count(DeadLetterFilter(failure_class="transient")) == 3
    assert store.count_by() == [
        ("permanent", "http_404", 2),
        ("permanent", "http_410", 1),
        ("transient", "timeout", 2),
        ("transient", "circuit_open", 1),
    ]
    assert store.count_by(DeadLetterFilter(spider="plain")) == [("permanent", "http_404", 1)]
    row = store.get(ids[0])
    assert row is not None and tuple(row) == COLUMNS
    assert json.loads(row["spider_args"]) == {"site": "shop", "start_url": "https://shop.test/"}


def test_postgresql_statements_compile() -> None:
    """No PostgreSQL server here: check the same code builds valid PostgreSQL SQL."""
    dialect = postgresql.dialect()
    upsert = str(upsert_statement("postgresql").compile(dialect=dialect))
    assert "ON CONFLICT (spider, fingerprint) DO UPDATE SET" in upsert
    assert "times = (dead_letters.times + excluded.times)" in upsert
    assert "first_failed" not in upsert.split("DO UPDATE SET")[1]
    ddl = str(CreateTable(dead_letters).compile(dialect=dialect))
    assert "UNIQUE (spider, fingerprint)" in ddl and "id BIGSERIAL" in ddl


def test_filter_from_settings() -> None:
    assert parse_filter("") == DeadLetterFilter()
    assert parse_filter({"reason": "http_404", "ids": [3, "1"]}) == DeadLetterFilter(reason="http_404", ids=(1, 3))
    assert parse_filter('{"spider_args": {"b": "2", "a": "1"}}').spider_args == '{"a":"1","b":"2"}'
    for bad, message in [
        ('{"colour": "red"}', "unknown dead-letter filter key(s) 'colour'"),
        ("[1]", "must be a JSON object"),
        ("{nope", "not JSON"),
        ('{"ids": ["x"]}', "'ids' must be a list of integers"),
    ]:
        with pytest.raises(ConfigError, match="invalid DLQ_REQUEUE_FILTER") as caught:
            parse_filter(bad)
        assert message in str(caught.value) and "\n" not in str(caught.value)


def test_filter_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "filter.json"
    path.write_text(json.dumps({"ids": list(range(1, 2001))}))
    assert parse_filter(f"@{path}").ids == tuple(range(1, 2001))
    with pytest.raises(ConfigError, match="cannot read"):
        parse_filter(f"@{tmp_path / 'missing.json'}")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "invalid DATABASE_URL 'not a url'"),
        ("mysql://u:secret@db/x", "invalid DATABASE_URL 'mysql://u:***@db/x': unsupported database dialect"),
    ],
)
def test_bad_database_url_is_one_line(url: str, expected: str) -> None:
    with pytest.raises(DatabaseError) as caught:
        DeadLetterStore(url)
    assert str(caught.value).startswith(expected) and "\n" not in str(caught.value)
    assert "secret" not in str(caught.value)


# --- request records ----------------------------------------------------------------------


def catalog_spider(start_url: str | None = "http://127.0.0.1:8000/csa-iot_products/") -> CatalogSpider:
    profile = load_profile("csa_iot")
    return CatalogSpider(profile.with_start_url(start_url) if start_url else profile)


def test_request_record_round_trips_through_the_store(store: DeadLetterStore) -> None:
    spider = catalog_spider()

    class Opaque:
        pass

    request = FormRequest(
        "http://127.0.0.1:8000/csa_product/a-b/?q=1",
        method="POST",
        body=b"\xff\x00binary",
        headers={"X-Token": "abc", "Cookie": "session=1", "Accept-Language": "de"},
        callback=spider.parse_detail,
        errback=spider.parse_list,
        cb_kwargs={"hint": [1, 2], "opaque": Opaque()},
        priority=7,
        flags=["replayed"],
        meta={
            "stage": "detail", "list_page": 3, "list_position": 4, "start_url": "http://x/", "depth": 2,
            "user_key": {"nested": True}, "object": Opaque(),
            "download_slot": "127.0.0.1", "download_latency": 0.1, "retry_times": 5, "not_before": 1.0,
            "product_ref": 17, "_breaker_allowed": True, "dlq_id": 99,
        },
    )  # fmt: skip
    record = request_to_record(request, spider)
    json.dumps(record)  # JSON-safe
    assert record["callback"] == "parse_detail" and record["errback"] == "parse_list"
    assert record["body_encoding"] == "base64"
    assert record["_class"] == "scrapy.http.request.form.FormRequest"
    assert sorted(record["dropped"]) == ["cb_kwargs.opaque", "meta.object"]
    assert "Cookie" not in record["headers"]
    assert record["meta"] == {
        "stage": "detail", "list_page": 3, "list_position": 4, "start_url": "http://x/", "depth": 2,
        "user_key": {"nested": True},
    }  # fmt: skip

    row = DeadLetterRow(
        spider="catalog", site="csa_iot", spider_args=spider_args_of(spider),
        fingerprint=RequestFingerprinter().fingerprint(request).hex(), url=request.url, method="POST",
        stage="detail", request=record, failure_class="transient", reason="timeout", last_status=None,
        last_exception="TimeoutError: x", attempts=6, failed_at=T0,
    )  # fmt: skip
    store.add([row])
    (stored,) = store.list()
    replay = request_from_record(json.loads(stored["request"]), spider, dlq_id=stored["id"])
    assert type(replay) is FormRequest
    assert replay.callback == spider.parse_detail and replay.errback == spider.parse_list
    assert (replay.url, replay.method, replay.body, replay.priority) == (request.url, "POST", request.body, 7)
    assert replay.headers.getlist("X-Token") == [b"abc"] and b"Cookie" not in replay.headers
    assert replay.cb_kwargs == {"hint": [1, 2]} and replay.flags == ["replayed"]
    assert replay.dont_filter is True
    assert replay.meta == {**record["meta"], DLQ_ID: stored["id"]}
    assert RequestFingerprinter().fingerprint(replay).hex() == stored["fingerprint"]


def test_a_callback_that_is_not_a_spider_method_cannot_be_replayed() -> None:
    spider = catalog_spider()
    record = request_to_record(scrapy.Request("http://x/", callback=lambda r: None), spider)
    assert record["callback"] is None and record["dropped"] == ["callback"]
    with pytest.raises(ValueError, match="callback was not a method"):
        request_from_record(record, spider)
    text = request_to_record(scrapy.Request("http://x/", body="café"), spider)
    assert text["body"] == "café" and "body_encoding" not in text
    assert request_from_record(text, spider).body == "café".encode()


def test_catalog_spider_args_recreate_it(tmp_path: Path) -> None:
    url = "http://127.0.0.1:8000/csa-iot_products/"
    assert catalog_spider(url).dead_letter_args == {"site": "csa_iot", "start_url": url}
    # the shipped profile has one start URL on its own host: naming it changes nothing
    shipped = load_profile("csa_iot").start_urls[0]
    assert catalog_spider(None).dead_letter_args == {"site": "csa_iot", "start_url": shipped}
    narrowed = CatalogSpider(load_profile("csa_iot").with_start_url(url).with_allowed_domains(["a.test", "b.test"]))
    assert narrowed.dead_letter_args == {"site": "csa_iot", "start_url": url, "allowed_domains": "a.test,b.test"}
    copy = tmp_path / "mysite.toml"
    copy.write_text((ROOT / "crawler/sites/csa_iot.toml").read_text())
    spider = CatalogSpider(load_profile(str(copy)).with_start_url(url))
    assert spider_args_of(spider) == {"site": str(copy.resolve()), "start_url": url}
    assert spider_args_of(scrapy.Spider(name="plain")) == {}


# --- real crawls over loopback ------------------------------------------------------------

SEED = 3
SMALL, BIG = 50, 100
PRESENT = range(45, 50)  # in both shops
MISSING = range(55, 65)  # only in the big shop: 404 in the small one

PHASE1_SPIDER = textwrap.dedent(
    """
    from crawler.spiders.catalog import CatalogSpider

    PAGES = {pages!r}


    class AskForMissingProducts(CatalogSpider):
        name = "catalog"

        async def start(self):
            base = self.start_urls[0].split("/csa-iot_products/")[0]
            for path, page, position in PAGES:
                yield self.detail_request(base + path, page, position)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(scrapy_command(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def dlq(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run("dlq", *args, "-s", f"DATABASE_URL=sqlite:///{db}")


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def stats_of(directory: Path) -> dict[str, Any]:
    (dump,) = directory.glob("catalog-*.json")
    return json.loads(dump.read_text())["stats"]


def test_dead_letter_inspect_and_requeue_end_to_end(tmp_path: Path) -> None:
    catalogue = Catalogue(BIG, SEED)
    truth = {t["key"]: t for t in catalogue.truth()}
    products = [catalogue.product(i) for i in (*PRESENT, *MISSING)]
    spider_file = tmp_path / "phase1.py"
    spider_file.write_text(PHASE1_SPIDER.format(pages=[(p.path, p.list_page, p.list_position) for p in products]))
    db = tmp_path / "catalog.db"
    port = free_port()
    shop_args = ["--port", str(port)]

    with ShopProcess(products=SMALL, seed=SEED, extra_args=shop_args) as shop:
        # 1. a crawl that gives up on the 10 missing pages (404: permanent, dead-lettered at once)
        crawl = run(
            "runspider", str(spider_file), "-a", "site=csa_iot", "-a", f"start_url={shop.list_url}",
            "-s", f"DATABASE_URL=sqlite:///{db}", "-s", f"STATS_DUMP_DIR={tmp_path / 'stats1'}",
            "-s", "DLQ_FLUSH_INTERVAL=60",  # everything is written at close
        )  # fmt: skip
        assert crawl.returncode == 0, crawl.stderr[-3000:]
        stats = stats_of(tmp_path / "stats1")
        assert stats["dlq/added"] == stats["dlq/added/http_404"] == stats["dlq/added/stage/detail"] == 10
        assert crawl.stderr.count("[extensions.dead_letters] WARNING: Dead letter: GET ") == 10
        assert "Dead-letter queue: 10 added (http_404 10), 0 removed" in crawl.stderr
        assert query(db, "SELECT count(*) FROM products") == [(len(PRESENT),)]
        rows = query(db, "SELECT spider, site, spider_args, stage, failure_class, reason, last_status, attempts,"
                         " times FROM dead_letters")  # fmt: skip
        assert len(rows) == 10
        args = json.dumps({"site": "csa_iot", "start_url": shop.list_url}, sort_keys=True, separators=(",", ":"))
        assert set(rows) == {("catalog", "csa_iot", args, "detail", "permanent", "http_404", 404, 1, 1)}

        # 2. inspect it
        count = dlq(db, "count")
        assert count.returncode == 0, count.stderr
        assert count.stdout.split("\n")[1].split() == ["permanent", "http_404", "10"]
        assert count.stdout.split("\n")[-2].split() == ["total", "10"]

        listing = dlq(db, "list", "--limit", "3", "--stage", "detail")
        assert listing.returncode == 0, listing.stderr
        lines = listing.stdout.splitlines()
        assert lines[0].split() == ["id", "stage", "class", "reason", "attempts", "status", "times", "url"]
        assert [line.split()[1:7] for line in lines[1:4]] == [["detail", "permanent", "http_404", "1", "404", "1"]] * 3
        assert lines[4] == "(3 of 10 dead letters shown, from offset 0; see --limit, --offset)"
        first_id = lines[1].split()[0]

        show = dlq(db, "show", first_id)
        assert show.returncode == 0, show.stderr
        assert "reason:         http_404" in show.stdout and f"spider_args:    {args}" in show.stdout
        request = json.loads(show.stdout.split("request:\n", 1)[1])
        assert request["callback"] == "parse_detail" and request["meta"]["stage"] == "detail"
        # the first listed (lowest id) is one of the missing pages; ids follow the order they failed in
        assert request["url"] == lines[1].split()[-1]
        assert request["url"] in {shop.url.rstrip("/") + p.path for p in products[len(PRESENT):]}

        exported = dlq(db, "export", "-o", str(tmp_path / "dlq.csv"))
        assert exported.returncode == 0 and "exported 10 dead letters" in exported.stdout, exported.stderr
        with (tmp_path / "dlq.csv").open(newline="") as fh:
            reader = csv.DictReader(fh)
            assert tuple(reader.fieldnames or ()) == COLUMNS
            assert len(list(reader)) == 10
        exported = dlq(db, "export", "-o", str(tmp_path / "dlq.out"), "--format", "jsonl", "--reason", "http_404")
        assert exported.returncode == 0, exported.stderr
        documents = [json.loads(line) for line in (tmp_path / "dlq.out").read_text().splitlines()]
        assert len(documents) == 10 and tuple(documents[0]) == COLUMNS
        assert documents[0]["request"]["callback"] == "parse_detail"

        # 3. requeue while the pages still fail: the same letters, dead-lettered again
        again = dlq(db, "requeue", "--reason", "http_404", "-s", "STATS_DUMP_ENABLED=0")
        assert again.returncode == 0, again.stderr[-3000:]
        assert "requeued 10, recovered 0 (removed), still dead 10 (10 failed again)" in again.stdout
        assert query(db, "SELECT count(*), min(times), max(times) FROM dead_letters") == [(10, 2, 2)]

    # 4. the big shop, on the same port: every page answers now
    with ShopProcess(products=BIG, seed=SEED, extra_args=shop_args):
        requeue = dlq(db, "requeue", "-s", f"STATS_DUMP_DIR={tmp_path / 'stats2'}")
        assert requeue.returncode == 0, requeue.stderr[-3000:]
    assert "requeued 10, recovered 10 (removed), still dead 0 (0 failed again)" in requeue.stdout
    assert "DLQ_REQUEUE=1" in requeue.stdout and "-a site=csa_iot" in requeue.stdout
    assert query(db, "SELECT count(*) FROM dead_letters") == [(0,)]
    stats = stats_of(tmp_path / "stats2")
    assert stats["dlq/requeued"] == stats["dlq/removed"] == 10 and stats["dlq/added"] == 0
    assert stats["products/identity_holds"] is True, stats.get("products/identity")
    saved = {key for (key,) in query(db, "SELECT key FROM products")}
    rejected = {url.rstrip("/").rsplit("/", 1)[1] for (url,) in query(db, "SELECT url FROM rejected_items")}
    for p in products:
        expected = truth[p.slug]["expected"]
        assert (p.slug in saved, p.slug in rejected) == (expected == "saved", expected == "rejected"), p.slug

    # 5. nothing left to requeue
    empty = dlq(db, "requeue")
    assert empty.returncode == 2 and empty.stderr.startswith("error: no dead letters to requeue")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "12345"], "error: no dead letter with id 12345 in sqlite:///"),
        (["show", "x"], "error: invalid dead-letter id 'x'"),
        (["frob"], "error: unknown subcommand 'frob'"),
        (["count", "-s", "DATABASE_URL=mysql://u:secret@db/x"], "error: invalid DATABASE_URL 'mysql://u:***@db/x'"),
        (["list", "-s", "DATABASE_URL=not a url"], "error: invalid DATABASE_URL 'not a url'"),
    ],
)
def test_command_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    sqlite3.connect(tmp_path / "x.db").close()  # an empty database (a missing one: tests/test_read_only_commands.py)
    result = run("dlq", "-s", f"DATABASE_URL=sqlite:///{tmp_path / 'x.db'}", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr and "secret" not in result.stderr
