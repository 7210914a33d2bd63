"""Apply a site profile to parsed pages (lxml trees): pure, no Scrapy.

The spider hands in ``response.selector.root``; everything here works on
lxml elements with the profile's pre-compiled XPath expressions, which keeps
the per-page cost low.
"""

from __future__ import annotations

from typing import Any

from crawler.coercion import normalize_space
from crawler.siteprofile import TEXT, FieldSpec, SiteProfile, apply_regex

Raw = str | list[str] | None


def product_links(profile: SiteProfile, root: Any) -> list[str]:
    """Product detail links of a list page, in page order, without duplicates."""
    seen: dict[str, None] = {}
    for href in profile.product_links.strings(root):
        href = href.strip()
        if href:
            seen.setdefault(href, None)
    return list(seen)


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
    """Raw value of every profile field on a detail page.

    A value is ``None`` when nothing matched, a string for scalar fields and a
    list of strings for ``list`` fields.  Types are applied later
    (:func:`crawler.coercion.coerce`) so a bad value becomes a rejection
    reason instead of an exception here.
    """
    rows = _label_rows(profile, root) if profile.rows is not None else {}
    raw: dict[str, Raw] = {}
    for spec in profile.fields:
        if spec.source == "url":
            found = [url]
        elif spec.label is not None:
            values = rows.get(spec.label)
            if values is None:
                found = []
            elif spec.selector is not None:
                found = [s for v in values for s in spec.selector.strings(v)]
            else:
                found = [_text(v) for v in values]
        else:
            found = spec.selector.strings(root) if spec.selector is not None else []
        if spec.regex is not None:
            found = [m for m in (apply_regex(spec.regex, s) for s in found) if m is not None]
        raw[spec.name] = _shape(spec, found)
    return raw


def _shape(spec: FieldSpec, found: list[str]) -> Raw:
    if spec.type == "list":
        if not found:
            return None
        if spec.split:
            found = [part for s in found for part in s.split(spec.split)]
        return [v for v in (normalize_space(s) for s in found) if v]
    for text in found:
        text = normalize_space(text)
        if text:
            return text
    return None


def _label_rows(profile: SiteProfile, root: Any) -> dict[str, list[Any]]:
    """Map of normalised label -> value elements for label/value detail rows."""
    assert profile.rows and profile.row_label and profile.row_value
    out: dict[str, list[Any]] = {}
    label_xpath, value_xpath = profile.row_label.xpath, profile.row_value.xpath
    for row in profile.rows.xpath(root):
        labels = label_xpath(row)
        if not labels:
            continue
        label = labels[0]
        text = _text(label)
        key = normalize_space(text).casefold().rstrip(":").rstrip()
        out.setdefault(key, []).extend(value_xpath(row))
    return out


def _int(text: str) -> int | None:
    digits = "".join(ch for ch in text if ch.isdigit())
    return int(digits) if digits else None



def _text(node: Any) -> str:
    return node if isinstance(node, str) else TEXT(node)
