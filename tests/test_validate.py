"""Validation of extracted values against a profile: no reactor."""

import pytest

from crawler.siteprofile import load_profile, parse_profile
from crawler.validation import Rejected, validate

PROFILE = load_profile("csa_iot")

GOOD = {
    "slug": "bulb-1",
    "title": "Bulb",
    "manufacturer": "Acme",
    "device_type": "extended-color-light",
    "certificate_id": "CSA1",
    "certification_date": "03/05/2024",
    "vid": "0x131B",
    "pid": "0x0D02",
    "primary_device_type_id": ["0x0100", "0x010D"],
    "transport_interface": ["Thread", "Wi-Fi"],
    "tis_trp_tested": "No",
}


def test_valid_product_is_typed():
    result = validate(PROFILE, GOOD)
    assert result.key == "bulb-1"
    fields = result.fields
    assert fields["vid"] == 0x131B
    assert fields["pid"] == 0x0D02
    assert fields["primary_device_type_id"] == [0x0100, 0x010D]
    assert fields["certification_date"] == "2024-03-05"
    assert fields["tis_trp_tested"] is False
    assert fields["family_sku"] is None
    assert set(fields) == {f.name for f in PROFILE.fields}
    assert result.warnings == []


@pytest.mark.parametrize(
    ("change", "reason", "value"),
    [
        ({"certificate_id": None}, "certificate_id: missing", None),
        ({"certificate_id": "   "}, "certificate_id: missing", "   "),
        ({"certification_date": "TBD"}, "certification_date: not a date", "TBD"),
        ({"vid": "vendor"}, "vid: not a hex integer", "vendor"),
        ({"slug": None}, "slug: missing", None),
    ],
)
def test_invalid_products_get_reasons_grouped_by_field_and_problem(change, reason, value):
    with pytest.raises(Rejected) as info:
        validate(PROFILE, {**GOOD, **change})
    assert str(info.value) == reason
    assert info.value.problem.reason == reason
    assert info.value.problem.value == value  # the offending value goes in the details
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("bad_pid", ["N/A", "TBD", "Various", "0xZZ"])
def test_an_optional_field_that_does_not_parse_is_null_with_a_warning(bad_pid):
    result = validate(PROFILE, {**GOOD, "pid": bad_pid})
    assert result.fields["pid"] is None
    (warning,) = result.warnings
    assert (warning.field, warning.problem, warning.value) == ("pid", "not a hex integer", bad_pid)
    assert warning.stat_key == "pid/not_a_hex_integer"
    assert bad_pid in warning.message


def test_an_optional_list_item_that_does_not_parse_warns_for_the_field():
    result = validate(PROFILE, {**GOOD, "primary_device_type_id": ["0x0100", "lamp"]})
    assert result.fields["primary_device_type_id"] is None
    assert [w.field for w in result.warnings] == ["primary_device_type_id"]


def test_a_required_field_is_never_downgraded_to_a_warning(tmp_path):
    profile = parse_profile(
        {
            "site": {"start_urls": ["https://shop.example/"], "key": "sku"},
            "list": {"product_links": "a::attr(href)"},
            "fields": {"sku": {"css": "b"}, "price": {"css": "i", "type": "decimal", "required": True}},
        },
        tmp_path / "p.toml",
    )
    with pytest.raises(Rejected, match="price: not a decimal number"):
        validate(profile, {"sku": "A1", "price": "call us"})
    # the key is required even when not marked so
    with pytest.raises(Rejected, match="sku: missing"):
        validate(profile, {"sku": None, "price": "1.00"})
