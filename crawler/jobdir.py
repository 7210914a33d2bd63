"""A ``JOBDIR`` a killed run left behind: detected and discarded, never half-read.

Scrapy writes the request queue's index (``requests.queue/active.json``) only
on a clean shutdown, but appends to the seen-set (``requests.seen``) during
the crawl.  After a SIGKILL, the next run would read a queue that lost its
requests (or an index from an older clean stop) and a seen-set that filters
every one of them out as a duplicate: it picks up nothing and exits.

So the scheduler (:class:`crawler.scheduler.GatedScheduler`) marks a
``JOBDIR`` as in use while it runs (:func:`mark_running`) and unmarks it
after its clean close (:func:`mark_stopped`).  A marked ``JOBDIR`` at start
means the last run did not close: :func:`discard_if_killed` empties its queue
and seen-set before Scrapy reads them, and the crawl frontier
(:mod:`crawler.middlewares.resume`) resumes the run from the database.
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["MARKER", "discard_if_killed", "mark_running", "mark_stopped"]

#: File present in a ``JOBDIR`` while a run uses it.
MARKER = "crawl.running"


def mark_running(jobdir: str | Path) -> None:
    path = Path(jobdir)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("a crawl is running, or was killed, with this JOBDIR\n", encoding="utf-8")


def mark_stopped(jobdir: str | Path) -> None:
    (Path(jobdir) / MARKER).unlink(missing_ok=True)


def discard_if_killed(jobdir: str | Path) -> bool:
    """Empty the queue and the seen-set of a ``JOBDIR`` whose last run never closed; True if it did."""
    path = Path(jobdir)
    if not (path / MARKER).exists():
        return False
    shutil.rmtree(path / "requests.queue", ignore_errors=True)
    seen = path / "requests.seen"
    if seen.exists():
        seen.write_bytes(b"")
    mark_stopped(path)
    return True
