"""Failure classification: is a failed download worth retrying?

Pure, no Scrapy or Twisted import. An HTTP status or a download exception is
turned into a :class:`Failure` of kind :data:`TRANSIENT` (retry it, it counts
against the domain's circuit breaker) or :data:`PERMANENT` (give up now), with
a short snake_case ``reason`` for stats and the dead-letter queue.

Exceptions are matched by the qualified name of each class in their MRO
(``f"{cls.__module__}.{cls.__qualname__}"``), most specific first, against the
one table :data:`EXCEPTION_TABLE`, so neither Twisted nor Scrapy is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeAlias

TRANSIENT = "transient"
PERMANENT = "permanent"
KINDS = (TRANSIENT, PERMANENT)


@dataclass(frozen=True)
class Failure:
    """A classified failure: ``kind`` is TRANSIENT or PERMANENT, ``reason`` e.g. ``http_503``."""

    kind: str
    reason: str

    @property
    def transient(self) -> bool:
        """True if retrying may help."""
        return self.kind == TRANSIENT


#: A table entry: a fixed ``(kind, reason)``, or a function of the exception
#: (for messages that decide it) returning a Failure, or None to keep walking the MRO.
Rule: TypeAlias = tuple[str, str] | Callable[[BaseException], Failure | None]

#: 5xx except 501 Not Implemented, plus 408 Request Timeout and 429 Too Many Requests.
DEFAULT_TRANSIENT_STATUSES: frozenset[int] = frozenset(
    {code for code in range(500, 600) if code != 501} | {408, 429}
)

_DNS_TEMPORARY_WORDS = ("temporary", "try again", "timeout", "timed out")


def _dns(exc: BaseException) -> Failure:
    """DNS errors: EAI_AGAIN-like messages are transient, "not found" is permanent."""
    message = str(exc).lower()
    if any(word in message for word in _DNS_TEMPORARY_WORDS):
        return Failure(TRANSIENT, "dns_temporary")
    return Failure(PERMANENT, "dns_failure")


def _ignored(exc: BaseException) -> Failure:
    """IgnoreRequest: the offsite middleware's is ``offsite``, any other ``ignored``."""
    if "offsite" in str(exc).lower():
        return Failure(PERMANENT, "offsite")
    return Failure(PERMANENT, "ignored")


def _value_error(exc: BaseException) -> Failure | None:
    """Request(url) without a scheme raises ValueError; other ValueErrors are unknown."""
    if "missing scheme" in str(exc).lower():
        return Failure(PERMANENT, "invalid_url")
    return None


#: Chromium's network errors in a Playwright message (``net::ERR_...``) -> (kind, reason).
_CHROMIUM_NET_ERRORS: dict[str, tuple[str, str]] = {
    "ERR_CONNECTION_REFUSED": (TRANSIENT, "connection_refused"),
    "ERR_CONNECTION_RESET": (TRANSIENT, "connection_reset"),
    "ERR_CONNECTION_CLOSED": (TRANSIENT, "connection_lost"),
    "ERR_CONNECTION_ABORTED": (TRANSIENT, "connection_lost"),
    "ERR_EMPTY_RESPONSE": (TRANSIENT, "connection_lost"),
    "ERR_CONNECTION_TIMED_OUT": (TRANSIENT, "timeout"),
    "ERR_TIMED_OUT": (TRANSIENT, "timeout"),
    "ERR_NAME_NOT_RESOLVED": (PERMANENT, "dns_failure"),
    "ERR_NAME_RESOLUTION_FAILED": (TRANSIENT, "dns_temporary"),
    "ERR_INVALID_URL": (PERMANENT, "invalid_url"),
    "ERR_UNSAFE_PORT": (PERMANENT, "invalid_url"),
}


def _browser_timeout(exc: BaseException) -> Failure:
    """A Playwright timeout: the ``wait_for`` selector never appeared, or the navigation took too long."""
    message = str(exc)
    if "wait_for_selector" in message or "waiting for locator" in message:
        return Failure(TRANSIENT, "browser_wait_timeout")
    return Failure(TRANSIENT, "browser_timeout")


def _browser_closed(exc: BaseException) -> Failure:
    """The page, its context or the browser closed under the request: crashed, or closed."""
    return Failure(TRANSIENT, "browser_crash" if "crash" in str(exc).lower() else "browser_closed")


