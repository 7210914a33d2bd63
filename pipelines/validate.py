"""Validation pipeline: typed product fields, warnings for odd optional values, or a rejection."""

from __future__ import annotations

import logging
from typing import Any, Self

from scrapy.crawler import Crawler

from crawler.item_adapter import adapt
from crawler.validation import Rejected, validate

logger = logging.getLogger(__name__)


class ValidationPipeline:
    """Fill ``key`` and ``fields`` of each product item (see :mod:`crawler.validation`).

    * valid: ``key`` and ``fields`` are set; each optional field that was found
      but does not parse is stored as null, logged as a warning naming the
      product, the field and the value, added to the item's ``warnings`` and
      counted in ``validation/warnings/<field>/<problem>``;
    * invalid (a required field missing or unparseable): ``reject_reason``
      (``"<field>: <problem>"``) and ``reject_details`` (field, problem, value)
      are set and the store saves the page to ``rejected_items``; counted in
      ``validation/rejected/<field>/<problem>``.

    Items of spiders without a site profile (no ``site_profile`` attribute)
    pass through unchanged.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        adapter = adapt(item)
        profile = getattr(self.crawler.spider, "site_profile", None)
        if profile is None or adapter.get("reject_reason") or "raw" not in adapter:
            return item
        stats = self.crawler.stats
        try:
            result = validate(profile, adapter["raw"])
        except Rejected as exc:
            adapter["reject_reason"] = exc.problem.reason
            if "reject_details" in adapter.field_names():
                adapter["reject_details"] = exc.problem.to_dict()
            stats.inc_value("validation/rejected")
            stats.inc_value(f"validation/rejected/{exc.problem.stat_key}")
            return item
        adapter["key"] = result.key
        adapter["fields"] = result.fields
        if result.warnings:
            if "warnings" in adapter.field_names():
                adapter["warnings"] = [w.to_dict() for w in result.warnings]
            for warning in result.warnings:
                stats.inc_value("validation/warnings")
                stats.inc_value(f"validation/warnings/{warning.stat_key}")
                logger.warning(
                    "%s: %s stored as null: %r is %s", adapter.get("url"), warning.field, warning.value, warning.problem
                )
        stats.inc_value("validation/valid")
        return item
