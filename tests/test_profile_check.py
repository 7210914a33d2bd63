"""``scrapy profile check``: a site profile tried on one saved or fetched page, run as users run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT_URL = "https://csa-iot.org/csa_product/hue-white-and-color-ambiance-a19/"
QUERY = "p_keywords=&p_type%5B%5D=14&p_program_type%5B%5D=1049&p_certificate=&p_family=&p_firmware_ver="
LIST_URL = f"https://csa-iot.org/csa-iot_products/?{QUERY}"

#: Label/value rows of a good detail page, as the real site writes them.
GOOD_ROWS = {
    "Certificate ID": "CSA2542CMAT45950-24",
    "Certified Date": "06/27/2025",
    "Product ID": "0x0D02",
    "Vendor ID": "0x1552",
    "Primary Device Type ID": "0x010D, 0x010C",
    "Firmware Version": "1.116.3",
    "Hardware Version": "1",
    "Specification Version": "1.3",
    "Transport Interface": "Thread, Bluetooth",
    "TIS/TRP Tested": "Yes",
    "Compliance Document": '<a href="/wp-content/uploads/2025/06/CSA2542CMAT45950-24.zip">Download</a>',
}


def card_html(slug: str, title: str, company: str, device_type: str, excerpt: str = "", cert: str = "") -> str:
    """One list card in the real markup: an <article> wrapped around by one absolute link."""
    cert_html = f'<p class="entry-certificate-id">Certificate ID: {cert}</p>' if cert else ""
    company_slug = company.lower().split()[0]
    return f"""
<article class="product type-product product_type-product product_category-matter
    product_device_type-{device_type} product_company-{company_slug}">
  <a href="https://csa-iot.org/csa_product/{slug}/">
    <div class="entry-image"><img src="https://csa-iot.org/wp-content/uploads/{slug}.png" alt=""></div>
    <p class="entry-company notranslate">{escape(company)}</p>
    <h3 class="entry-title">{escape(title)}</h3>
    <p class="entry-category">Matter</p>
    {cert_html}
    <div class="entry-excerpt"><p>{escape(excerpt)}</p></div>
    <p class="cta">Learn More</p>
  </a>
</article>"""


def list_html(cards: list[str], last_page: int = 498) -> str:
    pagination = (
        '<span aria-current="page" class="page-numbers current">1</span>\n'
        f'<a class="page-numbers" href="https://csa-iot.org/csa-iot_products/page/2/?{escape(QUERY)}"><span>2</span></a>\n'
        '<span class="page-numbers dots">…</span>\n'
        f'<a class="page-numbers" href="https://csa-iot.org/csa-iot_products/page/{last_page}/?{escape(QUERY)}">'
        f"<span>{last_page}</span></a>\n"
        f'<a class="next page-numbers" href="https://csa-iot.org/csa-iot_products/page/2/?{escape(QUERY)}">Next</a>'
    )
    return f"""<!DOCTYPE html><html lang="en-US"><head><meta charset="UTF-8">
<title>Products – CSA-IOT</title></head><body><main>
<div class="post-feed"><div class="inner">{"".join(cards)}
</div></div>
<nav class="navigation pagination"><div class="nav-links">
{pagination}
</div></nav></main></body></html>"""


def detail_html(
    rows: dict[str, str], title: str = "Hue White and Color Ambiance – A19", company: str = "Signify"
) -> str:
    """A detail page in the real markup; row values are HTML (escape text yourself)."""
    items = "".join(
        f'<li><span class="label">{escape(label)}</span><span class="value">{value}</span></li>\n'
        for label, value in rows.items()
    )
    more = card_html("hue-go", "Hue Go", company, "extended-color-light", "A portable light.")
    return f"""<!DOCTYPE html><html lang="en-US"><head><meta charset="UTF-8">
