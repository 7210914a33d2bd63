"""Site profile parsing and validation, and extraction on static HTML: no reactor."""

from pathlib import Path

import pytest
from lxml import etree, html
from parsel import Selector as HtmlSelector

from crawler.errors import ProfileError
from crawler.extraction import extract_fields, last_page_number, list_entries
from crawler.siteprofile import (
    PROFILES_DIR,
    _shared_substrings,
    _translator,
    compile_xpath,
    css_to_xpath,
    load_profile,
    resolve_profile_path,
    text_of,
)
from crawler.validation import Rejected, validate

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
    # the Matter filter: both query parameters
    assert "p_type%5B%5D=14" in profile.start_urls[0] and "p_program_type%5B%5D=1049" in profile.start_urls[0]
    assert profile.get_field("device_type").origin == "card"


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
        (('css = "span.sku"', 'css = "span.sku"\nfrom = "card"'), r"fields\.sku\.from: \"card\" needs list\.cards"),
        (('css = "span.sku"', 'css = "span.sku"\nfrom = "page"'), r"fields\.sku\.from: unknown origin 'page'"),
        (('css = "span.sku"', 'label = []'), r"fields\.sku\.label: a row label or a list"),
        (('css = "span.sku"', 'css = "span.sku"\nint_base = 8'), r"fields\.sku\.int_base: 10 or 16"),
        (('css = "span.sku"', 'css = "span.sku"\nint_base = 16'), r"fields\.sku\.int_base: only for int"),
        (('css = "span.sku"', 'css = "span.sku"\nstrip_prefix = 3'), r"fields\.sku\.strip_prefix: a prefix"),
        (('product_links = "a.product::attr(href)"', 'product_links = "a::attr(href)"\npage_url = "p/{n}/"'),
         r"list\.page_url: unknown placeholder \{n\}"),
        (('product_links = "a.product::attr(href)"', 'product_links = "a::attr(href)"\npage_url = "p/"'),
         r"list\.page_url: must be a string containing \{page\}"),
        (('key = "sku"', 'key = "sku"\ndetail_pages = false'), r"list\.cards: required with site\.detail_pages"),
        (('key = "sku"', 'key = "sku"\ndetail_pages = "no"'), r"site\.detail_pages: must be true or false"),
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


# --- the profile language, one small page per feature -------------------------------------------------------

CARDS_HTML = """<html><body><div class="post-feed"><div class="inner">
<article class="product product_type-product product_device_type-smart-plug">
 <a href="https://shop.example/p/plug-1/"><h3 class="entry-title">Plug</h3>
 <p class="entry-certificate-id">Certificate ID: C-1</p></a></article>
<article class="product product_type-product product_device_type-dimmable-light">
 <a href="/p/bulb-2/"><h3 class="entry-title">Bulb</h3></a></article>
<article class="product"><h3 class="entry-title">No link</h3></article>
<article class="product product_device_type-x"><a href="/p/plug-1/"><h3>Plug again</h3></a></article>
</div></div>
<nav><a class="page-numbers" href="https://shop.example/list/page/2/?a=1&amp;b%5B%5D=2"><span>2</span></a>
<a class="page-numbers" href="https://shop.example/list/page/41/?a=1&amp;b%5B%5D=2"><span>41</span></a>
<a class="next page-numbers" href="https://shop.example/list/page/2/?a=1&amp;b%5B%5D=2">Next</a></nav>
</body></html>"""


def cards_profile(tmp_path, fields: str, extra_site: str = "", extra_list: str = ""):
    text = f"""
[site]
start_urls = ["https://shop.example/list/?a=1&b%5B%5D=2"]
key = "slug"
{extra_site}
[list]
cards = "div.post-feed article.product"
product_links = "a::attr(href)"
last_page = {{ css = "a.page-numbers::attr(href)", regex = '/page/(\\d+)/' }}
{extra_list}
{fields}
"""
    return load_profile(str(write(tmp_path, text)))


SLUG = """
[fields.slug]
source = "url"
regex = '/p/([^/]+)/'
"""


