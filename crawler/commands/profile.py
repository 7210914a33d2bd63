"""``scrapy profile check``: try a site profile on one page and show what it reads.

Usage::

    scrapy profile check SITE URL|FILE [--page list|detail] [--url URL] [--json]

``SITE`` is a profile name in ``SITE_PROFILES_DIR`` (default ``crawler/sites``)
or a path to a ``.toml`` file, as ``-a site=`` of ``scrapy crawl catalog``.
The page is an http(s) URL, fetched once with a plain GET (the ``USER_AGENT``,
``DEFAULT_REQUEST_HEADERS`` and ``DOWNLOAD_TIMEOUT`` settings, the profile's
``[settings]`` applied as in a crawl; robots.txt is not read), or a saved HTML
file.  For a file, ``--url`` is the URL it was saved from: relative links,
``source = "url"`` fields and ``type = "url"`` fields resolve against it
(default: the profile's first start URL for a list page, the file's
``file://`` URL for a detail page).  The body is decoded as Scrapy (and a
browser) does: the Content-Type charset, a BOM, ``<meta charset>``, else a
guess with UTF-8 first.

``--page`` says which kind of page it is; by default the command decides:
a list page when the profile finds products on it (``list.cards`` /
``list.product_links``) and none of its label fields matches a detail row,
else a detail page (a list-only profile, ``detail_pages = false``, only has
list pages).  The output says which kind was assumed, and why.

* Detail page: every field of the profile, in profile order, with where it
  is read (``detail``, ``card``, ``url``, ``script``: JSON in the page's
  ``<script>`` elements, with its ``path``), the raw text, the typed value or
  the problem, and whether it is required; the row labels of the page that no
  field reads; the warnings (optional fields stored as null); the verdict
  (``saved (key ...)`` or ``rejected: <field>: <problem>``) exactly as the
  crawl's validation gives it.  Card fields are not on a detail page: they
  count as missing there.  Exit status 1 when the product would be rejected.
* List page: the cards and product links found, each link with its position
  and its card's fields (raw and typed); the next-page link, the last page
  number, the page URLs the crawl would enumerate (``list.page_url``, taking
  this page as page 1) and the announced total.  With a list-only profile
  each card is validated as an item.  Exit status 1 when the page yields no
  product link (list-only: no valid item).

``--json`` prints the same as one JSON object on stdout.  Errors (bad or
unknown profile, unreadable file, network error, non-2xx status, not an HTML
page) print one line ``error: <message>`` on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from scrapy.commands import ScrapyCommand
from scrapy.http import Headers, HtmlResponse, TextResponse
from scrapy.responsetypes import responsetypes
from scrapy.settings import BaseSettings

from crawler import defaults
from crawler.coercion import CoercionError
from crawler.commands import CommandError, OneLineErrors
from crawler.extraction import (
    card_count,
    extract_fields,
    last_page_number,
    list_entries,
    list_problems,
    next_page_link,
    total_count,
)
from crawler.scriptdata import marker_problem
from crawler.siteprofile import CARD, DETAIL, SCRIPT, FieldSpec, SiteProfile, load_profile, normalize_label
from crawler.validation import MISSING, Rejected, coerce_field, validate

SUBCOMMANDS = ("check",)
LIST, DETAIL_PAGE = "list", "detail"
PAGE_KINDS = (LIST, DETAIL_PAGE)
#: Widest raw/typed value shown in the text output (JSON has them whole).
MAX_CELL = 40
#: Field check statuses.
OK, ABSENT, WARNING, REJECTED, ELSEWHERE = "ok", "missing", "warning", "rejected", "not on this page"


class Command(OneLineErrors, ScrapyCommand):
    requires_project = True
    requires_crawler_process = False

    def syntax(self) -> str:
        return "check SITE URL|FILE [--page list|detail] [--url URL] [--json]"

    def short_desc(self) -> str:
        return "Check a site profile on one list or detail page"

    def long_desc(self) -> str:
        return (
            "check SITE URL|FILE: apply the site profile SITE (a name or a .toml path, as -a site=) to one page, "
            "fetched from URL or read from a saved HTML FILE, and show what it reads. Detail page: each field's "
            "raw and typed value or problem, the warnings and the verdict (saved or rejected, exit status 1 when "
            "rejected). List page: the product links and card fields, the next page, the last page number, the "
            "page URLs the crawl would enumerate and the total (exit status 1 without a product link). "
            "Errors: one line 'error: ...' on stderr, exit status 2."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        group = parser.add_argument_group(title="Profile check options")
        group.add_argument("--page", metavar="list|detail", help="the kind of page (default: decided from the page)")
        group.add_argument(
            "--url",
            dest="page_url",
            metavar="URL",
            help="a FILE's original URL: links and URL fields resolve against it",
        )
        group.add_argument("--json", action="store_true", help="print the result as one JSON object")

    def execute(self, args: list[str], opts: argparse.Namespace) -> None:
        stray = [a for a in args if a.startswith("-") and a != "-"]
        if stray:
            raise CommandError(f"unknown option(s): {' '.join(stray)} (see scrapy profile -h)")
        if not args:
            raise CommandError(f"a subcommand is required (one of: {', '.join(SUBCOMMANDS)})")
        if args[0] not in SUBCOMMANDS:
            raise CommandError(f"unknown subcommand {args[0]!r} (one of: {', '.join(SUBCOMMANDS)})")
        if len(args) != 3:
            raise CommandError("usage: scrapy profile check SITE URL|FILE [--page list|detail] [--url URL]")
        report = self._check(args[1], args[2], opts)
        print(json.dumps(report, indent=2, ensure_ascii=False) if opts.json else render(report))
        self.exitcode = report["exit_status"]

    def _check(self, site: str, target: str, opts: argparse.Namespace) -> dict[str, Any]:
        if opts.page is not None and opts.page not in PAGE_KINDS:
            raise CommandError(f"--page: {opts.page!r} is not one of: {', '.join(PAGE_KINDS)}")
        assert self.settings is not None
        profile = load_profile(site, defaults.get(self.settings, "SITE_PROFILES_DIR"))
        if opts.page == DETAIL_PAGE and not profile.detail_pages:
            raise CommandError(f"--page detail: {profile.path} has no detail pages (detail_pages = false)")
        settings = self.settings.copy()
        settings.setdict(profile.settings, priority="spider")
        if urlsplit(target).scheme.lower() in ("http", "https"):
            if opts.page_url:
                raise CommandError("--url is for a saved FILE; a fetched page resolves against its own URL")
            page = fetch_page(target, settings)
        else:
            if opts.page_url and urlsplit(opts.page_url).scheme.lower() not in ("http", "https", "file"):
                raise CommandError(f"--url: {opts.page_url!r} is not an http(s) URL")
            page = read_page(target)
        return check_page(profile, page, kind=opts.page, page_url=opts.page_url)


# --- reading the page ----------------------------------------------------------------


@dataclass
class Page:
    """A page to check: its body and where it came from."""

    body: bytes
    #: The fetched URL (after redirects), or None for a file.
    url: str | None = None
    #: The file's path, or None for a fetched page.
    file: str | None = None
    #: Response headers of a fetched page (Content-Type gives the charset).
    headers: dict[str, str] | None = None
    status: int | None = None
    #: The URL asked for, when redirects led to ``url``.
    requested: str | None = None

    def header(self, name: str) -> str | None:
        """A response header (any case), or None."""
        return next((v for k, v in (self.headers or {}).items() if k.lower() == name.lower()), None)


def fetch_page(url: str, settings: BaseSettings) -> Page:
    """GET ``url`` once (redirects followed); raise :class:`CommandError` on any failure or a non-2xx status."""
    headers = {str(k): str(v) for k, v in (settings.getdict("DEFAULT_REQUEST_HEADERS") or {}).items()}
    user_agent = settings.get("USER_AGENT")
    if user_agent:
        headers["User-Agent"] = str(user_agent)
    headers["Accept-Encoding"] = "gzip, deflate"
    timeout = defaults.get_number(settings, "DOWNLOAD_TIMEOUT", float, 0.001, CommandError)
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
            final_url = response.geturl()
            received = {k: v for k, v in response.headers.items()}
            body = response.read()
    except urllib.error.HTTPError as exc:
        exc.close()
        raise CommandError(f"cannot fetch URL: {url}: HTTP status {exc.code} ({exc.reason})") from None
    except urllib.error.URLError as exc:
        raise CommandError(f"cannot fetch URL: {url}: {_reason(exc.reason)}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise CommandError(f"cannot fetch URL: {url}: {_reason(exc)}") from None
    if not 200 <= status < 300:
        raise CommandError(f"cannot fetch URL: {url}: HTTP status {status}")
    encoding = next((v for k, v in received.items() if k.lower() == "content-encoding"), "").strip().lower()
    try:
        if encoding in ("gzip", "x-gzip"):
            body = gzip.decompress(body)
        elif encoding == "deflate":
            try:
                body = zlib.decompress(body)
            except zlib.error:
                body = zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate
    except (OSError, EOFError, zlib.error) as exc:
        raise CommandError(f"cannot fetch URL: {url}: bad {encoding} body: {exc}") from None
    received = {k: v for k, v in received.items() if k.lower() != "content-encoding"}
    requested = url if final_url != url else None
    return Page(body=body, url=final_url, headers=received, status=status, requested=requested)


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return str(reason.strerror)
    return str(reason) or type(reason).__name__


def read_page(target: str) -> Page:
    """A saved page: ``target`` is a path (or a ``file://`` URL)."""
    path = Path(unquote(urlsplit(target).path)) if target.lower().startswith("file://") else Path(target)
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        raise CommandError(f"no such file: {target}") from None
    except OSError as exc:
        raise CommandError(f"cannot read {target}: {exc.strerror or exc}") from None
    return Page(body=body, file=str(path))


def _response(page: Page, url: str) -> TextResponse:
    """The page as a Scrapy text response at ``url`` (Scrapy picks the encoding)."""
    try:
        if page.file is not None:
            return HtmlResponse(url=url, body=page.body)
        headers = Headers(page.headers or {})
        cls = responsetypes.from_args(headers=headers, url=url, body=page.body)
        response = cls(url=url, status=page.status or 200, headers=headers, body=page.body)
    except ValueError as exc:  # e.g. a --url without a scheme
        raise CommandError(f"invalid page URL {url!r}: {exc}") from None
    if not isinstance(response, TextResponse):
        content_type = page.header("Content-Type") or "none"
        raise CommandError(f"{url}: not an HTML page (content type {content_type})")
    return response


# --- checking ------------------------------------------------------------------------


def check_page(
    profile: SiteProfile, page: Page, kind: str | None = None, page_url: str | None = None
) -> dict[str, Any]:
    """The check report of ``page`` (a JSON-ready dict; ``exit_status`` is 0 or 1).

    ``kind`` is ``"list"``, ``"detail"`` or None (decide from the page);
    ``page_url`` is a file's original URL.
    """
    if page.url is not None:
        list_url = detail_url = page.url
    else:
        assert page.file is not None
        list_url = page_url or profile.start_urls[0]
        detail_url = page_url or Path(page.file).resolve().as_uri()
    # Decode once (the URL only matters for resolving links, which the extraction does).
    response = _response(page, list_url)
    root = response.selector.root
    if not hasattr(root, "xpath"):  # e.g. a JSON response: no HTML tree to apply the profile to
        content_type = page.header("Content-Type") or "none"
        raise CommandError(f"{page.url or page.file}: not an HTML page (content type {content_type})")
    labels = row_labels(profile, root)
    if kind is None:
        kind, why = assume_kind(profile, root, list_url, labels)
    else:
        why = "--page"
    url = list_url if kind == LIST else detail_url
    report: dict[str, Any] = {
        "site": profile.name,
        "profile": str(profile.path),
        "page_url": url,
        "fetched": page.url,
        "redirected_from": page.requested,
        "file": page.file,
        "encoding": response.encoding,
        "page": kind,
        "page_assumed": why,
    }
    checked = check_list(profile, root, url) if kind == LIST else check_detail(profile, root, url, labels)
    notes = checked.pop("notes")
    report.update(checked)
    if kind == DETAIL_PAGE and page.file is not None and page_url is None:
        from_url = [f["name"] for f in report["fields"] if f["from"] == "url" and f["raw"] is None]
        resolved = [f["name"] for f in report["fields"] if _mentions(f["raw"], url)]
        if from_url or resolved:
            uses = [f"{', '.join(from_url)} read from it"] if from_url else []
            uses += [f"{', '.join(resolved)} resolved against it"] if resolved else []
            notes.append(
                f"the page URL is the file's ({url}): {'; '.join(uses)}; "
                "give --url URL, the URL the page was saved from"
            )
    report["notes"] = notes
    return report


def _mentions(raw: Any, url: str) -> bool:
    """Whether a raw value is (or holds) a URL on the same scheme as ``url`` (a file's ``file://``)."""
    prefix = urlsplit(url).scheme + "://"
    values = raw if isinstance(raw, list) else [raw]
    return any(isinstance(v, str) and v.startswith(prefix) for v in values)


def assume_kind(profile: SiteProfile, root: Any, list_url: str, labels: Sequence[str]) -> tuple[str, str]:
    """``("list" | "detail", why)``: which kind of page ``root`` looks like to ``profile``."""
    if not profile.detail_pages:
        return LIST, "a list-only profile: detail_pages = false"
    entries = [e for e in list_entries(profile, root, list_url) if e.link is not None]
    read = {label for spec in profile.fields_from(DETAIL) for label in spec.labels}
    matched = [label for label in labels if normalize_label(label) in read]
    if entries and not matched:
        return LIST, f"auto: {len(entries)} product link{_s(entries)} found, no detail row read by a field"
    if entries:
        return DETAIL_PAGE, f"auto: {len(matched)} detail row{_s(matched)} read by fields (and {len(entries)} links)"
    return DETAIL_PAGE, "auto: no product link found by list.cards/list.product_links"


def row_labels(profile: SiteProfile, root: Any) -> list[str]:
    """The labels of the page's label/value rows (``detail.rows``), as written on the page."""
    if profile.rows is None or profile.row_label is None:
        return []
    labels = []
    for row in profile.rows.xpath(root):
        texts = [" ".join(t.split()) for t in profile.row_label.strings(row)]
        if texts and texts[0]:
            labels.append(texts[0])
    return labels


def check_field(profile: SiteProfile, spec: FieldSpec, raw: Any) -> dict[str, Any]:
    """One field: its raw value, typed value, and what validation makes of it."""
    required = spec.required or spec.name == profile.key
    check: dict[str, Any] = {
        "name": spec.name,
        "from": where(spec),
        "required": required,
        "key": spec.name == profile.key,
        "raw": raw,
        "value": None,
        "status": OK,
        "problem": None,
        "message": None,
    }
    if spec.path is not None:
        check["path"] = spec.path.expr
    broken = marker_problem(raw)
    if broken is not None:  # the page's script data cannot be read: show the JSON text
        check["raw"] = broken.text
    try:
        value = coerce_field(spec, raw)
    except CoercionError as exc:
        check.update(status=REJECTED if required else WARNING, problem=exc.problem, message=f"{spec.name}: {exc}")
        return check
    check["value"] = value
    if value is None:
        check.update(status=REJECTED if required else ABSENT, problem=MISSING)
    return check


def where(spec: FieldSpec) -> str:
    """Where a field is read: ``detail`` (page), ``card`` (list card), ``url`` (the page URL),
    ``script`` (JSON in the page's scripts; ``card script``: in the card's)."""
    if spec.origin == CARD:
        return f"card {spec.source}" if spec.source in ("url", SCRIPT) else "card"
    return spec.source if spec.source in ("url", SCRIPT) else "detail"


def verdict(profile: SiteProfile, raw: dict[str, Any]) -> dict[str, Any]:
    """What the crawl's validation makes of ``raw``: saved (key, warnings) or rejected (reason)."""
    try:
        result = validate(profile, raw)
    except Rejected as exc:
        problem = exc.problem
        return {
            "result": "rejected",
            "reason": problem.reason,
            "field": problem.field,
            "problem": problem.problem,
            "value": problem.value,
        }
    return {
        "result": "saved",
        "key": result.key,
        "fields": result.fields,
        "warnings": [
            {"field": w.field, "problem": w.problem, "value": w.value, "message": w.message} for w in result.warnings
        ],
    }


def check_detail(profile: SiteProfile, root: Any, url: str, labels: Sequence[str] = ()) -> dict[str, Any]:
    """A detail page: each field checked, the unread row labels, the warnings and the verdict."""
    raw = {spec.name: None for spec in profile.fields_from(CARD)}
    raw.update(extract_fields(profile, root, url))
    fields = []
    for spec in profile.fields:
        check = check_field(profile, spec, raw.get(spec.name))
        if spec.origin == CARD:
            check["status"] = ELSEWHERE
            if check["required"]:
                check["problem"] = MISSING
        fields.append(check)
    read = {label for spec in profile.fields_from(DETAIL) for label in spec.labels}
    outcome = verdict(profile, raw)
    warnings = outcome.get("warnings")
    if warnings is None:  # rejected: the warnings the other optional fields give
        warnings = [
            {"field": f["name"], "problem": f["problem"], "value": f["raw"], "message": f["message"]}
            for f in fields
            if f["status"] == WARNING
        ]
    notes = []
    if outcome["result"] == "rejected":
        spec = next((s for s in profile.fields if s.name == outcome["field"]), None)
        if spec is not None and spec.origin == CARD:
            notes.append(f"{spec.name} is read from the list card, not the detail page: the crawl brings it along")
    return {
        "fields": fields,
        "rows": list(labels),
        "unread_rows": [label for label in labels if normalize_label(label) not in read],
        "warnings": warnings,
        "verdict": outcome,
        "notes": notes,
        "exit_status": 0 if outcome["result"] == "saved" else 1,
    }


def check_list(profile: SiteProfile, root: Any, url: str) -> dict[str, Any]:
    """A list page: the products (links, card fields, list-only verdicts) and the pagination."""
    entries = list_entries(profile, root, url)
    card_specs = profile.fields_from(CARD)
    products = []
    for entry in entries:
        product: dict[str, Any] = {
            "position": entry.position,
            "link": entry.link,
            "fields": [check_field(profile, spec, entry.card.get(spec.name)) for spec in card_specs],
            "verdict": None,
        }
        if not profile.detail_pages:
            product["verdict"] = verdict(profile, dict(entry.card))
        products.append(product)
    links = [p for p in products if p["link"] is not None]
    last = last_page_number(profile, root)
    next_link = next_page_link(profile, root)
    page_urls = []
    if profile.page_url is not None and last is not None:
        page_urls = [{"page": n, "url": profile.page_link(url, n)} for n in sorted({2, 3, last}) if 2 <= n <= last]
    notes = list_problems(profile, root)
    cards = card_count(profile, root)
    if profile.cards is not None and not cards:
        notes.append(f"no card matches list.cards {profile.cards.expr!r}")
    elif cards and not links and profile.product_links is not None:
        notes.append(f"{cards} cards but no link in them matches list.product_links {profile.product_links.expr!r}")
    elif profile.cards is None and not links and profile.product_links is not None:
        notes.append(f"no link matches list.product_links {profile.product_links.expr!r}")
    if profile.page_url is not None and last is None:
        notes.append("list.page_url is set but this page shows no last page number: the crawl follows next links")
    valid = sum(1 for p in products if p["verdict"] and p["verdict"]["result"] == "saved")
    failed = not valid if not profile.detail_pages else not links
    return {
        "cards": cards,
        "cards_selector": profile.cards.expr if profile.cards is not None else None,
        "product_links": len(links),
        "products": products,
        "valid_items": valid if not profile.detail_pages else None,
        "next_page": urljoin(url, next_link) if next_link else None,
        "last_page": last,
        "page_urls": page_urls,
        "total_count": total_count(profile, root),
        "reads_total_count": profile.total_count is not None,
        "notes": notes,
        "exit_status": 1 if failed else 0,
    }


# --- text output -----------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    """The report as plain text."""
    if report["fetched"]:
        redirected = report["redirected_from"]
        source = f"fetched{f' from {redirected}' if redirected else ''}, {report['encoding']}"
    else:
        source = f"file {report['file']}, {report['encoding']}"
    header = [
        ["profile", f"{report['site']}  ({report['profile']})"],
        ["page", f"{report['page_url']}  ({source})"],
        ["kind", f"{report['page']} page ({report['page_assumed']})"],
    ]
    lines = _table(None, header)
    lines.append("")
    if report["page"] == LIST:
        lines += _render_list(report)
    else:
        lines += _render_detail(report)
    return "\n".join(lines)


def _render_detail(report: dict[str, Any]) -> list[str]:
    rows = [_field_row(f, with_from=True) for f in report["fields"]]
    lines = _table(["field", "from", "need", "raw", "typed", "check"], rows)
    if report["rows"]:
        unread = report["unread_rows"]
        lines.append("")
        lines.append(
            f"detail rows: {len(report['rows'])}; not read by any field: "
            f"{', '.join(repr(r) for r in unread) if unread else 'none'}"
        )
    lines.append("")
    if report["warnings"]:
        lines.append("warnings (optional fields stored as null):")
        lines += [f"  {w['message'] or w['field'] + ': ' + w['problem']}" for w in report["warnings"]]
    else:
        lines.append("warnings: none")
    for note in report["notes"]:
        lines.append(f"note: {note}")
    lines.append(_verdict_line(report["verdict"]))
    return lines


def _render_list(report: dict[str, Any]) -> list[str]:
    cards = report["cards"]
    last = report["last_page"]
    total = report["total_count"]
    summary = [
        ["cards", "-  (no list.cards)" if cards is None else f"{cards}  (list.cards {report['cards_selector']!r})"],
        ["product links", str(report["product_links"])],
        ["next page", report["next_page"] or "none"],
        ["last page", "none" if last is None else str(last)],
        [
            "total count",
            ("none found" if total is None else str(total))
            if report["reads_total_count"]
            else "-  (no list.total_count)",
        ],
    ]
    for i, page in enumerate(report["page_urls"]):
        summary.append(["page URLs" if i == 0 else "", f"page {page['page']:<5} {page['url']}"])
    lines = _table(None, summary)
    products = report["products"]
    if products:
        lines.append("")
        columns = ["card field", "need", "raw", "typed", "check"]
        widths = _widths(columns, [_field_row(f, with_from=False) for p in products for f in p["fields"]])
        lines.append("products:")
        if widths:
            lines.append("       " + _table(None, [columns], widths)[0])
        for product in products:
            lines.append(f"  #{product['position']:<3} {product['link'] or '(no link)'}")
            if product["fields"]:
                rows = [_field_row(f, with_from=False) for f in product["fields"]]
                lines += ["       " + line for line in _table(None, rows, widths)]
            if product["verdict"] is not None:
                lines.append("       " + _verdict_line(product["verdict"]))
    lines.append("")
    for note in report["notes"]:
        lines.append(f"note: {note}")
    links = report["product_links"]
    if report["valid_items"] is not None:
        lines.append(f"result: {report['valid_items']} of {len(products)} cards are valid items")
    else:
        lines.append(f"result: {links} product link{'' if links == 1 else 's'}")
    return lines


def _field_row(check: dict[str, Any], with_from: bool) -> list[str]:
    need = "key" if check["key"] else "required" if check["required"] else "optional"
    status = check["status"]
    if status == ELSEWHERE:
        raw, typed, verdict_text = "(from the list card)", "None", "not on a detail page"
        if check["required"]:
            verdict_text += ": missing here"
    else:
        raw, typed = _shown(check["raw"]), _shown(check["value"])
        verdict_text = {
            OK: "ok",
            ABSENT: "missing",
            WARNING: f"WARNING: {check['problem']}, stored as null",
            REJECTED: f"REJECTED: {check['problem']}",
        }[status]
    cells = [check["name"], check["from"], need, raw, typed, verdict_text]
    return cells if with_from else [cells[0], *cells[2:]]


def _verdict_line(outcome: dict[str, Any]) -> str:
    if outcome["result"] == "saved":
        return f"verdict: saved (key {outcome['key']})"
    return f"verdict: rejected: {outcome['reason']} (value {_shown(outcome['value'])})"


def _shown(value: Any, width: int = MAX_CELL) -> str:
    """``repr`` of a value (so '' and None show), on one line, at most ``width`` characters."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _s(items: Sequence[Any]) -> str:
    return "" if len(items) == 1 else "s"


def _widths(header: list[str] | None, rows: Iterable[list[str]]) -> list[int]:
    table = ([header] if header else []) + list(rows)
    if not table:
        return []
    return [max(len(row[i]) for row in table) for i in range(len(table[0]))]


def _table(header: list[str] | None, rows: list[list[str]], widths: list[int] | None = None) -> list[str]:
    """Aligned columns, two spaces apart (the last one not padded)."""
    widths = widths or _widths(header, rows)
    lines = []
    for cells in ([header] if header else []) + rows:
        parts = [cell if i == len(cells) - 1 else cell.ljust(widths[i]) for i, cell in enumerate(cells)]
        lines.append("  ".join(parts).rstrip())
    return lines
