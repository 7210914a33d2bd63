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
