"""HTML pages of the demo shop and the routing from a request target to a response.

Pure Python (no Twisted): :class:`ShopPages` maps a request target (path and
optional query) to a :class:`Response` and caches the rendered bytes of every
valid page.  The markup imitates csa-iot.org (WordPress): list cards wrapped in
one absolute link, WordPress pagination, detail rows of label/value spans.

List pages: ``/csa-iot_products/?<query>`` (page 1), ``/csa-iot_products/page/N/?<query>``
or ``/csa-iot_products/?<query>&paged=N``.  The query's ``p_type[]`` and
``p_program_type[]`` filter the entries (see :data:`MATTER_QUERY`); page numbers
and sizes are per filtered view; a page past the end is a 404.

Every list and detail page also exists under ``/js/`` (``/js/csa-iot_products/...``,
``/js/csa_product/<slug>/``): the JavaScript variant, whose cards and rows a script
renders in the browser from JSON in the page (:mod:`demoshop.jspages`).
"""

from __future__ import annotations

import bisect
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from html import escape as html_escape
from urllib.parse import parse_qs, unquote_plus

from demoshop.catalogue import (
    KIND_PROGRAM_ID,
    KIND_TYPE_ID,
    KINDS,
    PER_PAGE,
    Catalogue,
    Entry,
    Product,
    format_hex,
)

LIST_PATH = "/csa-iot_products/"
#: Path prefix of the JavaScript variant (:mod:`demoshop.jspages`): ``/js/csa-iot_products/...``, ...
JS_PREFIX = "/js"
#: The query of the Matter certified products list (type "Product", program "Matter"), as on csa-iot.org.
MATTER_QUERY = "p_keywords=&p_type%5B%5D=14&p_program_type%5B%5D=1049&p_certificate=&p_family=&p_firmware_ver="
MATTER_KINDS = frozenset({"matter"})
ALL_KINDS = frozenset(KINDS)
DEFAULT_BASE_URL = "http://127.0.0.1/"
HTML_UTF8 = b"text/html; charset=utf-8"
TEXT_UTF8 = b"text/plain; charset=utf-8"
ROBOTS_TXT = b"User-agent: *\nDisallow: /wp-admin/\n"
NOT_FOUND_HTML = (
    b'<!DOCTYPE html><html lang="en-US"><head><meta charset="UTF-8"><title>Page not found - CSA-IOT</title></head>'
    b"<body><main><h1>Page not found</h1><p>Nothing lives at this address.</p></main></body></html>\n"
)
PLACEHOLDER_IMAGE = "/wp-content/uploads/placeholder.png"

#: Detail rows: (field, label), in page order.
DETAIL_ROWS: tuple[tuple[str, str], ...] = (
    ("certificate_id", "Certificate ID"),
    ("certification_date", "Certified Date"),
    ("vid", "Vendor ID"),
    ("pid", "Product ID"),
    ("primary_device_type_id", "Primary Device Type ID"),
    ("firmware_version", "Firmware Version"),
    ("hardware_version", "Hardware Version"),
    ("specification_version", "Specification Version"),
    ("transport_interface", "Transport Interface"),
    ("tis_trp_tested", "TIS/TRP Tested"),
    ("compliance_document_url", "Compliance Document"),
    ("family_sku", "Family SKU"),
    ("family_variant_sku", "Family Variant SKU"),
    ("family_id", "Family ID"),
)
_PAGE_RE = re.compile(r"/csa-iot_products/page/([1-9][0-9]{0,8})/")
_PRODUCT_RE = re.compile(r"/csa_product/([a-z0-9-]+)/")
_TYPE_KEYS = ("p_type[]", "p_type")
_PROGRAM_KEYS = ("p_program_type[]", "p_program_type")


@dataclass(frozen=True, slots=True)
class Response:
    """A complete answer: status, Content-Type, body, optional Location."""

    status: int
    content_type: bytes
    body: bytes
    location: bytes | None = None


