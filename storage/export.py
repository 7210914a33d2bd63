"""Products as a table: one column per profile field, streamed to CSV, JSON lines or XLSX.

Pure storage and file formats, no Scrapy.  :func:`iter_products` reads the
products of a site in chunks (``yield_per``: a server-side cursor on
PostgreSQL, SQLite's stepping cursor), so memory stays flat however large
the table; :func:`write_export` writes them in one of :data:`FORMATS`.
The columns are those of the site's view (:func:`storage.views.view_columns`):
``key, url, <fields in profile order>, first_seen, last_seen, updated_at``.

Values (a field's value as stored; missing: null):

* JSON lines: one JSON object per product, values as stored (numbers,
  booleans, strings, lists as arrays; dates and decimals as strings).
* CSV: a header row; an empty cell for null, ``true`` / ``false``, numbers
  and text as written, lists as JSON arrays (``["Wi-Fi","Thread"]``).
* XLSX: one sheet named after the site, a header row; numbers, booleans and
  dates (``date`` fields) as typed cells, decimals as numbers, integers beyond
  2^53 (beyond Excel's precision) and lists (JSON arrays) as text.

The timestamps ``first_seen``, ``last_seen``, ``updated_at`` are ISO-8601
UTC text (``2024-05-01T12:00:00.000Z``) in every format.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, select

from storage.engine import utc_iso
from storage.schema import products
from storage.views import ViewColumn

__all__ = ["CHUNK_ROWS", "FORMATS", "format_for", "iter_products", "parse_since", "sites", "write_export"]

FORMATS = ("csv", "jsonl", "xlsx")
#: Formats that can be written to a pipe (``-o -``): XLSX is a zip file, written with seeks.
STREAMABLE = ("csv", "jsonl")
#: Rows fetched from the database at a time.
CHUNK_ROWS = 1000
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".xlsx": "xlsx"}
#: Largest integer an XLSX number cell holds exactly (a double).
_XLSX_MAX_INT = 2**53


def format_for(path: str, given: str | None = None) -> str | None:
    """The export format: ``given``, else from the file's extension; None when neither says."""
    if given:
        return given
    return _EXTENSIONS.get(Path(path).suffix.lower())


def parse_since(value: str) -> str:
    """``--since``: an ISO date or date-time (naive: UTC) as stored timestamps are (:func:`utc_iso`).

    Raises ``ValueError`` with a one-line message.
    """
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValueError(f"invalid --since {value!r}: expected a date (2024-05-01) or a date-time") from None
    return utc_iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def sites(engine: Engine) -> list[str]:
    """The sites that have products in the database, sorted."""
    with engine.connect() as conn:
        return sorted(str(s) for s in conn.execute(select(products.c.site).distinct()).scalars())


def iter_products(
    engine: Engine,
    site: str,
    columns: Sequence[ViewColumn],
    since: str | None = None,
    chunk: int = CHUNK_ROWS,
) -> Iterator[tuple[Any, ...]]:
    """The products of ``site`` as tuples of ``columns`` values, in insertion order, ``chunk`` rows at a time.

    ``since``: only products whose ``updated_at`` (first saved, or last
    changed) is at or after this stored timestamp (:func:`parse_since`).
    """
    p = products.c
    statement = select(p.key, p.url, p.data, p.first_seen, p.last_seen, p.updated_at).where(p.site == site)
    if since is not None:
        statement = statement.where(p.updated_at >= since)
    statement = statement.order_by(p.id)
    meta = {"key": 0, "url": 1, "first_seen": 3, "last_seen": 4, "updated_at": 5}
    plan = [(meta[c.name], None) if c.field is None else (2, c.field) for c in columns]
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=max(1, chunk)).execute(statement)
        for row in result:
            try:
                data = json.loads(row[2])
            except (TypeError, ValueError):
                data = {}
            if not isinstance(data, dict):
                data = {}
            yield tuple(row[index] if field is None else data.get(field) for index, field in plan)


# --- writers -----------------------------------------------------------------------


def write_export(
    output: str | Path | IO[str],
    fmt: str,
    columns: Sequence[ViewColumn],
    rows: Iterable[tuple[Any, ...]],
    sheet: str = "products",
) -> int:
    """Write ``rows`` to ``output`` (a path, or a text stream for CSV / JSON lines); return how many.

    A path is written through a temporary file renamed over it at the end:
    a failed export leaves no partial file.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of: {', '.join(FORMATS)})")
    if not isinstance(output, (str, Path)):
        if fmt not in STREAMABLE:
            raise ValueError(f"{fmt} cannot be written to a stream (give a file)")
        return _write_text(output, fmt, columns, rows)
    path = Path(output)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if fmt == "xlsx":
            os.close(fd)
            written = _write_xlsx(tmp, columns, rows, sheet)
        else:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                written = _write_text(fh, fmt, columns, rows)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return written


def _write_text(fh: IO[str], fmt: str, columns: Sequence[ViewColumn], rows: Iterable[tuple[Any, ...]]) -> int:
    names = [c.name for c in columns]
    written = 0
    if fmt == "csv":
        writer = csv.writer(fh)
        writer.writerow(names)
        for row in rows:
            writer.writerow([csv_cell(value) for value in row])
            written += 1
        return written
    for row in rows:
        fh.write(json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False) + "\n")
        written += 1
    return written


def csv_cell(value: Any) -> str:
    """A value as a CSV cell: "" for null, true/false, lists (and objects) as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _write_xlsx(path: str, columns: Sequence[ViewColumn], rows: Iterable[tuple[Any, ...]], sheet: str) -> int:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)  # rows go to a temporary file as they come: memory stays flat
    worksheet = workbook.create_sheet(_sheet_title(sheet))
    worksheet.append([c.name for c in columns])
    types = [c.type if c.field is not None else "str" for c in columns]
    written = 0
    for row in rows:
        cells: list[Any] = []
        for value, type_ in zip(row, types, strict=True):
            cell = xlsx_value(value, type_)
            if isinstance(cell, date):
                typed = WriteOnlyCell(worksheet, value=cell)
                typed.number_format = "yyyy-mm-dd"
                cell = typed
            cells.append(cell)
        worksheet.append(cells)
        written += 1
    workbook.save(path)
    return written


def xlsx_value(value: Any, type_: str) -> Any:
    """A stored value as an XLSX cell value (see the module docstring)."""
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if abs(value) <= _XLSX_MAX_INT else str(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = _xlsx_text(str(value))
    if type_ == "date":
        try:
            return date.fromisoformat(text)
        except ValueError:
            return text
    if type_ == "decimal":
        try:
            number = Decimal(text)
        except InvalidOperation:
            return text
        return number if number.is_finite() else text
    return text


def _xlsx_text(text: str) -> str:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", text)


def _sheet_title(name: str) -> str:
    """A valid sheet title: at most 31 characters, none of ``[]:*?/\\``."""
    title = "".join("_" if ch in "[]:*?/\\" else ch for ch in name).strip("'")[:31]
    return title or "products"