<title>{escape(title)} – CSA-IOT</title></head><body><main>
<article class="product">
  <header class="entry-header">
    <p class="entry-category">Matter</p>
    <h1 class="entry-title">{escape(title)}</h1>
    <p class="company-info">By {escape(company)}</p>
  </header>
  <div class="entry-product-details"><div><ul>
{items}  </ul></div></div>
</article>
<section class="more-products"><h2>More by {escape(company)}</h2>
  <div class="post-feed"><div class="inner">{more}</div></div>
</section>
</main></body></html>"""


CARDS = [
    card_html(
        "hue-white-and-color-ambiance-a19",
        "Hue White and Color Ambiance – A19",
        "Signify",
        "extended-color-light",
        "Smart bulb with millions of colours.",
        "CSA2542CMAT45950-24",
    ),
    card_html(
        "tapo-smart-plug-mini-p110m", "Tapo Smart Plug Mini P110M", "TP-Link Systems Inc.", "on-off-plug-in-unit"
    ),
    card_html("eve-motion-2", "Eve Motion", "Eve Systems", "occupancy-sensor", "Motion sensor.", "CSA23001MAT40001-24"),
]

LIST_ONLY_PROFILE = """
[site]
name = "gadgets"
start_urls = ["https://gadgets.example/catalogue/"]
key = "slug"
detail_pages = false

[list]
cards = "div.post-feed article.product"
product_links = "a::attr(href)"

[fields.slug]
source = "url"
regex = '/csa_product/([^/?#]+)'

[fields.name]
css = "h3.entry-title"
required = true

[fields.company]
css = "p.entry-company"

