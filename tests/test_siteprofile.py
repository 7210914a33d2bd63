"""Site profile parsing and validation, and extraction on static HTML: no reactor."""

from pathlib import Path

import pytest
from parsel import Selector as HtmlSelector

from crawler.errors import ProfileError
from crawler.extraction import extract_fields, last_page_number, next_page_link, product_links, total_count
from crawler.siteprofile import PROFILES_DIR, load_profile, resolve_profile_path

MINIMAL = """
[site]
start_urls = ["https://shop.example/list/"]
key = "sku"

[list]
product_links = "a.product::attr(href)"

[fields.sku]
css = "span.sku"
required = true
"""


def write(tmp_path: Path, text: str, name: str = "shop.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_profile_loads():
    profile = load_profile("csa_iot")
    assert profile.name == "csa_iot"
    assert profile.key == "slug"
    assert profile.allowed_domains == ("csa-iot.org",)
    assert profile.get_field("vid").type == "int"
    assert profile.get_field("certification_date").required


def test_minimal_profile_by_path(tmp_path):
    profile = load_profile(str(write(tmp_path, MINIMAL)))
    assert profile.name == "shop"
    assert profile.start_urls == ("https://shop.example/list/",)
    assert profile.allowed_domains == ("shop.example",)


def test_start_url_override_moves_allowed_domain():
    profile = load_profile("csa_iot").with_start_url("http://127.0.0.1:8080/csa-iot_products/")
    assert profile.start_urls == ("http://127.0.0.1:8080/csa-iot_products/",)
    assert profile.allowed_domains == ("127.0.0.1",)


def test_unknown_site_lists_known_ones():
    with pytest.raises(ProfileError, match=r"unknown site 'nope'.*known sites: csa_iot"):
        resolve_profile_path("nope")
    assert resolve_profile_path("csa_iot") == PROFILES_DIR / "csa_iot.toml"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("[fields.sku]", "[fields.sku]\ncsss = 'x'"), r"fields\.sku\.csss: unknown key"),
        (('css = "span.sku"', 'css = "span[sku"'), r"fields\.sku\.css: invalid CSS selector"),
        (('css = "span.sku"', 'xpath = "//span["'), r"fields\.sku\.xpath: invalid selector"),
        (('key = "sku"', 'key = "id"'), r"site\.key: 'id' is not one of the fields"),
        (('key = "sku"\n', ""), r"site\.key: required"),
        (("required = true", 'type = "money"'), r"fields\.sku\.type: unknown type 'money'"),
        (('css = "span.sku"', 'css = "span.sku"\nregex = "("'), r"fields\.sku\.regex: invalid regex"),
        (('product_links = "a.product::attr(href)"', ""), r"list\.product_links: required"),
        (('start_urls = ["https://shop.example/list/"]', 'start_urls = ["ftp://x/"]'), r"site\.start_urls"),
        (("[site]", "[sitee]\n[site]"), r"sitee: unknown key"),
        (('css = "span.sku"', 'label = "SKU"'), r"detail\.rows: required"),
        (("[fields.sku]", "[settings]\ndownload_delay = 1\n[fields.sku]"), r"settings\.download_delay"),
    ],
)
def test_bad_profiles_name_file_and_key(tmp_path, change, message):
    old, new = change
    assert old in MINIMAL
    path = write(tmp_path, MINIMAL.replace(old, new, 1))
    with pytest.raises(ProfileError, match=message) as info:
        load_profile(str(path))
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)


def test_invalid_toml(tmp_path):
    path = write(tmp_path, "[site\n")
    with pytest.raises(ProfileError, match="invalid TOML"):
        load_profile(str(path))


LIST_HTML = """<html><body>
<p class="results-count">1,234 products</p>
<div class="post-feed">
 <article><h3 class="entry-title"><a href="/csa_product/a/">A</a></h3></article>
 <article><h3 class="entry-title"><a href="/csa_product/b/">B</a></h3></article>
 <article><h3 class="entry-title"><a href="/csa_product/a/">A again</a></h3></article>
</div>
<nav><span class="page-numbers current">1</span><a class="page-numbers" href="/p/2/">2</a>
<span class="page-numbers dots">…</span><a class="page-numbers" href="/p/103/">103</a>
<a class="next page-numbers" href="/p/2/">Next »</a></nav>
</body></html>"""

DETAIL_HTML = """<html><body><h1 class="entry-title">  Smart
 Bulb &amp; Co </h1>
<div class="entry-product-details"><ul>
<li class="item"><span class="label">Manufacturer</span><span class="value">Acme&nbsp;Inc</span></li>
<li class="item"><span class="label">Vendor ID:</span><span class="value">0x131B</span></li>
<li class="item"><span class="label">Transport Interface</span><span class="value">Thread, Wi-Fi</span></li>
<li class="item"><span class="label">Application Categories</span><span class="value">Lighting</span>
<span class="value">Sensors</span></li>
<li class="item"><span class="label">Compliance Document</span><span class="value"><a href="https://x/doc.pdf">D</a></span></li>
</ul></div>
<div class="entry-description"><p>Supports <b>Thread</b> &amp; Wi-Fi.</p>
<p>Second.</p></div></body></html>"""


def test_list_page_extraction():
    profile = load_profile("csa_iot")
    root = HtmlSelector(text=LIST_HTML).root
    assert product_links(profile, root) == ["/csa_product/a/", "/csa_product/b/"]
    assert next_page_link(profile, root) == "/p/2/"
    assert last_page_number(profile, root) == 103
    assert total_count(profile, root) == 1234


def test_detail_page_extraction():
    profile = load_profile("csa_iot")
    root = HtmlSelector(text=DETAIL_HTML).root
    raw = extract_fields(profile, root, "http://127.0.0.1:1/csa_product/smart-bulb-1/")
    assert raw["slug"] == "smart-bulb-1"
    assert raw["title"] == "Smart Bulb & Co"
    assert raw["manufacturer"] == "Acme Inc"
    assert raw["vid"] == "0x131B"  # label "Vendor ID:" matches "Vendor ID"
    assert raw["transport_interface"] == ["Thread", "Wi-Fi"]
    assert raw["application_categories"] == ["Lighting", "Sensors"]
    assert raw["compliance_document_url"] == "https://x/doc.pdf"
    assert raw["description"] == "Supports Thread & Wi-Fi. Second."
    assert raw["certificate_id"] is None
    assert raw["model"] is None
