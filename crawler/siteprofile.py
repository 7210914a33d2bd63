"""Site profiles: a catalogue site described in TOML instead of Python.

``load_profile("csa_iot")`` reads ``crawler/sites/csa_iot.toml`` (or any
``path/to/file.toml``), checks every key, compiles every selector and regex,
and returns an immutable :class:`SiteProfile`.  Any problem raises
:class:`~crawler.errors.ProfileError` with one line naming the file and the
key.  The format is documented in README.md ("Site profiles").
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Formatter
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from cssselect import SelectorError, parse
from cssselect.parser import Class, Element
from lxml import etree
from parsel.csstranslator import HTMLTranslator

from crawler.coercion import SCALARS, TYPES
from crawler.errors import ProfileError
from crawler.scriptdata import PathError, ScriptPath, compile_path

#: The profiles shipped with the project, read through the import system: a
#: directory in a checkout, a folder inside the zipped egg scrapyd runs.
SHIPPED_PROFILES: Traversable = resources.files(__package__) / "sites"
#: Where ``-a site=NAME`` looks by default, as a path (names the file in messages;
#: inside a zipped egg it is the egg's path followed by ``crawler/sites``).
PROFILES_DIR = Path(str(SHIPPED_PROFILES))

_translator = HTMLTranslator()

_SITE_KEYS = {"name", "start_urls", "key", "allowed_domains", "detail_pages"}
#: A stage's rendering keys (``[list]`` and ``[detail]``): ``render = "js"``, ``wait_for``, ``render_timeout``.
_RENDER_KEYS = {"render", "wait_for", "render_timeout"}
#: ``render`` values: plain HTTP (the default) or a browser running the page's JavaScript.
RENDER_HTTP, RENDER_JS = "http", "js"
_LIST_KEYS = {"cards", "product_links", "next_page", "last_page", "page_url", "total_count"} | _RENDER_KEYS
_ROW_KEYS = {"rows", "row_label", "row_value"}
_DETAIL_KEYS = _ROW_KEYS | _RENDER_KEYS
_SELECTOR_KEYS = {"css", "xpath", "attr", "regex"}
_FIELD_KEYS = _SELECTOR_KEYS | {
    "label", "source", "from", "type", "item_type", "split", "required", "date_format", "int_base", "strip_prefix",
    "path",
}  # fmt: skip
#: Keys of a ``source = "script"`` list selector (``list.cards``, ``list.product_links``).
_SCRIPT_KEYS = _SELECTOR_KEYS | {"source", "path"}
_TOP_KEYS = {"site", "list", "detail", "fields", "settings"}
_SOURCES = ("url", "script")
#: ``source = "script"``: JSON in the page's ``<script>`` elements (see :mod:`crawler.scriptdata`).
SCRIPT = "script"
#: Where a field is read: the detail page, or the product's card on the list page.
DETAIL, CARD = "detail", "card"
#: Placeholders of ``list.page_url``.
PAGE_URL_NAMES = frozenset({"page", "start_url", "base", "query"})


@dataclass(frozen=True)
class Selector:
    """A CSS or XPath expression, compiled, with an optional attribute and regex.

    Applied to an lxml element it yields strings: the text of each selected
    element (all descendant text), each selected text/attribute node, or the
    ``attr`` attribute of each selected element; then, with ``regex``, the
    first group (or the whole match) of each string that matches.
    """

    expr: str
    xpath: etree.XPath = field(compare=False, repr=False)
    attr: str | None = None
    regex: re.Pattern[str] | None = None
    #: ``string((expr)[1])``: the text of the first match in one XPath call (no attr, no regex).
    first_xpath: etree.XPath | None = field(default=None, compare=False, repr=False)

    def first_text(self, node: Any) -> str:
        """The text of the first match (its attribute with ``attr``; after ``regex``); "" when none."""
        if self.first_xpath is not None:
            return str(self.first_xpath(node))
        found = self.strings(node)
        return found[0] if found else ""

    def strings(self, node: Any) -> list[str]:
        return list(self.iter_strings(node))

    def iter_strings(self, node: Any) -> Iterator[str]:
        """The strings of :meth:`strings`, one at a time (a scalar field stops at its first value)."""
        attr, regex = self.attr, self.regex
        for hit in self.xpath(node):
            if isinstance(hit, str):
                value = str(hit)
            elif attr is not None:
                value = hit.get(attr)
                if value is None:
                    continue
            else:
                value = text_of(hit)
            if regex is not None:
                value = apply_regex(regex, value)
                if value is None:
                    continue
            yield value


def compile_xpath(text: str) -> etree.XPath:
    """``etree.XPath(text)`` without lxml's EXSLT regular expressions.

    lxml's default registers its ``re:`` functions again on every evaluation:
    a quarter of the cost of a small one, which a detail page runs some fifty
    times.  No profile expression can call them anyway: nothing binds the
    ``re`` prefix (parsel binds it for its own selectors, not for these).
    """
    return etree.XPath(text, regexp=False)


_STRING = compile_xpath("string()")


def text_of(node: Any) -> str:  # noqa: ANN401  (an lxml node)
    """All descendant text of an element, as one string: XPath's ``string()``.

    For an element, libxml2's text serialisation (``tostring(method="text")``
    without the tail) is the same string for less than half the cost of an
    XPath evaluation; ``tests/test_siteprofile.py`` compares the two.
    """
    if isinstance(node.tag, str):
        return etree.tostring(node, method="text", encoding=str, with_tail=False)
    return _STRING(node)


def apply_regex(pattern: re.Pattern[str], text: str) -> str | None:
    """First group of ``pattern`` in ``text`` (whole match if no group), or None."""
    match = pattern.search(text)
    if match is None:
        return None
    return match.group(1) if pattern.groups else match.group(0)


@dataclass(frozen=True)
class FieldSpec:
    """How one product field is extracted and typed."""

    name: str
    type: str = "str"
    required: bool = False
    selector: Selector | None = None  # css/xpath; relative to the row value when labels are set
    #: Normalised row labels (aliases), empty when the field is not read from label/value rows.
    labels: tuple[str, ...] = ()
    source: str | None = None  # "url": the regex applies to the page URL (a card's product link)
    origin: str = DETAIL  # "detail" page or list "card"
    regex: re.Pattern[str] | None = None  # used with label/source (selector carries its own)
    split: str | None = None
    item_type: str = "str"
    date_format: str | tuple[str, ...] | None = None
    int_base: int = 10
    strip_prefix: tuple[str, ...] = ()
    #: ``source = "script"``: the JMESPath into the JSON (``selector``: the ``<script>`` elements, None: all).
    path: ScriptPath | None = None


@dataclass(frozen=True)
class ScriptSource:
    """``list.cards`` / ``list.product_links`` read from JSON in ``<script>`` elements.

    ``scripts`` selects the script elements and isolates the JSON text (its
    ``regex``); None: every ``<script>`` (or, for product links of script cards,
    the card's own JSON).  ``path`` selects the cards (each JSON value one card)
    or the links.
    """

    path: ScriptPath
    scripts: Selector | None = None

    @property
    def expr(self) -> str:
        """How the profile wrote it, for messages: ``products[*] in script#data``."""
        scripts = self.scripts
        if scripts is None:
            return f"{self.path.expr} in script"
        regex = f" ~ /{scripts.regex.pattern}/" if scripts.regex is not None else ""
        return f"{self.path.expr} in {scripts.expr}{regex}"


@dataclass(frozen=True)
class Render:
    """How a stage's pages are fetched with ``render = "js"``: in a browser that runs their scripts.

    ``wait_for``: a CSS selector the page must show before it is read (None: the
    page's ``load`` event is enough); ``timeout``: seconds the navigation, and then
    the wait, may each take (None: the ``BROWSER_RENDER_TIMEOUT`` setting).
    """

    wait_for: str | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class SiteProfile:
    """A validated site profile."""

    name: str
    path: Path
    start_urls: tuple[str, ...]
    allowed_domains: tuple[str, ...]
    key: str
    fields: tuple[FieldSpec, ...]
    product_links: Selector | ScriptSource | None = None
    cards: Selector | ScriptSource | None = None
    detail_pages: bool = True
    next_page: Selector | None = None
    last_page: Selector | None = None
    page_url: str | None = None
    total_count: Selector | None = None
    rows: Selector | None = None
    row_label: Selector | None = None
    row_value: Selector | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    #: ``render = "js"`` of the list and detail stages; None: plain HTTP.
    list_render: Render | None = None
    detail_render: Render | None = None

    @property
    def browser_stages(self) -> tuple[str, ...]:
        """The stages (``"list"``, ``"detail"``) whose pages are rendered in a browser."""
        return tuple(name for name, r in (("list", self.list_render), ("detail", self.detail_render)) if r)

    def with_start_url(self, url: str) -> SiteProfile:
        """This profile crawling ``url`` instead; the allowed domain follows it."""
        _check_url(url, self.path, "start_url")
        return replace(self, start_urls=(url,), allowed_domains=(_host(url),))

    def with_allowed_domains(self, domains: Iterable[str]) -> SiteProfile:
        """This profile allowing exactly ``domains``."""
        allowed = tuple(domains)
        if not allowed:
            raise ProfileError(f"{self.path}: allowed_domains: give at least one domain")
        return replace(self, allowed_domains=allowed)

    def get_field(self, name: str) -> FieldSpec:
        return next(f for f in self.fields if f.name == name)

    def fields_from(self, origin: str) -> tuple[FieldSpec, ...]:
        """The fields read from ``origin`` (``"detail"`` or ``"card"``)."""
        return tuple(f for f in self.fields if f.origin == origin)

    def page_link(self, start_url: str, page: int) -> str:
        """URL of list page ``page`` from ``list.page_url``, resolved against ``start_url``.

        The template's placeholders: ``{page}``; ``{start_url}`` (the whole
        start URL); ``{base}`` (the start URL without its query and fragment);
        ``{query}`` (the start URL's query string, without ``?``).  The result
        is resolved against the start URL, so ``"page/{page}/?{query}"`` on
        ``https://x/list/?a=1`` gives ``https://x/list/page/2/?a=1``.
        """
        if self.page_url is None:
            raise ValueError("this profile has no list.page_url")
        parts = urlsplit(start_url)
        text = self.page_url.format(
            page=page,
            start_url=start_url,
            base=urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
            query=parts.query,
        )
        return urljoin(start_url, text)


def resolve_profile_path(site: str, directory: str | Path | None = None) -> Path | Traversable:
    """The profile for ``-a site=``: a name in ``directory`` (default: the shipped profiles) or a path.

    A shipped profile is a :class:`~importlib.resources.abc.Traversable`: a
    :class:`~pathlib.Path` in a checkout, an entry of the zip file in an egg.
    """
    if site.endswith(".toml") or "/" in site or "\\" in site:
        path = Path(site)
        if not path.is_file():
            raise ProfileError(f"site profile file not found: {site}")
        return path
    base: Path | Traversable = Path(directory) if directory else SHIPPED_PROFILES
    path = base / f"{site}.toml"
    if not path.is_file():
        entries = base.iterdir() if base.is_dir() else ()
        known = sorted(p.name[: -len(".toml")] for p in entries if p.name.endswith(".toml"))
        raise ProfileError(
            f"unknown site {site!r}: no {path} (known sites: {', '.join(known) or 'none'})"
        )
    return path


def load_profile(site: str, directory: str | Path | None = None) -> SiteProfile:
    """Load and validate the profile named (or located by) ``site``."""
    path = resolve_profile_path(site, directory)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_profile(data, path if isinstance(path, Path) else Path(str(path)))


def parse_profile(data: dict[str, Any], path: Path) -> SiteProfile:
    """Validate a parsed TOML document; ``path`` names it in errors."""
    _check_keys(data, _TOP_KEYS, path, "")
    site = _table(data, "site", path, required=True)
    _check_keys(site, _SITE_KEYS, path, "site")
    list_ = _table(data, "list", path, required=True)
    _check_keys(list_, _LIST_KEYS, path, "list")
    detail = _table(data, "detail", path)
    _check_keys(detail, _DETAIL_KEYS, path, "detail")
    fields_ = _table(data, "fields", path, required=True)
    settings = _table(data, "settings", path)

    start_urls = site.get("start_urls")
    if isinstance(start_urls, str):
        start_urls = [start_urls]
    if not start_urls or not isinstance(start_urls, list):
        raise ProfileError(f"{path}: site.start_urls: required, a list of URLs")
    for url in start_urls:
        _check_url(url, path, "site.start_urls")
    allowed = site.get("allowed_domains") or sorted({_host(u) for u in start_urls})
    if not isinstance(allowed, list) or not all(isinstance(d, str) for d in allowed):
        raise ProfileError(f"{path}: site.allowed_domains: must be a list of domain names")

    detail_pages = site.get("detail_pages", True)
    if not isinstance(detail_pages, bool):
        raise ProfileError(f"{path}: site.detail_pages: must be true or false")
    if not detail_pages and "cards" not in list_:
        raise ProfileError(f"{path}: list.cards: required with site.detail_pages = false (each card is a product)")
    default_origin = DETAIL if detail_pages else CARD
    specs = tuple(_field(name, spec, path, default_origin) for name, spec in fields_.items())
    if not specs:
        raise ProfileError(f"{path}: fields: at least one field is required")
    for spec in specs:
        if spec.origin == CARD and "cards" not in list_:
            raise ProfileError(f"{path}: fields.{spec.name}.from: \"card\" needs list.cards")
        if spec.origin == DETAIL and not detail_pages:
            raise ProfileError(
                f"{path}: fields.{spec.name}.from: \"detail\" with site.detail_pages = false (there is no detail page)"
            )
    key = site.get("key")
    if not isinstance(key, str) or not key:
        raise ProfileError(f"{path}: site.key: required, the name of the field identifying a product")
    if key not in fields_:
        raise ProfileError(f"{path}: site.key: {key!r} is not one of the fields ({', '.join(fields_)})")
    if any(s.labels for s in specs) and not detail.get("rows"):
        raise ProfileError(f"{path}: detail.rows: required when a field uses 'label'")
    if any(k in detail for k in _ROW_KEYS) and not all(detail.get(k) for k in _ROW_KEYS):
        missing = sorted(k for k in _ROW_KEYS if not detail.get(k))
        raise ProfileError(f"{path}: detail.{missing[0]}: required with detail.rows")
    if "product_links" not in list_ and detail_pages:
        raise ProfileError(f"{path}: list.product_links: required")
    page_url = list_.get("page_url")
    if page_url is not None:
        _check_page_url(page_url, path)
        if "last_page" not in list_:
            raise ProfileError(f"{path}: list.page_url: needs list.last_page")
    for name in settings:
        if not name.isupper():
            raise ProfileError(f"{path}: settings.{name}: Scrapy setting names are UPPERCASE")

    def sel(table: dict[str, Any], name: str, where: str) -> Selector | None:
        return _selector(table[name], path, f"{where}.{name}") if name in table else None

    cards, product_links = _list_source(list_, "cards", path), _list_source(list_, "product_links", path)
    if isinstance(cards, ScriptSource):
        _check_script_cards(product_links, specs, path)

    return SiteProfile(
        name=str(site.get("name") or path.stem),
        path=path,
        start_urls=tuple(start_urls),
        allowed_domains=tuple(allowed),
        key=key,
        product_links=product_links,
        cards=cards,
        detail_pages=detail_pages,
        next_page=sel(list_, "next_page", "list"),
        last_page=sel(list_, "last_page", "list"),
        page_url=page_url,
        total_count=sel(list_, "total_count", "list"),
        rows=sel(detail, "rows", "detail"),
        row_label=sel(detail, "row_label", "detail"),
        row_value=sel(detail, "row_value", "detail"),
        fields=specs,
        settings=dict(settings),
        list_render=_render(list_, path, "list"),
        detail_render=_render(detail, path, "detail") if detail_pages else _no_render(detail, path),
    )


def _render(table: dict[str, Any], path: Path, where: str) -> Render | None:
    """A stage's ``render``/``wait_for``/``render_timeout`` keys; None for plain HTTP."""
    render = table.get("render", RENDER_HTTP)
    if render not in (RENDER_HTTP, RENDER_JS):
        raise ProfileError(f"{path}: {where}.render: unknown value {render!r} (one of: {RENDER_HTTP}, {RENDER_JS})")
    if render == RENDER_HTTP:
        for key in ("wait_for", "render_timeout"):
            if key in table:
                raise ProfileError(f"{path}: {where}.{key}: only with {where}.render = \"{RENDER_JS}\"")
        return None
    wait_for = table.get("wait_for")
    if wait_for is not None:
        if not isinstance(wait_for, str) or not wait_for.strip():
            raise ProfileError(f"{path}: {where}.wait_for: a CSS selector")
        if "::" in wait_for:
            raise ProfileError(
                f"{path}: {where}.wait_for: a plain CSS selector (the browser knows no ::attr() or ::text)"
            )
        try:
            _translator.css_to_xpath(wait_for)
        except (SelectorError, SyntaxError, ValueError) as exc:
            raise ProfileError(f"{path}: {where}.wait_for: invalid CSS selector {wait_for!r}: {exc}") from None
    timeout = table.get("render_timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        raise ProfileError(f"{path}: {where}.render_timeout: a number of seconds above 0")
    return Render(wait_for=wait_for, timeout=None if timeout is None else float(timeout))


def _no_render(detail: dict[str, Any], path: Path) -> None:
    """A list-only profile (no detail pages) cannot render them."""
    for key in sorted(_RENDER_KEYS & set(detail)):
        raise ProfileError(f"{path}: detail.{key}: the profile has no detail pages (site.detail_pages = false)")


def _check_page_url(template: Any, path: Path) -> None:
    where = f"{path}: list.page_url"
    if not isinstance(template, str):
        raise ProfileError(f"{where}: must be a string containing {{page}}")
    try:
        names = {name for _, name, _, _ in Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ProfileError(f"{where}: invalid template {template!r}: {exc}") from None
    unknown = sorted(names - PAGE_URL_NAMES)
    if unknown:
        allowed = ", ".join("{" + n + "}" for n in sorted(PAGE_URL_NAMES))
        raise ProfileError(f"{where}: unknown placeholder {{{unknown[0]}}} (allowed: {allowed})")
    if "page" not in names:
        raise ProfileError(f"{where}: must be a string containing {{page}}")


def _strings(value: Any, path: Path, where: str, what: str) -> tuple[str, ...]:
    """A non-empty string or a non-empty list of them, as a tuple."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise ProfileError(f"{path}: {where}: {what}")
    return tuple(values)


def _field(name: str, spec: Any, path: Path, default_origin: str = DETAIL) -> FieldSpec:
    where = f"fields.{name}"
    if not isinstance(spec, dict):
        raise ProfileError(f"{path}: {where}: must be a table")
    _check_keys(spec, _FIELD_KEYS, path, where)
    type_ = spec.get("type", "str")
    if type_ not in TYPES:
        raise ProfileError(f"{path}: {where}.type: unknown type {type_!r} (one of: {', '.join(TYPES)})")
    item_type = spec.get("item_type", "str")
    if item_type not in SCALARS:
        raise ProfileError(
            f"{path}: {where}.item_type: unknown type {item_type!r} (one of: {', '.join(SCALARS)})"
        )
    if "item_type" in spec and type_ != "list":
        raise ProfileError(f"{path}: {where}.item_type: only for type = \"list\"")
    if "split" in spec and (type_ != "list" or not isinstance(spec["split"], str) or not spec["split"]):
        raise ProfileError(f"{path}: {where}.split: a non-empty string, only for type = \"list\"")
    required = spec.get("required", False)
    if not isinstance(required, bool):
        raise ProfileError(f"{path}: {where}.required: must be true or false")
    label, source = spec.get("label"), spec.get("source")
    has_selector = "css" in spec or "xpath" in spec
    labels: tuple[str, ...] = ()
    if label is not None:
        labels = _strings(label, path, f"{where}.label", "a row label or a list of them (aliases)")
    origin = spec.get("from", default_origin)
    if origin not in (DETAIL, CARD):
        raise ProfileError(f"{path}: {where}.from: unknown origin {origin!r} (one of: detail, card)")
    if origin == CARD and labels:
        raise ProfileError(f"{path}: {where}.label: label/value rows are read on detail pages, not cards")
    int_base = spec.get("int_base", 10)
    if int_base not in (10, 16) or isinstance(int_base, bool):
        raise ProfileError(f"{path}: {where}.int_base: 10 or 16")
    if "int_base" in spec and "int" not in (type_, item_type):
        raise ProfileError(f"{path}: {where}.int_base: only for int values")
    strip_prefix: tuple[str, ...] = ()
    if "strip_prefix" in spec:
        strip_prefix = _strings(spec["strip_prefix"], path, f"{where}.strip_prefix", "a prefix or a list of them")
    if source is not None and source not in _SOURCES:
        raise ProfileError(f"{path}: {where}.source: unknown source {source!r} (one of: {', '.join(_SOURCES)})")
    if source == SCRIPT:
        if label is not None:
            raise ProfileError(f"{path}: {where}.source: \"script\" cannot be combined with label")
        if "path" not in spec:
            raise ProfileError(f"{path}: {where}.path: required with source = \"script\" (a JMESPath expression)")
    elif "path" in spec:
        raise ProfileError(f"{path}: {where}.path: only with source = \"script\"")
    elif source is not None and (has_selector or label is not None):
        raise ProfileError(f"{path}: {where}.source: cannot be combined with css, xpath or label")
    if not (has_selector or label is not None or source is not None):
        raise ProfileError(f"{path}: {where}: needs one of css, xpath, label or source")
    date_format = spec.get("date_format")
    if date_format is not None:
        formats = [date_format] if isinstance(date_format, str) else date_format
        if not isinstance(formats, list) or not all(isinstance(f, str) and "%" in f for f in formats):
            raise ProfileError(f"{path}: {where}.date_format: a strptime format or a list of them")
        date_format = formats[0] if isinstance(date_format, str) else tuple(formats)
    selector = None
    regex = None
    if source == SCRIPT:
        selector = _script_selector(spec, path, where)
    elif has_selector:
        selector = _selector(
            {k: spec[k] for k in _SELECTOR_KEYS if k in spec}, path, where
        )
    else:
        if "attr" in spec:
            raise ProfileError(f"{path}: {where}.attr: needs css or xpath")
        if "regex" in spec:
            regex = _regex(spec["regex"], path, f"{where}.regex")
    if source == "url" and regex is None:
        raise ProfileError(f"{path}: {where}.regex: required with source = \"url\"")
    return FieldSpec(
        name=name,
        type=type_,
        required=required,
        selector=selector,
        labels=tuple(normalize_label(text) for text in labels),
        source=source,
        origin=origin,
        regex=regex,
        split=spec.get("split"),
        item_type=item_type,
        date_format=date_format,
        int_base=int_base,
        strip_prefix=strip_prefix,
        path=_path(spec["path"], path, f"{where}.path") if source == SCRIPT else None,
    )


def _path(expr: Any, path: Path, where: str) -> ScriptPath:
    try:
        return compile_path(expr)
    except PathError as exc:
        raise ProfileError(f"{path}: {where}: {exc}") from None


def _script_selector(spec: dict[str, Any], path: Path, where: str) -> Selector | None:
    """The ``<script>`` elements of a ``source = "script"`` table (css/xpath, attr, regex); None: every script."""
    keys = {k: spec[k] for k in _SELECTOR_KEYS if k in spec}
    if not keys:
        return None
    if "css" not in keys and "xpath" not in keys:
        if "attr" in keys:
            raise ProfileError(f"{path}: {where}.attr: needs css or xpath")
        keys["css"] = "script"  # a regex alone: every script, the JSON isolated by the regex
    return _selector(keys, path, where, re.DOTALL)  # JSON spans lines: "." matches a newline too


def _list_source(table: dict[str, Any], name: str, path: Path) -> Selector | ScriptSource | None:
    """``list.cards`` / ``list.product_links``: a selector, or a ``source = "script"`` table."""
    if name not in table:
        return None
    spec, where = table[name], f"list.{name}"
    if not isinstance(spec, dict) or not ("source" in spec or "path" in spec):
        return _selector(spec, path, where)
    _check_keys(spec, _SCRIPT_KEYS, path, where)
    if spec.get("source") != SCRIPT:
        if "source" not in spec:
            raise ProfileError(f"{path}: {where}.path: only with source = \"script\"")
        raise ProfileError(f"{path}: {where}.source: unknown source {spec['source']!r} (only \"script\" here)")
    if "path" not in spec:
        raise ProfileError(f"{path}: {where}.path: required with source = \"script\" (a JMESPath expression)")
    return ScriptSource(_path(spec["path"], path, f"{where}.path"), _script_selector(spec, path, where))


def _check_script_cards(
    product_links: Selector | ScriptSource | None, specs: Iterable[FieldSpec], path: Path
) -> None:
    """With cards from a script, product links and card fields read each card's JSON (a path, no selector)."""
    if product_links is not None and (not isinstance(product_links, ScriptSource) or product_links.scripts):
        raise ProfileError(
            f"{path}: list.product_links: list.cards come from a script: read each card's link with "
            "{ source = \"script\", path = \"...\" } (no css, xpath or regex)"
        )
    for spec in specs:
        if spec.origin != CARD or spec.source == "url" or (spec.source == SCRIPT and spec.selector is None):
            continue
        raise ProfileError(
            f"{path}: fields.{spec.name}: list.cards come from a script: a card field reads the card's JSON "
            "with source = \"script\" and a path (no css, xpath, regex or label), or the link with source = \"url\""
        )


def normalize_label(text: str) -> str:
    """How row labels are compared: whitespace collapsed, case folded, trailing colon dropped."""
    return " ".join(text.split()).casefold().rstrip(":").rstrip()


def _selector(spec: Any, path: Path, where: str, regex_flags: int = 0) -> Selector:
    """A selector from a CSS string or a ``{css|xpath, attr, regex}`` table."""
    if isinstance(spec, str):
        spec = {"css": spec}
    if not isinstance(spec, dict):
        raise ProfileError(f"{path}: {where}: a CSS string or a table with css or xpath")
    _check_keys(spec, _SELECTOR_KEYS, path, where)
    if ("css" in spec) == ("xpath" in spec):
        raise ProfileError(f"{path}: {where}: give exactly one of css or xpath")
    if "css" in spec:
        expr = spec["css"]
        if not isinstance(expr, str) or not expr.strip():
            raise ProfileError(f"{path}: {where}.css: must be a non-empty string")
        try:
            xpath_text = css_to_xpath(expr)
        except (SelectorError, SyntaxError, ValueError) as exc:
            raise ProfileError(f"{path}: {where}.css: invalid CSS selector {expr!r}: {exc}") from None
    else:
        expr = xpath_text = spec["xpath"]
        if not isinstance(expr, str) or not expr.strip():
            raise ProfileError(f"{path}: {where}.xpath: must be a non-empty string")
    try:
        compiled = compile_xpath(xpath_text)
    except etree.XPathSyntaxError as exc:
        kind = "css" if "css" in spec else "xpath"
        raise ProfileError(f"{path}: {where}.{kind}: invalid selector {expr!r}: {exc}") from None
    attr = spec.get("attr")
    if attr is not None and (not isinstance(attr, str) or not attr):
        raise ProfileError(f"{path}: {where}.attr: must be an attribute name")
    regex = _regex(spec["regex"], path, f"{where}.regex", regex_flags) if "regex" in spec else None
    first = None
    if attr is None and regex is None:
        try:
            first = compile_xpath(f"string(({xpath_text})[1])")
        except etree.XPathSyntaxError:  # an expression that is not a node set (e.g. string(...))
            first = None
    return Selector(expr=expr, xpath=compiled, attr=attr, regex=regex, first_xpath=first)


def css_to_xpath(css: str) -> str:
    """The XPath of a CSS selector: parsel's translation, cheaper for class selectors on any element.

    parsel (cssselect) translates ``.a`` to ``descendant-or-self::*[@class
    and contains(@class, 'a') and ...]``: libxml2 evaluates that predicate on
    every element of the page, and a group ``"p.a, .b, .c"`` is a union that
    does it once per selector.  When every selector of the group is a type
    and one or more classes (no combinator, attribute, pseudo-class or
    pseudo-element) and at least one is on any element (``*``), the same
    elements, in document order, are found by walking the ``class``
    attributes once with cheap substring tests (one per class name, or one
    per part that several names share, below), then checking parsel's own
    conditions on the few elements left::

        descendant-or-self::*/@class[contains(., 'a') or contains(., 'b')]/parent::*[(self::p and A) or (B)]

    The substring tests are shared where the class names share a part of
    four or more characters (``company-info``, ``company-name`` and
    ``entry-company`` are all tested by ``contains(., 'company')``): libxml2
    copies the attribute's text for every ``contains``, which is most of the
    walk's cost.  The shipped csa_iot profile reads the manufacturer with
    four candidate classes: parsel's translation costs 1.51 M instructions
    per demo-shop detail page, the one walk with a test per class 0.91 M, and
    with the shared tests 0.62 M.
    """
    selectors = parse(css)
    parts = []
    for selector in selectors:
        first_class, tree = None, selector.parsed_tree
        while isinstance(tree, Class):  # the classes, last written first
            first_class, tree = tree.class_name, tree.selector
        if selector.pseudo_element is not None or first_class is None or type(tree) is not Element or tree.namespace:
            return _translator.css_to_xpath(css)
        parts.append((tree.element or "*", first_class, _translator.xpath(selector.parsed_tree)))
    if all(element != "*" for element, _, _ in parts):  # a type test is already cheap
        return _translator.css_to_xpath(css)
    prefilter = " or ".join(
        f"contains(., {_translator.xpath_literal(text)})" for text in _shared_substrings([name for _, name, _ in parts])
    )
    exact = " or ".join(
        f"({'self::' + xpath.element + ' and ' if xpath.element != '*' else ''}{xpath.condition})"
        for _, _, xpath in parts
    )
    return f"descendant-or-self::*/@class[{prefilter}]/parent::*[{exact}]"


#: Shortest part of a class name that :func:`css_to_xpath`'s prefilter tests on its own.
_MIN_SHARED = 4


def _shared_substrings(names: list[str]) -> list[str]:
    """Few substrings such that every name contains one: a whole name, or a part of at least
    ``_MIN_SHARED`` characters, chosen greedily (the part in the most names, then the longest)."""
    left = list(dict.fromkeys(names))
    chosen: list[str] = []
    while left:
        parts = {
            name[start : start + size]
            for name in left
            for size in range(min(_MIN_SHARED, len(name)), len(name) + 1)
            for start in range(len(name) - size + 1)
        }
        best = max(sorted(parts), key=lambda part: (sum(part in name for name in left), len(part)))
        chosen.append(best)
        left = [name for name in left if best not in name]
    return chosen


def _regex(pattern: Any, path: Path, where: str, flags: int = 0) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise ProfileError(f"{path}: {where}: must be a string")
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise ProfileError(f"{path}: {where}: invalid regex {pattern!r}: {exc}") from None


def _table(data: dict[str, Any], name: str, path: Path, required: bool = False) -> dict[str, Any]:
    value = data.get(name)
    if value is None:
        if required:
            raise ProfileError(f"{path}: [{name}]: required table is missing")
        return {}
    if not isinstance(value, dict):
        raise ProfileError(f"{path}: {name}: must be a table")
    return value


def _check_keys(table: dict[str, Any], allowed: set[str], path: Path, where: str) -> None:
    for key in table:
        if key not in allowed:
            prefix = f"{where}." if where else ""
            raise ProfileError(
                f"{path}: {prefix}{key}: unknown key (expected one of: {', '.join(sorted(allowed))})"
            )


def _check_url(url: Any, path: Path, where: str) -> None:
    if not isinstance(url, str):
        raise ProfileError(f"{path}: {where}: {url!r} is not a URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProfileError(f"{path}: {where}: {url!r} is not an http(s) URL")


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""