NOT_FOUND = Response(404, HTML_UTF8, NOT_FOUND_HTML)


# --- URLs and queries ------------------------------------------------------------------------------------------


def page_url(page: int, query: str = MATTER_QUERY) -> str:
    """Relative target of list page ``page`` of the view ``query`` selects (default: the Matter list).

    Page 1 is the bare list path, as WordPress links it; the others ``/csa-iot_products/page/N/``.
    """
    path = LIST_PATH if page == 1 else f"{LIST_PATH}page/{page}/"
    return f"{path}?{query}" if query else path


def strip_paged(query: str) -> str:
    """``query`` without its ``paged`` parameters, otherwise byte for byte as requested."""
    if "paged" not in query:
        return query
    return "&".join(p for p in query.split("&") if unquote_plus(p.partition("=")[0]) != "paged")


def view_of(query: str) -> tuple[frozenset[str], int]:
    """The entry kinds the query's filters keep, and its ``paged`` page number (1 when absent or not a number).

    A filter with non-empty values keeps the entries whose id is among them
    (``p_type[]=14``: products, so no platforms or software components;
    ``p_program_type[]=1049``: Matter, so no Zigbee); empty or absent filters keep all.
    """
    if not query:
        return ALL_KINDS, 1
    params = parse_qs(query, keep_blank_values=True)
    kinds = set(KINDS)
    for keys, ids in ((_TYPE_KEYS, KIND_TYPE_ID), (_PROGRAM_KEYS, KIND_PROGRAM_ID)):
        values = {v for key in keys for v in params.get(key, ()) if v}
        if values:
            kinds = {k for k in kinds if ids[k] in values}
    paged = params.get("paged", [""])[-1]
    page = int(paged) if paged.isdigit() and paged.isascii() and 0 < int(paged) < 10**9 else 1
    return frozenset(kinds), page


_SPECIAL = re.compile(r"[&<>\"']")


def escape(text: str) -> str:
    """``html.escape`` (quotes too), with a fast path for text that needs none."""
    return html_escape(text) if _SPECIAL.search(text) else text


def _attr_url(url: str) -> str:
    """A URL for an ``href``, escaped the way WordPress's ``esc_url`` does (``&`` as ``&#038;``)."""
    return escape(url).replace("&amp;", "&#038;")


# --- rendering -------------------------------------------------------------------------------------------------

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


def _text_function(product: Product, salt: int) -> Callable[[str], str]:
    """``escape``, or noisy text for a ``whitespace_entities`` product (``salt`` separates card and page)."""
    if "whitespace_entities" not in product.quirks:
        return escape
    rng = random.Random(product.noise_seed ^ salt)
    return lambda value: noisy_text(value, rng)


def product_href(product: Product, base_url: str, dead_base: str | None = None) -> str:
    """The absolute URL a list card links ``product`` with (on the dead host when it is dead)."""
    if dead_base is not None and product.dead_host is not None:
        return dead_base.rstrip("/") + product.path
    return base_url.rstrip("/") + product.path


def render_card(product: Product, base_url: str, dead_base: str | None = None) -> str:
    """The list card of ``product``: one ``<article>`` wrapped whole in an absolute link."""
    fields = product.fields
    text = _text_function(product, 0x5A5A)
    parts = [
        f'<article class="{product.css_classes}">\n',
        f'  <a href="{_attr_url(product_href(product, base_url, dead_base))}">\n',
        '    <div class="inner">\n',
        f'      <div class="entry-image"><img src="{PLACEHOLDER_IMAGE}" alt=""></div>\n',
        '      <div class="contents">\n',
        f'        <p class="entry-company notranslate">{text(fields["manufacturer"])}</p>\n',
        f'        <h3 class="entry-title">{text(fields["title"])}</h3>\n',
        f'        <p class="entry-category">{product.category_label}</p>\n',
    ]
    if product.card_certificate:
        certificate = escape(fields["certificate_id"])
        parts.append(f'        <p class="entry-certificate-id">Certificate ID: {certificate}</p>\n')
    if fields["description"] is not None:
        parts.append(f'        <div class="entry-excerpt"><p>{text(fields["description"])}</p></div>\n')
    parts.append('        <p class="cta">Learn More</p>\n      </div>\n    </div>\n  </a>\n</article>\n')
    return "".join(parts)