def test_cards_give_one_link_each_resolved_against_the_page(tmp_path):
    profile = cards_profile(tmp_path, SLUG + '[fields.name]\ncss = "h1"\n')
    root = HtmlSelector(text=CARDS_HTML).root
    entries = list_entries(profile, root, "https://shop.example/list/?a=1&b%5B%5D=2")
    # the card without a link is skipped; the repeated link counts once
    assert [(e.link, e.position) for e in entries] == [
        ("https://shop.example/p/plug-1/", 1),
        ("https://shop.example/p/bulb-2/", 2),
    ]
    assert last_page_number(profile, root) == 41  # from the hrefs, not the <span> text


def test_card_fields_come_from_the_card_and_a_class_attribute(tmp_path):
    fields = SLUG + """
[fields.device_type]
from = "card"
xpath = "."
attr = "class"
regex = 'product_device_type-(\\S+)'

[fields.certificate_id]
from = "card"
css = "p.entry-certificate-id"
strip_prefix = "Certificate ID:"

[fields.name]
css = "h1"
"""
    profile = cards_profile(tmp_path, fields)
    entries = list_entries(profile, HtmlSelector(text=CARDS_HTML).root, "https://shop.example/list/")
    assert [e.card for e in entries] == [
        {"device_type": "smart-plug", "certificate_id": "C-1"},
        {"device_type": "dimmable-light", "certificate_id": None},
    ]
    # detail pages only read detail fields; the spider merges the card's into the item
    raw = extract_fields(profile, HtmlSelector(text="<h1>Plug</h1>").root, "https://shop.example/p/plug-1/")
    assert raw == {"slug": "plug-1", "name": "Plug"}


def test_list_only_catalogue_each_card_is_the_item(tmp_path):
    fields = SLUG.replace("regex", "from = \"card\"\nregex") + """
[fields.name]
css = "h3"
required = true
"""
    profile = cards_profile(tmp_path, fields, extra_site="detail_pages = false")
    assert profile.get_field("name").origin == "card"  # the default without detail pages
    entries = list_entries(profile, HtmlSelector(text=CARDS_HTML).root, "https://shop.example/list/")
    # a list-only catalogue keeps cards without a link (the card is the item)
    assert [e.card for e in entries] == [
        {"slug": "plug-1", "name": "Plug"},
        {"slug": "bulb-2", "name": "Bulb"},
        {"slug": None, "name": "No link"},
    ]
    assert validate(profile, entries[0].card).key == "plug-1"


def test_page_url_keeps_the_start_urls_query_and_resolves_relative_templates(tmp_path):
    profile = cards_profile(tmp_path, SLUG, extra_list='page_url = "page/{page}/?{query}"')
    start = profile.start_urls[0]
    assert profile.page_link(start, 7) == "https://shop.example/list/page/7/?a=1&b%5B%5D=2"
    other = cards_profile(tmp_path, SLUG, extra_list='page_url = "?{query}&paged={page}"')
    assert other.page_link(start, 7) == "https://shop.example/list/?a=1&b%5B%5D=2&paged=7"
    absolute = cards_profile(tmp_path, SLUG, extra_list='page_url = "{base}page/{page}/"')
    assert absolute.page_link(start, 2) == "https://shop.example/list/page/2/"
    whole = cards_profile(tmp_path, SLUG, extra_list='page_url = "{start_url}&p={page}"')
    assert whole.page_link(start, 2) == "https://shop.example/list/?a=1&b%5B%5D=2&p=2"


ROWS_HTML = """<html><body><h1 class="entry-title">  Smart
 Bulb &amp; Co </h1><p class="entry-company">By&nbsp;Acme Inc</p>
<div class="entry-product-details"><div><ul>
<li><span class="label">Certification Date:</span><span class="value">06/27/2025</span></li>
<li><span class="label">Vendor ID</span><span class="value">0x131B</span></li>
<li><span class="label">Product ID</span><span class="value">0D02</span></li>
<li><span class="label">Primary Device Type ID</span><span class="value">0x0100, 0x010D</span></li>
<li><span class="label">Transport Interface</span><span class="value">Thread,  Wi-Fi</span></li>
<li><span class="label">Compliance Document</span><span class="value"><a href="../../doc/1.zip">D</a></span></li>
<li><span class="label">Released</span><span class="value">2025-06-27</span></li>
</ul></div></div></body></html>"""

