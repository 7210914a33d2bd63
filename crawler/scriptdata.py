"""JSON embedded in a page's ``<script>`` elements: the data of ``source = "script"`` profile keys.

Pure functions, no Scrapy, no lxml.  A script key of a site profile selects
``<script>`` elements (their text, or an attribute), isolates the JSON text
with a ``regex`` (e.g. the ``{...}`` of ``window.__DATA__ = {...};``), parses it
(:func:`load_json`) and applies a ``path`` to it: a JMESPath expression
(https://jmespath.org), compiled once when the profile is loaded
(:func:`compile_path`).  :func:`to_strings` turns what the path gives into the
raw strings every other field gives, which the profile's type then converts.

A page's script that does not parse is a problem of that page, not a crash: the
field's raw value is then a *problem marker* (:func:`problem_marker`, a small
JSON-ready dict that survives ``request.meta`` and storage) which validation
turns into ``<field>: malformed JSON`` (:func:`marker_problem`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

#: Problems of a script field's value on a page (validation reasons read ``<field>: <problem>``).
MALFORMED_JSON = "malformed JSON"
NOT_A_VALUE = "a JSON object, not a value"
#: Key of a problem marker among a field's raw values.
MARKER_KEY = "script_problem"
#: Widest JSON excerpt kept in a problem marker.
MAX_EXCERPT = 80


class PathError(ValueError):
    """A ``path`` that is not a valid JMESPath expression (the message is one line)."""


class ScriptDataError(ValueError):
    """A page's script data that cannot be read: ``problem`` (e.g. ``malformed JSON``), the text and why."""

    def __init__(self, problem: str, text: str, detail: str = "") -> None:
        self.problem = problem
        self.text = excerpt(text)
        self.detail = detail
        super().__init__(f"{self.text!r} is {problem}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class ScriptPath:
    """A compiled JMESPath expression: ``search(document)`` gives what it selects (None: nothing)."""

    expr: str
    compiled: Any = field(compare=False, repr=False)

    def search(self, document: Any) -> Any:
        return self.compiled.search(document)


def compile_path(expr: Any) -> ScriptPath:
    """Compile a ``path``; raise :class:`PathError` with a one-line reason."""
    if not isinstance(expr, str) or not expr.strip():
        raise PathError("must be a JMESPath expression (a non-empty string), e.g. 'products[*].url'")
    try:
        return ScriptPath(expr, jmespath.compile(expr))
    except JMESPathError as exc:
        reason = " ".join(str(exc).split())
        raise PathError(f"invalid JMESPath expression {expr!r}: {reason}") from None


def excerpt(text: str) -> str:
    """``text`` on one line, at most :data:`MAX_EXCERPT` characters."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_EXCERPT else text[: MAX_EXCERPT - 1] + "…"


_DECODER = json.JSONDecoder()


def load_json(text: str) -> Any:
    """The JSON value at the start of ``text`` (leading whitespace skipped, anything after it ignored,
    e.g. the ``;`` of an assignment); raise :class:`ScriptDataError` when it does not parse."""
    stripped = text.lstrip()
    try:
        value, _ = _DECODER.raw_decode(stripped)
    except json.JSONDecodeError as exc:
        raise ScriptDataError(MALFORMED_JSON, stripped, f"{exc.msg}: line {exc.lineno} column {exc.colno}") from None
    return value


def to_strings(value: Any) -> list[str]:
    """What a path gave, as raw strings: a string as is, numbers as JSON writes them, booleans as
    ``true``/``false``, ``null`` dropped, lists flattened; an object raises :class:`ScriptDataError`."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, int | float):
        return [json.dumps(value)]
    if isinstance(value, list):
        return [text for item in value for text in to_strings(item)]
    raise ScriptDataError(NOT_A_VALUE, json.dumps(value, ensure_ascii=False), "the path selects an object")


def problem_marker(error: ScriptDataError) -> dict[str, str]:
    """The raw value of a field whose script data could not be read (JSON-ready)."""
    return {MARKER_KEY: error.problem, "text": error.text, "detail": error.detail}


def marker_problem(raw: Any) -> ScriptDataError | None:
    """The problem a raw value stands for, when it is a :func:`problem_marker`; else None."""
    if isinstance(raw, dict) and MARKER_KEY in raw:
        return ScriptDataError(str(raw[MARKER_KEY]), str(raw.get("text", "")), str(raw.get("detail", "")))
    return None
