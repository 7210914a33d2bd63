"""render = "js" against the demo shop's JavaScript variant (``/js/...``), with the real Chromium.

The shipped csa_iot profile is used with only ``render = "js"`` and a ``wait_for`` added to a
stage: on the JS variant the cards and the detail rows exist only once the page's script ran.
The products stored must be the ones the HTML variant gives, field by field, as the shop's
truth says.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from crawler.siteprofile import PROFILES_DIR
from demoshop.catalogue import Catalogue
from demoshop.process import ShopProcess
from tests.conftest import expected_fields, run_crawl

PRODUCTS, SEED = 36, 5
CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="make test installs chromium")

LIST_JS = 'render = "js"\nwait_for = "div.post-feed article.product"\n'
DETAIL_JS = 'render = "js"\nwait_for = "div.entry-product-details li"\n'


def js_profile(directory: Path, list_stage: bool, detail_stage: bool, render_timeout: float | None = None) -> Path:
    """The shipped csa_iot profile with ``render = "js"`` on the chosen stages."""
    text = (PROFILES_DIR / "csa_iot.toml").read_text()
    timeout = f"render_timeout = {render_timeout}\n" if render_timeout else ""
    if list_stage:
        text = text.replace("[list]\n", "[list]\n" + LIST_JS + timeout, 1)
    if detail_stage:
        text = text.replace("[detail]\n", "[detail]\n" + DETAIL_JS + timeout, 1)
    assert text.count('render = "js"') == list_stage + detail_stage
    path = directory / "csa_iot_js.toml"
    path.write_text(text)
    return path


def block(text: str, header: str) -> str:
    """The TOML table ``header`` of ``text``: from its header line to the next table's."""
    start = text.index(f"\n{header}\n") + 1
    end = text.find("\n[", start + len(header))
    return text[start:] if end < 0 else text[start:end + 1]


def script_list_profile(directory: Path) -> Path:
    """The csa_iot profile with the JS variant's list read from its script (no browser) and the
    product pages rendered in the browser (``render = "js"`` on the detail stage only)."""
    text = (PROFILES_DIR / "csa_iot.toml").read_text()
    script = (Path(__file__).parent / "profiles" / "csa_iot_js_script.toml").read_text()
    for header in ("[list]", "[fields.device_type]", "[fields.description]"):
        text = text.replace(block(text, header), block(script, header))
    text = text.replace("[detail]\n", "[detail]\n" + DETAIL_JS, 1)
    assert 'source = "script"' in block(text, "[list]") and 'render = "js"' in block(text, "[detail]")
    path = directory / "csa_iot_js_detail.toml"
    path.write_text(text)
    return path


def saved(db: Path) -> dict[str, dict]:
    with sqlite3.connect(db) as conn:
        return {key: json.loads(data) for key, data in conn.execute("SELECT key, data FROM products")}


