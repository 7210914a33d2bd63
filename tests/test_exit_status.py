"""Exit statuses of real crawls of the demo shop, as cron and scrapyd see them."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time

from crawler import outcome
from demoshop.process import ShopProcess
from storage.products import ProductStore
from tests.conftest import ROOT, catalog_command, run_crawl, scrapy_command

FAST_FAILURES = ("-s", "RETRY_TIMES=1", "-s", "RETRY_BACKOFF_BASE=0.05", "-s", "CIRCUIT_BREAKER_ENABLED=0")


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def test_all_well_exits_0_and_the_dump_records_it(tmp_path):
    with ShopProcess(products=36, seed=21) as shop:
        result = run_crawl(shop.list_url, tmp_path / "ok.db", tmp_path / "stats")
    assert result.returncode == 0, result.stderr[-2000:]
    assert error_lines(result.stderr) == []
    stats = result.stats
    assert (stats["outcome/exit_status"], stats["outcome/name"]) == (0, "ok")


def test_site_down_exits_3_with_one_line(tmp_path):
    with ShopProcess(products=12, seed=21) as shop:
        url = shop.list_url
    # the shop has stopped: connection refused on every request
    result = run_crawl(url, tmp_path / "down.db", tmp_path / "stats", *FAST_FAILURES, timeout=120)
    assert result.returncode == outcome.NOTHING_FOUND, result.stderr[-2000:]
    (line,) = error_lines(result.stderr)
    assert "site unreachable" in line
    assert result.stats["outcome/exit_status"] == outcome.NOTHING_FOUND


def test_every_page_500_exits_3(tmp_path):
    args = ["--fault-rate", "1", "--fault-mix", "500:1", "--fault-max-consecutive", "1000"]
    with ShopProcess(products=24, seed=21, extra_args=args) as shop:
        result = run_crawl(shop.list_url, tmp_path / "500.db", tmp_path / "stats", *FAST_FAILURES, timeout=120)
    assert result.returncode == outcome.NOTHING_FOUND, result.stderr[-2000:]
    assert "1 list page(s) dead-lettered" in error_lines(result.stderr)[0]


def test_list_pages_without_product_links_exit_3(tmp_path):
    profile = (ROOT / "crawler" / "sites" / "csa_iot.toml").read_text()
    profile = profile.replace('cards = "div.post-feed article.product"', 'cards = "div.post-feed article.nothing"')
    path = tmp_path / "wrong.toml"
    path.write_text(profile)
    with ShopProcess(products=24, seed=21) as shop:
        result = run_crawl(shop.list_url, tmp_path / "empty.db", tmp_path / "stats", site=str(path))
    assert result.returncode == outcome.NOTHING_FOUND, result.stderr[-2000:]
    assert "no product link" in error_lines(result.stderr)[0]


def test_dead_letters_over_the_limit_exit_5_and_a_limit_allows_them(tmp_path):
    with ShopProcess(products=60, seed=22, extra_args=["--gone-share", "0.1"]) as shop:
        strict = run_crawl(shop.list_url, tmp_path / "dead.db", tmp_path / "s1")
        lenient = run_crawl(shop.list_url, tmp_path / "dead2.db", tmp_path / "s2", "-s", "MAX_DEAD_LETTERS=50%")
    dead = strict.stats["products/dead_lettered"]
    assert dead > 0
    assert strict.returncode == outcome.DEAD_LETTERS, strict.stderr[-2000:]
    assert f"{dead} of 60 products dead-lettered" in error_lines(strict.stderr)[0]
    assert lenient.returncode == 0, lenient.stderr[-2000:]


def test_a_write_that_does_not_commit_exits_4(tmp_path):
    """A product whose row can be stored neither as a product nor as a reject is a failed write."""
    db = tmp_path / "failing.db"
    store = ProductStore(f"sqlite:///{db}")  # the schema, then triggers that refuse one product
    store.create_schema()
    store.close()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER no_product BEFORE INSERT ON products WHEN NEW.key LIKE '%-00005'"
            " BEGIN SELECT RAISE(ABORT, 'refused product'); END"
        )
        conn.execute(
            "CREATE TRIGGER no_reject BEFORE INSERT ON rejected_items WHEN NEW.url LIKE '%-00005/'"
            " BEGIN SELECT RAISE(ABORT, 'refused reject'); END"
        )
    with ShopProcess(products=24, seed=21) as shop:
        result = run_crawl(shop.list_url, db, tmp_path / "stats", "-s", "STORE_RETRY_DELAY=0")
    stats = result.stats
    assert stats["store/failed"] == 1, result.stderr[-2000:]
    # the ledger counts after commit: the refused product is failed, never saved
    assert stats["products/failed"] == 1
    assert stats["products/saved"] == stats["store/inserted"]
    assert stats["products/identity_holds"] is True, stats["products/identity"]
    assert result.returncode == outcome.INCOMPLETE
    assert "1 product write(s) did not commit" in error_lines(result.stderr)[0]


def test_sigterm_exits_6(tmp_path):
    with ShopProcess(products=600, seed=23) as shop:
        cmd = catalog_command(
            shop.list_url, "-s", f"DATABASE_URL=sqlite:///{tmp_path / 'term.db'}", "-s", f"STATS_DUMP_DIR={tmp_path}",
            "-s", "CONCURRENT_REQUESTS=2", "-s", "DOWNLOAD_DELAY=0.02",
        )
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(4)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == outcome.INTERRUPTED, stderr[-2000:]
    assert "interrupted" in error_lines(stderr)[0]
    (dump,) = tmp_path.glob("catalog-*.json")
    assert json.loads(dump.read_text())["stats"]["outcome/exit_status"] == outcome.INTERRUPTED


def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path):
    cases = [
        (scrapy_command("crawl", "catalgo"), "unknown spider 'catalgo' (known spiders: catalog)"),
        (catalog_command("http://127.0.0.1:9/x/", "-s", "CONCURRENT_REQUESTS=abc"),
         "invalid setting CONCURRENT_REQUESTS='abc': expected an integer"),
        (catalog_command("http://127.0.0.1:9/x/", "-s", "DOWNLOAD_TIMEOUT=abc"),
         "invalid setting DOWNLOAD_TIMEOUT='abc': expected a number"),
        (catalog_command("http://127.0.0.1:9/x/", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=abc"),
         "invalid setting CONCURRENT_REQUESTS_PER_DOMAIN='abc'"),
        (catalog_command("http://127.0.0.1:9/x/", "-s", "MAX_DEAD_LETTERS=lots"), "invalid setting MAX_DEAD_LETTERS"),
    ]
    for cmd, message in cases:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == outcome.CONFIG, (cmd, proc.stderr[-2000:])
        (line,) = error_lines(proc.stderr)
        assert message in line, line
        assert "Traceback" not in proc.stderr, proc.stderr[-2000:]


def second_run_while_the_first_holds_the_lock(tmp_path, database_url: str) -> tuple[subprocess.CompletedProcess, str]:
    """Start a slow crawl, run the same site into the same database meanwhile; return the second run."""
    with ShopProcess(products=600, seed=24) as shop:
        slow = ("-s", "CONCURRENT_REQUESTS=1", "-s", "DOWNLOAD_DELAY=0.05")
        first = subprocess.Popen(
            catalog_command(shop.list_url, "-s", f"DATABASE_URL={database_url}", "-s", f"STATS_DUMP_DIR={tmp_path}/1",
                            *slow),
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not list((tmp_path / "1").glob("catalog-*.json")) and time.monotonic() < deadline:
                time.sleep(0.2)  # the live stats dump appears once the crawl runs
            assert first.poll() is None, first.communicate()[1][-2000:]
            second = subprocess.run(
                catalog_command(shop.list_url, "-s", f"DATABASE_URL={database_url}", "-s",
                                f"STATS_DUMP_DIR={tmp_path}/2"),
                cwd=ROOT, capture_output=True, text=True, timeout=60,
            )
        finally:
            first.send_signal(signal.SIGTERM)
            first.communicate(timeout=60)
    return second, shop.url


def test_a_second_run_while_the_first_holds_the_lock_exits_7(tmp_path):
    second, _ = second_run_while_the_first_holds_the_lock(tmp_path, f"sqlite:///{tmp_path / 'locked.db'}")
    assert second.returncode == outcome.LOCKED, second.stderr[-2000:]
    (line,) = error_lines(second.stderr)
    assert "another run of site 'csa_iot' holds the lock file" in line
    assert not list((tmp_path / "2").glob("*.json"))  # it did not start


def test_stats_dumps_of_two_runs_never_share_a_file(tmp_path):
    with ShopProcess(products=12, seed=25) as shop:
        for n in range(3):
            run_crawl(shop.list_url, tmp_path / f"{n}.db", tmp_path / "stats")
    assert len(list((tmp_path / "stats").glob("catalog-*.json"))) == 3


def test_offsite_product_links_are_filtered_not_lost(tmp_path):
    """Products linked on another host (not in allowed_domains) end as filtered, the verdict holds."""
    from demoshop.catalogue import Catalogue

    with ShopProcess(products=60, seed=26, extra_args=["--dead-share", "0.2"]) as shop:
        result = run_crawl(shop.list_url, tmp_path / "offsite.db", tmp_path / "stats")
    offsite = sum(t["host"] is not None for t in Catalogue(60, 26, dead_share=0.2).truth())
    assert offsite > 0
    stats = result.stats
    assert stats["products/filtered"] == offsite, stats.get("products/identity")
    assert stats["products/lost"] == 0 and stats["products/identity_holds"] is True
    assert stats["offsite/filtered"] == offsite
    assert result.returncode == 0, result.stderr[-2000:]
    assert "unaccounted" not in result.stderr


def test_list_pages_never_crawled_exit_4_naming_them(tmp_path):
    """A list page that fails for good hides its products: the run is incomplete and says which pages."""
    profile = (ROOT / "crawler" / "sites" / "csa_iot.toml").read_text()
    # the profile believes in 4 list pages; the shop has 2, so pages 3 and 4 answer 404
    profile = profile.replace(
        """last_page = { css = "a.page-numbers::attr(href)", regex = '/page/(\\d+)/' }""",
        """last_page = { xpath = "'4'" }""",
    )
    path = tmp_path / "four_pages.toml"
    path.write_text(profile)
    with ShopProcess(products=24, seed=27) as shop:
        result = run_crawl(shop.list_url, tmp_path / "pages.db", tmp_path / "stats", site=str(path))
    assert result.returncode == outcome.INCOMPLETE, result.stderr[-2000:]
    line = error_lines(result.stderr)[0]
    assert "2 list page(s) never crawled (dead-lettered; pages 3, 4)" in line, line


def test_a_dead_letter_that_does_not_commit_is_failed_not_dead_lettered(tmp_path):
    db = tmp_path / "no_dlq.db"
    store = ProductStore(f"sqlite:///{db}")
    store.create_schema()
    store.close()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER no_dead_letters BEFORE INSERT ON dead_letters BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
    with ShopProcess(products=60, seed=22, extra_args=["--gone-share", "0.1"]) as shop:
        result = run_crawl(shop.list_url, db, tmp_path / "stats", "-s", "STORE_RETRY_DELAY=0")
    stats = result.stats
    gone = stats["dlq/failed"]
    assert gone > 0, result.stderr[-2000:]
    # counted after commit: not one of them is "dead-lettered", all are failed
    assert stats.get("products/dead_lettered", 0) == 0
    assert stats["products/failed"] == gone
    assert stats["products/identity_holds"] is True, stats["products/identity"]
    assert result.returncode == outcome.INCOMPLETE
    assert f"{gone} dead letter(s) could not be stored" in error_lines(result.stderr)[0]
