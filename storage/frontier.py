"""The crawl frontier: what a run has discovered and what of it is done, for crash-safe resume.

Pure storage, no Scrapy or Twisted (tables ``crawl_runs`` and ``crawl_frontier``
of :mod:`storage.schema`, in the products' database).  A *run* is one command:
a spider and its ``-a`` arguments.  While it runs, its frontier holds a row
per request it discovered (list pages, product pages): ``pending`` until its
outcome has committed, then ``done``.  A run that was killed or interrupted
stays ``open``; the next run of the same command resumes it
(:meth:`FrontierStore.open_run`): it re-issues the pending requests and
skips the done ones.  A pending product whose row (or reject) this run
already committed, with ``last_seen`` after the run started, is done too:
the process died between the store's commit and the frontier's.  A run that ran to its end is closed and its rows
deleted (:meth:`FrontierStore.close_run`).

Used by ONE thread at a time (the resume middleware's writer thread).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, inspect, select, union, update

from storage.base import SqlStore
from storage.engine import dialect_insert, utc_iso
from storage.schema import crawl_frontier, crawl_runs, products, rejected_items

__all__ = ["OPEN", "CLOSED", "PENDING", "DONE", "FrontierEntry", "FrontierStore", "ResumeState", "url_hash"]

#: ``crawl_runs.state``
OPEN, CLOSED = "open", "closed"
#: ``crawl_frontier.state``
PENDING, DONE = "pending", "done"


def url_hash(url: str) -> str:
    """SHA-256 (hex) of ``url``: the frontier's unique key within a run."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class FrontierEntry:
    """A request of the frontier: its URL (the key), stage and JSON record (None once done)."""

    url: str
    stage: str | None
    request: str | None = None


@dataclass(slots=True)
class ResumeState:
    """What :meth:`FrontierStore.open_run` found: a new run, or an open one to resume."""

    run_id: int
    resumed: bool
    attempts: int = 1
    #: requests to issue again (their outcome never committed)
    pending: list[FrontierEntry] = field(default_factory=list)
    #: URLs whose outcome committed in an earlier attempt: not requested again
    done: set[str] = field(default_factory=set)
    #: product (``detail`` stage) requests among ``done``
    done_products: int = 0


#: The columns of a frontier row, in the order :meth:`FrontierStore.record` writes them.
FRONTIER_COLUMNS = ("run_id", "url_hash", "url", "stage", "state", "request", "updated")


