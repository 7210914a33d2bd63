"""Requests as JSON records and back: what the dead-letter queue and the crawl frontier store.

:func:`request_to_record` turns a request into a JSON-safe dict (callbacks by
name, credentials removed, per-download meta left out);
:func:`request_from_record` rebuilds it for a spider.  Pure: no database,
no signals.
"""

from __future__ import annotations

import base64
import inspect
import json
from collections.abc import Iterable, Mapping
from typing import Any

from scrapy import Request, Spider
from scrapy.utils.request import request_from_dict

from crawler.redaction import REDACTED_HEADERS, REDACTED_META_KEYS, redact_record

__all__ = [
    "DLQ_ID",
    "MANAGED_META_KEYS",
    "MANAGED_META_PREFIXES",
    "request_from_record",
    "request_to_record",
]

#: ``request.meta`` key of a replayed dead letter: its row id.
DLQ_ID = "dlq_id"

#: Meta keys that Scrapy, the project's middlewares or this queue manage per
#: download or per crawl: not stored, so a replay starts with a fresh state.
MANAGED_META_KEYS = frozenset(
    {
        "download_slot",
        "download_latency",
        "download_timeout",
        "retry_times",
        "redirect_times",
        "redirect_ttl",
        "redirect_urls",
        "redirect_reasons",
        "is_start_request",
        "not_before",  # crawler.scheduler.NOT_BEFORE: backoff / parking time
        "product_ref",  # extensions.accounting.REF: per-crawl product counter
        DLQ_ID,
    }
)
#: Meta keys starting with these are managed too (``_breaker_allowed``, ``retry_*``, ``dlq_*``, ...).
MANAGED_META_PREFIXES = ("_", "retry_", "dlq_")

_UNRESOLVED = object()


#: One strict encoder (``json.dumps`` with options builds a new one per call).
_STRICT = json.JSONEncoder(allow_nan=False)
_SCALARS = (str, int, type(None))


