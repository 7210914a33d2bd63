"""Items of the catalogue crawler."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ProductItem:
    """One product detail page.

    The detail stage fills ``url``, ``site``, ``raw`` (the text extracted for
    each profile field, before coercion) and the list page/position the
    product was found at.  The validation pipeline then sets ``key`` and
    ``fields`` (typed, JSON-ready values) and ``warnings`` (optional fields
    stored as null because their value did not parse), or ``reject_reason``
    (``"<field>: <problem>"``) and ``reject_details`` (field, problem, value)
    when the page is not a valid product; the store sets ``content_hash``, the
    SHA-256 of the stored JSON.
    """

    url: str
    site: str
    raw: dict[str, Any] = field(default_factory=dict)
    list_page: int | None = None
    list_position: int | None = None
    crawled_at: str = ""
    key: str | None = None
    fields: dict[str, Any] | None = None
    content_hash: str | None = None
    reject_reason: str | None = None
    reject_details: dict[str, Any] | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)


_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical_json(data: dict[str, Any]) -> str:
    """The JSON text products are stored and hashed as (sorted keys, compact)."""
    return _ENCODER.encode(data)


def hash_text(text: str) -> str:
    """SHA-256 (hex) of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(data: dict[str, Any]) -> str:
    """SHA-256 (hex) of :func:`canonical_json` of ``data``."""
    return hash_text(canonical_json(data))