[fields.certificate_id]
css = "p.entry-certificate-id"
strip_prefix = "Certificate ID:"
required = true
"""


def scrapy_profile_check(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``scrapy profile check ...`` in a subprocess in the project root (no proxy for the loopback server)."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "scrapy", "profile", "check", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def as_json(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.stdout.lstrip().startswith("{"), proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def fields_of(report: dict) -> dict[str, dict]:
    return {f["name"]: f for f in report["fields"]}


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- detail pages ----------------------------------------------------------------------------------


def test_good_detail_page_is_saved_with_typed_values(tmp_path):
    page = write(tmp_path, "detail.html", detail_html(GOOD_ROWS))
    proc = scrapy_profile_check("csa_iot", str(page), "--url", PRODUCT_URL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "detail page (auto:" in out  # the "More by" card does not make it a list page
    assert "verdict: saved (key hue-white-and-color-ambiance-a19)" in out
    assert "warnings: none" in out
    # one aligned line per field: name, where from, raw -> typed
    vid_line = next(line for line in out.splitlines() if line.startswith("vid "))
    assert vid_line.split()[:5] == ["vid", "detail", "required", "'0x1552'", "5458"]
    date_line = next(line for line in out.splitlines() if line.startswith("certification_date "))
    assert "'06/27/2025'" in date_line and "'2025-06-27'" in date_line
    card_line = next(line for line in out.splitlines() if line.startswith("device_type "))
    assert "(from the list card)" in card_line and "card" in card_line

    report = as_json(scrapy_profile_check("csa_iot", str(page), "--url", PRODUCT_URL, "--json"))
    assert report["page"] == "detail" and report["exit_status"] == 0
    assert report["page_url"] == PRODUCT_URL and report["encoding"] == "utf-8"
    fields = fields_of(report)
    assert [f["name"] for f in report["fields"]][:3] == ["slug", "title", "manufacturer"]  # profile order
    assert fields["slug"]["from"] == "url" and fields["slug"]["value"] == "hue-white-and-color-ambiance-a19"
    assert fields["vid"]["raw"] == "0x1552" and fields["vid"]["value"] == 5458
    assert fields["pid"]["value"] == 0x0D02
    assert fields["certification_date"]["value"] == "2025-06-27"
    assert fields["manufacturer"]["raw"] == "Signify" and fields["manufacturer"]["value"] == "Signify"
    assert fields["title"]["value"] == "Hue White and Color Ambiance – A19"
    assert fields["primary_device_type_id"]["value"] == [0x010D, 0x010C]
    assert fields["transport_interface"]["value"] == ["Thread", "Bluetooth"]
    assert fields["tis_trp_tested"]["value"] is True
    assert fields["compliance_document_url"]["value"] == (
        "https://csa-iot.org/wp-content/uploads/2025/06/CSA2542CMAT45950-24.zip"
    )
    assert fields["device_type"]["from"] == "card" and fields["device_type"]["status"] == "not on this page"
    assert fields["family_sku"]["status"] == "missing" and fields["family_sku"]["required"] is False
    assert report["verdict"]["result"] == "saved"
    assert report["verdict"]["key"] == "hue-white-and-color-ambiance-a19"
    assert report["warnings"] == []


def test_unparseable_product_id_is_saved_with_a_warning(tmp_path):
    page = write(tmp_path, "na.html", detail_html({**GOOD_ROWS, "Product ID": "N/A"}))
    proc = scrapy_profile_check("csa_iot", str(page), "--url", PRODUCT_URL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: saved (key hue-white-and-color-ambiance-a19)" in proc.stdout
    warnings = proc.stdout.split("warnings (optional fields stored as null):", 1)[1]
    assert "pid: 'N/A' is not a hex integer" in warnings
    pid_line = next(line for line in proc.stdout.splitlines() if line.startswith("pid "))
    assert "'N/A'" in pid_line and "WARNING" in pid_line

    report = as_json(scrapy_profile_check("csa_iot", str(page), "--url", PRODUCT_URL, "--json"))
    assert report["verdict"]["result"] == "saved"
    assert [(w["field"], w["value"]) for w in report["warnings"]] == [("pid", "N/A")]
    assert fields_of(report)["pid"]["status"] == "warning" and fields_of(report)["pid"]["value"] is None


def test_detail_page_without_certificate_id_is_rejected(tmp_path):
    rows = {label: value for label, value in GOOD_ROWS.items() if label != "Certificate ID"}
    rows["Certification Program"] = "Matter"  # a row no field reads
    page = write(tmp_path, "broken.html", detail_html(rows))
    proc = scrapy_profile_check("csa_iot", str(page), "--url", PRODUCT_URL)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "verdict: rejected: certificate_id: missing" in proc.stdout
    assert "not read by any field: 'Certification Program'" in proc.stdout
    cert_line = next(line for line in proc.stdout.splitlines() if line.startswith("certificate_id "))
    assert "REJECTED" in cert_line

    report = as_json(scrapy_profile_check("csa_iot", str(page), "--url", PRODUCT_URL, "--json"))
    assert report["exit_status"] == 1
    assert report["verdict"]["result"] == "rejected"
    assert report["verdict"]["field"] == "certificate_id" and report["verdict"]["reason"] == "certificate_id: missing"
    assert report["unread_rows"] == ["Certification Program"]


def test_saved_detail_page_without_url_says_to_give_one(tmp_path):
    page = write(tmp_path, "detail.html", detail_html(GOOD_ROWS))
    proc = scrapy_profile_check("csa_iot", str(page), "--json")
    report = as_json(proc)
    assert proc.returncode == 1  # the key (slug) is read from the URL: a file:// URL has none
    assert report["page_url"] == page.resolve().as_uri()
    assert report["verdict"]["reason"] == "slug: missing"
    assert any("--url" in note and "slug" in note for note in report["notes"])


# --- list pages ------------------------------------------------------------------------------------


def test_list_page_shows_links_card_fields_and_pages(tmp_path):
    page = write(tmp_path, "list.html", list_html(CARDS))
    proc = scrapy_profile_check("csa_iot", str(page))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "list page (auto:" in out
    assert "product links  3" in out
    assert "#1   https://csa-iot.org/csa_product/hue-white-and-color-ambiance-a19/" in out
    assert "#3   https://csa-iot.org/csa_product/eve-motion-2/" in out
    assert "'on-off-plug-in-unit'" in out
    assert "last page      498" in out
    assert f"page 498   https://csa-iot.org/csa-iot_products/page/498/?{QUERY}" in out
    assert "result: 3 product links" in out

    report = as_json(scrapy_profile_check("csa_iot", str(page), "--json"))
    assert report["page"] == "list" and report["exit_status"] == 0
    assert report["page_url"] == LIST_URL  # a saved list page: the profile's start URL by default
    assert report["cards"] == 3 and report["product_links"] == 3
    assert [p["link"] for p in report["products"]] == [
        "https://csa-iot.org/csa_product/hue-white-and-color-ambiance-a19/",
        "https://csa-iot.org/csa_product/tapo-smart-plug-mini-p110m/",
        "https://csa-iot.org/csa_product/eve-motion-2/",
    ]
    assert [p["position"] for p in report["products"]] == [1, 2, 3]
    device_types = [{f["name"]: f for f in p["fields"]}["device_type"]["value"] for p in report["products"]]
    assert device_types == ["extended-color-light", "on-off-plug-in-unit", "occupancy-sensor"]
    descriptions = [{f["name"]: f for f in p["fields"]}["description"] for p in report["products"]]
    assert descriptions[0]["raw"] == "Smart bulb with millions of colours."
    assert descriptions[1]["raw"] is None and descriptions[1]["status"] == "missing"
    assert report["next_page"] == f"https://csa-iot.org/csa-iot_products/page/2/?{QUERY}"
    assert report["last_page"] == 498
    assert report["page_urls"] == [
        {"page": n, "url": f"https://csa-iot.org/csa-iot_products/page/{n}/?{QUERY}"} for n in (2, 3, 498)
    ]
    assert report["total_count"] is None


def test_list_page_without_cards_fails(tmp_path):
    page = write(tmp_path, "empty.html", list_html([], last_page=1))
    proc = scrapy_profile_check("csa_iot", str(page), "--page", "list")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "product links  0" in proc.stdout
    assert "no card matches list.cards 'div.post-feed article.product'" in proc.stdout
    assert "result: 0 product links" in proc.stdout
    # without --page, a page without products is taken for a detail page (and rejected)
    auto = as_json(scrapy_profile_check("csa_iot", str(page), "--json"))
    assert auto["page"] == "detail" and auto["exit_status"] == 1


def test_list_only_profile_validates_each_card(tmp_path):
    profile = write(tmp_path, "gadgets.toml", LIST_ONLY_PROFILE)
    page = write(tmp_path, "list.html", list_html(CARDS))
    proc = scrapy_profile_check(str(profile), str(page), "--url", "https://gadgets.example/catalogue/")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "list page (a list-only profile: detail_pages = false)" in proc.stdout
    assert "verdict: saved (key eve-motion-2)" in proc.stdout
    assert "verdict: rejected: certificate_id: missing (value None)" in proc.stdout  # the plug's card has none
    assert "result: 2 of 3 cards are valid items" in proc.stdout

    report = as_json(scrapy_profile_check(str(profile), str(page), "--json"))
    assert report["site"] == "gadgets" and report["page"] == "list"
    assert report["valid_items"] == 2
    verdicts = [p["verdict"] for p in report["products"]]
    assert verdicts[0]["result"] == "saved"
    assert verdicts[0]["fields"] == {
        "slug": "hue-white-and-color-ambiance-a19",
        "name": "Hue White and Color Ambiance – A19",
        "company": "Signify",
        "certificate_id": "CSA2542CMAT45950-24",
    }
    assert verdicts[1]["result"] == "rejected" and verdicts[1]["field"] == "certificate_id"

    no_valid = write(tmp_path, "plugs.html", list_html([CARDS[1]]))
    proc = scrapy_profile_check(str(profile), str(no_valid))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "result: 0 of 1 cards are valid items" in proc.stdout


# --- errors ----------------------------------------------------------------------------------------


def test_unknown_site_is_one_line_error(tmp_path):
    page = write(tmp_path, "detail.html", detail_html(GOOD_ROWS))
    proc = scrapy_profile_check("no_such_site", str(page))
    assert_one_line_error(proc, "unknown site 'no_such_site'", "csa_iot")
    assert proc.stdout == ""


def test_bad_profile_is_one_line_error(tmp_path):
    profile = write(tmp_path, "bad.toml", LIST_ONLY_PROFILE.replace('css = "h3.entry-title"', 'css = "h3[["'))
    page = write(tmp_path, "list.html", list_html(CARDS))
    assert_one_line_error(scrapy_profile_check(str(profile), str(page)), "fields.name.css", str(profile))


def test_missing_file_is_one_line_error(tmp_path):
    missing = tmp_path / "nothing-here.html"
    assert_one_line_error(scrapy_profile_check("csa_iot", str(missing)), "no such file", str(missing))


def test_bad_options_are_one_line_errors(tmp_path):
    page = write(tmp_path, "detail.html", detail_html(GOOD_ROWS))
    assert_one_line_error(scrapy_profile_check("csa_iot", str(page), "--page", "product"), "--page")
    assert_one_line_error(scrapy_profile_check("csa_iot"), "usage")


# --- fetched pages ---------------------------------------------------------------------------------


class Site:
    """A tiny loopback HTTP server: ``pages`` maps a path to (content type, body)."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, bytes]] = {}
        self.user_agents: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                site.user_agents.append(self.headers.get("User-Agent", ""))
                found = site.pages.get(self.path)
                if found is None:
                    body, content_type, status = b"<html><body>Not found</body></html>", "text/html", 404
                else:
                    (content_type, body), status = found, 200
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def site() -> Iterator[Site]:
    running = Site()
    thread = threading.Thread(target=running.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()
        thread.join(5)


def test_fetched_detail_page(site):
    # windows-1252, said only by the Content-Type header: the en dash must come out right
    html = detail_html(GOOD_ROWS).replace('<meta charset="UTF-8">', "")
    site.pages["/csa_product/hue-white-and-color-ambiance-a19/"] = (
        "text/html; charset=windows-1252",
        html.encode("windows-1252"),
    )
    url = f"{site.base}/csa_product/hue-white-and-color-ambiance-a19/"
    proc = scrapy_profile_check("csa_iot", url, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["fetched"] == url and report["file"] is None and report["page"] == "detail"
    assert report["encoding"] == "cp1252"
    fields = fields_of(report)
    assert fields["title"]["value"] == "Hue White and Color Ambiance – A19"
    assert fields["slug"]["value"] == "hue-white-and-color-ambiance-a19"
    # the relative compliance document link resolves against the fetched URL
    assert fields["compliance_document_url"]["value"] == (
        f"{site.base}/wp-content/uploads/2025/06/CSA2542CMAT45950-24.zip"
    )
    assert report["verdict"]["result"] == "saved"
    assert report["verdict"]["key"] == "hue-white-and-color-ambiance-a19"
    assert site.user_agents and site.user_agents[0].startswith("catalog-crawler/")  # the project's USER_AGENT


def test_fetched_list_page_and_http_errors(site):
    site.pages["/csa-iot_products/"] = ("text/html; charset=utf-8", list_html(CARDS).encode())
    proc = scrapy_profile_check("csa_iot", f"{site.base}/csa-iot_products/")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "list page (auto: 3 product links found" in proc.stdout

    missing = f"{site.base}/csa_product/gone/"
    proc = scrapy_profile_check("csa_iot", missing)
    assert_one_line_error(proc, "cannot fetch URL", missing, "404")

    site.server.shutdown()
    site.server.server_close()
    proc = scrapy_profile_check("csa_iot", missing)
    assert_one_line_error(proc, "cannot fetch URL", missing)
