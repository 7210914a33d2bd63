"""Field coercion: pure functions, no reactor."""

import pytest

from crawler.coercion import CoercionError, coerce, normalize_space


def test_normalize_space_collapses_all_whitespace():
    assert normalize_space("  Smith\xa0&\n\t Wesson  ") == "Smith & Wesson"


@pytest.mark.parametrize(
    ("raw", "type_", "expected"),
    [
        ("  hello   world ", "str", "hello world"),
        ("0x131B", "int", 4891),
        ("0X00ff", "int", 255),
        ("1,234", "int", 1234),
        ("-12", "int", -12),
        ("3.5", "float", 3.5),
        ("1,299.90", "decimal", "1299.90"),
        ("March 05, 2024", "date", "2024-03-05"),
        ("2024-03-05", "date", "2024-03-05"),
        ("Yes", "bool", True),
        ("no", "bool", False),
        (["", "  first ", "second"], "str", "first"),
        (None, "int", None),
        ("   ", "str", None),
    ],
)
def test_scalars(raw, type_, expected):
    assert coerce(raw, type_) == expected


@pytest.mark.parametrize(
    ("raw", "type_"),
    [("abc", "int"), ("0xZZ", "int"), ("1.2.3", "float"), ("NaN", "decimal"), ("TBD", "date"), ("maybe", "bool")],
)
def test_bad_values_raise_one_line_errors(raw, type_):
    with pytest.raises(CoercionError) as info:
        coerce(raw, type_)
    assert repr(raw) in str(info.value)
    assert "\n" not in str(info.value)


def test_date_format_is_used():
    assert coerce("05/03/2024", "date", date_format="%d/%m/%Y") == "2024-03-05"
    with pytest.raises(CoercionError):
        coerce("2024-13-45", "date", date_format="%d/%m/%Y")


def test_lists():
    assert coerce([" Thread", "Wi-Fi ", " "], "list") == ["Thread", "Wi-Fi"]
    assert coerce("single", "list") == ["single"]
    assert coerce(["0x01", "2"], "list", item_type="int") == [1, 2]
    assert coerce(None, "list") is None


def test_hex_ints():
    assert coerce("0D02", "int", int_base=16) == 0x0D02
    assert coerce("0x0D02", "int", int_base=16) == 0x0D02
    assert coerce(["0x0100", "0x010D"], "list", item_type="int") == [0x0100, 0x010D]
    with pytest.raises(CoercionError) as info:
        coerce("N/A", "int", int_base=16)
    assert (info.value.problem, info.value.value) == ("not a hex integer", "N/A")


def test_urls_are_absolute():
    assert coerce("/doc/1.zip", "url", base_url="https://x.example/p/1/") == "https://x.example/doc/1.zip"
    assert coerce("https://y.example/a", "url") == "https://y.example/a"
    with pytest.raises(CoercionError, match="not an http"):
        coerce("/relative", "url")
    with pytest.raises(CoercionError, match="not an http"):
        coerce("mailto:someone@x.example", "url", base_url="https://x.example/")


def test_several_date_formats_are_tried_in_order():
    formats = ["%m/%d/%Y", "%Y-%m-%d"]
    assert coerce("06/27/2025", "date", date_format=formats) == "2025-06-27"
    assert coerce("2025-06-27", "date", date_format=formats) == "2025-06-27"
    with pytest.raises(CoercionError) as info:
        coerce("27.06.2025", "date", date_format=formats)
    assert info.value.problem == "not a date"
