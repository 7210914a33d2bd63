"""The demo shop's JavaScript variant: the same catalogue under ``/js/``, rendered in the browser.

Pure Python (no Twisted), like :mod:`demoshop.pages`.  ``/js/csa-iot_products/?<query>``,
``/js/csa-iot_products/page/N/?<query>`` and ``/js/csa_product/<slug>/`` serve the
catalogue of the HTML pages, but the server sends only the page's frame and the data:

* a list page holds an empty ``div.post-feed > div.inner`` and its pagination
  (server-rendered, absolute ``/js/...`` hrefs: the frame of the page, as many
  JavaScript catalogues keep it); its cards are in a ``window.__DATA__ = {...};``
  assignment (``products``: one object per card, ``page``, ``last_page``, ``total``);
* a detail page holds a "Loading…" placeholder in ``main``, the product in
  ``<script type="application/json" id="product-data">`` (title, company, the
  label/value ``details`` rows, the "More by" cards) and a schema.org
  ``<script type="application/ld+json">`` Product (name, brand, url, category, productID);
* an inline script builds the cards, the header and the rows from that JSON with
  DOM calls (``textContent``, no HTML strings): after it ran, the document holds
  the markup of the HTML variant (same elements, classes, hrefs and text), so
  the csa_iot profile's selectors work on the rendered page.  Before it runs the
  page holds no card, no product link and no detail row.

No external asset: everything is inline.  The JSON is the text the page shows
(MM/DD/YYYY dates, hex ids, "Yes"/"No"), including the extra whitespace and
non-breaking spaces of ``whitespace_entities`` products (decoded, not entities).

*Never rendering* (``--js-never-render F``, see :meth:`demoshop.catalogue.Catalogue.js_stalls`):
a seeded share of the JS pages ships the same data, but its script waits for a
promise that never settles, so the content is never inserted (a browser waiting
for the cards or rows times out).  Reading the embedded JSON without a browser
still works on those pages.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from html import unescape
from typing import Any

from demoshop.catalogue import KIND_TAXONOMY, Product
from demoshop.pages import JS_PREFIX, PLACEHOLDER_IMAGE, detail_rows, escape, noisy_text, pagination, product_href

__all__ = ["JS_PREFIX", "card_data", "detail_data", "ld_json", "render_js_detail_page", "render_js_list_page"]

#: The ``id`` of the detail page's product JSON.
PRODUCT_DATA_ID = "product-data"
COMPLIANCE_LABEL = "Compliance Document"

_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def script_json(data: Any) -> str:
    """``data`` as JSON safe inside a ``<script>`` (``<``, ``>``, ``&`` escaped, as WordPress does)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).translate(_JSON_ESCAPES)


def js_base(base_url: str) -> str:
    """The base URL of the JS variant: ``http://host:port/js/``."""
    return base_url.rstrip("/") + JS_PREFIX + "/"


def _plain_text(product: Product, salt: int) -> Callable[[str], str]:
    """Text as the page shows it: plain, or (``whitespace_entities``) with extra whitespace and NBSPs, decoded."""
    if "whitespace_entities" not in product.quirks:
        return str
    rng = random.Random(product.noise_seed ^ salt)
    return lambda value: unescape(noisy_text(value, rng))


def _heading(product: Product, text: Any) -> dict[str, Any]:
    """What a card and a detail page both show: title, company, category and taxonomy terms."""
    product_type, category, _ = KIND_TAXONOMY[product.kind]
    return {
        "title": text(product.fields["title"]),
        "company": text(product.fields["manufacturer"]),
        "category": product.category_label,
        "terms": {
            "product_type": product_type,
            "product_category": category,
            "product_device_type": product.device_slug,
            "product_company": product.company_slug,
        },
    }


def card_data(product: Product, base_url: str, dead_base: str | None = None) -> dict[str, Any]:
    """The JSON of one list card: what the HTML variant's card shows, links on the JS variant."""
    fields = product.fields
    text = _plain_text(product, 0x5A5A)
    description = fields["description"]
    return {
        "id": product.post_id,
        "url": product_href(product, js_base(base_url), js_base(dead_base) if dead_base else None),
        **_heading(product, text),
        "certificate_id": fields["certificate_id"] if product.card_certificate else None,
        "excerpt": None if description is None else text(description),
        "image": PLACEHOLDER_IMAGE,
    }