ROWS_FIELDS = """
[detail]
rows = "div.entry-product-details li"
row_label = "span.label"
row_value = "span.value"

[fields.title]
css = "h1.entry-title"

[fields.maker]
css = "p.entry-company"
strip_prefix = ["By ", "Made by "]

[fields.date]
label = ["Certified Date", "Certification Date"]
type = "date"
date_format = ["%m/%d/%Y", "%Y-%m-%d"]

[fields.released]
label = "released"
type = "date"
date_format = ["%m/%d/%Y", "%Y-%m-%d"]

[fields.vid]
label = "Vendor ID"
type = "int"

[fields.pid]
label = "Product ID"
type = "int"
int_base = 16

[fields.device_types]
label = "Primary Device Type ID"
type = "list"
item_type = "int"
split = ","

[fields.transports]
label = "Transport Interface"
type = "list"
split = ","

[fields.document]
label = "Compliance Document"
css = "a"
attr = "href"
type = "url"
"""


def test_rows_aliases_dates_hex_lists_urls_and_prefixes(tmp_path):
    profile = cards_profile(tmp_path, SLUG + ROWS_FIELDS)
    url = "https://shop.example/p/bulb-1/"
    raw = extract_fields(profile, HtmlSelector(text=ROWS_HTML).root, url)
    result = validate(profile, raw)
    assert result.fields == {
        "slug": "bulb-1",
        "title": "Smart Bulb & Co",
        "maker": "Acme Inc",  # prefix stripped after whitespace (NBSP) is normalised
        "date": "2025-06-27",  # the alias "Certification Date" (with a colon) matched
        "released": "2025-06-27",  # the second date format
        "vid": 0x131B,  # 0x prefix: hex
        "pid": 0x0D02,  # int_base = 16: hex without a prefix
        "device_types": [0x0100, 0x010D],
        "transports": ["Thread", "Wi-Fi"],
        "document": "https://shop.example/doc/1.zip",  # resolved against the page
    }
    assert result.warnings == []


def test_an_optional_field_that_does_not_parse_warns_and_a_required_one_rejects(tmp_path):
    profile = cards_profile(tmp_path, SLUG + ROWS_FIELDS)
    page = ROWS_HTML.replace("0x131B", "unknown").replace("06/27/2025", "soon")
    raw = extract_fields(profile, HtmlSelector(text=page).root, "https://shop.example/p/bulb-1/")
    result = validate(profile, raw)
    assert result.fields["vid"] is None and result.fields["date"] is None
    assert sorted((w.field, w.problem, w.value) for w in result.warnings) == [
        ("date", "not a date", "soon"),
        ("vid", "not an integer", "unknown"),
    ]
    required_vid = ROWS_FIELDS.replace('label = "Vendor ID"', 'label = "Vendor ID"\nrequired = true')
    strict = cards_profile(tmp_path, SLUG + required_vid)
    with pytest.raises(Rejected) as info:
        validate(strict, raw)
    assert info.value.problem.reason == "vid: not an integer"
    assert info.value.problem.value == "unknown"


CLASS_PAGE = """<html><body>
<div class="post-feed"><article class="product product_device_type-light"><h3 class="entry-title">A</h3>
<p class="entry-company">By Acme</p><span class="company-name-x">not a token</span></article>
<article class="product"><p class="  company-info
 extra	">Beta</p><div class="manufacturer">Gamma</div><span class="MANUFACTURER">case</span></article></div>
<header class="entry-header"><p class="entry-company company-name">By Delta</p></header>
<ul><li class="a b"><span class="b a c">x</span></li><li class="ab">y</li></ul>
</body></html>"""