def _is_json(value: Any) -> bool:
    """Whether ``value`` is JSON as it is (finite numbers, string keys, no other types)."""
    if isinstance(value, _SCALARS):  # bool is an int
        return True
    if not value and type(value) in (dict, list):  # empty: nothing that could fail to encode
        return True
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    try:
        _STRICT.encode(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def _managed(key: Any, extra: Iterable[str] = ()) -> bool:
    return not isinstance(key, str) or key in MANAGED_META_KEYS or key.startswith(MANAGED_META_PREFIXES) or key in extra


def _method_name(spider: Spider | None, func: Any) -> Any:
    """The name of the spider method ``func`` (a callback), None for None, else ``_UNRESOLVED``."""
    if func is None or isinstance(func, str):
        return func
    target = getattr(func, "__func__", None)
    if spider is None or target is None or getattr(func, "__self__", None) is not spider:
        return _UNRESOLVED
    name = getattr(func, "__name__", "")
    if getattr(getattr(spider, name, None), "__func__", None) is target:
        return name
    for member, bound in inspect.getmembers(spider, predicate=inspect.ismethod):
        if bound.__func__ is target:
            return member
    return _UNRESOLVED


def request_to_record(
    request: Request,
    spider: Spider | None,
    drop_meta: Iterable[str] = (),
    redact_headers: Iterable[str] = REDACTED_HEADERS,
    redact_meta: Iterable[str] = REDACTED_META_KEYS,
) -> dict[str, Any]:
    """A JSON-safe dict to rebuild ``request`` with :func:`request_from_record`.

    What ``request.to_dict(spider=spider)`` holds, without credentials
    (:func:`crawler.redaction.redact_record`: no ``Authorization``,
    ``Proxy-Authorization`` or ``Cookie`` header, no cookies, no
    ``http_user``/``http_pass``, no ``user:password@`` in the URL or the proxy;
    ``"redacted"`` lists what was removed): url, method, headers (text), body (text, or base64 with
    ``"body_encoding": "base64"``), callback and errback by NAME (methods of
    ``spider``), cb_kwargs, priority, flags, encoding, cookies, the subclass
    (``_class``) and its attributes, and the JSON-serialisable meta keys
    except those managed per download or per crawl (:data:`MANAGED_META_KEYS`,
    :data:`MANAGED_META_PREFIXES`, ``drop_meta``).  Values that cannot be
    stored are listed in ``"dropped"`` (``"callback"`` when the callback is
    not a method of the spider: such a record cannot be replayed).
    """
    extra = frozenset(drop_meta)
    dropped: list[str] = []
    record: dict[str, Any] = {"url": request.url, "method": request.method}
    for name in ("callback", "errback"):
        method = _method_name(spider, getattr(request, name))
        if method is _UNRESOLVED:
            dropped.append(name)
            method = None
        record[name] = method
    record["headers"] = {
        key.decode("latin-1"): [value.decode("latin-1") for value in values] for key, values in request.headers.items()
    }
    body = request.body
    try:
        record["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        record["body"] = base64.b64encode(body).decode("ascii")
        record["body_encoding"] = "base64"
    meta: dict[str, Any] = {}
    for key, value in request.meta.items():
        if _managed(key, extra):
            continue
        if _is_json(value):
            meta[key] = value
        else:
            dropped.append(f"meta.{key}")
    record["meta"] = meta
    # what request.to_dict() holds, with the callbacks resolved above (to_dict() raises for a non-method)
    attributes = {name: getattr(request, name) for name in request.attributes}
    if type(request) is not Request:
        attributes["_class"] = f"{type(request).__module__}.{type(request).__name__}"
    for name, value in attributes.items():
        if name in record:
            continue
        if name == "cb_kwargs":
            kwargs = {}
            for key, arg in (value or {}).items():
                if isinstance(key, str) and _is_json(arg):
                    kwargs[key] = arg
                else:
                    dropped.append(f"cb_kwargs.{key}")
            record[name] = kwargs
        elif _is_json(value):
            record[name] = value
        else:
            dropped.append(name)
    if dropped:
        record["dropped"] = dropped
    return redact_record(record, redact_headers, redact_meta)


def request_from_record(
    record: Mapping[str, Any], spider: Spider, *, dlq_id: int | None = None, drop_meta: Iterable[str] = ()
) -> Request:
    """The request ``record`` (:func:`request_to_record`) describes, for a replay by ``spider``.

    ``dont_filter`` is set, managed meta keys are left out (a fresh retry
    state) and ``meta["dlq_id"]`` is ``dlq_id``.  Raises ValueError when the
    record cannot be replayed (its callback or errback was not a spider
    method, or is not one of this spider).
    """
    lost = [name for name in ("callback", "errback") if name in (record.get("dropped") or ())]
    if lost:
        raise ValueError(f"its {' and '.join(lost)} was not a method of the spider")
    data = {key: value for key, value in record.items() if key not in ("body_encoding", "dropped")}
    body = record.get("body") or ""
    data["body"] = base64.b64decode(body) if record.get("body_encoding") == "base64" else str(body).encode("utf-8")
    headers: dict[bytes, list[bytes]] = {}
    for key, values in (record.get("headers") or {}).items():
        values = values if isinstance(values, list) else [values]
        headers[str(key).encode("latin-1")] = [str(v).encode("latin-1") for v in values]
    data["headers"] = headers
    extra = frozenset(drop_meta)
    meta = {key: value for key, value in (record.get("meta") or {}).items() if not _managed(key, extra)}
    if dlq_id is not None:
        meta[DLQ_ID] = dlq_id
    data["meta"] = meta
    data["dont_filter"] = True
    try:
        return request_from_dict(data, spider=spider)
    except (TypeError, KeyError, AttributeError, ImportError) as e:
        raise ValueError(f"invalid request record: {' '.join(str(e).split())}") from None