def dead_letters(db: Path) -> list[tuple[str, str, str, int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT url, reason, failure_class, attempts FROM dead_letters").fetchall()


def assert_no_browser_leak(stats: dict) -> None:
    """Every page closed, and no more contexts open at the end than PLAYWRIGHT_MAX_CONTEXTS (2)."""
    assert stats["playwright/page_count"] == stats["playwright/page_count/closed"]
    assert stats["playwright/context_count"] - stats.get("browser/contexts_recycled", 0) == stats[
        "browser/contexts_open"
    ]
    assert stats["browser/contexts_open"] <= 2
    assert stats["playwright/context_count/max_concurrent"] <= 2
    assert stats["playwright/page_count/max_concurrent"] <= 2 * 4


@pytest.fixture(scope="module")
def shop():
    with ShopProcess(products=PRODUCTS, seed=SEED) as running:
        yield running


def test_the_js_variant_in_the_browser_stores_what_the_html_variant_stores(shop, tmp_path):
    truth = {t["key"]: t for t in Catalogue(PRODUCTS, SEED).truth()}
    wanted = {key: expected_fields(t, shop.url) for key, t in truth.items() if t["expected"] == "saved"}
    assert len(wanted) >= PRODUCTS * 0.9

    html = run_crawl(shop.list_url, tmp_path / "html.db", tmp_path / "html-stats")
    assert html.returncode == 0, html.stderr[-3000:]
    js = run_crawl(shop.js_list_url, tmp_path / "js.db", tmp_path / "js-stats",
                   "-s", "BROWSER_CONTEXT_RECYCLE_PAGES=10", site=str(js_profile(tmp_path, True, True)))
    assert js.returncode == 0, js.stderr[-3000:]

    from_html, from_js = saved(tmp_path / "html.db"), saved(tmp_path / "js.db")
    assert from_js == from_html
    assert set(from_js) == set(wanted)
    for key, fields in wanted.items():
        assert from_js[key] == fields, key

    stats = js.stats
    assert stats["products/identity_holds"] is True, stats["products/identity"]
    assert stats["browser/requests/list"] == stats["catalog/list_pages"]
    assert stats["browser/requests/detail"] == stats["catalog/detail_pages"] == PRODUCTS
    assert stats["playwright/request_count/navigation"] == stats["catalog/list_pages"] + PRODUCTS
    assert stats["playwright/browser_count"] == 1
    assert stats["browser/contexts_recycled"] >= 2
    assert_no_browser_leak(stats)
    # the HTML crawl never started the browser
    assert not any(key.startswith(("playwright/", "browser/")) for key in html.stats)


def test_the_js_variant_over_plain_http_finds_nothing(shop, tmp_path):
    """What a user saw before: every list page walked, no product link, nothing saved."""
    result = run_crawl(shop.js_list_url, tmp_path / "db.sqlite", tmp_path / "stats")
    stats = result.stats
    assert saved(tmp_path / "db.sqlite") == {}
    assert stats["catalog/empty_list_pages"] == stats["catalog/list_pages"] >= 1


def test_only_the_detail_stage_in_the_browser(shop, tmp_path):
    """List pages over plain HTTP (cards read from their script), product pages rendered in the browser."""
    result = run_crawl(shop.js_list_url, tmp_path / "db.sqlite", tmp_path / "stats",
                       site=str(script_list_profile(tmp_path)))
    assert result.returncode == 0, result.stderr[-3000:]
    truth = [t for t in Catalogue(PRODUCTS, SEED).truth() if t["expected"] == "saved"]
    stored = saved(tmp_path / "db.sqlite")
    assert stored == {t["key"]: expected_fields(t, shop.url) for t in truth}
    stats = result.stats
    assert "browser/requests/list" not in stats
    assert stats["browser/requests/detail"] == PRODUCTS
    # the browser navigated to the product pages only: one document each, no list page
    assert stats["playwright/request_count/navigation"] == PRODUCTS
    assert stats["playwright/request_count/resource_type/document"] == PRODUCTS
    assert stats["catalog/list_pages"] >= 3
    assert_no_browser_leak(stats)


def test_pages_that_never_render_end_in_dead_letters(tmp_path):
    args = ["--js-never-render", "0.15", "--js-never-render-on", "detail", "--js-never-render-seed", "4"]
    log = tmp_path / "requests.jsonl"
    with ShopProcess(products=PRODUCTS, seed=SEED, request_log=log, extra_args=args) as stalling:
        profile = js_profile(tmp_path, True, True, render_timeout=3)
        result = run_crawl(stalling.js_list_url, tmp_path / "db.sqlite", tmp_path / "stats", "-s", "RETRY_TIMES=1",
                           "-s", "RETRY_MAX_ELAPSED=30", "-s", "RETRY_BACKOFF_BASE=0.1", site=str(profile))
        base = stalling.url
    truth = list(Catalogue(PRODUCTS, SEED, js_never_render=0.15, js_never_render_on=frozenset({"detail"}),
                           js_never_render_seed=4).truth())
    stalled = {t["key"] for t in truth if "detail" in t["js_never_renders"]}
    assert 1 <= len(stalled) < PRODUCTS / 2, stalled
    db = tmp_path / "db.sqlite"
    letters = dead_letters(db)
    assert {url.rstrip("/").rsplit("/", 1)[1] for url, *_ in letters} == stalled
    assert {(reason, kind, attempts) for _, reason, kind, attempts in letters} == {
        ("browser_wait_timeout", "transient", 2)
    }
    assert set(saved(db)) == {t["key"] for t in truth if t["expected"] == "saved"} - stalled
    requests = [json.loads(line) for line in log.read_text().splitlines()]
    for key in stalled:  # tried twice (RETRY_TIMES=1), then given up
        assert sum(1 for r in requests if r["path"] == f"/js/csa_product/{key}/") == 2, key
    stats = result.stats
    assert stats["retry/reason_count/browser_wait_timeout"] == len(stalled)
    assert stats["dlq/added/browser_wait_timeout"] == len(stalled)
    assert stats["products/identity_holds"] is True, stats["products/identity"]
    assert_no_browser_leak(stats)
    assert result.returncode != 0, f"{len(stalled)} dead letters with MAX_DEAD_LETTERS=0 at {base}"
