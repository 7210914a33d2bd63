"""Failure classification: statuses and real Twisted/Scrapy exception objects, no reactor."""

import importlib
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import twisted.internet.defer as tx_defer
import twisted.internet.error as tx_error
from scrapy import Request
from scrapy.core.downloader.handlers.http11 import TunnelError
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    NotSupported,
    ResponseDataLossError,
    UnsupportedURLSchemeError,
)
from twisted.python.failure import Failure as TxFailure
from twisted.web import _newclient
from twisted.web.client import PartialDownloadError
from twisted.web.error import SchemeNotSupported
from twisted.web.http import PotentialDataLoss, _DataLoss

from crawler.failures import (
    DEFAULT_CLASSIFIER,
    DEFAULT_TRANSIENT_STATUSES,
    EXCEPTION_TABLE,
    PERMANENT,
    TRANSIENT,
    Classifier,
    Failure,
    qualified_name,
)

T, P = TRANSIENT, PERMANENT


def missing_scheme_error() -> ValueError:
    try:
        Request("www.example.com/page")
    except ValueError as exc:
        return exc
    raise AssertionError("Request() accepted a URL without a scheme")


# -- statuses ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, None),
        (204, None),
        (301, None),
        (304, None),
        (399, None),
        (400, Failure(P, "http_400")),
        (403, Failure(P, "http_403")),
        (404, Failure(P, "http_404")),
        (410, Failure(P, "http_410")),
        (501, Failure(P, "http_501")),
        (408, Failure(T, "http_408")),
        (429, Failure(T, "http_429")),
        (500, Failure(T, "http_500")),
        (502, Failure(T, "http_502")),
        (503, Failure(T, "http_503")),
        (504, Failure(T, "http_504")),
        (522, Failure(T, "http_522")),
        (599, Failure(T, "http_599")),
    ],
)
def test_classify_status(status, expected):
    assert DEFAULT_CLASSIFIER.classify_status(status) == expected


def test_default_transient_statuses_are_5xx_but_501_plus_408_429():
    assert DEFAULT_TRANSIENT_STATUSES == frozenset(range(500, 600)) - {501} | {408, 429}


def test_failure_transient_property():
    assert Failure(T, "timeout").transient
    assert not Failure(P, "http_404").transient


def test_retry_http_codes_override_makes_exactly_those_transient():
    classifier = Classifier.from_settings_values([503, 429])
    assert classifier.classify_status(503) == Failure(T, "http_503")
    assert classifier.classify_status(429) == Failure(T, "http_429")
    assert classifier.classify_status(500) == Failure(P, "http_500")
    assert classifier.classify_status(408) == Failure(P, "http_408")
    assert classifier.classify_status(200) is None


def test_from_settings_values_none_keeps_default_rule():
    assert Classifier.from_settings_values(None) == Classifier()


def test_classifier_is_a_hashable_value():
    assert hash(Classifier()) == hash(Classifier.from_settings_values(None))


# -- exceptions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        # Scrapy 2.19
        (DownloadTimeoutError("Getting x took longer than 180 seconds."), Failure(T, "timeout")),
        (DownloadConnectionRefusedError("refused"), Failure(T, "connection_refused")),
        (DownloadFailedError("failed"), Failure(T, "download_failed")),
        (ResponseDataLossError(), Failure(T, "response_truncated")),
        (DownloadCancelledError("Cancelling download of x: expected response size larger than 1024"),
         Failure(P, "download_cancelled")),
        (UnsupportedURLSchemeError("ftpx"), Failure(P, "invalid_url")),
        (NotSupported("Unsupported URL scheme 'foo'"), Failure(P, "invalid_url")),
        (IgnoreRequest(), Failure(P, "ignored")),
        (IgnoreRequest("Filtered offsite request to 'other.example'"), Failure(P, "offsite")),
        (TunnelError("Could not open CONNECT tunnel"), Failure(T, "tunnel_error")),
        # Twisted: connection
        (tx_error.TimeoutError(), Failure(T, "timeout")),
        (tx_defer.TimeoutError(), Failure(T, "timeout")),
        (tx_error.TCPTimedOutError(), Failure(T, "timeout")),
        (tx_error.ConnectionRefusedError(), Failure(T, "connection_refused")),
        (tx_error.ConnectError(), Failure(T, "connect_error")),
        (tx_error.NoRouteError(), Failure(T, "connect_error")),  # a ConnectError subclass
        (tx_error.ConnectionDone(), Failure(T, "connection_lost")),
        (tx_error.ConnectionLost(), Failure(T, "connection_lost")),
        (tx_error.ConnectionAborted(), Failure(T, "connection_lost")),
        # Twisted: HTTP client
        (_newclient.ResponseFailed([TxFailure(tx_error.ConnectionLost())]), Failure(T, "download_failed")),
        (_newclient.ResponseNeverReceived([TxFailure(tx_error.ConnectionDone())]),
         Failure(T, "response_never_received")),
        (_newclient.RequestTransmissionFailed([TxFailure(tx_error.ConnectionLost())]), Failure(T, "download_failed")),
        (_newclient.ConnectionAborted(), Failure(T, "connection_lost")),
        (PartialDownloadError(b"200", b"partial", b"<html>"), Failure(T, "response_truncated")),
        (_DataLoss(), Failure(T, "response_truncated")),
        (PotentialDataLoss(), Failure(T, "response_truncated")),
        (SchemeNotSupported("Unsupported scheme: b'foo'"), Failure(P, "invalid_url")),
        # builtins
        (TimeoutError(), Failure(T, "timeout")),
        (ConnectionRefusedError(111, "Connection refused"), Failure(T, "connection_refused")),
        (ConnectionResetError(104, "Connection reset by peer"), Failure(T, "connection_reset")),
        (ConnectionAbortedError(), Failure(T, "connection_lost")),
        (BrokenPipeError(), Failure(T, "connection_lost")),
        (missing_scheme_error(), Failure(P, "invalid_url")),
        # unknown: transient, bounded by the retry budget
        (ValueError("something else"), Failure(T, "error_ValueError")),
        (OSError("decompression of an empty body"), Failure(T, "error_OSError")),
        (KeyError("x"), Failure(T, "error_KeyError")),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_classify_exception(exc, expected):
    assert DEFAULT_CLASSIFIER.classify_exception(exc) == expected