class FrontierStore(SqlStore):
    """Reads and writes the runs and their frontiers (see the module docstring)."""

    TABLES = [crawl_runs, crawl_frontier]

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        insert = dialect_insert(self.dialect)
        f = crawl_frontier.c
        pending = insert(crawl_frontier).on_conflict_do_nothing(index_elements=[f.run_id, f.url_hash])
        ins = insert(crawl_frontier)
        # the done rows carry state DONE and no request: the update takes them from the row inserted
        done = ins.on_conflict_do_update(
            index_elements=[f.run_id, f.url_hash],
            set_={"state": ins.excluded.state, "request": ins.excluded.request, "updated": ins.excluded.updated},
        )
        self._insert_pending = self._executemany(pending, FRONTIER_COLUMNS)
        self._upsert_done = self._executemany(done, FRONTIER_COLUMNS)

    def open_run(self, spider: str, args: str, now: datetime, *, discard: bool = False) -> ResumeState:
        """Resume the open run of ``spider`` with ``args`` (canonical JSON), or start a new one.

        ``discard``: close such an open run instead (its frontier is deleted) and start afresh.
        """
        stamp = utc_iso(now)
        r = crawl_runs.c

        def transaction() -> ResumeState:
            with self._writer.begin() as conn:
                found = conn.execute(
                    select(r.id, r.attempts)
                    .where(r.spider == spider, r.args == args, r.state == OPEN)
                    .order_by(r.id.desc())
                ).all()
                if found and not discard:
                    (run_id, attempts), stale = found[0], [row[0] for row in found[1:]]
                    self._close(conn, stale, stamp)
                    conn.execute(update(crawl_runs).where(r.id == run_id).values(attempts=attempts + 1, updated=stamp))
                    state = ResumeState(run_id=run_id, resumed=True, attempts=attempts + 1)
                    self._settle_stored(conn, run_id)
                    self._read(conn, state)
                    return state
                self._close(conn, [row[0] for row in found], stamp)
                run_id = conn.execute(
                    crawl_runs.insert().values(
                        spider=spider, args=args, state=OPEN, attempts=1, started=stamp, updated=stamp
                    )
                ).inserted_primary_key[0]
                return ResumeState(run_id=int(run_id), resumed=False)

        return self._with_retries(transaction, _Retries())

    def record(
        self, run_id: int, discovered: Sequence[FrontierEntry], done: Sequence[FrontierEntry], now: datetime
    ) -> int:
        """In one transaction: ``discovered`` become pending (unless known), then ``done`` are done.

        Returns the retries it took.
        """
        stamp = utc_iso(now)
        pending_rows = [(run_id, url_hash(e.url), e.url, e.stage, PENDING, e.request, stamp) for e in discovered]
        done_rows = [(run_id, url_hash(e.url), e.url, e.stage, DONE, None, stamp) for e in done]
        retries = _Retries()

        def transaction() -> None:
            with self._writer.begin() as conn:
                if pending_rows:
                    self._insert_pending(conn, pending_rows)
                if done_rows:
                    self._upsert_done(conn, done_rows)

        if pending_rows or done_rows:
            self._with_retries(transaction, retries)
        return retries.retries

    def close_run(self, run_id: int, now: datetime) -> None:
        """The run ran to its end: closed, its frontier deleted."""
        stamp = utc_iso(now)

        def transaction() -> None:
            with self._writer.begin() as conn:
                self._close(conn, [run_id], stamp)

        self._with_retries(transaction, _Retries())

    def counts(self, run_id: int) -> dict[str, int]:
        """``{"pending": n, "done": m}`` of a run's frontier (for reports and tests)."""
        f = crawl_frontier.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(f.state, func.count()).where(f.run_id == run_id).group_by(f.state)).all()
        found = {PENDING: 0, DONE: 0}
        found.update({state: int(n) for state, n in rows})
        return found

    # -- helpers (inside a transaction)

    @staticmethod
    def _close(conn: Any, run_ids: list[int], stamp: str) -> None:
        if not run_ids:
            return
        conn.execute(delete(crawl_frontier).where(crawl_frontier.c.run_id.in_(run_ids)))
        conn.execute(update(crawl_runs).where(crawl_runs.c.id.in_(run_ids)).values(state=CLOSED, updated=stamp))

    @staticmethod
    def _settle_stored(conn: Any, run_id: int) -> int:
        """Pending products whose row (or reject) this run committed are done: the process died
        after the store's commit and before the frontier heard of it.  Returns how many."""
        if not inspect(conn).has_table(products.name):
            return 0
        f, r = crawl_frontier.c, crawl_runs.c
        started = select(r.started).where(r.id == run_id).scalar_subquery()
        stored = union(
            select(products.c.url).where(products.c.last_seen >= started),
            select(rejected_items.c.url).where(rejected_items.c.last_seen >= started),
        )
        result = conn.execute(
            update(crawl_frontier)
            .where(f.run_id == run_id, f.state == PENDING, f.stage == "detail", f.url.in_(select(stored.subquery())))
            .values(state=DONE, request=None)
        )
        return int(result.rowcount or 0)

    @staticmethod
    def _read(conn: Any, state: ResumeState) -> None:
        f = crawl_frontier.c
        rows = conn.execute(
            select(f.url, f.stage, f.state, f.request).where(f.run_id == state.run_id).order_by(f.id)
        )
        for url, stage, row_state, request in rows:
            if row_state == DONE:
                state.done.add(url)
                if stage == "detail":
                    state.done_products += 1
            else:
                state.pending.append(FrontierEntry(url, stage, request))


@dataclass(slots=True)
class _Retries:
    retries: int = 0
