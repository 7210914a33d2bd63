"""``scrapy changes``: the products whose content changed, with their old and new values.

Usage::

    scrapy changes [--since DATE] [--site S] [--limit N] [--format text|json]

Reads the change history (table ``product_versions``, see
:mod:`storage.versions`) of ``DATABASE_URL`` (project settings,
``CRAWLER_DATABASE_URL``, ``-s DATABASE_URL=...``) and lists each change,
newest first: when it was seen (the crawl time of the new version), the
site, key and URL of the product, and every changed field with its old and
new value (JSON).  ``--since`` keeps the changes seen at that time or later
(``2026-11-01``, ``2026-11-01T06:00``, ``2026-11-01T06:00:00+02:00``;
without a zone: UTC); ``--site`` one site's; ``--limit`` the newest N.
``--format json`` prints one JSON array of objects (site, key, url,
replaced_at, changed_fields, changes: {field: {old, new}}) for machines.

Read-only: a database that does not exist is refused (never created), and no
table is created.  Errors (bad date, no database, no change history) print
one line ``error: ...`` on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError

from crawler import defaults
from crawler.commands import CommandError, OneLineErrors
from storage.engine import utc_iso

FORMATS = ("text", "json")


def parse_since(text: str) -> str:
    """``--since`` as stored timestamps are written (ISO-8601 UTC, milliseconds, ``Z``).

    A date or an ISO-8601 time; a time without a zone is UTC.  Raises
    :class:`CommandError` naming the value otherwise.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"invalid --since {text!r}: expected a date (2026-11-01) or an ISO-8601 time (2026-11-01T06:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return utc_iso(moment)


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def format_text(changes: list[Any]) -> list[str]:
    """The text lines of ``scrapy changes``: a header line per change, an indented line per field."""
    lines = []
    for change in changes:
        lines.append(f"{change.replaced_at}  {change.site}  {change.key}  {change.url or '-'}")
        for name, pair in change.values().items():
            lines.append(f"    {name or '(data)'}: {_value(pair['old'])} -> {_value(pair['new'])}")
    count = len(changes)
    lines.append(f"{count} change{'' if count == 1 else 's'}")
    return lines


class Command(OneLineErrors, ScrapyCommand):
    requires_project = True
    requires_crawler_process = False

    def syntax(self) -> str:
        return "[--since DATE] [--site S] [--limit N] [--format text|json]"

    def short_desc(self) -> str:
        return "List the products whose content changed, with old and new values"

    def long_desc(self) -> str:
        return (
            "List the changes of stored products (table product_versions of DATABASE_URL), newest first: "
            "when, site, key, URL and each changed field with its old and new value. --since DATE keeps the "
            "changes seen then or later (a date or an ISO-8601 time; UTC without a zone), --site one site's, "
            "--limit the newest N; --format json prints one JSON array. Read-only: a missing database is "
            "refused. Errors: one line 'error: ...' on stderr, exit status 2."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        group = parser.add_argument_group(title="Change options")
        group.add_argument("--since", metavar="DATE", help="only changes seen at DATE or later (UTC without a zone)")
        group.add_argument("--site", help="only changes of this site")
        group.add_argument("--limit", type=int, default=0, help="only the newest N changes (default: all)")
        group.add_argument("--format", choices=FORMATS, default="text", help="text (default) or json")

    def execute(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError(f"unexpected argument(s): {' '.join(args)}")
        since = parse_since(opts.since) if opts.since is not None else None
        if opts.limit < 0:
            raise CommandError(f"invalid --limit {opts.limit}: expected a number >= 0")
        changes = self._changes(since, opts.site, opts.limit)
        if opts.format == "json":
            json.dump([c.as_dict() for c in changes], sys.stdout, ensure_ascii=False, indent=2)
            sys.stdout.write("\n")
        else:
            sys.stdout.write("\n".join(format_text(changes)) + "\n")
        sys.stdout.flush()

    def _changes(self, since: str | None, site: str | None, limit: int) -> list[Any]:
        from storage.versions import VersionStore

        store = VersionStore(str(defaults.get(self.settings, "DATABASE_URL")), must_exist=True)
        try:
            if not store.has_history():
                raise CommandError(
                    f"no change history in {store.url_shown} (no table product_versions):"
                    " crawl into it first, or check DATABASE_URL / CRAWLER_DATABASE_URL"
                )
            return store.changes(since=since, site=site, limit=limit)
        finally:
            store.close()
