"""One run at a time per site and database.

:class:`RunLock` takes a lock when the crawler is built, before any request
or write, and holds it until the engine stops.  A second run of the same site
into the same database stops at once with one line and exit status 7
(:class:`~crawler.errors.RunLocked`):

* SQLite: an exclusive ``flock`` on ``<database file>.<site>.lock`` next to
  the database (released by the kernel if the process dies; the empty file
  stays);
* PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) keyed by the
  site, held on a connection of its own;
* any other database: a ``flock`` on a file in the system's temporary
  directory named after the database URL (password left out) and the site.

Setting: ``RUN_LOCK_ENABLED`` (default True).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Self

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from crawler import defaults
from crawler.errors import ConfigError, RunLocked

logger = logging.getLogger(__name__)


def lock_key(site: str) -> int:
    """The 63-bit advisory lock key of a site (stable across processes and machines)."""
    digest = hashlib.blake2b(f"catalog-crawler:{site}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


class FileLock:
    """An exclusive, non-blocking ``flock`` on ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b")  # noqa: SIM115 - held open while locked
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __str__(self) -> str:
        return f"lock file {self.path}"


class AdvisoryLock:
    """A PostgreSQL session advisory lock, held on its own connection."""

    def __init__(self, url: str, key: int) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        self.key = key
        self.engine = create_engine(url, poolclass=NullPool)
        self._conn: Any = None

    def acquire(self) -> bool:
        conn = self.engine.connect()
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
        conn.commit()
        if not got:
            conn.close()
            self.engine.dispose()
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            except SQLAlchemyError:
                pass  # closing the session releases it too
            self._conn.close()
            self._conn = None
        self.engine.dispose()

    def __str__(self) -> str:
        return f"PostgreSQL advisory lock {self.key}"


def lock_for(url: str, site: str) -> FileLock | AdvisoryLock:
    """The lock of ``site`` in the database at ``url``."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid DATABASE_URL: {exc}") from None
    backend = parsed.get_backend_name()
    safe_site = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in site) or "site"
    if backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        database = Path(parsed.database)
        return FileLock(database.with_name(f"{database.name}.{safe_site}.lock"))
    if backend == "postgresql":
        return AdvisoryLock(url, lock_key(site))
    shown = parsed.render_as_string(hide_password=True)
    digest = hashlib.sha256(f"{shown}\x1f{site}".encode()).hexdigest()[:16]
    return FileLock(Path(tempfile.gettempdir()) / f"catalog-crawler-{safe_site}-{digest}.lock")


class RunLock:
    """Hold the run lock of the crawl's site and database from start to engine stop."""

    def __init__(self, crawler: Crawler, lock: FileLock | AdvisoryLock) -> None:
        self.crawler = crawler
        self.lock = lock

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("RUN_LOCK_ENABLED", defaults.RUN_LOCK_ENABLED):
            raise NotConfigured
        spider = getattr(crawler, "spider", None)
        site = str(getattr(spider, "site", None) or getattr(spider, "name", "") or "crawl")
        url = str(defaults.get(crawler.settings, "DATABASE_URL"))
        lock = lock_for(url, site)
        try:
            acquired = lock.acquire()
        except (OSError, SQLAlchemyError) as exc:
            raise ConfigError(f"cannot take the run lock ({lock}): {' '.join(str(exc).split())}") from None
        if not acquired:
            raise RunLocked(f"another run of site {site!r} holds the {lock}; this run did not start")
        ext = cls(crawler, lock)
        crawler.signals.connect(ext.engine_stopped, signal=signals.engine_stopped)
        logger.debug("Run lock taken: %s", lock)
        return ext

    def engine_stopped(self) -> None:
        self.lock.release()
