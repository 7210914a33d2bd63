"""A crawl's outcome as an exit status for schedulers (cron, scrapyd): pure, no Scrapy.

:func:`judge` reads a finished crawl's stats (after every write has committed)
and returns one :class:`Outcome`: the exit status ``scrapy crawl`` ends with
and a one-line reason.  The statuses (also in README.md, "Exit statuses"):

====  =================  ===================================================
code  name               when
====  =================  ===================================================
0     ok                 finished; products found; nothing lost; every write
                         committed; dead letters within ``MAX_DEAD_LETTERS``
1     error              an unexpected error (a traceback was logged)
2     config             bad configuration: profile, setting, spider name,
                         database URL (nothing was crawled)
3     nothing_found      no product discovered: the site was unreachable, or
                         its list pages held no product link (products an
                         earlier run ended, ``products/carried``, count as
                         found)
4     incomplete         products lost, writes that did not commit, list
                         pages that were never crawled, or fewer products
                         discovered than the site states (its last page
                         number and page size, or its count)
5     dead_letters       more dead letters than ``MAX_DEAD_LETTERS``
6     interrupted        stopped before the end (SIGINT/SIGTERM, ``shutdown``)
7     locked             another run holds this site's and database's lock
====  =================  ===================================================

When several apply, the first in this order wins: interrupted, nothing found,
incomplete, dead letters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OK, ERROR, CONFIG, NOTHING_FOUND, INCOMPLETE, DEAD_LETTERS, INTERRUPTED, LOCKED = range(8)

NAMES = {
    OK: "ok",
    ERROR: "error",
    CONFIG: "config",
    NOTHING_FOUND: "nothing_found",
    INCOMPLETE: "incomplete",
    DEAD_LETTERS: "dead_letters",
    INTERRUPTED: "interrupted",
    LOCKED: "locked",
}

#: finish reasons of a crawl that ran to its own end (``closespider_*`` are limits the user set).
FINISHED_REASONS = ("finished",)


def ran_to_its_end(reason: Any) -> bool:
    """Whether a crawl with finish reason ``reason`` ended on its own: ``finished``, or a
    ``closespider_*`` limit the user set (not interrupted, not stopped by an error)."""
    return reason in FINISHED_REASONS or str(reason or "").startswith("closespider_")


@dataclass(frozen=True)
class Outcome:
    """An exit status, its name and a one-line reason."""

    status: int
    reason: str

    @property
    def name(self) -> str:
        return NAMES[self.status]

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass(frozen=True)
class DeadLetterLimit:
    """``MAX_DEAD_LETTERS``: a count (``"10"``, ``10``) or a share of the discovered products (``"2%"``)."""

    count: int | None = 0
    share: float | None = None

    @classmethod
    def parse(cls, value: Any) -> DeadLetterLimit:
        """From the setting's value; raises ValueError with a one-line message."""
        text = str(value).strip()
        try:
            if text.endswith("%"):
                share = float(text[:-1]) / 100
                if not 0 <= share <= 1:
                    raise ValueError
                return cls(count=None, share=share)
            count = int(text)
            if count < 0:
                raise ValueError
            return cls(count=count)
        except ValueError:
            raise ValueError(
                f"invalid setting MAX_DEAD_LETTERS={value!r}: expected a count >= 0 or a share such as '2%'"
            ) from None

    def allowed(self, discovered: int) -> int:
        """How many dead letters a crawl that discovered ``discovered`` products may have."""
        if self.share is not None:
            return int(self.share * discovered)
        return self.count or 0

    def __str__(self) -> str:
        return f"{self.share * 100:g}%" if self.share is not None else str(self.count)


def _int(stats: Mapping[str, Any], key: str) -> int:
    try:
        return int(stats.get(key) or 0)
    except (TypeError, ValueError):
        return 0


def _pages(stats: Mapping[str, Any], separator: str = "; ") -> str:
    """``"; pages 4, 9"``: the list pages that were dead-lettered, by number (at most 10), or ""."""
    pages = stats.get("dlq/list_pages") or []
    if not isinstance(pages, list) or not pages:
        return ""
    shown = ", ".join(str(p) for p in pages[:10]) + (", ..." if len(pages) > 10 else "")
    return f"{separator}page{'s' if len(pages) > 1 else ''} {shown}"


def judge(stats: Mapping[str, Any], limit: DeadLetterLimit | None = None) -> Outcome:
    """The outcome of a crawl from its final stats (see the module docstring)."""
    limit = limit or DeadLetterLimit()
    reason = stats.get("finish_reason")
    discovered = _int(stats, "products/discovered")
    if not ran_to_its_end(reason):
        return Outcome(INTERRUPTED, f"interrupted (finish reason {reason!r}): {discovered} products discovered so far")

    # (a run resumed from a JOBDIR may discover nothing new and still store what was queued)
    stored = sum(_int(stats, f"store/{k}") for k in ("inserted", "updated", "unchanged"))
    # products an earlier run already ended (an incremental run's known products, a resumed
    # run's products done before the interruption): found, not fetched again
    carried = _int(stats, "products/carried")
    if discovered == 0 and stored == 0 and carried == 0:
        list_pages = _int(stats, "catalog/list_pages")
        failed_lists = _int(stats, "dlq/added/stage/list")
        if list_pages == 0:
            detail = f"{failed_lists} list page(s) dead-lettered{_pages(stats, ', ')}" if failed_lists else (
                "no list page was received"
            )
            return Outcome(NOTHING_FOUND, f"site unreachable: {detail}; no product discovered")
        return Outcome(NOTHING_FOUND, f"nothing found: {list_pages} list page(s) crawled, no product link on them")

    problems = []
    lost = _int(stats, "products/lost")
    if lost:
        problems.append(f"{lost} product(s) lost")
    elif stats.get("products/identity_holds") is False:
        problems.append(f"products unaccounted for ({stats.get('products/identity')})")
    failed_writes = max(_int(stats, "store/failed"), _int(stats, "products/failed"))
    if failed_writes:
        problems.append(f"{failed_writes} product write(s) did not commit")
    failed_dead = _int(stats, "dlq/failed")
    if failed_dead:
        problems.append(f"{failed_dead} dead letter(s) could not be stored")
    failed_lists = _int(stats, "dlq/added/stage/list")
    if failed_lists:
        problems.append(f"{failed_lists} list page(s) never crawled (dead-lettered{_pages(stats)}):"
                        " their products are unknown")
    expected = _int(stats, "catalog/expected_products")
    if expected and discovered + carried < expected and reason in FINISHED_REASONS and not failed_lists:
        found = f"{discovered} (+{carried} from earlier runs)" if carried else str(discovered)
        problems.append(f"discovered {found} of the {expected} products the site's list states")
    if problems:
        return Outcome(INCOMPLETE, "incomplete: " + "; ".join(problems))

    dead = _int(stats, "products/dead_lettered")
    allowed = limit.allowed(discovered)
    if dead > allowed:
        return Outcome(
            DEAD_LETTERS,
            f"{dead} of {discovered} products dead-lettered (MAX_DEAD_LETTERS={limit}): see `scrapy dlq list`",
        )
    saved = _int(stats, "products/saved")
    earlier = f", {carried} ended by earlier runs" if carried else ""
    return Outcome(OK, f"ok: {discovered} products discovered, {saved} saved, {dead} dead-lettered{earlier}")
