"""Benchmark of the product store (not a test).

    python bench/store.py [--rows 50000] [--batch 500] [--slow-rows 5000] [--repeat 3]

Measures rows/s of saving realistic product rows (about 20 fields) into a
fresh SQLite file (WAL, synchronous=NORMAL) with:

* ours: ``ProductStore.write_batch`` in batches of ``--batch`` (what the
  store pipeline's writer thread runs: dedup, the inserted/updated/unchanged
  lookup, the upsert and the clean-up of stale rejects, one transaction per
  batch);
* (a) one transaction per row, the same upsert through SQLAlchemy Core
  (``--slow-rows`` rows: rows/s is what matters);
* (b) the raw ``sqlite3`` module: one ``executemany`` of the equivalent
  ``INSERT ... ON CONFLICT(site, key) DO UPDATE`` in ONE transaction (the
  strictest baseline).

All three get the same rows: each product's fields already serialised to the
canonical JSON text, as the store pipeline hands them to its writer thread
(the text is made once per item on the reactor thread, where it is also
hashed; bench/throughput.py measures that side).

Each case runs on its own fresh file in a temporary directory, ``--repeat``
times (interleaved, each after ``os.sync()``); the best run counts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crawler import defaults  # noqa: E402
from crawler.items import canonical_json, content_hash  # noqa: E402
from storage.engine import utc_iso  # noqa: E402
from storage.products import ProductRow, ProductStore  # noqa: E402
from storage.schema import products  # noqa: E402

SITE = "bench-shop"
WORDS = (
    "steel oak linen wireless compact ergonomic premium classic outdoor smart portable "
    "cotton leather vintage modular quiet rechargeable waterproof lightweight durable"
).split()
BRANDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell"]
CATEGORIES = ["Home", "Kitchen", "Garden", "Office", "Outdoor", "Toys", "Audio", "Lighting", "Tools"]


def make_fields(rng: random.Random, i: int) -> dict[str, Any]:
    """One product's JSON-ready fields, like a validated catalogue page."""
    name = " ".join(rng.choice(WORDS) for _ in range(4)).title()
    return {
        "sku": f"SKU-{i:08d}",
        "title": f"{rng.choice(BRANDS)} {name}",
        "brand": rng.choice(BRANDS),
        "model": f"M{rng.randint(100, 9999)}-{rng.choice('ABCDEFX')}",
        "description": " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 60))),
        "price": f"{rng.randint(1, 2000)}.{rng.randint(0, 99):02d}",
        "old_price": f"{rng.randint(2001, 3000)}.00" if rng.random() < 0.3 else None,
        "currency": "EUR",
        "in_stock": rng.random() < 0.8,
        "stock_count": rng.randint(0, 500),
        "rating": round(rng.uniform(1, 5), 1),
        "review_count": rng.randint(0, 4000),
        "categories": rng.sample(CATEGORIES, rng.randint(1, 3)),
        "tags": rng.sample(WORDS, rng.randint(2, 6)),
        "color": rng.choice(["black", "white", "red", "blue", "green", None]),
        "weight_kg": round(rng.uniform(0.1, 40), 2),
        "ean": f"{rng.randint(10**12, 10**13 - 1)}",
        "release_date": (datetime(2015, 1, 1) + timedelta(days=rng.randint(0, 3650))).date().isoformat(),
        "warranty_years": rng.choice([1, 2, 3, 5]),
        "image_url": f"https://img.example.com/p/{i}.jpg",
    }


def make_rows(n: int, seed: int = 1) -> list[ProductRow]:
    rng = random.Random(seed)
    seen = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    rows = []
    for i in range(n):
        fields = make_fields(rng, i)
        rows.append(
            ProductRow(
                site=SITE,
                key=fields["sku"],
                url=f"https://shop.example.com/product/{i}",
                data=canonical_json(fields),
                content_hash=content_hash(fields),
                list_page=i // 24 + 1,
                list_position=i % 24 + 1,
                seen_at=seen,
            )
        )
    return rows


def fresh_store(tmp: Path, name: str) -> ProductStore:
    store = ProductStore(f"sqlite:///{tmp / name}")
    store.create_schema()
    return store


def case_ours(tmp: Path, name: str, rows: list[ProductRow], batch: int) -> float:
    store = fresh_store(tmp, name)
    try:
        started = time.perf_counter()
        inserted = 0
        for i in range(0, len(rows), batch):
            inserted += store.write_batch(rows[i : i + batch]).inserted
        elapsed = time.perf_counter() - started
    finally:
        store.close()
    assert inserted == len(rows), inserted
    return elapsed


