"""The crawl frontier's storage (storage/frontier.py): runs opened, resumed, closed; pending and done.

On SQLite always, and on PostgreSQL when ``TEST_POSTGRES_URL`` is set.  The crash and
resume behaviour of real crawls is in tests/test_resume.py.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.frontier import FrontierEntry, FrontierStore
from storage.schema import crawl_frontier, crawl_runs

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PG_URL = os.environ.get("TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path: Path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'frontier.db'}"
    else:
        if not PG_URL:
            pytest.skip("TEST_POSTGRES_URL is not set (no PostgreSQL server)")
        url = PG_URL
    store = FrontierStore(url)
    for table in (crawl_frontier, crawl_runs):
        table.drop(store.engine, checkfirst=True)
    store.create_schema()
    yield store
    store.close()


def entry(n: int, stage: str = "detail") -> FrontierEntry:
    return FrontierEntry(f"https://shop.test/p/{n}/", stage, f'{{"url": "https://shop.test/p/{n}/"}}')


def test_a_new_run_then_the_same_command_resumes_it(store: FrontierStore) -> None:
    first = store.open_run("catalog", '{"site":"a"}', NOW)
    assert (first.resumed, first.attempts, first.pending, first.done) == (False, 1, [], set())
    page = FrontierEntry("https://shop.test/list/1", "list")
    store.record(first.run_id, [page, *(entry(n) for n in range(5))], [page], NOW)
    store.record(first.run_id, [], [entry(0), entry(1)], NOW)
    # the process dies here: the run stays open
    again = store.open_run("catalog", '{"site":"a"}', NOW)
    assert (again.run_id, again.resumed, again.attempts) == (first.run_id, True, 2)
    assert [e.url for e in again.pending] == [entry(n).url for n in (2, 3, 4)]
    assert again.pending[0].request == entry(2).request and again.pending[0].stage == "detail"
    assert again.done == {page.url, entry(0).url, entry(1).url}
    assert again.done_products == 2


def test_recording_is_idempotent_and_done_wins(store: FrontierStore) -> None:
    run = store.open_run("catalog", "{}", NOW).run_id
    store.record(run, [], [entry(1)], NOW)  # done before its discovery was written
    store.record(run, [entry(1), entry(2)], [], NOW)
    store.record(run, [entry(2)], [], NOW)  # found again on another page
    assert store.counts(run) == {"pending": 1, "done": 1}


def test_other_commands_have_their_own_runs_and_a_closed_run_is_gone(store: FrontierStore) -> None:
    a = store.open_run("catalog", '{"site":"a"}', NOW)
    b = store.open_run("catalog", '{"site":"b"}', NOW)
    assert a.run_id != b.run_id and not b.resumed
    store.record(a.run_id, [entry(1)], [], NOW)
    store.close_run(a.run_id, NOW)
    assert store.counts(a.run_id) == {"pending": 0, "done": 0}
    fresh = store.open_run("catalog", '{"site":"a"}', NOW)
    assert not fresh.resumed and fresh.run_id not in (a.run_id, b.run_id)


def test_discard_closes_the_open_run_and_starts_afresh(store: FrontierStore) -> None:
    old = store.open_run("catalog", "{}", NOW)
    store.record(old.run_id, [entry(1)], [], NOW)
    new = store.open_run("catalog", "{}", NOW, discard=True)
    assert not new.resumed and new.run_id != old.run_id
    assert store.counts(old.run_id) == {"pending": 0, "done": 0}
    assert store.open_run("catalog", "{}", NOW).run_id == new.run_id


def test_products_the_run_committed_before_it_died_are_done_on_resume(store: FrontierStore) -> None:
    from storage.products import ProductStore
    from tests.test_store import product

    products = ProductStore(store.engine.url.render_as_string(hide_password=False))
    products.create_schema()
    old = product(1)  # stored by an earlier run: its product page must be fetched again
    products.write_batch([old])
    started = datetime.now(UTC)
    run = store.open_run("catalog", "{}", started).run_id
    fresh = [product(n, at=started + timedelta(seconds=5)) for n in (2, 3)]
    store.record(run, [FrontierEntry(p.url, "detail", "{}") for p in (old, *fresh)], [], NOW)
    products.write_batch(fresh)  # committed; the frontier never heard of it (the process died)
    products.close()
    again = store.open_run("catalog", "{}", started + timedelta(seconds=10))
    assert [e.url for e in again.pending] == [old.url]
    assert again.done == {p.url for p in fresh} and again.done_products == 2