def pagination(current: int, last: int, base_url: str = DEFAULT_BASE_URL, query: str = "") -> str:
    """WordPress ``paginate_links``: page 1, the last page and current ± 2, dots for gaps; absolute hrefs.

    Every href keeps ``query`` (the request's, without ``paged``); numbers are wrapped in a ``<span>``.
    """
    root = base_url.rstrip("/")

    def href(page: int) -> str:
        return _attr_url(root + page_url(page, query))

    parts = []
    if current > 1:
        parts.append(f'<a class="prev page-numbers" href="{href(current - 1)}">« Previous</a>')
    shown = sorted({1, last, *range(max(1, current - 2), min(last, current + 2) + 1)})
    previous = 0
    for n in shown:
        if n > previous + 1:
            parts.append('<span class="page-numbers dots">…</span>')
        if n == current:
            parts.append(f'<span aria-current="page" class="page-numbers current"><span>{n}</span></span>')
        else:
            parts.append(f'<a class="page-numbers" href="{href(n)}"><span>{n}</span></a>')
        previous = n
    if current < last:
        parts.append(f'<a class="next page-numbers" href="{href(current + 1)}">Next »</a>')
    return "\n".join(parts)


def render_list_page(cards: list[str], page: int, last: int, base_url: str, query: str) -> bytes:
    """A list page: ``cards`` (rendered), pagination ``page`` of ``last`` keeping ``query``."""
    return (
        '<!DOCTYPE html><html lang="en-US"><head><meta charset="UTF-8">'
        "<title>Products - CSA-IOT</title></head>\n"
        '<body class="archive post-type-archive post-type-archive-csa_product">\n<main id="main" class="site-main">\n'
        '<div class="wp-block-crown-blocks-product-index">'
        '<div class="post-feed item-count-12" data-item-count="12"><div class="inner">\n'
        f"{''.join(cards)}</div></div>\n"
        '<nav class="navigation pagination" aria-label="Posts">\n'
        '<h2 class="screen-reader-text">Posts navigation</h2>\n'
        f'<div class="nav-links">{pagination(page, last, base_url, query)}</div>\n</nav>\n'
        "</div>\n</main></body></html>\n"
    ).encode()


def detail_rows(product: Product, base_url: str, text: Callable[[str], str] = escape) -> list[tuple[str, str]]:
    """(label, value HTML) of every row the detail page of ``product`` shows, in page order."""
    fields = product.fields
    rows = []
    for name, label in DETAIL_ROWS:
        value = fields[name]
        if name == "certification_date":
            value = product.date_text
        elif name == "pid":
            value = product.pid_text
        if value is None:
            continue
        if name == "vid":
            html_value = text(format_hex(value))
        elif name == "primary_device_type_id":
            html_value = text(", ".join(format_hex(v) for v in value))
        elif name == "tis_trp_tested":
            html_value = text("Yes" if value else "No")
        elif name == "transport_interface":
            html_value = text(", ".join(value))
        elif name == "compliance_document_url":
            html_value = f'<a href="{_attr_url(base_url.rstrip("/") + value)}">Download</a>'
        else:
            html_value = text(value)
        rows.append((label, html_value))
    return rows


