"""Validation: typed product fields, or a one-line reason to reject the page."""

from __future__ import annotations

from typing import Any, Self

from itemadapter import ItemAdapter
from scrapy.crawler import Crawler

from crawler.coercion import CoercionError, coerce
from crawler.siteprofile import SiteProfile


def validate(profile: SiteProfile, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Coerce ``raw`` with the profile's field types.

    Returns ``(key, fields)``; raises :class:`ValueError` with a one-line
    reason when a required field is missing or a value does not fit its type.
    """
    fields: dict[str, Any] = {}
    for spec in profile.fields:
        try:
            value = coerce(
                raw.get(spec.name),
                spec.type,
                item_type=spec.item_type,
                date_format=spec.date_format,
            )
        except CoercionError as exc:
            raise ValueError(f"invalid {spec.name}: {exc}") from None
        if spec.required and value in (None, []):
            raise ValueError(f"missing required field: {spec.name}")
        fields[spec.name] = value
    key = fields.get(profile.key)
    if key in (None, "", []):
        raise ValueError(f"missing key field: {profile.key}")
    return str(key), fields


class ValidationPipeline:
    """Fill ``key`` and ``fields`` of each product item.

    An invalid page gets ``reject_reason`` instead; the store pipeline saves
    it to ``rejected_items`` (nothing is dropped silently).  Items of spiders
    without a site profile (no ``site_profile`` attribute) pass through unchanged.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        adapter = ItemAdapter(item)
        profile = getattr(self.crawler.spider, "site_profile", None)
        if profile is None or adapter.get("reject_reason") or "raw" not in adapter:
            return item
        try:
            key, fields = validate(profile, adapter["raw"])
        except ValueError as exc:
            adapter["reject_reason"] = str(exc)
            self.crawler.stats.inc_value("validation/rejected")
            return item
        adapter["key"] = key
        adapter["fields"] = fields
        self.crawler.stats.inc_value("validation/valid")
        return item
