"""Fault injection, dead host and capacity model of the demo shop, over real sockets on loopback."""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from parsel import Selector

from demoshop.__main__ import _parser, prints_dead_line
from demoshop.catalogue import Catalogue
from demoshop.faults import (
    DEFAULT_FAULT_MIX,
    FaultConfig,
    TransientFaults,
    build_interceptors,
    fault_kind,
    parse_fault_mix,
)
from demoshop.pages import LIST_PATH, MATTER_QUERY, ShopPages, page_url
from demoshop.process import ShopProcess

PROJECT_ROOT = Path(__file__).resolve().parent.parent


# --- helpers -----------------------------------------------------------------------------------------------------


@dataclass
class Result:
    """What a raw HTTP client saw: ``outcome`` is "ok", the error status, "reset", "truncate", "closed", "timeout"."""

    outcome: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    elapsed: float = 0.0


def fetch(base: str, path: str, timeout: float = 5.0) -> Result:
    """GET ``path`` on a fresh connection to ``base`` (a 127.0.0.0/8 URL)."""
    parts = urlsplit(base)
    assert parts.hostname is not None and parts.hostname.startswith("127.")
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    start = time.monotonic()
    result = Result("?")
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        result.status, result.headers = response.status, dict(response.headers)
        result.body = response.read()
        result.outcome = "ok" if response.status == 200 else str(response.status)
    except http.client.IncompleteRead as error:
        result.outcome, result.body = "truncate", error.partial
    except http.client.RemoteDisconnected:  # FIN before any response (a subclass of ConnectionResetError)
        result.outcome = "closed"
    except ConnectionResetError:
        result.outcome = "reset"
    except TimeoutError:
        result.outcome = "timeout"
    finally:
        conn.close()
    result.elapsed = time.monotonic() - start
    return result