def _browser_error(exc: BaseException) -> Failure:
    """Any other Playwright error: a crashed page or browser, a network error, else ``browser_error``."""
    message = str(exc)
    lowered = message.lower()
    if "crash" in lowered:
        return Failure(TRANSIENT, "browser_crash")
    if "has been closed" in lowered or "has been disconnected" in lowered:
        return Failure(TRANSIENT, "browser_closed")
    for code, (kind, reason) in _CHROMIUM_NET_ERRORS.items():
        if f"net::{code}" in message:
            return Failure(kind, reason)
    return Failure(TRANSIENT, "browser_error")


#: Qualified exception class name -> rule. The whole classification, at a glance.
EXCEPTION_TABLE: dict[str, Rule] = {
    # -- Scrapy 2.19 download-handler errors (wrap the Twisted/httpx ones) -----
    "scrapy.exceptions.DownloadTimeoutError": (TRANSIENT, "timeout"),
    "scrapy.exceptions.DownloadConnectionRefusedError": (TRANSIENT, "connection_refused"),
    "scrapy.exceptions.CannotResolveHostError": _dns,
    "scrapy.exceptions.DownloadFailedError": (TRANSIENT, "download_failed"),
    "scrapy.exceptions.ResponseDataLossError": (TRANSIENT, "response_truncated"),
    # raised when a body exceeds DOWNLOAD_MAXSIZE: the same request fails again
    "scrapy.exceptions.DownloadCancelledError": (PERMANENT, "download_cancelled"),
    "scrapy.exceptions.UnsupportedURLSchemeError": (PERMANENT, "invalid_url"),
    "scrapy.exceptions.NotSupported": (PERMANENT, "invalid_url"),
    "scrapy.exceptions.IgnoreRequest": _ignored,
    "scrapy.core.downloader.handlers.http11.TunnelError": (TRANSIENT, "tunnel_error"),
    # -- Twisted: connection ---------------------------------------------------
    "twisted.internet.error.TimeoutError": (TRANSIENT, "timeout"),
    "twisted.internet.error.TCPTimedOutError": (TRANSIENT, "timeout"),
    "twisted.internet.defer.TimeoutError": (TRANSIENT, "timeout"),
    "twisted.internet.error.ConnectionRefusedError": (TRANSIENT, "connection_refused"),
    "twisted.internet.error.DNSLookupError": _dns,
    "twisted.internet.error.ConnectError": (TRANSIENT, "connect_error"),
    "twisted.internet.error.ConnectionDone": (TRANSIENT, "connection_lost"),
    "twisted.internet.error.ConnectionLost": (TRANSIENT, "connection_lost"),
    "twisted.internet.error.ConnectionAborted": (TRANSIENT, "connection_lost"),
    # -- Twisted: HTTP client --------------------------------------------------
    "twisted.web._newclient.ResponseNeverReceived": (TRANSIENT, "response_never_received"),
    "twisted.web._newclient.ResponseFailed": (TRANSIENT, "download_failed"),
    "twisted.web._newclient.RequestTransmissionFailed": (TRANSIENT, "download_failed"),
    "twisted.web._newclient.ConnectionAborted": (TRANSIENT, "connection_lost"),
    "twisted.web.client.PartialDownloadError": (TRANSIENT, "response_truncated"),
    "twisted.web.http._DataLoss": (TRANSIENT, "response_truncated"),
    "twisted.web.http.PotentialDataLoss": (TRANSIENT, "response_truncated"),
    "twisted.web.error.SchemeNotSupported": (PERMANENT, "invalid_url"),
    # -- Playwright (render = "js" stages, through scrapy-playwright) -------------
    "playwright._impl._errors.TimeoutError": _browser_timeout,
    "playwright._impl._errors.TargetClosedError": _browser_closed,
    "playwright._impl._errors.Error": _browser_error,
    # -- Python builtins and stdlib ----------------------------------------------
    "builtins.TimeoutError": (TRANSIENT, "timeout"),
    "builtins.ConnectionRefusedError": (TRANSIENT, "connection_refused"),
    "builtins.ConnectionResetError": (TRANSIENT, "connection_reset"),
    "builtins.ConnectionAbortedError": (TRANSIENT, "connection_lost"),
    "builtins.BrokenPipeError": (TRANSIENT, "connection_lost"),
    "builtins.ConnectionError": (TRANSIENT, "connection_error"),
    "socket.gaierror": _dns,
    "builtins.ValueError": _value_error,
}