@pytest.mark.parametrize(
    "message",
    [
        "address 'shop.example' not found: [Errno -3] Temporary failure in name resolution",
        "address 'shop.example' not found: Try again",
        "DNS timeout",
        "query timed out",
    ],
)
@pytest.mark.parametrize("make", [tx_error.DNSLookupError, CannotResolveHostError, socket.gaierror])
def test_dns_temporary(make, message):
    assert DEFAULT_CLASSIFIER.classify_exception(make(message)) == Failure(T, "dns_temporary")


@pytest.mark.parametrize(
    "message",
    ["address 'nope.invalid' not found: [Errno -2] Name or service not known", "no such host", ""],
)
@pytest.mark.parametrize("make", [tx_error.DNSLookupError, CannotResolveHostError, socket.gaierror])
def test_dns_permanent(make, message):
    exc = make(message) if message else make()
    assert DEFAULT_CLASSIFIER.classify_exception(exc) == Failure(P, "dns_failure")


def test_scrapy_wrapped_dns_error_keeps_the_twisted_message():
    # scrapy.utils._download_handlers.wrap_twisted_exceptions does CannotResolveHostError(str(e))
    inner = tx_error.DNSLookupError("address 'x' not found: [Errno -3] Temporary failure in name resolution")
    assert DEFAULT_CLASSIFIER.classify_exception(CannotResolveHostError(str(inner))).reason == "dns_temporary"


def test_unknown_subclass_matches_its_known_base():
    class FlakyProxyTimeout(tx_error.TimeoutError):
        pass

    assert DEFAULT_CLASSIFIER.classify_exception(FlakyProxyTimeout()) == Failure(T, "timeout")


def test_unknown_exception_is_transient_with_class_name():
    class WeirdError(Exception):
        pass

    failure = DEFAULT_CLASSIFIER.classify_exception(WeirdError())
    assert failure == Failure(T, "error_WeirdError")
    assert failure.transient


def test_extra_entries_add_and_override():
    class VendorBlocked(Exception):
        pass

    classifier = Classifier.from_settings_values(
        None,
        {
            qualified_name(VendorBlocked): (PERMANENT, "vendor_blocked"),
            "twisted.internet.error.ConnectionRefusedError": [PERMANENT, "refused_for_good"],
        },
    )
    assert classifier.classify_exception(VendorBlocked()) == Failure(P, "vendor_blocked")
    assert classifier.classify_exception(tx_error.ConnectionRefusedError()) == Failure(P, "refused_for_good")
    # the rest of the table is untouched, and the default classifier is not affected
    assert classifier.classify_exception(tx_error.TimeoutError()) == Failure(T, "timeout")
    assert DEFAULT_CLASSIFIER.classify_exception(tx_error.ConnectionRefusedError()).reason == "connection_refused"


def test_extra_entry_may_be_a_function():
    classifier = Classifier(extra_exceptions={"builtins.OSError": lambda exc: Failure(P, "os_error")})
    assert classifier.classify_exception(OSError()) == Failure(P, "os_error")
    assert classifier.classify_exception(ConnectionResetError()).reason == "connection_reset"  # more specific wins


@pytest.mark.parametrize("rule", [("fatal", "x"), ("transient",), "transient", (TRANSIENT, 3)])
def test_bad_extra_entry_is_a_one_line_error(rule):
    with pytest.raises(ValueError, match="builtins.OSError") as info:
        Classifier(extra_exceptions={"builtins.OSError": rule})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", sorted(EXCEPTION_TABLE))
def test_every_table_key_names_a_real_exception_class(name):
    module_name, _, qualname = name.rpartition(".")
    cls = getattr(importlib.import_module(module_name), qualname)
    assert isinstance(cls, type) and issubclass(cls, BaseException)
    assert qualified_name(cls) == name


def test_pure_modules_import_neither_scrapy_nor_twisted():
    code = (
        "import sys, crawler.failures, crawler.backoff, crawler.circuit_breaker\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('scrapy', 'twisted'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