def case_row_commits(tmp: Path, name: str, rows: list[ProductRow]) -> float:
    """(a): the same upsert, one transaction per row, through SQLAlchemy Core."""
    store = fresh_store(tmp, name)
    stmt = store.product_upsert
    try:
        started = time.perf_counter()
        for row in rows:
            seen = utc_iso(row.seen_at)
            params = {
                "site": row.site,
                "key": row.key,
                "url": row.url,
                "data": row.data,
                "content_hash": row.content_hash,
                "list_page": row.list_page,
                "list_position": row.list_position,
                "first_seen": seen,
                "last_seen": seen,
                "updated_at": seen,
            }
            with store.engine.begin() as conn:
                conn.execute(stmt, params)
        elapsed = time.perf_counter() - started
        assert store.count(products) == len(rows)
    finally:
        store.close()
    return elapsed


RAW_UPSERT = (
    "INSERT INTO products (site, key, url, data, content_hash, list_page, list_position,"
    " first_seen, last_seen, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (site, key) DO UPDATE SET url = excluded.url, data = excluded.data,"
    " content_hash = excluded.content_hash, list_page = excluded.list_page,"
    " list_position = excluded.list_position, last_seen = excluded.last_seen,"
    " updated_at = CASE WHEN products.content_hash = excluded.content_hash"
    " THEN products.updated_at ELSE excluded.updated_at END"
)


def case_raw(tmp: Path, name: str, rows: list[ProductRow]) -> float:
    """(b): raw sqlite3, one executemany in one transaction, JSON serialised beforehand."""
    fresh_store(tmp, name).close()  # the same schema
    params = []
    for row in rows:
        seen = utc_iso(row.seen_at)
        params.append(
            (row.site, row.key, row.url, row.data, row.content_hash, row.list_page,
             row.list_position, seen, seen, seen)
        )  # fmt: skip
    conn = sqlite3.connect(tmp / name, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(RAW_UPSERT, params)
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
        assert conn.execute("SELECT count(*) FROM products").fetchone()[0] == len(rows)
    finally:
        conn.close()
    return elapsed


def remove_db(tmp: Path, name: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        path = tmp / f"{name}{suffix}"
        if path.exists():
            path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows for ours and (b) (default 50000)")
    parser.add_argument(
        "--batch", type=int, default=int(defaults.STORE_BATCH_SIZE), help="rows per write_batch (STORE_BATCH_SIZE)"
    )
    parser.add_argument("--slow-rows", type=int, default=5_000, help="rows for (a) (default 5000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions, best counts (default 3)")
    args = parser.parse_args(argv)

    rows = make_rows(args.rows)
    slow_rows = rows[: min(args.slow_rows, args.rows)]
    fields = sum(len(json.loads(r.data)) for r in rows[:1000]) / min(1000, len(rows))
    size = sum(len(r.data) for r in rows[:1000]) / min(1000, len(rows))
    print(
        f"store bench: SQLite {sqlite3.sqlite_version}, {len(rows)} rows ({fields:.0f} fields,"
        f" ~{size:.0f} B JSON each), batch {args.batch}, best of {args.repeat}"
    )
    cases: dict[str, Callable[[Path, str], float]] = {
        "ours": lambda tmp, name: case_ours(tmp, name, rows, args.batch),
        "a": lambda tmp, name: case_row_commits(tmp, name, slow_rows),
        "b": lambda tmp, name: case_raw(tmp, name, rows),
    }
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmpdir:
        tmp = Path(tmpdir)
        # repetitions interleaved, each on a fresh file, after a sync: the
        # disk's background writeback hits every case alike
        for i in range(args.repeat):
            for name, run in cases.items():
                os.sync()
                seconds = run(tmp, f"{name}-{i}.db")
                remove_db(tmp, f"{name}-{i}.db")
                best[name] = min(best.get(name, seconds), seconds)

    results = [
        (f"ours: ProductStore.write_batch, batches of {args.batch}", len(rows), best["ours"]),
        ("(a) one transaction per row (SQLAlchemy)", len(slow_rows), best["a"]),
        ("(b) raw sqlite3 executemany, one transaction", len(rows), best["b"]),
    ]
    print(f"{'case':<56} {'rows':>7} {'seconds':>9} {'rows/s':>10}")
    for label, n, seconds in results:
        print(f"{label:<56} {n:>7} {seconds:>9.3f} {n / seconds:>10,.0f}")
    rate_ours = len(rows) / best["ours"]
    ratio_a = rate_ours / (len(slow_rows) / best["a"])
    ratio_b = rate_ours / (len(rows) / best["b"])
    print(
        f"targets: ours >= 10x (a): {'met' if ratio_a >= 10 else 'MISSED'};"
        f" ours >= 0.6x (b): {'met' if ratio_b >= 0.6 else 'MISSED'}"
    )
    print(f"store: ours/(a one-commit-per-row) = {ratio_a:.2f}x, ours/(b raw sqlite3 executemany) = {ratio_b:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
