"""Validation of extracted values against a profile: no reactor."""

import pytest

from crawler.siteprofile import load_profile
from pipelines.validate import validate

PROFILE = load_profile("csa_iot")

GOOD = {
    "slug": "bulb-1",
    "title": "Bulb",
    "manufacturer": "Acme",
    "device_type": "Extended Color Light",
    "certificate_id": "CSA1",
    "certification_date": "March 05, 2024",
    "vid": "0x131B",
    "transport_interface": ["Thread", "Wi-Fi"],
    "tis_trp_tested": "No",
}


def test_valid_product_is_typed():
    key, fields = validate(PROFILE, GOOD)
    assert key == "bulb-1"
    assert fields["vid"] == 4891
    assert fields["certification_date"] == "2024-03-05"
    assert fields["tis_trp_tested"] is False
    assert fields["model"] is None
    assert set(fields) == {f.name for f in PROFILE.fields}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"certificate_id": None}, "missing required field: certificate_id"),
        ({"certificate_id": "   "}, "missing required field: certificate_id"),
        ({"certification_date": "TBD"}, "invalid certification_date: 'TBD' is not a date"),
        ({"vid": "vendor"}, "invalid vid: 'vendor' is not an integer"),
        ({"slug": None}, "missing required field: slug"),
    ],
)
def test_invalid_products_get_one_line_reasons(change, reason):
    with pytest.raises(ValueError) as info:
        validate(PROFILE, {**GOOD, **change})
    assert str(info.value).startswith(reason)
    assert "\n" not in str(info.value)
