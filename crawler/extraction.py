"""Apply a site profile to parsed pages (lxml trees): pure, no Scrapy.

The spider hands in the page's lxml root (``html_root``); everything here works on
lxml elements with the profile's pre-compiled XPath expressions, which keeps
the per-page cost low.  Values come out *raw* (strings, or lists of strings
for ``list`` fields); :mod:`crawler.validation` types them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from lxml import etree

from crawler.coercion import normalize_space
from crawler.scriptdata import ScriptDataError, ScriptPath, load_json, problem_marker, to_strings
from crawler.siteprofile import (
    CARD,
    DETAIL,
    SCRIPT,
    FieldSpec,
    ScriptSource,
    Selector,
    SiteProfile,
    apply_regex,
    compile_xpath,
    normalize_label,
    text_of,
)

#: A field's raw value: text, a list of texts, None (nothing found), or (``source = "script"``)
#: a problem marker of :mod:`crawler.scriptdata` when the page's JSON cannot be read.
Raw = str | list[str] | dict[str, str] | None
#: Every ``<script>`` element under a node (a ``source = "script"`` key without css/xpath).
SCRIPTS = compile_xpath(".//script")


@dataclass
class ListEntry:
    """One product found on a list page: its link (absolute, or None) and its card's raw fields."""

    link: str | None
    position: int
    card: dict[str, Raw] = field(default_factory=dict)


def list_entries(profile: SiteProfile, root: Any, page_url: str) -> list[ListEntry]:
    """The products of a list page, in page order, each link once.

    With ``list.cards``, each card is one product: its link is the first
    ``product_links`` match inside the card, and the card's fields
    (``from = "card"``) are read from it.  A card without a link is kept only
    for list-only profiles (``detail_pages = false``), where the card is the
    item.  Without ``cards``, ``product_links`` is applied to the whole page.
    Links are resolved against ``page_url``.
    """
    entries: list[ListEntry] = []
    seen: set[str] = set()
    scripts = ScriptCache()
    if profile.cards is None:
        for href in _links(profile, root, page_url, scripts):
            if href not in seen:
                seen.add(href)
                entries.append(ListEntry(href, len(entries) + 1))
        return entries
    card_fields = profile.fields_from(CARD)
    for card in _cards(profile, root, scripts):
        links = _links(profile, card, page_url, scripts) if profile.product_links is not None else []
        link = links[0] if links else None
        if link is None and profile.detail_pages:
            continue
        if link is not None:
            if link in seen:
                continue
            seen.add(link)
        raw = _extract(card_fields, card, link or page_url, {}, scripts=scripts)
        entries.append(ListEntry(link, len(entries) + 1, raw))
    return entries


def card_count(profile: SiteProfile, root: Any) -> int | None:
    """Number of cards on a list page, or None when the profile has no ``list.cards``."""
    return None if profile.cards is None else len(_cards(profile, root, ScriptCache()))


def list_problems(profile: SiteProfile, root: Any) -> list[str]:
    """Why the page's script data for ``list.cards`` / ``list.product_links`` cannot be read (one line each).

    Empty when they read no script, or when it parsed: a page whose cards or links
    come from a script that does not parse (``malformed JSON``) yields no product,
    and this says why.
    """
    problems = []
    scripts = ScriptCache()
    for name in ("cards", "product_links"):
        source = getattr(profile, name)
        if name == "product_links" and profile.cards is not None:
            break  # links are read in each card
        if isinstance(source, ScriptSource):
            found = _script_json(source.scripts, source.path, root, scripts)
            if isinstance(found, ScriptDataError):
                problems.append(f"list.{name}: {found}")
    return problems


class ScriptCache:
    """The JSON of a page's ``<script>`` elements, parsed once per page and script selector."""

    def __init__(self) -> None:
        self._documents: dict[tuple[int, Selector | None], tuple[list[Any], ScriptDataError | None]] = {}

    def documents(self, selector: Selector | None, node: Any) -> tuple[list[Any], ScriptDataError | None]:
        """The parsed JSON of the scripts ``selector`` selects under ``node`` (after its ``regex``),
        and the first parse error.

        Without a selector, every ``<script>`` is tried and those that are not JSON
        (code) are skipped; a selected script that does not parse is an error.  A
        node that is not an element is a card's JSON itself (cards from a script).
        """
        if not isinstance(node, etree._Element):
            return [node], None
        key = (id(node), selector)
        cached = self._documents.get(key)
        if cached is None:
            documents, error = [], None
            texts = selector.strings(node) if selector is not None else [text_of(s) for s in SCRIPTS(node)]
            for text in texts:
                if selector is None and text.lstrip()[:1] not in ("{", "["):
                    continue
                try:
                    documents.append(load_json(text))
                except ScriptDataError as exc:
                    error = error or exc
            cached = self._documents[key] = (documents, error)
        return cached


def _script_json(
    selector: Selector | None, path: ScriptPath, node: Any, scripts: ScriptCache
) -> list[Any] | ScriptDataError:
    """What ``path`` selects in each script's JSON (None results dropped), or the parse error when
    nothing was selected and a script did not parse."""
    documents, error = scripts.documents(selector, node)
    results = [r for r in (path.search(d) for d in documents) if r is not None]
    if not results and error is not None:
        return error
    return results


def _script_strings(
    selector: Selector | None, path: ScriptPath, node: Any, scripts: ScriptCache
) -> list[str] | dict[str, str]:
    """The texts a script key reads (see :func:`crawler.scriptdata.to_strings`), or a problem marker."""
    found = _script_json(selector, path, node, scripts)
    if isinstance(found, ScriptDataError):
        return problem_marker(found)
    try:
        return to_strings(found)
    except ScriptDataError as exc:
        return problem_marker(exc)


