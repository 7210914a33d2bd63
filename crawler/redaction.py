"""Secrets never at rest and never in logs: pure helpers, no Scrapy.

* :func:`strip_url_credentials` drops ``user:password@`` from a URL;
* :func:`redact_record` removes credentials from a stored request record (the
  dead-letter queue's JSON form of a request): the headers of
  ``DLQ_REDACT_HEADERS``, the meta keys of ``DLQ_REDACT_META_KEYS``, the
  request's cookies, and credentials inside the URL and the ``proxy`` meta;
* :func:`mask_passwords` and :class:`SecretsFilter` hide the password of every
  ``scheme://user:password@host`` in log messages.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: Request headers never stored (credentials or session state).
REDACTED_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key")
#: Request meta keys never stored (Scrapy's HTTP auth and proxy credentials).
REDACTED_META_KEYS = ("http_user", "http_pass", "http_auth_domain", "_auth_proxy", "proxy_authorization")
MASK = "***"
_DEFAULT_HEADERS = frozenset(REDACTED_HEADERS)
_DEFAULT_META = frozenset(REDACTED_META_KEYS)

_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+):([^\s@/]+)@")


def strip_url_credentials(url: str) -> str:
    """``url`` without its ``user[:password]@`` part."""
    if "@" not in url:
        return url  # no userinfo without an "@" (the common case: no parsing)
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_passwords(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def mask_passwords(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` replaced by ``***``."""
    return _URL_PASSWORD.sub(rf"\1:{MASK}@", text)


def redact_record(
    record: Mapping[str, Any],
    headers: Iterable[str] = REDACTED_HEADERS,
    meta_keys: Iterable[str] = REDACTED_META_KEYS,
) -> dict[str, Any]:
    """A copy of a request record without credentials; ``"redacted"`` lists what was removed."""
    drop_headers = _DEFAULT_HEADERS if headers is REDACTED_HEADERS else {h.lower() for h in headers}
    drop_meta = _DEFAULT_META if meta_keys is REDACTED_META_KEYS else set(meta_keys)
    out = dict(record)
    removed: list[str] = list(out.get("redacted") or ())
    if isinstance(out.get("url"), str):
        clean = strip_url_credentials(out["url"])
        if clean != out["url"]:
            out["url"] = clean
            removed.append("url credentials")
    heads = out.get("headers")
    if isinstance(heads, Mapping):
        kept = {k: v for k, v in heads.items() if str(k).lower() not in drop_headers}
        removed += [f"headers.{k}" for k in heads if str(k).lower() in drop_headers]
        out["headers"] = kept
    meta = out.get("meta")
    if isinstance(meta, Mapping):
        kept_meta = {k: v for k, v in meta.items() if k not in drop_meta}
        removed += [f"meta.{k}" for k in meta if k in drop_meta]
        proxy = kept_meta.get("proxy")
        if isinstance(proxy, str) and strip_url_credentials(proxy) != proxy:
            kept_meta["proxy"] = strip_url_credentials(proxy)
            removed.append("meta.proxy credentials")
        out["meta"] = kept_meta
    if out.get("cookies"):
        out["cookies"] = {}
        removed.append("cookies")
    if removed:
        out["redacted"] = sorted(set(removed))
    return out


class SecretsFilter(logging.Filter):
    """A logging filter that masks URL passwords in every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        masked = mask_passwords(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Mask URL passwords in everything the handlers of ``logger`` (default: root) write."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, SecretsFilter) for f in handler.filters):
            handler.addFilter(SecretsFilter())
