"""render = "js" stages: the profile keys, Chromium's discovery, the failure classes, and the browser's
plumbing end to end against a tiny shop of our own whose pages are rendered by inline scripts.

The shop (``ScriptShop``) is a real HTTP server on loopback: list pages and product pages
hold only empty containers and a script that fills them from JSON embedded in the page; the
data is nowhere in the HTML as served.  Each page also loads ``/static/<stage>.js`` and an
image, so its request log tells whether a browser (which loads them) or plain HTTP (which
does not) fetched a page, and whether images were blocked.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from scrapy.settings import Settings

from crawler.browser import (
    DISABLED_FEATURES,
    ENABLED_FEATURES,
    BrowserMissing,
    ResourceBlocker,
    chromium_args,
    enable_browser,
    find_chromium,
    launch_options,
    render_meta,
    routed_schemes,
)
from crawler.crawl_profiles import PROFILES
from crawler.errors import ConfigError, ProfileError
from crawler.failures import DEFAULT_CLASSIFIER, PERMANENT, TRANSIENT
from crawler.siteprofile import Render, parse_profile
from tests.conftest import run_crawl

CHROMIUM = "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="make test installs chromium")

PER_PAGE = 5


class ScriptShop:
    """A loopback shop whose pages are rendered by inline scripts; ``log`` lists the paths requested.

    ``products`` products, ``PER_PAGE`` a list page; product ``i`` is ``p<i>``; the products in
    ``never`` have a page whose script never renders it.  With ``plain_lists`` the list pages
    are plain HTML (only the product pages need their script).
    """

    def __init__(self, products: int, never: frozenset[int] = frozenset(), plain_lists: bool = False) -> None:
        self.products = products
        self.never = never
        self.plain_lists = plain_lists
        self.log: list[str] = []
        self._lock = threading.Lock()
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                with shop._lock:
                    shop.log.append(self.path)
                status, kind, body = shop.page(self.path)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ScriptShop:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def requested(self, prefix: str) -> int:
        with self._lock:
            return sum(1 for path in self.log if path.startswith(prefix))

    def product(self, i: int) -> dict:
        return {"sku": f"p{i}", "title": f"Product {i}", "price": f"{i}.50"}

    def page(self, path: str) -> tuple[int, str, str]:
        if path.startswith("/static/"):
            return 200, "text/javascript", "window.loaded = true;"
        if path.startswith("/img/"):
            return 200, "image/png", "not really a png"
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "list" and parts[1].isdigit():
            return 200, "text/html", self.list_page(int(parts[1]))
        if len(parts) == 2 and parts[0] == "item" and parts[1].startswith("p") and parts[1][1:].isdigit():
            i = int(parts[1][1:])
            if 0 <= i < self.products:
                return 200, "text/html", self.item_page(i)
        return 404, "text/plain", "not found"

    def list_page(self, number: int) -> str:
        first = (number - 1) * PER_PAGE
        items = [self.product(i) for i in range(first, min(first + PER_PAGE, self.products))]
        more = first + PER_PAGE < self.products
        if self.plain_lists:
            links = "".join(f'<a class="product" href="/item/{p["sku"]}/">{p["title"]}</a>' for p in items)
            if more:
                links += f'<a class="next" href="/list/{number + 1}">next</a>'
            return f"<!doctype html><html><body>{links}<img src='/img/list-{number}.png'></body></html>"
        data = json.dumps({"items": items, "next": f"/list/{number + 1}" if more else None})
        return f"""<!doctype html><html><head><script src="/static/list.js"></script></head><body>
<div id="cards"></div><nav id="pages"></nav><img src="/img/list-{number}.png">
<script>
const data = {data};
const cards = document.getElementById("cards");
for (const item of data.items) {{
  const a = document.createElement("a");
  a.className = "product"; a.href = "/item/" + item.sku + "/"; a.textContent = item.title;
  cards.appendChild(a);
}}
if (data.next) {{
  const next = document.createElement("a"); next.className = "next"; next.href = data.next;
  document.getElementById("pages").appendChild(next);
}}
</script></body></html>"""

    def item_page(self, i: int) -> str:
        data = json.dumps(self.product(i))
        script = "" if i in self.never else f"""