def render_detail_page(product: Product, base_url: str, more_by: list[str] | None = None) -> bytes:
    """Detail page of ``product`` (UTF-8); ``more_by`` are rendered cards of the company's other products."""
    fields = product.fields
    text = _text_function(product, 0)
    items = "".join(
        f'<li><span class="label">{label}</span><span class="value">{value}</span></li>\n'
        for label, value in detail_rows(product, base_url, text)
    )
    company = fields["manufacturer"]
    section = ""
    if more_by:
        section = (
            f'<section class="more-by">\n<h2>More by {escape(company)}</h2>\n'
            f'<div class="post-feed item-count-3" data-item-count="3"><div class="inner">\n'
            f"{''.join(more_by)}</div></div>\n</section>\n"
        )
    return (
        f'<!DOCTYPE html><html lang="en-US"><head><meta charset="UTF-8">'
        f"<title>{escape(fields['title'])} - CSA-IOT</title></head>\n"
        '<body class="csa_product-template-default single single-csa_product">\n<main id="main" class="site-main">\n'
        f'<article id="post-{product.post_id}" class="{product.css_classes}">\n'
        '<header class="entry-header">\n'
        f'<h6 class="entry-category">{product.category_label}</h6>\n'
        f'<h1 class="entry-title">{text(fields["title"])}</h1>\n'
        f'<p class="entry-company notranslate">By {text(company)}</p>\n'
        "</header>\n"
        f'<div class="entry-product-details"><div><ul>\n{items}</ul></div></div>\n'
        f"{section}</article>\n</main></body></html>\n"
    ).encode()


# --- routing ---------------------------------------------------------------------------------------------------