def read_log(path: Path, predicate: Any = None, count: int = 1, timeout: float = 3.0) -> list[dict[str, Any]]:
    """The request log lines matching ``predicate``, waiting (the log is flushed every 0.5 s) for ``count``."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        matching = [line for line in lines if predicate is None or predicate(line)]
        if len(matching) >= count or time.monotonic() > deadline:
            return matching
        time.sleep(0.05)


def predicted(seed: int, path: str, attempts: int, rate: float, mix: Any, max_consecutive: int) -> list[str]:
    """Outcomes the documented hash rule gives for ``attempts`` sequential requests of ``path``."""
    out, streak = [], 0
    for attempt in range(attempts):
        kind = fault_kind(seed, path, attempt, rate, mix)
        if kind is None or streak >= max_consecutive:
            out.append("ok")
            streak = 0
        else:
            out.append(kind)
            streak += 1
    return out


def outcome_of_kind(kind: str) -> str:
    return {"hang": "closed"}.get(kind, kind)


def list_hrefs(base: str, pages: int) -> list[str]:
    """The product links (absolute URLs) of the first ``pages`` pages of the Matter list."""
    hrefs = []
    for page in range(1, pages + 1):
        result = fetch(base, page_url(page))
        assert result.outcome == "ok"
        hrefs += Selector(text=result.body.decode()).xpath("//div[@class='inner']/article/a/@href").getall()
    return hrefs


# --- pure parts --------------------------------------------------------------------------------------------------


def test_no_interceptors_when_everything_is_off() -> None:
    catalogue = Catalogue(50, 1)
    assert build_interceptors(FaultConfig(), catalogue, ShopPages(catalogue), reactor=None) == []
    options = _parser("serve").parse_args([])
    assert FaultConfig.from_options(options) == FaultConfig(fault_mix=parse_fault_mix(DEFAULT_FAULT_MIX))
    assert build_interceptors(FaultConfig.from_options(options), catalogue, ShopPages(catalogue), None) == []
    assert not prints_dead_line([]) and prints_dead_line(["--dead-share", "0.1"])


def test_bad_flags_are_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (
        ["--fault-mix", "418:1"],
        ["--fault-mix", "500:-1"],
        ["--fault-rate", "1.5"],
        ["--outage", "5"],
        ["--outage", "1:0"],
        ["--gone-share", "2"],
        ["--overload-status", "500"],
    ):
        with pytest.raises(SystemExit):
            _parser("serve").parse_args(args)
    assert parse_fault_mix("500:2, reset") == (("500", 2.0), ("reset", 1.0))


def test_fault_hash_is_stable_and_follows_rate_and_mix() -> None:
    mix = parse_fault_mix(DEFAULT_FAULT_MIX)
    kinds = [fault_kind(1, f"/csa_product/p-{i:05d}/", 0, 0.3, mix) for i in range(4000)]
    assert kinds == [fault_kind(1, f"/csa_product/p-{i:05d}/", 0, 0.3, mix) for i in range(4000)]
    faulted = [k for k in kinds if k is not None]
    assert 0.25 < len(faulted) / len(kinds) < 0.35
    assert {k: faulted.count(k) > 60 for k in dict(mix)} == dict.fromkeys(dict(mix), True)
    assert kinds != [fault_kind(2, f"/csa_product/p-{i:05d}/", 0, 0.3, mix) for i in range(4000)]
    assert fault_kind(1, "/x/", 0, 0.0, mix) is None and fault_kind(1, "/x/", 0, 1.0, mix) is not None


def test_max_consecutive_caps_every_run() -> None:
    catalogue = Catalogue(12, 1)
    for cap in (1, 2, 3):
        faults = TransientFaults(FaultConfig(fault_rate=0.9, fault_max_consecutive=cap), 4, ShopPages(catalogue), None)
        for path in ("/csa-iot_products/", "/csa_product/a-00001/"):
            run = longest = 0
            for _ in range(300):
                run = run + 1 if faults.decide(path) else 0
                longest = max(longest, run)
            assert longest == cap


def test_retry_after_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    catalogue = Catalogue(12, 1)
    faults = TransientFaults(FaultConfig(fault_rate=1, retry_after=3), 1, ShopPages(catalogue), None)
    values = [faults.retry_after_value() for _ in range(4)]
    assert values[0] == values[2] == "3"
    for value in values[1::2]:
        assert parsedate_to_datetime(value).timestamp() >= time.time() + 3
    monkeypatch.setattr("demoshop.faults.time.time", lambda: 1_000_000.25)
    date = TransientFaults(FaultConfig(retry_after=1, retry_after_form="date"), 1, ShopPages(catalogue), None)
    assert parsedate_to_datetime(date.retry_after_value()).timestamp() == 1_000_002  # 1_000_001.25 rounded up
    monkeypatch.setattr("demoshop.faults.time.time", lambda: 1_000_000.0)
    assert parsedate_to_datetime(date.retry_after_value()).timestamp() > 1_000_001


# --- truth -------------------------------------------------------------------------------------------------------


def test_gone_and_dead_truth() -> None:
    plain = list(Catalogue(1000, 5).truth())
    truth = list(Catalogue(1000, 5, gone_share=0.1, dead_share=0.05, dead_host="127.0.0.9").truth())
    for before, after in zip(plain, truth, strict=True):  # same products, same pages
        assert (before["key"], before["fields"], before["reject_field"]) == (
            after["key"],
            after["fields"],
            after["reject_field"],
        )
        assert before["host"] is None and before["dead_reason"] is None
    reasons = [t["dead_reason"] for t in truth]
    assert 60 <= reasons.count("http_404") + reasons.count("http_410") <= 140
    assert 25 <= reasons.count("circuit_open") <= 80
    for index, line in enumerate(truth):
        reason = line["dead_reason"]
        assert (line["expected"] == "dead_letter") == (reason is not None)
        assert (line["host"] == "127.0.0.9") == (reason == "circuit_open")
        if reason in ("http_404", "http_410"):
            assert reason == ("http_404" if index % 2 == 0 else "http_410")
        if reason is None:
            assert line["expected"] == plain[index]["expected"]
        assert line["path"] == f"/csa_product/{line['key']}/"
    # a rejected page that is gone or dead is a dead letter (its page can never be fetched)
    both = [t for t in truth if t["reject_field"] and t["dead_reason"]]
    wide = list(Catalogue(1000, 5, gone_share=0.5, dead_share=0.5).truth())
    both += [t for t in wide if t["reject_field"] and t["dead_reason"]]
    assert both and all(t["expected"] == "dead_letter" for t in both)
    # drawn per index: independent of the shop size, monotone in the share
    assert list(Catalogue(150, 5, gone_share=0.1, dead_share=0.05, dead_host="127.0.0.9").truth()) == truth[:150]
    more = list(Catalogue(1000, 5, gone_share=0.2).truth())
    gone = {t["key"] for t in truth if t["dead_reason"] in ("http_404", "http_410")}
    assert gone <= {t["key"] for t in more if t["dead_reason"]}
    # a product drawn both gone and dead is dead
    catalogue = Catalogue(1000, 5, gone_share=0.5, dead_share=0.5)
    assert any(catalogue.is_dead(i) and catalogue.gone_status(i) is None for i in range(1000))
    assert all(catalogue.gone_status(i) is None for i in range(1000) if catalogue.is_dead(i))


def test_truth_command_with_gone_and_dead() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "demoshop", "truth", "--products", "80", "--seed", "3",
         "--gone-share", "0.1", "--dead-share", "0.1", "--dead-host", "127.0.0.3"],
        cwd=PROJECT_ROOT, capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert lines == list(Catalogue(80, 3, gone_share=0.1, dead_share=0.1, dead_host="127.0.0.3").truth())
    assert {t["dead_reason"] for t in lines} >= {"circuit_open", None}


# --- every transient fault kind on a real server ---------------------------------------------------------------

KINDS_SEED = 5


@dataclass
class KindsShop:
    shop: ShopProcess
    log: Path
    by_kind: dict[str, list[str]]


@pytest.fixture(scope="module")
def kinds_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KindsShop]:
    """Every list/detail request fails on its first attempt (kind from the hash) and succeeds on its second."""
    log = tmp_path_factory.mktemp("kinds") / "requests.jsonl"
    catalogue = Catalogue(120, KINDS_SEED)
    mix = parse_fault_mix(DEFAULT_FAULT_MIX)
    by_kind: dict[str, list[str]] = {}
    for index in range(catalogue.products):
        path = catalogue.product(index).path
        by_kind.setdefault(fault_kind(KINDS_SEED, path, 0, 1.0, mix) or "none", []).append(path)
    assert set(by_kind) == set(dict(mix)) and all(len(paths) >= 3 for paths in by_kind.values())
    args = ["--fault-rate", "1", "--fault-max-consecutive", "1", "--hang-seconds", "1", "--retry-after", "1"]
    with ShopProcess(products=120, seed=KINDS_SEED, request_log=log, extra_args=args) as shop:
        assert shop.dead_url is None
        yield KindsShop(shop, log, by_kind)


@pytest.mark.parametrize("kind", ["500", "502", "503", "504"])
def test_status_faults(kinds_shop: KindsShop, kind: str) -> None:
    path = kinds_shop.by_kind[kind][0]
    result = fetch(kinds_shop.shop.url, path)
    assert (result.outcome, result.status) == (kind, int(kind))
    assert result.headers["Content-Type"] == "text/html; charset=utf-8" and kind.encode() in result.body
    assert "Retry-After" not in result.headers
    assert fetch(kinds_shop.shop.url, path).outcome == "ok"  # never more than 1 failure in a row here
    lines = read_log(kinds_shop.log, lambda e: e["path"] == path, count=2)
    assert [(e["status"], e.get("fault")) for e in lines] == [(int(kind), kind), (200, None)]


def test_retry_after_both_forms_and_waiting_is_enough(kinds_shop: KindsShop) -> None:
    first, second = kinds_shop.by_kind["429"][:2]
    before = time.time()
    answers = [fetch(kinds_shop.shop.url, path) for path in (first, second)]
    assert [a.status for a in answers] == [429, 429]
    values = sorted((a.headers["Retry-After"] for a in answers), key=lambda v: not v.isdigit())
    assert values[0] == "1"  # delta-seconds, then an HTTP date (alternating)
    date = parsedate_to_datetime(values[1]).timestamp()
    assert before + 1 <= date <= time.time() + 2
    time.sleep(max(1.0, date - time.time()))  # wait what the server asked for
    assert [fetch(kinds_shop.shop.url, path).outcome for path in (first, second)] == ["ok", "ok"]
    lines = read_log(kinds_shop.log, lambda e: e["path"] in (first, second), count=4)
    assert sorted(e.get("fault", "-") for e in lines) == ["-", "-", "429", "429"]


def test_reset_fault(kinds_shop: KindsShop) -> None:
    path = kinds_shop.by_kind["reset"][0]
    result = fetch(kinds_shop.shop.url, path)
    assert result.outcome == "reset" and result.elapsed < 1  # RST, not a FIN or a timeout
    assert fetch(kinds_shop.shop.url, path).outcome == "ok"
    lines = read_log(kinds_shop.log, lambda e: e["path"] == path, count=2)
    assert [(e["status"], e.get("fault"), e.get("lost")) for e in lines] == [(0, "reset", True), (200, None, None)]


def test_truncate_fault(kinds_shop: KindsShop) -> None:
    path = kinds_shop.by_kind["truncate"][0]
    full = ShopPages(Catalogue(120, KINDS_SEED), kinds_shop.shop.url).respond(path).body
    parts = urlsplit(kinds_shop.shop.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):  # the server closes the connection
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert f"content-length: {len(full)}".encode() in head.lower()
    assert body == full[: len(full) // 2]
    second = fetch(kinds_shop.shop.url, path)
    assert second.outcome == "ok" and second.body == full
    lines = read_log(kinds_shop.log, lambda e: e["path"] == path, count=2)
    assert [(e["status"], e.get("fault"), e["bytes"]) for e in lines] == [
        (200, "truncate", len(full) // 2),
        (200, None, len(full)),
    ]
    # http.client, like any careful client, sees a data loss, not a short valid page
    other = kinds_shop.by_kind["truncate"][1]
    assert fetch(kinds_shop.shop.url, other).outcome == "truncate"


def test_hang_fault(kinds_shop: KindsShop) -> None:
    waited, given_up = kinds_shop.by_kind["hang"][:2]
    result = fetch(kinds_shop.shop.url, waited, timeout=5)
    assert result.outcome == "closed" and 0.9 <= result.elapsed < 3  # no answer, closed after --hang-seconds 1
    started = time.time()
    assert fetch(kinds_shop.shop.url, given_up, timeout=0.2).outcome == "timeout"  # the client gives up
    assert fetch(kinds_shop.shop.url, given_up).outcome == "ok"
    (line,) = read_log(kinds_shop.log, lambda e: e["path"] == given_up and e.get("fault"))
    assert line["status"] == 0 and line["lost"] and line["t"] - started < 0.8  # logged when the client left
    (line,) = read_log(kinds_shop.log, lambda e: e["path"] == waited and e.get("fault"))
    assert (line["status"], line["fault"]) == (0, "hang")


def test_robots_and_other_paths_are_never_faulted(kinds_shop: KindsShop) -> None:
    for _ in range(3):
        assert fetch(kinds_shop.shop.url, "/robots.txt").outcome == "ok"
    assert fetch(kinds_shop.shop.url, "/").status == 302
    assert fetch(kinds_shop.shop.url, "/nothing/").status == 404


# --- determinism and the consecutive cap -------------------------------------------------------------------------

DETERMINISM_MIX = "500:1,503:1,429:1,reset:1,truncate:1"


def crawl_outcomes(shop: ShopProcess, paths: list[str], attempts: int) -> list[list[str]]:
    """Each path requested ``attempts`` times, sequentially, path by path interleaved."""
    outcomes: list[list[str]] = [[] for _ in paths]
    for _ in range(attempts):
        for number, path in enumerate(paths):
            outcomes[number].append(fetch(shop.url, path).outcome)
    return outcomes


def test_faults_are_keyed_on_the_path_and_query() -> None:
    mix = parse_fault_mix(DETERMINISM_MIX)
    second, third = (f"{LIST_PATH}?{MATTER_QUERY}&paged={page}" for page in (2, 3))
    draws = {target: [fault_kind(7, target, k, 0.4, mix) for k in range(30)] for target in (second, third)}
    assert draws[second] != draws[third]
    assert draws[second] == [fault_kind(7, second, k, 0.4, mix) for k in range(30)]
    faults = TransientFaults(FaultConfig(fault_rate=0.4, fault_mix=mix), 7, ShopPages(Catalogue(48, 7)), None)
    assert [faults.decide(second) or "ok" for _ in range(30)] == predicted(7, second, 30, 0.4, mix, 2)


def test_same_seed_same_faults() -> None:
    catalogue = Catalogue(48, 7)
    paths = [page_url(1), page_url(2), f"{LIST_PATH}?{MATTER_QUERY}&paged=2", f"{LIST_PATH}?{MATTER_QUERY}&paged=3"]
    paths += [catalogue.product(i).path for i in range(0, 48, 4)]
    args = ["--fault-rate", "0.4", "--fault-mix", DETERMINISM_MIX]
    runs = []
    for extra in ([], ["--fault-seed", "7"]):  # the fault seed defaults to the catalogue seed
        with ShopProcess(products=48, seed=7, extra_args=args + extra) as shop:
            runs.append(crawl_outcomes(shop, paths, 5))
    mix = parse_fault_mix(DETERMINISM_MIX)
    expected = [[outcome_of_kind(k) for k in predicted(7, path, 5, 0.4, mix, 2)] for path in paths]
    assert runs[0] == runs[1] == expected
    flat = [o for outcomes in expected for o in outcomes]
    assert 0.2 < 1 - flat.count("ok") / len(flat) < 0.6 and len(set(flat)) >= 4
    with ShopProcess(products=48, seed=7, extra_args=[*args, "--fault-seed", "8"]) as shop:
        assert crawl_outcomes(shop, paths, 5) != expected


def test_fault_max_consecutive_on_the_server() -> None:
    args = ["--fault-rate", "1", "--fault-mix", "503:1", "--fault-max-consecutive", "2"]
    with ShopProcess(products=24, seed=1, extra_args=args) as shop:
        product = Catalogue(24, 1).product(5).path
        for path in (page_url(2), product):
            assert [fetch(shop.url, path).outcome for _ in range(7)] == ["503", "503", "ok"] * 2 + ["503"]


# --- outage ------------------------------------------------------------------------------------------------------


def test_outage_window_starts_at_the_first_request(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    with ShopProcess(products=24, seed=1, request_log=log, extra_args=["--outage", "0.6:0.8"]) as shop:
        time.sleep(0.8)  # start-up time does not count: the clock starts at the first request
        product = Catalogue(24, 1).product(3).path
        first = time.monotonic()
        assert fetch(shop.url, page_url(1)).outcome == "ok"
        time.sleep(max(0.0, first + 0.9 - time.monotonic()))
        inside = [fetch(shop.url, path) for path in (page_url(1), product, page_url(2))]
        assert [r.outcome for r in inside] == ["503"] * 3
        assert all("Retry-After" not in r.headers for r in inside)
        assert fetch(shop.url, "/robots.txt").outcome == "ok"  # never faulted
        time.sleep(max(0.0, first + 1.6 - time.monotonic()))
        assert [fetch(shop.url, path).outcome for path in (page_url(1), product)] == ["ok", "ok"]
        lines = read_log(log, count=7)
    assert [e.get("fault") for e in lines] == [None, "outage", "outage", "outage", None, None, None]


def test_outage_reset_mode(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    args = ["--outage", "0:0.5", "--outage-mode", "reset"]
    with ShopProcess(products=24, seed=1, request_log=log, extra_args=args) as shop:
        first = time.monotonic()
        assert fetch(shop.url, page_url(1)).outcome == "reset"
        assert fetch(shop.url, "/robots.txt").outcome == "ok"
        time.sleep(max(0.0, first + 0.6 - time.monotonic()))
        assert fetch(shop.url, page_url(1)).outcome == "ok"
        lines = read_log(log, count=3)
    assert [(e["status"], e.get("fault")) for e in lines] == [(0, "outage"), (200, None), (200, None)]


# --- gone products and the dead host -----------------------------------------------------------------------------


def test_gone_products(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    catalogue = Catalogue(48, 3, gone_share=0.25)
    truth = list(catalogue.truth())
    gone = [t for t in truth if t["dead_reason"]]
    assert {t["dead_reason"] for t in gone} == {"http_404", "http_410"}
    with ShopProcess(products=48, seed=3, request_log=log, extra_args=["--gone-share", "0.25"]) as shop:
        assert shop.dead_url is None
        links = [shop.url.rstrip("/") + t["path"] for t in truth]
        assert list_hrefs(shop.url, catalogue.pages) == links  # still listed, same links
        for line in truth:
            result = fetch(shop.url, line["path"])
            if line["dead_reason"]:
                assert result.status == int(line["dead_reason"].removeprefix("http_"))
                assert fetch(shop.url, line["path"]).status == result.status  # always
            else:
                assert result.outcome == "ok"
        lines = read_log(log, lambda e: e.get("fault") == "gone", count=2 * len(gone))
    assert len(lines) == 2 * len(gone) and {e["status"] for e in lines} == {404, 410}


def test_dead_host_resets(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    catalogue = Catalogue(48, 3, dead_share=0.25)
    truth = list(catalogue.truth())
    dead = [t for t in truth if t["dead_reason"] == "circuit_open"]
    assert dead and all(t["host"] == "127.0.0.2" and t["expected"] == "dead_letter" for t in dead)
    with ShopProcess(products=48, seed=3, request_log=log, extra_args=["--dead-share", "0.25"]) as shop:
        assert shop.dead_url is not None and shop.dead_url.startswith("http://127.0.0.2:")
        assert shop.dead_url.endswith("/") and shop.dead_url != shop.url
        expected = [(shop.dead_url if t["host"] else shop.url) + t["path"][1:] for t in truth]  # absolute links
        assert list_hrefs(shop.url, catalogue.pages) == expected
        for line in dead[:3]:
            assert fetch(shop.dead_url, line["path"]).outcome == "reset"
        parts = urlsplit(shop.dead_url)
        with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:  # even without a request
            with pytest.raises(ConnectionResetError):
                sock.recv(1024) or sock.recv(1024)
        lines = read_log(log, lambda e: e.get("fault") == "dead", count=4, timeout=8)
    assert [e["path"] for e in lines[:3]] == [t["path"] for t in dead[:3]]
    assert all(e["host"] == parts.netloc and e["status"] == 0 for e in lines)


def test_dead_host_refuses() -> None:
    args = ["--dead-share", "0.25", "--dead-mode", "refuse", "--dead-host", "127.0.0.3"]
    with ShopProcess(products=48, seed=3, extra_args=args) as shop:
        assert shop.dead_url is not None and shop.dead_url.startswith("http://127.0.0.3:")
        parts = urlsplit(shop.dead_url)
        for _ in range(2):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((parts.hostname, parts.port), timeout=5).close()
        hrefs = list_hrefs(shop.url, 4)
        truth = list(Catalogue(48, 3, dead_share=0.25, dead_host="127.0.0.3").truth())
        assert [h for h in hrefs if h.startswith(shop.dead_url)] == [
            shop.dead_url + t["path"][1:] for t in truth if t["host"]
        ]


# --- capacity model ----------------------------------------------------------------------------------------------


def concurrent_fetches(base: str, paths: list[str], timeout: float = 5.0) -> list[Result]:
    barrier = threading.Barrier(len(paths))
    results: list[Result | None] = [None] * len(paths)

    def run(number: int) -> None:
        barrier.wait()
        results[number] = fetch(base, paths[number], timeout)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(paths))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def test_capacity_queue_and_overload(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    args = ["--capacity", "2", "--queue", "1", "--latency", "0.2"]
    catalogue = Catalogue(24, 1)
    paths = [catalogue.product(i).path for i in range(4)]
    with ShopProcess(products=24, seed=1, request_log=log, extra_args=args) as shop:
        fetch(shop.url, paths[0])  # warm the page cache and the connection path
        results = sorted(concurrent_fetches(shop.url, paths), key=lambda r: r.elapsed)
        assert [r.outcome for r in results] == ["503", "ok", "ok", "ok"]
        rejected, *served = results
        assert rejected.elapsed < 0.15 and "Retry-After" not in rejected.headers
        assert 0.15 <= served[0].elapsed < 0.38 and 0.15 <= served[1].elapsed < 0.38
        assert 0.35 <= served[2].elapsed < 0.75
        assert fetch(shop.url, "/robots.txt").elapsed < 0.15  # outside the model
        lines = read_log(log, count=6)
    assert sorted(e.get("fault", "-") for e in lines) == ["-"] * 5 + ["overload"]
    queued = [e["queued"] for e in lines if "queued" in e]
    assert len(queued) == 1 and 0.1 < queued[0] < 0.4


def test_capacity_frees_a_worker_when_the_client_leaves_and_429_overload(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    args = ["--capacity", "1", "--latency", "0.4", "--overload-status", "429"]
    with ShopProcess(products=24, seed=1, request_log=log, extra_args=args) as shop:
        assert fetch(shop.url, page_url(1), timeout=0.1).outcome == "timeout"  # leaves while being served
        time.sleep(0.05)
        result = fetch(shop.url, page_url(2))
        assert result.outcome == "ok" and 0.3 < result.elapsed < 0.8  # the worker was freed
        results = sorted(concurrent_fetches(shop.url, [page_url(1), page_url(2)]), key=lambda r: r.elapsed)
        assert [r.outcome for r in results] == ["429", "ok"]
        assert results[0].headers["Retry-After"] == "1" and results[0].elapsed < 0.2
        lines = read_log(log, count=4)
    assert (lines[0]["status"], lines[0].get("lost")) == (0, True)
    assert sorted(e.get("fault", "-") for e in lines) == ["-", "-", "-", "overload"]


def test_latency_alone_delays_every_response() -> None:
    with ShopProcess(products=24, seed=1, extra_args=["--latency", "0.2"]) as shop:
        results = concurrent_fetches(shop.url, [page_url(p) for p in (1, 2)] * 3)
        assert all(r.outcome == "ok" and 0.15 <= r.elapsed < 0.5 for r in results)


def test_namespace_round_trip() -> None:
    options = _parser("serve").parse_args(
        [
            "--outage",
            "1:2",
            "--outage",
            "5:1",
            "--capacity",
            "6",
            "--queue",
            "6",
            "--latency",
            "0.05",
            "--fault-mix",
            "hang:1",
        ]
    )
    config = FaultConfig.from_options(options)
    assert config.outages == ((1.0, 2.0), (5.0, 1.0)) and config.fault_mix == (("hang", 1.0),)
    assert (config.capacity, config.queue, config.latency) == (6, 6, 0.05)
    assert isinstance(options, argparse.Namespace)
