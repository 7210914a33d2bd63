"""HTML pages of the demo shop and the routing from a path to a response.

Pure Python (no Twisted): :class:`ShopPages` maps a URL path to a
:class:`Response` and caches the rendered bytes of every valid page.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from html import escape

from demoshop.catalogue import Catalogue, Product

LIST_PATH = "/csa-iot_products/"
HTML_UTF8 = b"text/html; charset=utf-8"
HTML_CP1252 = b"text/html; charset=windows-1252"
TEXT_UTF8 = b"text/plain; charset=utf-8"
ROBOTS_TXT = b"User-agent: *\nDisallow: /wp-admin/\n"
NOT_FOUND_HTML = (
    b'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Page not found</title></head>'
    b"<body><main><h1>Page not found</h1><p>Nothing lives at this address.</p></main></body></html>\n"
)

#: Detail rows: (field, label), in page order.
DETAIL_ROWS: tuple[tuple[str, str], ...] = (
    ("manufacturer", "Manufacturer"),
    ("model", "Model"),
    ("device_type", "Device Type"),
    ("certificate_id", "Certificate ID"),
    ("certification_date", "Certification Date"),
    ("software_version", "Software Version"),
    ("hardware_version", "Hardware Version"),
    ("firmware_version", "Firmware Version"),
    ("vid", "Vendor ID"),
    ("pid", "Product ID"),
    ("family_sku", "Family SKU"),
    ("family_variant_sku", "Family Variant SKU"),
    ("family_id", "Family ID"),
    ("tis_trp_tested", "TIS/TRP Tested"),
    ("specification_version", "Specification Version"),
    ("transport_interface", "Transport Interface"),
    ("primary_device_type_id", "Primary Device Type ID"),
    ("application_categories", "Application Categories"),
    ("compliance_document_url", "Compliance Document"),
    ("program_type", "Program Type"),
)
_HEX_FIELDS = frozenset({"vid", "pid", "primary_device_type_id"})
_PAGE_RE = re.compile(r"/csa-iot_products/page/([1-9][0-9]{0,8})/")
_PRODUCT_RE = re.compile(r"/csa_product/([a-z0-9-]+)/")


@dataclass(frozen=True, slots=True)
class Response:
    """A complete answer: status, Content-Type, body, optional Location."""

    status: int
    content_type: bytes
    body: bytes
    location: bytes | None = None


NOT_FOUND = Response(404, HTML_UTF8, NOT_FOUND_HTML)


def page_url(page: int) -> str:
    """Path of list page ``page`` (page 1 is the bare list path)."""
    return LIST_PATH if page == 1 else f"{LIST_PATH}page/{page}/"


def pagination(current: int, last: int) -> str:
    """WordPress-style pagination: page 1, the last page and current ± 2, with dots for gaps."""
    parts = []
    if current > 1:
        parts.append(f'<a class="prev page-numbers" href="{page_url(current - 1)}">« Previous</a>')
    shown = sorted({1, last, *range(max(1, current - 2), min(last, current + 2) + 1)})
    previous = 0
    for n in shown:
        if n > previous + 1:
            parts.append('<span class="page-numbers dots">…</span>')
        if n == current:
            parts.append(f'<span aria-current="page" class="page-numbers current">{n}</span>')
        else:
            parts.append(f'<a class="page-numbers" href="{page_url(n)}">{n}</a>')
        previous = n
    if current < last:
        parts.append(f'<a class="next page-numbers" href="{page_url(current + 1)}">Next »</a>')
    return "\n  ".join(parts)


def render_list_page(catalogue: Catalogue, page: int, dead_base: str | None = None) -> bytes:
    """List page ``page`` (1-based) as UTF-8 HTML.

    With ``dead_base`` (``http://<dead host>:<port>/``), products on the dead host
    (``Product.dead_host``) are linked with an absolute URL under it.
    """
    count = catalogue.products
    cards = []
    for index in catalogue.page_range(page):
        product = catalogue.product(index)
        fields = product.fields
        href = product.path
        if dead_base is not None and product.dead_host is not None:
            href = dead_base.rstrip("/") + href
        cert = fields["certificate_id"]
        cert_html = f'\n    <p class="entry-certificate-id">{escape(cert)}</p>' if cert else ""
        cards.append(
            '  <article class="post">\n'
            f'    <p class="entry-company">{escape(fields["manufacturer"])}</p>\n'
            f'    <h3 class="entry-title"><a href="{href}">{escape(fields["title"])}</a></h3>'
            f"{cert_html}\n  </article>\n"
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Matter Certified Products – Page {page}</title></head><body>\n<main>\n"
        f'<p class="results-count">{count:,} product{"" if count == 1 else "s"}</p>\n'
        f'<div class="post-feed">\n{"".join(cards)}</div>\n'
        f'<nav class="pagination">\n  {pagination(page, catalogue.pages)}\n</nav>\n'
        "</main></body></html>\n"
    ).encode()


_SEPARATORS = (" ", "  ", "&nbsp;", "\n      ", "\t", " &nbsp; ", " \n\t ", "&#160;")
_EDGES = ("", " ", "\n      ", "\t", "&nbsp;", "  \n")
_ENTITIES = {"&": "&amp;", "'": "&#39;", '"': "&quot;", "<": "&lt;", ">": "&gt;"}


def noisy_text(text: str, rng: random.Random) -> str:
    """HTML for ``text`` with extra whitespace, NBSPs and entities; it normalises back to ``text``."""
    words = []
    for word in text.split(" "):
        chars = []
        for char in word:
            if char in _ENTITIES:
                chars.append(_ENTITIES[char])
            elif char.isalpha() and rng.random() < 0.06:
                chars.append(f"&#{ord(char)};")
            else:
                chars.append(char)
        words.append("".join(chars))
    out = [rng.choice(_EDGES), words[0]]
    for word in words[1:]:
        out.append(rng.choice(_SEPARATORS))
        out.append(word)
    out.append(rng.choice(_EDGES))
    return "".join(out)


def render_detail_page(product: Product) -> bytes:
    """Detail page of ``product``, encoded in its charset (see ``Product.charset``)."""
    fields = product.fields
    if "whitespace_entities" in product.quirks:
        rng = random.Random(product.noise_seed)

        def text(value: str) -> str:
            return noisy_text(value, rng)
    else:
        text = escape
    items = []
    for name, label in DETAIL_ROWS:
        value = product.date_text if name == "certification_date" else fields[name]
        if value is None:
            continue
        if name in _HEX_FIELDS:
            spans = f'<span class="value">{text(f"0x{value:04X}")}</span>'
        elif name == "tis_trp_tested":
            spans = f'<span class="value">{text("Yes" if value else "No")}</span>'
        elif name == "transport_interface":
            spans = f'<span class="value">{text(", ".join(value))}</span>'
        elif name == "application_categories":
            spans = "".join(f'<span class="value">{text(v)}</span>' for v in value)
        elif name == "compliance_document_url":
            spans = f'<span class="value"><a href="{escape(value)}">Download</a></span>'
        else:
            spans = f'<span class="value">{text(value)}</span>'
        items.append(f'<li class="item"><span class="label">{label}</span>{spans}</li>\n')
    description = ""
    if product.description_html is not None:
        description = f'<div class="entry-description">\n{product.description_html}\n</div>\n'
    charset = product.charset
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="{charset}">'
        f"<title>{escape(fields['title'])} – Matter Certified Products</title></head><body>\n<main>\n"
        '<article class="product">\n'
        f'<h1 class="entry-title">{text(fields["title"])}</h1>\n'
        f'<div class="entry-product-details"><ul>\n{"".join(items)}</ul></div>\n'
        f"{description}</article>\n</main></body></html>\n"
    ).encode(charset)


class ShopPages:
    """Routes a path to a :class:`Response`; valid pages are rendered once and cached."""

    def __init__(self, catalogue: Catalogue, dead_base: str | None = None) -> None:
        self.catalogue = catalogue
        #: ``http://<dead host>:<port>/`` when dead-host products get absolute links.
        self.dead_base = dead_base
        self._cache: dict[str, Response] = {
            "/": Response(302, HTML_UTF8, b"", LIST_PATH.encode()),
            "/robots.txt": Response(200, TEXT_UTF8, ROBOTS_TXT),
        }

    def respond(self, path: str) -> Response:
        """The response to a GET of ``path`` (no query string)."""
        response = self._cache.get(path)
        if response is None:
            response = self._render(path)
            if response.status != 404:
                self._cache[path] = response
        return response

    def _render(self, path: str) -> Response:
        catalogue = self.catalogue
        if path == LIST_PATH:
            return Response(200, HTML_UTF8, render_list_page(catalogue, 1, self.dead_base))
        match = _PAGE_RE.fullmatch(path)
        if match:
            page = int(match[1])
            if page > catalogue.pages:
                return NOT_FOUND
            return Response(200, HTML_UTF8, render_list_page(catalogue, page, self.dead_base))
        match = _PRODUCT_RE.fullmatch(path)
        if match:
            index = catalogue.index_of_slug(match[1])
            if index is None:
                return NOT_FOUND
            product = catalogue.product(index)
            content_type = HTML_CP1252 if product.charset == "windows-1252" else HTML_UTF8
            return Response(200, content_type, render_detail_page(product))
        if not path.endswith("/") and (path.startswith(("/csa_product/", LIST_PATH)) or path == LIST_PATH[:-1]):
            if self.respond(path + "/").status == 200:
                return Response(301, HTML_UTF8, b"", (path + "/").encode("latin-1"))
        return NOT_FOUND