def qualified_name(cls: type) -> str:
    """The table key of an exception class, e.g. ``twisted.internet.error.DNSLookupError``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_rule(name: str, rule: object) -> Rule:
    if callable(rule):
        return rule  # type: ignore[return-value]
    if isinstance(rule, (tuple, list)) and len(rule) == 2 and rule[0] in KINDS and isinstance(rule[1], str):
        return (rule[0], rule[1])
    raise ValueError(f"exception rule for {name!r} must be ({TRANSIENT!r}|{PERMANENT!r}, reason), got {rule!r}")


@dataclass(frozen=True)
class Classifier:
    """Classifies HTTP statuses and download exceptions into :class:`Failure` values.

    ``transient_statuses``: 4xx/5xx codes worth retrying (others >= 400 are permanent).
    ``extra_exceptions``: qualified class name -> rule, added to (or overriding)
    :data:`EXCEPTION_TABLE`; a rule is ``(kind, reason)`` or a function of the exception.
    """

    transient_statuses: frozenset[int] = DEFAULT_TRANSIENT_STATUSES
    extra_exceptions: Mapping[str, Rule] = field(default_factory=dict, hash=False)
    #: Scrapy's RETRY_EXCEPTIONS when set: exactly these exception classes are transient
    #: (the reason still comes from the table); None: the table decides.
    transient_exceptions: tuple[type[BaseException], ...] | None = field(default=None, hash=False)
    _table: Mapping[str, Rule] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "transient_statuses", frozenset(int(code) for code in self.transient_statuses))
        extra = {name: _check_rule(name, rule) for name, rule in self.extra_exceptions.items()}
        object.__setattr__(self, "extra_exceptions", MappingProxyType(extra))
        object.__setattr__(self, "_table", MappingProxyType({**EXCEPTION_TABLE, **extra}))

    @classmethod
    def from_settings_values(
        cls,
        retry_http_codes: Iterable[int] | None,
        extra_exceptions: Mapping[str, Rule] | None = None,
        retry_exceptions: Iterable[type[BaseException]] | None = None,
    ) -> Classifier:
        """Build from plain setting values.

        ``retry_http_codes`` (Scrapy's RETRY_HTTP_CODES): when given, exactly those
        codes are transient; None keeps the default rule (5xx but 501, 408, 429).
        ``retry_exceptions`` (Scrapy's RETRY_EXCEPTIONS): when given, exactly those
        exception classes are transient.
        """
        statuses = DEFAULT_TRANSIENT_STATUSES if retry_http_codes is None else frozenset(retry_http_codes)
        return cls(
            transient_statuses=statuses,
            extra_exceptions=dict(extra_exceptions or {}),
            transient_exceptions=None if retry_exceptions is None else tuple(retry_exceptions),
        )

    def classify_status(self, status: int) -> Failure | None:
        """None for a status below 400; else ``http_<code>``, transient or permanent."""
        if status < 400:
            return None
        kind = TRANSIENT if status in self.transient_statuses else PERMANENT
        return Failure(kind, f"http_{status}")

    def classify_exception(self, exc: BaseException) -> Failure:
        """Classify by the first class in ``type(exc).__mro__`` the table knows.

        Unknown exceptions are transient ``error_<ClassName>`` (a retry budget bounds them).
        With ``transient_exceptions``, the kind is whether ``exc`` is one of them.
        """
        failure = self._classify_exception(exc)
        if self.transient_exceptions is not None:
            kind = TRANSIENT if isinstance(exc, self.transient_exceptions) else PERMANENT
            return Failure(kind, failure.reason)
        return failure

    def _classify_exception(self, exc: BaseException) -> Failure:
        for cls in type(exc).__mro__:
            rule = self._table.get(qualified_name(cls))
            if rule is None:
                continue
            if callable(rule):
                failure = rule(exc)
                if failure is not None:
                    return failure
                continue
            return Failure(*rule)
        return Failure(TRANSIENT, f"error_{type(exc).__name__}")


#: The default classifier (no settings).
DEFAULT_CLASSIFIER = Classifier()
