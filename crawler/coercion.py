"""Text normalisation and type coercion of extracted field values.

Pure functions, no Scrapy: the validation pipeline turns the raw strings a
site profile extracted into the typed, JSON-ready values that are stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

_SPACES = re.compile(r"\s+")

#: Types a profile field may declare.
TYPES = ("str", "int", "float", "decimal", "date", "bool", "list")

#: Date formats tried, in order, when a field gives no ``date_format``.
DEFAULT_DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%B %d, %Y",
    "%b %d, %Y",
    "%d %B %Y",
    "%d %b %Y",
    "%Y-%m-%dT%H:%M:%S",
)

_TRUE = frozenset({"true", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "off"})


class CoercionError(ValueError):
    """A value does not fit its declared type; the message is one line."""


def normalize_space(text: str) -> str:
    """Collapse every run of whitespace (NBSP included) to one space; strip."""
    return _SPACES.sub(" ", text).strip()


def to_str(value: str, **_: Any) -> str:
    return value


def to_int(value: str, **_: Any) -> int:
    text = value.replace(",", "").replace("_", "").replace(" ", "")
    try:
        if text[:2].lower() == "0x" or text[:3].lower() in ("+0x", "-0x"):
            return int(text, 16)
        return int(text, 10)
    except ValueError:
        raise CoercionError(f"{value!r} is not an integer") from None


def to_float(value: str, **_: Any) -> float:
    try:
        return float(value.replace(",", "").replace(" ", ""))
    except ValueError:
        raise CoercionError(f"{value!r} is not a number") from None


def to_decimal(value: str, **_: Any) -> str:
    """Decimals are stored as their exact string form (JSON has no decimal)."""
    try:
        number = Decimal(value.replace(",", "").replace(" ", ""))
    except InvalidOperation:
        raise CoercionError(f"{value!r} is not a decimal number") from None
    if not number.is_finite():
        raise CoercionError(f"{value!r} is not a finite decimal number")
    return str(number)


def to_date(value: str, date_format: str | Sequence[str] | None = None, **_: Any) -> str:
    """Parse a date; return it as ISO ``YYYY-MM-DD``."""
    formats = (date_format,) if isinstance(date_format, str) else (date_format or DEFAULT_DATE_FORMATS)
    for fmt in formats:
        try:
            return datetime.strptime(value, fmt).date().isoformat()
        except ValueError:
            continue
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        shown = ", ".join(repr(f) for f in formats)
        raise CoercionError(f"{value!r} is not a date (formats {shown})") from None


def to_bool(value: str, **_: Any) -> bool:
    folded = value.casefold()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise CoercionError(f"{value!r} is not a yes/no value")


SCALARS: dict[str, Callable[..., Any]] = {
    "str": to_str,
    "int": to_int,
    "float": to_float,
    "decimal": to_decimal,
    "date": to_date,
    "bool": to_bool,
}


def coerce(
    raw: str | Sequence[str] | None,
    type_: str,
    *,
    item_type: str = "str",
    date_format: str | Sequence[str] | None = None,
) -> Any:
    """Coerce an extracted value to ``type_``.

    ``raw`` is ``None`` (nothing extracted), a string, or a list of strings
    (a ``list`` field, or several matches of a scalar field: the first
    non-empty one is used).  Strings are whitespace-normalised first; an
    empty string counts as missing and gives ``None``.
    """
    if type_ == "list":
        if raw is None:
            return None
        items = [raw] if isinstance(raw, str) else list(raw)
        convert = SCALARS[item_type]
        values = [normalize_space(v) for v in items]
        return [convert(v, date_format=date_format) for v in values if v]
    if raw is None:
        return None
    if not isinstance(raw, str):
        raw = next((v for v in raw if normalize_space(v)), "")
    text = normalize_space(raw)
    if not text:
        return None
    return SCALARS[type_](text, date_format=date_format)
