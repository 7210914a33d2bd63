"""No secrets at rest, in exports, on command lines or in logs."""

from __future__ import annotations

import json
import logging
import textwrap

import scrapy

from crawler.redaction import SecretsFilter, mask_passwords, redact_record, strip_url_credentials
from crawler.request_records import request_to_record
from demoshop.process import ShopProcess
from tests.test_dead_letters import dlq, query, run

SECRETS = ("s3cr3t-token", "cookie-value-42", "hunter2", "proxy-pw-9", "url-pw-7", "api-key-5")


def credentialed_request(url: str) -> scrapy.Request:
    return scrapy.Request(
        url.replace("http://", "http://alice:url-pw-7@"),
        headers={"Authorization": "Bearer s3cr3t-token", "X-Api-Key": "api-key-5", "Accept": "text/html"},
        cookies={"session": "cookie-value-42"},
        meta={
            "stage": "detail",
            "http_user": "alice",
            "http_pass": "hunter2",
            "proxy": "http://bob:proxy-pw-9@127.0.0.1:3128",
            "keep": "me",
        },
    )


def test_a_request_record_holds_no_credential_of_any_kind():
    request = credentialed_request("http://shop.test/p/1/")
    request.headers["Cookie"] = "session=cookie-value-42"
    request.headers["Proxy-Authorization"] = "Basic proxy-pw-9"
    record = request_to_record(request, None)
    text = json.dumps(record)
    for secret in SECRETS:
        assert secret not in text, secret
    assert record["url"] == "http://shop.test/p/1/"
    assert record["meta"]["proxy"] == "http://127.0.0.1:3128"
    assert record["meta"]["keep"] == "me" and record["headers"]["Accept"] == ["text/html"]
    assert {"headers.Authorization", "meta.http_pass", "cookies", "url credentials"} <= set(record["redacted"])


def test_more_headers_can_be_redacted():
    record = redact_record({"headers": {"X-Session": ["abc"], "Accept": ["*/*"]}}, headers=("x-session",))
    assert record["headers"] == {"Accept": ["*/*"]} and record["redacted"] == ["headers.X-Session"]


def test_url_passwords_are_masked_in_text_and_logs():
    assert strip_url_credentials("https://u:p@h.example:8/x?q=1") == "https://h.example:8/x?q=1"
    masked = mask_passwords("db postgresql+psycopg://crawler:pw@db:5432/x ok")
    assert masked == "db postgresql+psycopg://crawler:***@db:5432/x ok"
    handler = logging.StreamHandler()
    handler.addFilter(SecretsFilter())
    settings = ({"DATABASE_URL": "postgresql://a:pw@h/d"},)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "Overridden settings: %s", settings, None)
    handler.filter(record)
    assert "pw@" not in record.getMessage() and "a:***@h" in record.getMessage()


SPIDER = textwrap.dedent(
    """
    import scrapy
    from crawler.spiders.catalog import CatalogSpider
    from tests.test_secrets import credentialed_request


    class Credentialed(CatalogSpider):
        name = "catalog"

        async def start(self):
            base = self.start_urls[0].split("/csa-iot_products/")[0]
            request = credentialed_request(base + "/csa_product/gone-00001/")
            yield request.replace(callback=self.parse_detail, dont_filter=True)
    """
)


def test_dead_letters_show_and_export_hold_no_credentials(tmp_path):
    spider = tmp_path / "credentialed.py"
    spider.write_text(SPIDER)
    db = tmp_path / "dlq.db"
    with ShopProcess(products=12, seed=3) as shop:
        crawl = run(
            "runspider", str(spider), "-a", "site=csa_iot", "-a", f"start_url={shop.list_url}",
            "-s", f"DATABASE_URL=sqlite:///{db}", "-s", f"STATS_DUMP_DIR={tmp_path / 'stats'}",
            "-s", "ROBOTSTXT_OBEY=False", "-s", "RETRY_TIMES=1",  # the proxy is refused: give up soon
        )  # fmt: skip
    assert query(db, "SELECT count(*) FROM dead_letters") == [(1,)], crawl.stderr[-3000:]
    stored = json.dumps(query(db, "SELECT * FROM dead_letters"))
    (letter_id,) = query(db, "SELECT id FROM dead_letters")[0]
    show = dlq(db, "show", str(letter_id))
    export_csv = dlq(db, "export", "-o", str(tmp_path / "dlq.csv"))
    export_jsonl = dlq(db, "export", "-o", str(tmp_path / "dlq.jsonl"))
    assert show.returncode == export_csv.returncode == export_jsonl.returncode == 0, show.stderr
    texts = {
        "database": stored,
        "show": show.stdout,
        "csv": (tmp_path / "dlq.csv").read_text(),
        "jsonl": (tmp_path / "dlq.jsonl").read_text(),
    }
    for where, text in texts.items():
        for secret in SECRETS:
            assert secret not in text, (where, secret)
    assert "/csa_product/gone-00001/" in show.stdout
    # a replay gets the database URL (and its password) through the environment, not its command line
    requeue = dlq(db, "requeue", "--dry-run")
    assert requeue.returncode == 0 and "scrapy crawl catalog" in requeue.stdout, requeue.stderr
    assert "DATABASE_URL" not in requeue.stdout