def _cards(profile: SiteProfile, root: Any, scripts: ScriptCache) -> list[Any]:
    """The card elements, or (cards from a script) the cards' JSON values: a list the path gives is its items."""
    cards = profile.cards
    assert cards is not None
    if not isinstance(cards, ScriptSource):
        return cards.xpath(root)
    found = _script_json(cards.scripts, cards.path, root, scripts)
    if isinstance(found, ScriptDataError):
        return []
    return [card for result in found for card in (result if isinstance(result, list) else [result])]


def next_page_link(profile: SiteProfile, root: Any) -> str | None:
    """The "next page" link of a list page, if the profile and page have one."""
    if profile.next_page is None:
        return None
    links = [s.strip() for s in profile.next_page.strings(root) if s.strip()]
    return links[0] if links else None


def last_page_number(profile: SiteProfile, root: Any) -> int | None:
    """The highest page number the list page shows (e.g. numbered pagination)."""
    if profile.last_page is None:
        return None
    numbers = [_int(s) for s in profile.last_page.strings(root)]
    numbers = [n for n in numbers if n is not None]
    return max(numbers) if numbers else None


def total_count(profile: SiteProfile, root: Any) -> int | None:
    """The product total the list page announces, if the profile reads one."""
    if profile.total_count is None:
        return None
    for text in profile.total_count.strings(root):
        number = _int(text)
        if number is not None:
            return number
    return None


def extract_fields(profile: SiteProfile, root: Any, url: str) -> dict[str, Raw]:
    """Raw value of every detail-page field (``from = "detail"``) of a detail page at ``url``.

    A value is ``None`` when nothing matched, a string for scalar fields and a
    list of strings for ``list`` fields.  Types are applied later
    (:mod:`crawler.validation`) so a bad value becomes a warning or a
    rejection reason instead of an exception here.
    """
    if profile.rows is None:
        return _extract(profile.fields_from(DETAIL), root, url, {})
    assert profile.row_value is not None
    return _extract(profile.fields_from(DETAIL), root, url, _label_rows(profile, root), profile.row_value.xpath)


def _extract(
    specs: tuple[FieldSpec, ...],
    root: Any,
    url: str,
    rows: dict[str, list[Any]],
    value_xpath: Any = None,
    scripts: ScriptCache | None = None,
) -> dict[str, Raw]:
    raw: dict[str, Raw] = {}
    for spec in specs:
        if spec.source == SCRIPT:
            assert spec.path is not None
            scripts = scripts or ScriptCache()
            found = _script_strings(spec.selector, spec.path, root, scripts)
            if isinstance(found, dict):  # the page's JSON cannot be read: validation names the problem
                raw[spec.name] = found
                continue
        elif spec.source == "url":
            found = [url]
        elif spec.labels:
            matched = next((rows[label] for label in spec.labels if label in rows), None)
            values = [v for row in matched for v in value_xpath(row)] if matched else None
            if values is None:
                found = []
            elif spec.selector is not None:
                found = [s for v in values for s in spec.selector.strings(v)]
            else:
                found = [_text(v) for v in values]
        else:
            found = spec.selector.iter_strings(root) if spec.selector is not None else []
        if spec.regex is not None:
            found = (m for m in (apply_regex(spec.regex, s) for s in found) if m is not None)
        raw[spec.name] = _shape(spec, found, url)
    return raw


def _shape(spec: FieldSpec, found: Iterable[str], url: str) -> Raw:
    if spec.type == "list":
        found = list(found)
        if not found:
            return None
        if spec.split:
            found = [part for s in found for part in s.split(spec.split)]
        values = [_finish(spec, v, url) for v in found]
        return [v for v in values if v]
    for text in found:
        text = _finish(spec, text, url)
        if text:
            return text
    return None


def _finish(spec: FieldSpec, text: str, url: str) -> str:
    """Normalise whitespace, strip a declared prefix, resolve a URL against the page."""
    text = normalize_space(text)
    for prefix in spec.strip_prefix:
        if text.startswith(prefix):
            text = text[len(prefix) :].lstrip()
            break
    if text and (spec.type == "url" or (spec.type == "list" and spec.item_type == "url")):
        text = urljoin(url, text)
    return text


def _links(profile: SiteProfile, node: Any, page_url: str, scripts: ScriptCache) -> list[str]:
    links = profile.product_links
    assert links is not None
    if isinstance(links, ScriptSource):
        found = _script_strings(links.scripts, links.path, node, scripts)
        texts = found if isinstance(found, list) else []  # a problem: no link (see list_problems)
    else:
        texts = links.strings(node)
    hrefs = (h.strip() for h in texts)
    return [urljoin(page_url, h) if page_url else h for h in hrefs if h]


def _label_rows(profile: SiteProfile, root: Any) -> dict[str, list[Any]]:
    """Map of normalised label -> the row elements with that label (label/value detail rows)."""
    assert profile.rows and profile.row_label
    out: dict[str, list[Any]] = {}
    first_label = profile.row_label.first_text
    for row in profile.rows.xpath(root):
        label = first_label(row)
        if label:
            out.setdefault(normalize_label(label), []).append(row)
    return out


def _int(text: str) -> int | None:
    digits = "".join(ch for ch in text if ch.isdigit())
    return int(digits) if digits else None


def _text(node: Any) -> str:
    return node if isinstance(node, str) else text_of(node)