class ShopPages:
    """Routes a request target to a :class:`Response`; valid pages are rendered once and cached.

    ``base_url`` (``http://host:port/``) makes every link absolute; the server sets it once it
    listens (setting it clears the caches).  Growth: the catalogue's ``grow`` newest Matter
    products are hidden at first; after every ``grow_every``-th list-page request that reaches
    the pages, one more appears at the top (``start``, the newest visible Matter index, drops by
    one) and every cached list page is dropped (``grow_every`` 0: never).  ``new`` of the ``grow``
    products are at the top from the start (added since an earlier run of the shop).  A detail
    page of a product not yet added is a 404.
    """

    def __init__(
        self,
        catalogue: Catalogue,
        base_url: str = DEFAULT_BASE_URL,
        dead_base: str | None = None,
        grow_every: int = 1,
        new: int = 0,
    ) -> None:
        if grow_every < 0:
            raise ValueError("grow_every must be >= 0")
        if not 0 <= new <= catalogue.grow:
            raise ValueError(f"new must be between 0 and grow ({catalogue.grow})")
        self.catalogue = catalogue
        #: ``http://<dead host>:<port>/`` when dead-host products get absolute links there.
        self.dead_base = dead_base
        self.grow_every = grow_every
        #: Index of the newest visible Matter product.
        self.start = catalogue.grow - new
        #: List-page requests counted for growth.
        self.list_requests = 0
        self._base_url = base_url
        self._cache: dict[str, Response] = {}
        self._lists: dict[str, Response] = {}
        self._cards: dict[Entry, str] = {}
        self._reset()

    @property
    def base_url(self) -> str:
        return self._base_url

    @base_url.setter
    def base_url(self, url: str) -> None:
        self._base_url = url
        self._reset()

    def _reset(self) -> None:
        self._cache = {
            "/": Response(302, HTML_UTF8, b"", LIST_PATH.encode()),
            "/robots.txt": Response(200, TEXT_UTF8, ROBOTS_TXT),
        }
        self._lists = {}
        self._cards = {}

    def respond(self, target: str, count: bool = True) -> Response:
        """The response to a GET of ``target`` (path and optional ``?query``).

        A list-page request counts towards growth unless ``count`` is false.
        """
        response = self._cache.get(target)
        if response is not None:
            return response
        response = self._lists.get(target)
        if response is None:
            response, is_list = self._render(target)
            if response.status in (200, 301):
                (self._lists if is_list else self._cache)[target] = response
        else:
            is_list = True
        if is_list and count and self.start > 0 and self.grow_every:
            self.list_requests += 1
            if self.list_requests % self.grow_every == 0:
                self.grow()
        return response

    def grow(self) -> None:
        """Add the next Matter product at the top (and its non-Matter followers); drop cached list pages."""
        if self.start > 0:
            self.start -= 1
            self._lists.clear()

    def card(self, entry: Entry) -> str:
        card = self._cards.get(entry)
        if card is None:
            card = render_card(self.catalogue.entry(entry), self._base_url, self.dead_base)
            self._cards[entry] = card
        return card

    def visible(self, entry: Entry) -> bool:
        return entry[0] >= self.start

    def list_page(self, kinds: frozenset[str], page: int, query: str, js: bool = False) -> Response:
        """Page ``page`` of the currently visible entries of ``kinds``, links keeping ``query``.

        ``js``: the JavaScript variant's page (:mod:`demoshop.jspages`).
        """
        entries = self.catalogue.view(kinds)
        offset = bisect.bisect_left(entries, (self.start, -2))  # the first entry of Matter index >= start
        last = max(1, -(-(len(entries) - offset) // PER_PAGE))
        if page > last:
            return NOT_FOUND
        first = offset + (page - 1) * PER_PAGE
        shown = entries[first : first + PER_PAGE]
        if js:
            from demoshop.jspages import card_data, render_js_list_page

            catalogue = self.catalogue
            cards = [card_data(catalogue.entry(e), self._base_url, self.dead_base) for e in shown]
            stall = catalogue.js_stalls("list", page)
            body = render_js_list_page(cards, page, last, len(entries) - offset, self._base_url, query, stall)
            return Response(200, HTML_UTF8, body)
        cards_html = [self.card(e) for e in shown]
        return Response(200, HTML_UTF8, render_list_page(cards_html, page, last, self._base_url, query))

    def _render(self, target: str) -> tuple[Response, bool]:
        path, _, query = target.partition("?")
        js = path.startswith(JS_PREFIX + "/")
        if js:
            path = path[len(JS_PREFIX) :]
        if path == LIST_PATH:
            kinds, page = view_of(query)
            return self.list_page(kinds, page, strip_paged(query), js), True
        if path.startswith(LIST_PATH):
            match = _PAGE_RE.fullmatch(path)
            if match is None:
                return self._redirect_or_404(path, query, js), False
            kinds, _ = view_of(query)
            return self.list_page(kinds, int(match[1]), strip_paged(query), js), True
        match = _PRODUCT_RE.fullmatch(path)
        if match:
            catalogue = self.catalogue
            entry = catalogue.entry_of_slug(match[1])
            if entry is None or not self.visible(entry):
                return NOT_FOUND, False
            product = catalogue.entry(entry)
            if js:
                from demoshop.jspages import card_data, render_js_detail_page

                more = [card_data(catalogue.product(i), self._base_url, self.dead_base)
                        for i in catalogue.more_by(entry)]  # fmt: skip
                stall = catalogue.js_stalls("detail", product.slug)
                return Response(200, HTML_UTF8, render_js_detail_page(product, self._base_url, more, stall)), False
            more_by = [self.card((index, -1)) for index in catalogue.more_by(entry)]
            return Response(200, HTML_UTF8, render_detail_page(product, self._base_url, more_by)), False
        return self._redirect_or_404(path, query, js), False

    def _redirect_or_404(self, path: str, query: str, js: bool = False) -> Response:
        """301 to ``path/`` for a list or product path missing its slash, when that page exists."""
        if not path.endswith("/") and (path.startswith(("/csa_product/", LIST_PATH)) or path == LIST_PATH[:-1]):
            target = (JS_PREFIX if js else "") + path + "/" + (f"?{query}" if query else "")
            if self.respond(target, count=False).status == 200:
                return Response(301, HTML_UTF8, b"", target.encode("latin-1"))
        return NOT_FOUND
