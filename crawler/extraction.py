"""Apply a site profile to parsed pages (lxml trees): pure, no Scrapy.

The spider hands in ``response.selector.root``; everything here works on
lxml elements with the profile's pre-compiled XPath expressions, which keeps
the per-page cost low.  Values come out *raw* (strings, or lists of strings
for ``list`` fields); :mod:`crawler.validation` types them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from crawler.coercion import normalize_space
from crawler.siteprofile import CARD, DETAIL, TEXT, FieldSpec, SiteProfile, apply_regex, normalize_label

Raw = str | list[str] | None


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
    if profile.cards is None:
        for href in _links(profile, root, page_url):
            if href not in seen:
                seen.add(href)
                entries.append(ListEntry(href, len(entries) + 1))
        return entries
    card_fields = profile.fields_from(CARD)
    for card in profile.cards.xpath(root):
        links = _links(profile, card, page_url) if profile.product_links is not None else []
        link = links[0] if links else None
        if link is None and profile.detail_pages:
            continue
        if link is not None:
            if link in seen:
                continue
            seen.add(link)
        raw = _extract(card_fields, card, link or page_url, {})
        entries.append(ListEntry(link, len(entries) + 1, raw))
    return entries


def card_count(profile: SiteProfile, root: Any) -> int | None:
    """Number of cards on a list page, or None when the profile has no ``list.cards``."""
    return None if profile.cards is None else len(profile.cards.xpath(root))


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
    specs: tuple[FieldSpec, ...], root: Any, url: str, rows: dict[str, list[Any]], value_xpath: Any = None
) -> dict[str, Raw]:
    raw: dict[str, Raw] = {}
    for spec in specs:
        if spec.source == "url":
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


def _links(profile: SiteProfile, node: Any, page_url: str) -> list[str]:
    assert profile.product_links is not None
    hrefs = (h.strip() for h in profile.product_links.strings(node))
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
    return node if isinstance(node, str) else TEXT(node)
