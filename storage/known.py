"""The products a site's earlier runs already ended: what an incremental crawl does not fetch again.

Pure storage, no Scrapy or Twisted, read-only.  :func:`load_known` reads, once,
the detail URLs (or, for list-only catalogues, the keys) of one site from the
tables ``products`` (saved) and ``rejected_items`` (pages that were not valid
products), and returns a :class:`KnownProducts`.  The spider calls it from a
thread (it blocks on the database).

Why these tables and not ``dead_letters``: a saved product is done; a rejected
page was fetched and judged (a required field missing, not an HTML page): the
same page fetched again tomorrow is rejected again, and counting it as unknown
would keep every list page that shows one from ever reading as "all known", so
an incremental run would walk far down the catalogue each night.  A full run
(``-a mode=full``) fetches them again.  A dead letter is a request that
*failed* (timeouts, 5xx, a dead host): the product was never read, so it stays
unknown and an incremental run requests it again when its list page is walked
(``scrapy dlq requeue`` replays the others).

Memory: each URL or key is kept as a 64-bit hash (BLAKE2b) in a sorted
``array('Q')``: 8 bytes a product, 0.8 MB for 10^5 products (a set of the URL
strings would take some 15 MB).  Two different URLs of one site share a hash
with a probability of about n^2 / 2^65 (3 x 10^-10 for 10^5 products).
"""

from __future__ import annotations

import bisect
import hashlib
from array import array
from collections.abc import Iterable, Iterator
from typing import Literal

from sqlalchemy import inspect, select
from w3lib.url import canonicalize_url

from storage.engine import open_engine
from storage.schema import products, rejected_items

__all__ = ["BY_KEY", "BY_URL", "KnownProducts", "load_known", "product_url"]

#: What identifies a product on a list page: its detail URL (catalogues with detail pages) or its key.
BY_URL, BY_KEY = "url", "key"
By = Literal["url", "key"]
#: Rows fetched per round trip while reading.
FETCH_SIZE = 10_000


def product_url(url: str) -> str:
    """A detail URL as it is compared: canonical (query sorted, fragment dropped, escapes normalised)."""
    return canonicalize_url(url)


def _digest(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest(), "big")


class KnownProducts:
    """A read-only set of products (detail URLs or keys, by ``by``), stored as sorted 64-bit hashes."""

    def __init__(self, values: Iterable[str] = (), by: By = BY_URL) -> None:
        self.by = by
        self._hashes = array("Q", sorted({self._digest(v) for v in values if v}))

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, str) or not value:
            return False
        digest = self._digest(value)
        at = bisect.bisect_left(self._hashes, digest)
        return at < len(self._hashes) and self._hashes[at] == digest

    def _digest(self, value: str) -> int:
        return _digest(product_url(value) if self.by == BY_URL else value)

    @property
    def nbytes(self) -> int:
        """Memory held by the hashes."""
        return self._hashes.itemsize * len(self._hashes)


def load_known(database_url: str, site: str, by: By = BY_URL) -> KnownProducts:
    """The products of ``site`` in the database at ``database_url``: saved or rejected (see the module docstring).

    ``by``: ``"url"`` reads the detail URLs (``products.url``, ``rejected_items.url``),
    ``"key"`` the keys (list-only catalogues, whose URLs are not stable).  A
    database without the tables yet knows nothing.  Raises
    :class:`storage.engine.DatabaseError` (one line) when the database cannot
    be opened (an SQLite file that does not exist included: nothing is created).
    """
    engine, _shown = open_engine(database_url, must_exist=True)
    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as conn:

            def values() -> Iterator[str]:
                for table in (products, rejected_items):
                    if table.name not in tables:
                        continue
                    column = table.c.url if by == BY_URL else table.c.key
                    query = select(column).where(table.c.site == site, column.is_not(None))
                    result = conn.execution_options(stream_results=True, yield_per=FETCH_SIZE).execute(query)
                    yield from (row[0] for row in result)

            # hashed as the rows stream in: the URLs are never all held at once
            return KnownProducts(values(), by)
    finally:
        engine.dispose()
