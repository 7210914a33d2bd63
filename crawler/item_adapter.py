"""The fields of an item as a mapping, built cheaply for the crawler's own :class:`ProductItem`.

Every product passes four components that read or set its fields through
``itemadapter`` (validation, store, resume, accounting).  For a dataclass,
``ItemAdapter(item)`` first asks each registered adapter class whether it
handles the item, then ``DataclassAdapter`` reads the dataclass's fields
again (``dataclasses.fields``): about 30,000 CPU instructions per adapter,
120,000 per product, more than 1% of a detail page's cost.

:class:`ProductItemAdapter` is an ``itemadapter`` adapter (the package's
documented ``AdapterInterface``) for :class:`ProductItem` alone, with the
field table built once; it behaves as ``DataclassAdapter`` does on the same
item (``tests/test_items.py`` compares every operation).  :func:`adapt` returns
it for a ``ProductItem`` and ``ItemAdapter(item)`` for any other item, so the
pipelines keep working with dicts, Scrapy ``Item`` subclasses and other item
types.  It is not registered in ``ItemAdapter.ADAPTER_CLASSES``: what Scrapy
itself does with items is unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, KeysView, MutableMapping
from types import MappingProxyType
from typing import Any

from itemadapter import ItemAdapter
from itemadapter.adapter import AdapterInterface

from crawler.items import ProductItem

_FIELDS: dict[str, dataclasses.Field] = {field.name: field for field in dataclasses.fields(ProductItem)}


class ProductItemAdapter(AdapterInterface):
    """``itemadapter``'s ``DataclassAdapter`` for :class:`ProductItem`, with its field table built once."""

    @classmethod
    def is_item_class(cls, item_class: type) -> bool:
        return item_class is ProductItem

    @classmethod
    def is_item(cls, item: Any) -> bool:  # noqa: ANN401
        return type(item) is ProductItem

    @classmethod
    def get_field_meta_from_class(cls, item_class: type, field_name: str) -> MappingProxyType:
        field = _FIELDS.get(field_name)
        if field is None:
            raise KeyError(f"{item_class.__name__} does not support field: {field_name}")
        return field.metadata

    @classmethod
    def get_field_names_from_class(cls, item_class: type) -> list[str] | None:
        return list(_FIELDS)

    def get_field_meta(self, field_name: str) -> MappingProxyType:
        return _FIELDS[field_name].metadata

    def field_names(self) -> KeysView:
        return KeysView(_FIELDS)

    def get(self, field_name: str, default: Any = None) -> Any:  # noqa: ANN401
        """``Mapping.get`` in one step (``self[field_name]``, or ``default`` for an unknown field)."""
        if field_name in _FIELDS:
            return getattr(self.item, field_name)
        return default

    def __getitem__(self, field_name: str) -> Any:  # noqa: ANN401
        if field_name in _FIELDS:
            return getattr(self.item, field_name)
        raise KeyError(field_name)

    def __setitem__(self, field_name: str, value: Any) -> None:  # noqa: ANN401
        if field_name not in _FIELDS:
            raise KeyError(f"{self.item.__class__.__name__} does not support field: {field_name}")
        setattr(self.item, field_name, value)

    def __delitem__(self, field_name: str) -> None:
        if field_name not in _FIELDS:
            raise KeyError(f"{self.item.__class__.__name__} does not support field: {field_name}")
        try:
            delattr(self.item, field_name)
        except AttributeError as exc:
            raise KeyError(field_name) from exc

    def __iter__(self) -> Iterator[str]:
        return iter([name for name in _FIELDS if hasattr(self.item, name)])

    def __len__(self) -> int:
        return sum(1 for name in _FIELDS if hasattr(self.item, name))


def adapt(item: Any) -> MutableMapping[str, Any]:  # noqa: ANN401
    """The item's fields as a mapping: :class:`ProductItemAdapter` for a ``ProductItem``, else ``ItemAdapter``."""
    if type(item) is ProductItem:
        return ProductItemAdapter(item)
    return ItemAdapter(item)


def is_item(obj: Any) -> bool:  # noqa: ANN401
    """``ItemAdapter.is_item``, answered at once for a ``ProductItem``."""
    return type(obj) is ProductItem or ItemAdapter.is_item(obj)