@pytest.mark.parametrize(
    "css",
    [
        "p.company-info, .company-name, .manufacturer, .entry-company",  # the shipped csa_iot manufacturer
        ".entry-company",
        ".a.b",
        "span.b.a, .ab",
        "*.product, h3.entry-title",
        "p.company-info",  # typed only: parsel's translation is kept
        ".company-name, p",  # a part without a class: parsel's translation is kept
    ],
)
def test_class_selectors_find_what_parsel_finds_in_the_same_order(css):
    """css_to_xpath's one-walk form of class selectors selects exactly parsel's elements, from any context."""
    root = html.fromstring(CLASS_PAGE)
    ours, parsels = etree.XPath(css_to_xpath(css)), etree.XPath(_translator.css_to_xpath(css))
    assert ours(root), css
    for node in root.iter(etree.Element):
        assert ours(node) == parsels(node), (css, node.tag, node.get("class"))
    first = etree.XPath(f"string(({css_to_xpath(css)})[1])")
    assert first(root) == etree.XPath(f"string(({_translator.css_to_xpath(css)})[1])")(root)


@pytest.mark.parametrize(
    "names",
    [
        ["company-info", "company-name", "manufacturer", "entry-company"],
        ["a", "b"],
        ["ab", "abc"],
        ["product", "product-x", "abc"],
        ["abcdef", "xbcdey", "bcde"],
        ["entry-title"],
    ],
)
def test_the_class_prefilter_tests_few_substrings_that_every_class_name_contains(names):
    """Each class name holds one of the chosen substrings (so the prefilter lets every match through),
    each substring is a whole name or four characters or more, and shared parts are tested once."""
    chosen = _shared_substrings(names)
    assert all(any(part in name for part in chosen) for name in names)
    assert all(part in names or len(part) >= 4 for part in chosen)
    assert len(chosen) <= len(set(names))


def test_the_shipped_manufacturer_selector_tests_two_substrings_per_class_attribute():
    assert _shared_substrings(["company-info", "company-name", "manufacturer", "entry-company"]) == [
        "company",
        "manufacturer",
    ]
    xpath = css_to_xpath("p.company-info, .company-name, .manufacturer, .entry-company")
    assert xpath.startswith("descendant-or-self::*/@class[contains(., 'company') or contains(., 'manufacturer')]")


TEXT_PAGE = """<html><body><div id="d">a<!-- c -->b<?pi x?>c<span>d<b>e</b>f</span>g &amp; &lt;x&gt; &#233;
&nbsp;<br>h<script>var x = '<b>';</script><style>p {}</style><textarea>t</textarea></div><p>tail-test</p>tail
<ul><li><span class="label">Vendor ID</span><span class="value"> 0x1552 </span></li>
<li><span class="label">Compliance Document</span>
<span class="value"><a href="/z.zip">Download</a> (ZIP)</span></li></ul>
</body></html>"""

XML_PAGE = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "ENT">]>
<r>x<![CDATA[<cd>]]>y&e;<a>1<!--c-->2<b>3</b></a>z<?p q?></r>"""


@pytest.mark.parametrize(
    "root",
    [
        html.fromstring(TEXT_PAGE),
        etree.fromstring(XML_PAGE),
        etree.fromstring(XML_PAGE, etree.XMLParser(resolve_entities=False)),
    ],
    ids=["html", "xml", "xml-unresolved-entities"],
)
def test_text_of_an_element_is_its_xpath_string_value(root):
    """text_of serialises an element's text instead of evaluating string(): the same string for
    every element (comments, processing instructions, CDATA, entities, script, nested tails)."""
    string = etree.XPath("string()")
    elements = list(root.iter(etree.Element))
    assert len(elements) >= 3
    for element in elements:
        assert text_of(element) == string(element), element.tag


def test_profile_xpath_never_had_exslt_regular_expressions():
    """The premise of compile_xpath's regexp=False: with lxml's default (regexp=True) the re: prefix
    is still unbound, so no profile expression could call those functions."""
    root = html.fromstring(TEXT_PAGE)
    for xpath in (etree.XPath("//span[re:test(@class, '^val')]"), compile_xpath("//span[re:test(@class, '^val')]")):
        with pytest.raises(etree.XPathEvalError, match="Undefined namespace prefix"):
            xpath(root)
    assert compile_xpath("string(//span[@class='label'])")(root) == "Vendor ID"
