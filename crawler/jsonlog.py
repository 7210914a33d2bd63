"""JSON logs (``LOG_JSON``): one JSON object per line, for log shippers.

Each line: ``time`` (ISO-8601 UTC, milliseconds, ``Z``), ``level``, ``logger``,
``message`` (one string; a multi-line message keeps its newlines escaped), and
where there is one, ``url`` and ``stage`` (``list`` / ``detail``) of the
request the line is about, and ``exception`` (the whole traceback, one
string).  The request is found in the record's ``extra`` (``request``, or
``url`` / ``stage`` given directly, as our middlewares and extensions pass
them) or among the record's dict arguments (``request``, ``response``,
``src``: how Scrapy's own messages, e.g. ``Crawled (200) <GET ...>``, and our
retry middleware carry it).  URL passwords are masked.

How it hooks into Scrapy: Scrapy logs through ONE root handler that
``scrapy.utils.log.install_scrapy_root_handler(settings)`` builds from the
``LOG_*`` settings with a text formatter made from ``LOG_FORMAT``;
``CrawlerProcess`` installs it and logs its first lines ("Scrapy ... started",
versions) at once, and every ``Crawler`` re-installs it with its own settings
twice (when created, and once its settings are final), rebuilding the
formatter each time.  ``LOG_FORMAT`` cannot express JSON (no escaping) and
``LOG_FORMATTER`` only words item and page messages, so swapping the
formatter of Scrapy's handler would not survive the re-installs.  Instead:

* :func:`start_json_logging`, from a command's ``process_options`` (before
  Scrapy creates its ``CrawlerProcess``), installs this module's root handler,
  built exactly as Scrapy's (``LOG_FILE``, ``LOG_FILE_APPEND``,
  ``LOG_ENCODING``, ``LOG_ENABLED``, ``LOG_LEVEL``, ``LOG_SHORT_NAMES``; URL
  passwords masked, :class:`crawler.redaction.SecretsFilter`) with
  :class:`JsonFormatter`, and sets ``LOG_INSTALL_ROOT_HANDLER = False``
  (Scrapy's documented switch) so Scrapy installs no text handler of its own:
  the process's very first line is JSON;
* the :class:`JsonLog` extension does what Scrapy's re-install does: once a
  crawler's settings are final (a site profile's ``[settings]`` applied), it
  rebuilds the handler when they name another file, level or destination.

``scrapy crawl`` (``crawler/commands/crawl.py``) calls
:func:`start_json_logging`; any other command that logs can call it from its
``process_options`` too.
``JsonFormatter()`` is a plain ``logging.Formatter``, usable in a ``dictConfig``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import NotConfigured
from scrapy.http import Request, Response
from scrapy.settings import BaseSettings
from scrapy.utils.log import TopLevelFormatter

from crawler import defaults
from crawler.redaction import SecretsFilter, mask_passwords

if TYPE_CHECKING:
    from typing import Self

    from scrapy.crawler import Crawler

__all__ = [
    "JsonFormatter",
    "JsonLog",
    "install_json_handler",
    "json_handler",
    "json_logging_enabled",
    "start_json_logging",
    "uninstall_json_handler",
]

#: Keys of a record's dict arguments that may hold the request (or response) the line is about.
_ARG_KEYS = ("request", "response", "src")


def _request_of(record: logging.LogRecord) -> Request | None:
    candidate = getattr(record, "request", None)
    if not isinstance(candidate, Request | Response):
        candidate = None
        if isinstance(record.args, dict):
            for key in _ARG_KEYS:
                value = record.args.get(key)
                if isinstance(value, Request | Response):
                    candidate = value
                    break
    if isinstance(candidate, Response):
        return candidate.request if candidate.request is not None else Request(candidate.url)
    return candidate


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON: time, level, logger, message, url, stage, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:23] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request = _request_of(record)
        url = getattr(record, "url", None) or (request.url if request is not None else None)
        if url:
            line["url"] = mask_passwords(str(url))
        stage = getattr(record, "stage", None) or (request.meta.get("stage") if request is not None else None)
        if stage:
            line["stage"] = str(stage)
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def json_logging_enabled(settings: BaseSettings) -> bool:
    """Whether ``LOG_JSON`` is on (it reads as a boolean, as Scrapy's own settings)."""
    return settings.getbool("LOG_JSON", defaults.LOG_JSON)


#: The settings the handler is built from.
_HANDLER_SETTINGS = ("LOG_FILE", "LOG_FILE_APPEND", "LOG_ENCODING", "LOG_ENABLED", "LOG_LEVEL", "LOG_SHORT_NAMES")
_installed: tuple[logging.Handler, tuple[Any, ...]] | None = None


def _signature(settings: BaseSettings) -> tuple[Any, ...]:
    return tuple(settings.get(name) for name in _HANDLER_SETTINGS)


def json_handler(settings: BaseSettings) -> logging.Handler:
    """A log handler built from the ``LOG_*`` settings as Scrapy builds its own, writing JSON lines."""
    handler: logging.Handler
    filename = settings.get("LOG_FILE")
    if filename:
        mode = "a" if settings.getbool("LOG_FILE_APPEND") else "w"
        handler = logging.FileHandler(filename, mode=mode, encoding=settings.get("LOG_ENCODING"))
    elif settings.getbool("LOG_ENABLED"):
        handler = logging.StreamHandler()
    else:
        handler = logging.NullHandler()
    handler.setFormatter(JsonFormatter())
    handler.setLevel(settings.get("LOG_LEVEL"))
    if settings.getbool("LOG_SHORT_NAMES"):
        handler.addFilter(TopLevelFormatter(["scrapy"]))
    handler.addFilter(SecretsFilter())
    return handler


def install_json_handler(settings: BaseSettings) -> logging.Handler:
    """Put :func:`json_handler` on the root logger, in place of the one installed before (if any)."""
    global _installed  # noqa: PLW0603 - one root handler per process, as Scrapy's
    uninstall_json_handler()
    handler = json_handler(settings)
    logging.root.setLevel(logging.NOTSET)
    logging.root.addHandler(handler)
    _installed = (handler, _signature(settings))
    return handler


def uninstall_json_handler() -> None:
    """Remove and close the handler :func:`install_json_handler` installed (tests, reconfiguration)."""
    global _installed  # noqa: PLW0603
    if _installed is not None:
        handler = _installed[0]
        logging.root.removeHandler(handler)
        handler.close()
        _installed = None


def start_json_logging(settings: BaseSettings) -> bool:
    """With ``LOG_JSON``: install the JSON root handler now, and keep Scrapy from installing its own.

    Call it before a ``CrawlerProcess`` is created (a command's
    ``process_options``).  Sets ``LOG_INSTALL_ROOT_HANDLER = False`` (command
    line priority).  Does nothing when ``LOG_INSTALL_ROOT_HANDLER`` is already
    off (the caller configures logging itself).  Returns whether it installed it.
    """
    if not json_logging_enabled(settings) or not settings.getbool("LOG_INSTALL_ROOT_HANDLER"):
        return False
    install_json_handler(settings)
    settings.set("LOG_INSTALL_ROOT_HANDLER", False, priority="cmdline")
    return True


class JsonLog:
    """Extension: rebuild the JSON root handler from the crawler's final settings when they changed it.

    (Scrapy re-installs its own root handler at the same point.)  Not
    configured (``NotConfigured``) unless :func:`start_json_logging` installed
    the handler in this process.
    """

    def __init__(self, settings: BaseSettings) -> None:
        if _installed is not None and _signature(settings) != _installed[1]:
            install_json_handler(settings)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if _installed is None or not json_logging_enabled(crawler.settings):
            raise NotConfigured  # LOG_JSON is off (or the command did not start JSON logging): no warning
        return cls(crawler.settings)