const p = {data};
setTimeout(() => {{
  document.getElementById("product").innerHTML =
    '<h1 class="title">' + p.title + '</h1><span class="price">' + p.price + '</span>';
}}, 20);"""
        return f"""<!doctype html><html><head><script src="/static/detail.js"></script></head><body>
<div id="product"></div><img src="/img/{i}.png"><script>{script}</script></body></html>"""


def write_profile(directory: Path, shop: ScriptShop, list_render: bool, detail_render: bool,
                  timeout: float = 5.0) -> Path:
    """A profile of the script shop; each stage plain HTTP or ``render = "js"``."""
    list_keys = 'render = "js"\nwait_for = "a.product"\n' if list_render else ""
    detail_keys = f'render = "js"\nwait_for = "h1.title"\nrender_timeout = {timeout}\n' if detail_render else ""
    path = directory / "scriptshop.toml"
    path.write_text(f"""
[site]
name = "scriptshop"
start_urls = ["{shop.url}list/1"]
key = "sku"

[list]
product_links = "a.product::attr(href)"
next_page = "a.next::attr(href)"
{list_keys}
[detail]
{detail_keys}
[fields.sku]
source = "url"
regex = '/item/([^/]+)/'

[fields.title]
css = "h1.title"
required = true

[fields.price]
css = "span.price"
type = "decimal"
required = true
""")
    return path


def crawl(shop: ScriptShop, work: Path, profile: Path, *settings: str):
    extra = [item for setting in settings for item in ("-s", setting)]
    return run_crawl(f"{shop.url}list/1", work / "shop.db", work / "stats", *extra, site=str(profile))


def stored(db: Path) -> dict[str, dict]:
    with sqlite3.connect(db) as conn:
        return {key: json.loads(data) for key, data in conn.execute("SELECT key, data FROM products")}


def dead_letters(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT url, reason, failure_class FROM dead_letters").fetchall()


# --- the profile keys -------------------------------------------------------------------------
def profile_data(list_extra: dict | None = None, detail_extra: dict | None = None, **site: object) -> dict:
    return {
        "site": {"start_urls": ["https://shop.example/list/"], "key": "sku", **site},
        "list": {"product_links": "a.product::attr(href)", **(list_extra or {})},
        "detail": dict(detail_extra or {}),
        "fields": {"sku": {"css": "span.sku"}},
    }


def test_stages_are_plain_http_by_default():
    profile = parse_profile(profile_data(), Path("p.toml"))
    assert profile.list_render is None and profile.detail_render is None
    assert profile.browser_stages == ()


def test_render_js_with_wait_for_and_timeout_per_stage():
    profile = parse_profile(
        profile_data(detail_extra={"render": "js", "wait_for": "h1.title", "render_timeout": 7}), Path("p.toml")
    )
    assert profile.list_render is None
    assert profile.detail_render == Render(wait_for="h1.title", timeout=7.0)
    assert profile.browser_stages == ("detail",)
    both = parse_profile(profile_data({"render": "js"}, {"render": "js"}), Path("p.toml"))
    assert both.list_render == Render() and both.browser_stages == ("list", "detail")


@pytest.mark.parametrize(
    ("list_extra", "detail_extra", "site", "message"),
    [
        ({"render": "javascript"}, {}, {}, "p.toml: list.render: unknown value 'javascript' (one of: http, js)"),
        ({"wait_for": "a"}, {}, {}, 'p.toml: list.wait_for: only with list.render = "js"'),
        ({}, {"render": "js", "wait_for": "h1::text"}, {}, "p.toml: detail.wait_for: a plain CSS selector"),
        ({}, {"render": "js", "wait_for": "h1[["}, {}, "p.toml: detail.wait_for: invalid CSS selector"),
        ({}, {"render": "js", "render_timeout": 0}, {}, "p.toml: detail.render_timeout: a number of seconds above 0"),
        ({}, {"render": "js", "render_timeout": "5"}, {}, "detail.render_timeout: a number of seconds above 0"),
        ({}, {"render_timeout": 5}, {}, 'detail.render_timeout: only with detail.render = "js"'),
    ],
)
def test_bad_render_keys_are_one_line_errors(list_extra, detail_extra, site, message):
    with pytest.raises(ProfileError) as info:
        parse_profile(profile_data(list_extra, detail_extra, **site), Path("p.toml"))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_list_only_profile_has_no_detail_render():
    data = profile_data(detail_extra={"render": "js"}, detail_pages=False)
    data["list"] = {"cards": "li"}
    with pytest.raises(ProfileError, match="detail.render: the profile has no detail pages"):
        parse_profile(data, Path("p.toml"))


def test_render_keys_alone_do_not_need_detail_rows():
    profile = parse_profile(profile_data(detail_extra={"render": "js"}), Path("p.toml"))
    assert profile.rows is None and profile.detail_render == Render()


# --- Chromium, launch options, settings ---------------------------------------------------------
def test_a_missing_browser_is_one_line_naming_the_install(tmp_path):
    with pytest.raises(BrowserMissing) as info:
        find_chromium(str(tmp_path / "nonexistent"))
    message = str(info.value)
    assert "apt-get install chromium" in message and "BROWSER_EXECUTABLE" in message and "\n" not in message
    not_executable = tmp_path / "chromium"
    not_executable.write_text("")
    with pytest.raises(BrowserMissing):
        find_chromium(str(not_executable))


@needs_chromium
def test_debians_chromium_is_found_by_default():
    assert find_chromium() == CHROMIUM
    assert find_chromium("chromium") == CHROMIUM


def test_launch_options_keep_the_users_and_always_name_the_executable():
    settings = Settings({"PLAYWRIGHT_LAUNCH_OPTIONS": {"headless": False, "executable_path": "/x", "slow_mo": 5}})
    options = launch_options("/usr/bin/chromium", settings)
    assert options["executable_path"] == "/usr/bin/chromium"
    assert options["headless"] is False and options["slow_mo"] == 5
    assert launch_options("/c")["headless"] is True


def _switch(args: list[str], name: str) -> list[str]:
    """The comma-separated values of the one ``name`` switch in ``args``."""
    (value,) = [arg.split("=", 1)[1] for arg in args if arg.startswith(name + "=")]
    return value.split(",")


def _playwrights_features(kind: str) -> set[str]:
    """The features the installed Playwright disables or enables (its chromiumSwitches.ts, bundled)."""
    import playwright

    bundle = (Path(playwright.__file__).parent / "driver/package/lib/coreBundle.js").read_text()
    match = re.search(rf"{kind}Features = (?:\(\) => )?\[(.*?)\]\.filter", bundle, re.S)
    assert match, f"Playwright's {kind} Chromium features not found in its bundle: check crawler/browser.py"
    lines = [line for line in match.group(1).splitlines() if not line.strip().startswith("//")]
    return set(re.findall(r'"([A-Za-z0-9]+)"', "\n".join(lines)))


def test_chromium_feature_switches_keep_playwrights_and_add_ours():
    # Chromium reads only the last --disable-features / --enable-features: ours must repeat Playwright's
    args = chromium_args()
    disabled, enabled = _switch(args, "--disable-features"), _switch(args, "--enable-features")
    assert set(DISABLED_FEATURES) <= set(disabled) and set(ENABLED_FEATURES) <= set(enabled)
    assert _playwrights_features("disabled") <= set(disabled)
    assert _playwrights_features("enabled") <= set(enabled)
    assert len(disabled) == len(set(disabled)) and len(enabled) == len(set(enabled))


def test_renderer_process_limit_comes_from_the_setting():
    assert _switch(chromium_args(), "--renderer-process-limit") == ["1"]
    assert not [arg for arg in chromium_args(0) if arg.startswith("--renderer-process-limit")]
    with pytest.raises(ValueError):
        chromium_args(-1)
    assert _switch(launch_options("/c")["args"], "--renderer-process-limit") == ["1"]  # the default
    options = launch_options("/c", Settings({"BROWSER_RENDERER_PROCESSES": "3"}))
    assert _switch(options["args"], "--renderer-process-limit") == ["3"]
    with pytest.raises(ConfigError, match="BROWSER_RENDERER_PROCESSES"):
        launch_options("/c", Settings({"BROWSER_RENDERER_PROCESSES": -1}))
    # switches given in PLAYWRIGHT_LAUNCH_OPTIONS replace ours
    given = launch_options("/c", Settings({"PLAYWRIGHT_LAUNCH_OPTIONS": {"args": ["--mute-audio"]}}))
    assert given["args"] == ["--mute-audio"]


@needs_chromium
def test_chromium_runs_one_renderer_per_context_and_no_extra_processes():
    """With our switches: no address-bar popup renderers, no network service process, one renderer per context."""
    import asyncio
    import os

    import psutil
    from playwright.async_api import async_playwright

    async def processes() -> Counter:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(**launch_options(CHROMIUM))
            try:
                for _ in range(2):
                    context = await browser.new_context()
                    for _ in range(3):
                        page = await context.new_page()
                        await page.goto("data:text/html,<p>rendered</p>")
                await asyncio.sleep(0.5)
                kinds: Counter = Counter()
                for child in psutil.Process(os.getpid()).children(recursive=True):
                    args = child.cmdline()
                    kind = next((arg.split("=", 1)[1] for arg in args if arg.startswith("--type=")), "")
                    sub = next((arg.split("=", 1)[1] for arg in args if arg.startswith("--utility-sub-type=")), "")
                    kinds[kind + ("-webui" if "--top-chrome-webui" in args else "") + (f":{sub}" if sub else "")] += 1
                return kinds
            finally:
                await browser.close()

    kinds = asyncio.run(processes())
    assert kinds["renderer-webui"] == 0, kinds
    assert kinds["utility:network.mojom.NetworkService"] == 0, kinds
    assert kinds["gpu-process"] == 0, kinds
    assert kinds["renderer"] <= 3, kinds  # one per context (and at most one spare)


@needs_chromium
def test_enable_browser_routes_http_through_scrapy_playwright_and_blocks_heavy_resources():
    from crawler import settings as project

    settings = Settings()
    settings.setmodule(project, priority="project")
    enable_browser(settings, ["detail"], ["https"])
    # only the start URLs' scheme: scrapy-playwright starts a Playwright (and a browser) per scheme
    assert routed_schemes(settings) == {"https"}
    assert settings.getdict("DOWNLOAD_HANDLERS")["https"] == "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"
    assert settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS")["executable_path"] == CHROMIUM
    blocker = settings.get("PLAYWRIGHT_ABORT_REQUEST")
    assert isinstance(blocker, ResourceBlocker)
    assert blocker.resource_types == {"image", "font", "media"}


def test_every_crawl_profile_bounds_the_browser():
    for name, values in PROFILES.items():
        assert values["PLAYWRIGHT_MAX_CONTEXTS"] >= 1, name
        assert values["PLAYWRIGHT_MAX_PAGES_PER_CONTEXT"] >= 1, name
    pages = {name: v["PLAYWRIGHT_MAX_CONTEXTS"] * v["PLAYWRIGHT_MAX_PAGES_PER_CONTEXT"] for name, v in PROFILES.items()}
    assert pages["saver"] < pages["balanced"] < pages["performance"]


# --- failure classes ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exception", "kind", "reason"),
    [
        (PlaywrightTimeoutError("Page.goto: Timeout 2000ms exceeded."), TRANSIENT, "browser_timeout"),
        (PlaywrightTimeoutError('Page.wait_for_selector: Timeout 500ms exceeded.\nCall log:\n'
                                '  - waiting for locator("css=h1") to be visible'), TRANSIENT, "browser_wait_timeout"),
        (PlaywrightError("Page.goto: Page crashed"), TRANSIENT, "browser_crash"),
        (PlaywrightError("Page.goto: Target page, context or browser has been closed"), TRANSIENT, "browser_closed"),
        (PlaywrightError("Page.goto: net::ERR_CONNECTION_REFUSED at http://127.0.0.1:9/"),
         TRANSIENT, "connection_refused"),
        (PlaywrightError("Page.goto: net::ERR_NAME_NOT_RESOLVED at http://nowhere.invalid/"), PERMANENT, "dns_failure"),
        (PlaywrightError("Page.content: something else"), TRANSIENT, "browser_error"),
    ],
)
def test_playwright_failures_are_classified(exception, kind, reason):
    failure = DEFAULT_CLASSIFIER.classify_exception(exception)
    assert (failure.kind, failure.reason) == (kind, reason)


def test_a_closed_target_is_classified_by_its_class():
    from playwright._impl._errors import TargetClosedError

    assert DEFAULT_CLASSIFIER.classify_exception(TargetClosedError()).reason == "browser_closed"


# --- end to end over loopback, with the real Chromium -------------------------------------------------
@pytest.fixture
def script_shop() -> Iterator[ScriptShop]:
    with ScriptShop(products=12) as shop:
        yield shop


def test_a_script_rendered_catalogue_over_plain_http_saves_nothing(script_shop, tmp_path):
    """The problem: without the browser the list pages show no product link."""
    result = crawl(script_shop, tmp_path, write_profile(tmp_path, script_shop, False, False))
    assert stored(tmp_path / "shop.db") == {}
    stats = result.stats
    assert stats["catalog/empty_list_pages"] == stats["catalog/list_pages"] >= 1
    assert script_shop.requested("/static/") == 0
    assert not any(key.startswith(("playwright/", "browser/")) for key in stats)


@needs_chromium
def test_both_stages_in_the_browser_store_every_product(script_shop, tmp_path):
    result = crawl(script_shop, tmp_path, write_profile(tmp_path, script_shop, True, True),
                   "BROWSER_CONTEXT_RECYCLE_PAGES=4")
    assert result.returncode == 0, result.stderr[-3000:]
    assert stored(tmp_path / "shop.db") == {
        f"p{i}": {"sku": f"p{i}", "title": f"Product {i}", "price": f"{i}.50"} for i in range(12)
    }
    stats = result.stats
    list_pages, details = stats["catalog/list_pages"], 12
    assert list_pages == 3 + stats.get("catalog/recheck_list_pages", 0)
    assert stats["browser/requests/list"] == list_pages
    assert stats["browser/requests/detail"] == details
    assert stats["playwright/request_count/navigation"] == list_pages + details
    # the browser loaded the pages' scripts, never their images
    assert script_shop.requested("/static/list.js") == list_pages
    assert script_shop.requested("/static/detail.js") == details
    assert script_shop.requested("/img/") == 0
    assert stats["playwright/request_count/aborted"] == list_pages + details
    # every page closed; contexts recycled every 4 pages, at most PLAYWRIGHT_MAX_CONTEXTS open
    assert stats["playwright/page_count"] == stats["playwright/page_count/closed"] == list_pages + details
    assert stats["browser/contexts_recycled"] >= 2
    assert stats["playwright/context_count/max_concurrent"] <= 2
    assert stats["playwright/context_count"] - stats["browser/contexts_recycled"] == stats["browser/contexts_open"]
    assert stats["browser/contexts_open"] <= 2
    assert stats["playwright/browser_count"] == 1


@needs_chromium
def test_detail_only_rendering_fetches_list_pages_over_plain_http(tmp_path):
    with ScriptShop(products=12, plain_lists=True) as shop:
        result = crawl(shop, tmp_path, write_profile(tmp_path, shop, False, True))
        assert result.returncode == 0, result.stderr[-3000:]
        assert len(stored(tmp_path / "shop.db")) == 12
        stats = result.stats
        assert stats.get("browser/requests/list") is None
        assert stats["browser/requests/detail"] == 12
        # the browser navigated to the 12 product pages only, and loaded their scripts only
        assert stats["playwright/request_count/navigation"] == 12
        assert shop.requested("/static/detail.js") == 12
        assert shop.requested("/img/list-") == 0
        assert Counter(p.split("/")[1] for p in shop.log if p.startswith(("/list/", "/item/"))) == {
            "list": stats["catalog/list_pages"], "item": 12,
        }


@needs_chromium
def test_pages_that_never_render_are_retried_then_dead_lettered_and_counted_by_the_breaker(tmp_path):
    never = frozenset({1, 4, 7})
    breaker = '{"failure_threshold": 1, "cooldown": 0.2, "cooldown_max": 0.4}'
    with ScriptShop(products=10, never=never, plain_lists=True) as shop:
        profile = write_profile(tmp_path, shop, False, True, timeout=3)
        result = crawl(shop, tmp_path, profile, "RETRY_TIMES=1", "RETRY_MAX_ELAPSED=20",
                       "RETRY_BACKOFF_BASE=0.1", f"CIRCUIT_BREAKER={breaker}")
        product_requests = Counter(p for p in shop.log if p.startswith("/item/"))
    db = tmp_path / "shop.db"
    assert set(stored(db)) == {f"p{i}" for i in range(10) if i not in never}
    letters = dead_letters(db)
    assert sorted(url for url, _, _ in letters) == sorted(f"{shop.url}item/p{i}/" for i in never)
    assert {(reason, kind) for _, reason, kind in letters} == {("browser_wait_timeout", "transient")}
    # each tried twice (RETRY_TIMES=1), the others once
    assert all(product_requests[f"/item/p{i}/"] == (2 if i in never else 1) for i in range(10)), product_requests
    stats = result.stats
    assert stats["retry/reason_count/browser_wait_timeout"] == len(never)
    assert stats["breaker/trips"] >= 1
    assert stats["products/identity_holds"] is True, stats["products/identity"]
    assert stats["dlq/added/browser_wait_timeout"] == stats["dlq/added/stage/detail"] == len(never)
    # failed pages were closed too: none left open
    assert stats["playwright/page_count"] == stats["playwright/page_count/closed"] == 10 + len(never)
    assert result.returncode != 0  # dead letters beyond MAX_DEAD_LETTERS (0): the crawl is not complete


@needs_chromium
def test_a_missing_browser_stops_the_crawl_before_any_request(script_shop, tmp_path):
    profile = write_profile(tmp_path, script_shop, False, True)
    result = crawl(script_shop, tmp_path, profile, "BROWSER_EXECUTABLE=/nonexistent")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines == [
        "error: browser not found: BROWSER_EXECUTABLE='/nonexistent' is not an executable file; "
        "install it (apt-get install chromium) or set BROWSER_EXECUTABLE to a Chromium binary"
    ]
    assert "Traceback" not in result.stderr
    assert script_shop.log == []


def test_a_missing_browser_does_not_matter_without_a_js_stage(script_shop, tmp_path):
    profile = write_profile(tmp_path, script_shop, False, False)
    result = crawl(script_shop, tmp_path, profile, "BROWSER_EXECUTABLE=/nonexistent")
    assert "browser not found" not in result.stderr
    assert script_shop.requested("/list/1") >= 1


def test_a_browser_request_with_wait_for_navigates_until_domcontentloaded_then_waits():
    from scrapy import Request
    from scrapy.utils.test import get_crawler

    from crawler.browser import HANDLER
    from crawler.middlewares.browser import BrowserContextsMiddleware

    crawler = get_crawler(settings_dict={"DOWNLOAD_HANDLERS": {"http": HANDLER}})
    crawler.stats.open_spider()
    middleware = BrowserContextsMiddleware.from_crawler(crawler)
    waiting = Request("http://shop/p1", meta=render_meta(Render(wait_for="li.row", timeout=5)))
    assert middleware.process_request(waiting) is None
    assert waiting.meta["playwright_page_goto_kwargs"] == {"timeout": 5000, "wait_until": "domcontentloaded"}
    (method,) = waiting.meta["playwright_page_methods"]
    assert (method.method, method.args, method.kwargs["timeout"]) == ("wait_for_selector", ("css=li.row",), 5000)
    plain = Request("http://shop/p2", meta=render_meta(Render(wait_for=None, timeout=None)))
    middleware.process_request(plain)
    assert plain.meta["playwright_page_goto_kwargs"] == {"timeout": 30000}  # Playwright's default: "load"
    assert "playwright_page_methods" not in plain.meta