def detail_data(product: Product, base_url: str, more_by: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON of a detail page: header, label/value rows (``details``) and the "More by" cards."""
    fields = product.fields
    text = _plain_text(product, 0)
    rows: list[dict[str, str]] = []
    for label, value in detail_rows(product, base_url, text):
        if label == COMPLIANCE_LABEL:
            url = base_url.rstrip("/") + fields["compliance_document_url"]
            rows.append({"label": label, "value": "Download", "url": url})
        else:
            rows.append({"label": label, "value": value})
    return {
        "id": product.post_id,
        "url": js_base(base_url).rstrip("/") + product.path,
        **_heading(product, text),
        "details": rows,
        "more_by": more_by,
    }


def ld_json(product: Product, base_url: str) -> dict[str, Any]:
    """The schema.org Product of a detail page (plain values, as SEO plugins write them)."""
    fields = product.fields
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": fields["title"],
        "brand": {"@type": "Brand", "name": fields["manufacturer"]},
        "url": js_base(base_url).rstrip("/") + product.path,
        "category": product.category_label,
        "image": base_url.rstrip("/") + PLACEHOLDER_IMAGE,
    }
    if fields["certificate_id"] is not None:
        data["productID"] = fields["certificate_id"]
    return data


# --- the browser side ----------------------------------------------------------------------------------------

#: Builds a card (the HTML variant's ``render_card``) from its JSON; shared by both pages.
_CARD_JS = """\
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function classes(p) {
    var t = p.terms;
    var names = ["post-" + p.id, "product", "type-product", "status-publish", "hentry",
                 "product_type-" + t.product_type, "product_category-" + t.product_category];
    if (t.product_device_type) names.push("product_device_type-" + t.product_device_type);
    names.push("product_company-" + t.product_company);
    return names.join(" ");
  }
  function card(p) {
    var article = el("article", classes(p));
    var link = article.appendChild(document.createElement("a"));
    link.setAttribute("href", p.url);
    var inner = link.appendChild(el("div", "inner"));
    var image = inner.appendChild(el("div", "entry-image")).appendChild(document.createElement("img"));
    image.setAttribute("src", p.image);
    image.setAttribute("alt", "");
    var contents = inner.appendChild(el("div", "contents"));
    contents.appendChild(el("p", "entry-company notranslate", p.company));
    contents.appendChild(el("h3", "entry-title", p.title));
    contents.appendChild(el("p", "entry-category", p.category));
    if (p.certificate_id) contents.appendChild(el("p", "entry-certificate-id", "Certificate ID: " + p.certificate_id));
    if (p.excerpt !== null) contents.appendChild(el("div", "entry-excerpt")).appendChild(el("p", "", p.excerpt));
    contents.appendChild(el("p", "cta", "Learn More"));
    return article;
  }
  // A page whose app never starts waits here for ever (--js-never-render).
  var ready = STALL ? new Promise(function () {}) : Promise.resolve();
"""

_LIST_JS = """\
(function () {
  "use strict";
  var STALL = %(stall)s;
%(card)s  ready.then(function () {
    var feed = document.querySelector("div.post-feed > div.inner");
    window.__DATA__.products.forEach(function (p) { feed.appendChild(card(p)); });
  });
})();
"""

_DETAIL_JS = """\
(function () {
  "use strict";
  var STALL = %(stall)s;
%(card)s  ready.then(function () {
    var p = JSON.parse(document.getElementById("%(data_id)s").textContent);
    var article = el("article", classes(p));
    article.id = "post-" + p.id;
    var header = article.appendChild(el("header", "entry-header"));
    header.appendChild(el("h6", "entry-category", p.category));
    header.appendChild(el("h1", "entry-title", p.title));
    header.appendChild(el("p", "entry-company notranslate", "By " + p.company));
    var list = article.appendChild(el("div", "entry-product-details")).appendChild(el("div")).appendChild(el("ul"));
    p.details.forEach(function (row) {
      var item = list.appendChild(el("li"));
      item.appendChild(el("span", "label", row.label));
      var value = item.appendChild(el("span", "value"));
      if (row.url) {
        value.appendChild(el("a", "", row.value)).setAttribute("href", row.url);
      } else {
        value.textContent = row.value;
      }
    });
    if (p.more_by.length) {
      var section = article.appendChild(el("section", "more-by"));
      section.appendChild(el("h2", "", "More by " + p.company.trim()));
      var feed = section.appendChild(el("div", "post-feed item-count-3"));
      feed.setAttribute("data-item-count", "3");
      var inner = feed.appendChild(el("div", "inner"));
      p.more_by.forEach(function (c) { inner.appendChild(card(c)); });
    }
    document.getElementById("main").replaceChildren(article);
  });
})();
"""


def _script(template: str, stall: bool) -> str:
    return template % {"stall": "true" if stall else "false", "card": _CARD_JS, "data_id": PRODUCT_DATA_ID}


def render_js_list_page(
    cards: list[dict[str, Any]], page: int, last: int, total: int, base_url: str, query: str, stall: bool = False
) -> bytes:
    """A JS list page: an empty feed, the pagination (``/js/`` hrefs) and the cards as ``window.__DATA__``."""
    data = {"page": page, "last_page": last, "total": total, "products": cards}
    return (
        '<!DOCTYPE html><html lang="en-US"><head><meta charset="UTF-8">'
        "<title>Products - CSA-IOT</title></head>\n"
        '<body class="archive post-type-archive post-type-archive-csa_product">\n<main id="main" class="site-main">\n'
        '<div class="wp-block-crown-blocks-product-index">'
        '<div class="post-feed item-count-12" data-item-count="12"><div class="inner">\n</div></div>\n'
        '<nav class="navigation pagination" aria-label="Posts">\n'
        '<h2 class="screen-reader-text">Posts navigation</h2>\n'
        f'<div class="nav-links">{pagination(page, last, js_base(base_url), query)}</div>\n</nav>\n'
        "</div>\n</main>\n"
        f"<script>window.__DATA__ = {script_json(data)};</script>\n"
        f"<script>\n{_script(_LIST_JS, stall)}</script>\n"
        "</body></html>\n"
    ).encode()


def render_js_detail_page(
    product: Product, base_url: str, more_by: list[dict[str, Any]], stall: bool = False
) -> bytes:
    """A JS detail page: a placeholder, the product JSON, its schema.org Product and the rendering script."""
    data = detail_data(product, base_url, more_by)
    return (
        f'<!DOCTYPE html><html lang="en-US"><head><meta charset="UTF-8">'
        f"<title>{escape(product.fields['title'])} - CSA-IOT</title>\n"
        f'<script type="application/ld+json">{script_json(ld_json(product, base_url))}</script>\n'
        "</head>\n"
        '<body class="csa_product-template-default single single-csa_product">\n<main id="main" class="site-main">\n'
        '<div class="loading" aria-busy="true">Loading…</div>\n'
        "</main>\n"
        f'<script type="application/json" id="{PRODUCT_DATA_ID}">{script_json(data)}</script>\n'
        f"<script>\n{_script(_DETAIL_JS, stall)}</script>\n"
        "</body></html>\n"
    ).encode()
