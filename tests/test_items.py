"""ProductItemAdapter behaves as itemadapter's DataclassAdapter on a ProductItem: no reactor."""

from __future__ import annotations

import pytest
from itemadapter import ItemAdapter
from itemadapter.adapter import DataclassAdapter
from scrapy import Field, Item

from crawler.item_adapter import ProductItemAdapter, adapt, is_item
from crawler.items import ProductItem


def product() -> ProductItem:
    return ProductItem(url="https://shop.example/p/1/", site="shop", raw={"title": "Bulb"}, list_page=2)


def outcome(call):
    """What an operation returns, or the exception it raises (type and message)."""
    try:
        return ("ok", call())
    except Exception as exc:  # noqa: BLE001  (the outcome is compared, whatever it is)
        return ("raised", type(exc), str(exc))


OPERATIONS = {
    "get a field": lambda a: a.get("url"),
    "get an unset default": lambda a: a.get("key"),
    "get an unknown field": lambda a: a.get("nope", "default"),
    "item a field": lambda a: a["raw"],
    "item an unknown field": lambda a: a["nope"],
    "contains a field": lambda a: "raw" in a,
    "contains an unknown field": lambda a: "nope" in a,
    "set a field": lambda a: (a.__setitem__("key", "k1"), a.item.key),
    "set an unknown field": lambda a: a.__setitem__("nope", 1),
    "delete a field": lambda a: (a.__delitem__("content_hash"), list(a), len(a), a.get("url")),
    "delete it twice": lambda a: (a.__delitem__("content_hash"), a.__delitem__("content_hash")),
    "delete an unknown field": lambda a: a.__delitem__("nope"),
    "keys": lambda a: list(a.keys()),
    "items": lambda a: dict(a.items()),
    "len": lambda a: len(a),
    "field names": lambda a: list(a.field_names()),
    "field meta": lambda a: a.get_field_meta("url"),
    "field meta of an unknown field": lambda a: a.get_field_meta("nope"),
    "class field names": lambda a: type(a).get_field_names_from_class(ProductItem),
    "class field meta": lambda a: type(a).get_field_meta_from_class(ProductItem, "raw"),
    "class field meta of an unknown field": lambda a: type(a).get_field_meta_from_class(ProductItem, "nope"),
}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_operation_gives_what_dataclassadapter_gives(operation):
    run = OPERATIONS[operation]
    assert outcome(lambda: run(ProductItemAdapter(product()))) == outcome(lambda: run(DataclassAdapter(product())))


def test_it_handles_productitem_only():
    assert ProductItemAdapter.is_item(product()) and ProductItemAdapter.is_item_class(ProductItem)
    assert not ProductItemAdapter.is_item({"url": "x"}) and not ProductItemAdapter.is_item_class(dict)
    assert ItemAdapter(product()).adapter.__class__ is DataclassAdapter  # Scrapy's own handling is unchanged


class ScrapyProduct(Item):
    url = Field()
    reject_reason = Field()


@pytest.mark.parametrize(
    "item",
    [{"url": "https://shop.example/p/1/"}, ScrapyProduct(url="https://shop.example/p/1/")],
    ids=["dict", "scrapy-item"],
)
def test_other_items_go_through_itemadapter(item):
    adapter = adapt(item)
    assert isinstance(adapter, ItemAdapter) and is_item(item)
    assert adapter.get("url") == "https://shop.example/p/1/" and adapter.get("reject_reason") is None


def test_adapt_a_productitem_writes_through_to_it():
    item = product()
    adapter = adapt(item)
    assert isinstance(adapter, ProductItemAdapter) and is_item(item) and not is_item("text")
    adapter["reject_reason"] = "title: missing (required)"
    assert item.reject_reason == "title: missing (required)"
