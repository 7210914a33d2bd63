"""``scrapy export``: the products of a site as a table (CSV, JSON lines, XLSX), one column per field.

Usage::

    scrapy export -o FILE [--format csv|jsonl|xlsx] [--site S] [--since DATE]

Columns: ``key, url``, the site profile's fields in profile order,
``first_seen, last_seen, updated_at`` (:mod:`storage.views`; values as
:mod:`storage.export` describes).  ``--site`` is a profile name in
``SITE_PROFILES_DIR`` or a ``.toml`` path, as ``-a site=`` of ``scrapy crawl``;
without it the database must hold one site.  ``--since DATE`` keeps the
products whose ``updated_at`` (first saved or last changed) is at or after
DATE (``2024-05-01``, or a date-time; naive: UTC).  The format comes from
the file's extension (``.csv``, ``.jsonl``/``.ndjson``, ``.xlsx``) or
``--format``; ``-o -`` writes CSV or JSON lines to stdout.  Rows are read in
chunks: memory stays flat however large the table.

Read-only on the products: the database (``DATABASE_URL``) must exist.  The
site's view (``products_<site>``) is created or replaced on the way; when
that fails (e.g. a read-only file) a warning says so and the export goes on.
Errors print one line ``error: ...`` on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError

from crawler import defaults
from crawler.commands import CommandError, OneLineErrors
from crawler.errors import ConfigError
from crawler.siteprofile import SiteProfile, load_profile


class Command(OneLineErrors, ScrapyCommand):
    requires_project = True
    requires_crawler_process = False

    def syntax(self) -> str:
        return "-o FILE [--format csv|jsonl|xlsx] [--site S] [--since DATE]"

    def short_desc(self) -> str:
        return "Export the products of a site, one column per field (CSV, JSON lines, XLSX)"

    def long_desc(self) -> str:
        return (
            "Export the products of a site from DATABASE_URL as a table: key, url, the site profile's fields "
            "in profile order, first_seen, last_seen, updated_at. The format comes from the file's extension "
            "(.csv, .jsonl, .xlsx) or --format; -o - writes CSV or JSON lines to stdout. --since DATE keeps "
            "products whose updated_at (first saved or last changed) is at or after DATE. Also creates or "
            "replaces the site's SQL view products_<site>."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        group = parser.add_argument_group(title="Export options")
        group.add_argument("-o", "--output", metavar="FILE", help="the file to write ('-': stdout, CSV or JSON lines)")
        group.add_argument("--format", choices=("csv", "jsonl", "xlsx"), help="default: from the file's extension")
        group.add_argument("--site", help="site profile name or .toml path (default: the database's only site)")
        group.add_argument("--since", metavar="DATE", help="only products with updated_at at or after DATE (UTC)")

    def execute(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError(f"unexpected argument(s): {' '.join(args)}")
        self._export(opts)

    def _export(self, opts: argparse.Namespace) -> None:
        from storage.export import STREAMABLE, format_for, iter_products, parse_since, sites, write_export
        from storage.views import ViewStore, profile_fields, view_columns

        if not opts.output:
            raise CommandError("export needs -o FILE ('-' for stdout)")
        to_stdout = opts.output == "-"
        fmt = format_for(opts.output, opts.format) or ("jsonl" if to_stdout else None)
        if fmt is None:
            raise CommandError(
                f"cannot tell the format of {opts.output!r} from its extension: add --format csv|jsonl|xlsx"
            )
        if to_stdout and fmt not in STREAMABLE:
            raise CommandError(f"{fmt} cannot be written to stdout (a zip file): give -o FILE.{fmt}")
        try:
            since = parse_since(opts.since) if opts.since is not None else None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        store = ViewStore(str(defaults.get(self.settings, "DATABASE_URL")), must_exist=True)
        try:
            if not store.has_products():
                raise CommandError(f"no products table in {store.url_shown}: crawl first")
            profile = self._profile(opts.site, sites(store.engine), store.url_shown)
            fields = profile_fields(profile)
            try:
                store.ensure_view(profile.name, fields)
            except ConfigError as exc:
                print(f"warning: {' '.join(str(exc).split())} (exporting anyway)", file=sys.stderr)
            columns = view_columns(fields)
            rows = iter_products(store.engine, profile.name, columns, since)
            output: Any = sys.stdout if to_stdout else opts.output
            try:
                written = write_export(output, fmt, columns, rows, sheet=profile.name)
            except OSError as exc:
                if isinstance(exc, BrokenPipeError):
                    raise
                raise CommandError(f"cannot write {opts.output}: {exc.strerror or exc}") from None
        finally:
            store.close()
        since_text = f" updated since {since}" if since else ""
        print(
            f"exported {written} products of site {profile.name}{since_text} to {opts.output} ({fmt})",
            file=sys.stderr if to_stdout else sys.stdout,
        )

    def _profile(self, site: str | None, stored: list[str], shown: str) -> SiteProfile:
        directory = defaults.get(self.settings, "SITE_PROFILES_DIR")
        if site:
            return load_profile(site, directory)
        if not stored:
            raise CommandError(f"no products in {shown}: crawl first")
        if len(stored) > 1:
            raise CommandError(f"{shown} holds several sites ({', '.join(stored)}): choose one with --site")
        return load_profile(stored[0], directory)
