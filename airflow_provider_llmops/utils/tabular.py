"""Read tabular data files as records (one dict per row): JSON lines, JSON arrays, CSV/TSV, Parquet.

The dataset review reads tables with it and the document indexer reads documents with it.
Importing it costs nothing: pyarrow is imported only when a Parquet file is read.

Formats, chosen by the file name's suffix (case-insensitive):

* ``.jsonl`` / ``.ndjson``: one JSON value per line, blank lines skipped; a value that is not an
  object is yielded as ``{"value": value}``.
* ``.json``: a JSON array of objects, or JSON lines stored as ``.json``. A file holding one JSON
  document (an object such as metadata, or an array of scalars) holds no records:
  `NotATableError`.
* ``.csv`` / ``.tsv``: a header row, then one record per row. Cells are typed: empty -> None,
  integers and decimal numbers without leading zeros (so ``007`` and zip codes stay text)
  -> int and float, anything else -> str. Cells beyond the header are dropped; missing ones are None.
* ``.parquet``: rows as pyarrow gives them (``Table.to_pylist``), batch by batch.

Text files are UTF-8 (a leading byte-order mark is ignored). Anything that cannot be read raises
`TabularFormatError` with ``.path`` and ``.line`` (1-based; None where the format has no lines,
such as Parquet) and a message that says what to do; `TabularReaderMissingError` (a subclass)
when the library for a format is not installed.

Example::

    from airflow_provider_llmops.utils.tabular import is_tabular, iter_records

    if is_tabular(path.name):
        for record in iter_records(path):
            print(record["text"])
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_provider_llmops.exceptions import LlmopsError

__all__ = [
    "TABULAR_SUFFIXES",
    "NotATableError",
    "TabularFormatError",
    "TabularReaderMissingError",
    "is_tabular",
    "iter_records",
]

TABULAR_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")
_BOM = "\ufeff"
_INT_RE = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")
_FLOAT_RE = re.compile(r"[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class TabularFormatError(LlmopsError, ValueError):
    """A tabular file could not be read; ``path`` and ``line`` (1-based, or None) say where.

    Example::

        try:
            rows = list(iter_records(path))
        except TabularFormatError as err:
            log.error("%s (line %s)", err.path, err.line)
    """

    def __init__(self, reason: str, *, path: str | os.PathLike[str], line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {reason}")


class TabularReaderMissingError(TabularFormatError):
    """The library that reads this format is not installed (pyarrow for Parquet)."""


class NotATableError(TabularFormatError):
    """A ``.json`` file holds one JSON document (an object, an array of scalars), not records."""


def is_tabular(name: str | os.PathLike[str]) -> bool:
    """Whether `iter_records` reads files of this name (by suffix; the content is not looked at)."""
    return os.fspath(name).lower().endswith(TABULAR_SUFFIXES)


def iter_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield the records of a tabular file, lazily; errors surface while iterating.

    Raises `TabularFormatError` (file and line) on content that does not parse,
    `NotATableError` for a ``.json`` document that is not a list of records,
    `TabularReaderMissingError` when pyarrow is needed but missing, and ValueError for a
    name `is_tabular` rejects.
    """
    path = Path(path)
    lower = path.name.lower()
    if lower.endswith((".jsonl", ".ndjson")):
        return _iter_json_lines(path)
    if lower.endswith(".json"):
        return _iter_json(path)
    if lower.endswith((".csv", ".tsv")):
        return _iter_csv(path, delimiter="\t" if lower.endswith(".tsv") else ",")
    if lower.endswith(".parquet"):
        return _iter_parquet(path)
    raise ValueError(f"{path}: not a tabular file name (expected one of {', '.join(TABULAR_SUFFIXES)})")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) pairs; decoding per line so an encoding error names its exact line."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise TabularFormatError(
                    f"not UTF-8 text ({err.reason} at byte {err.start} of the line). "
                    "Re-encode the file as UTF-8.",
                    path=path,
                    line=lineno,
                ) from err
            yield lineno, text.removeprefix(_BOM) if lineno == 1 else text


def _json_line(path: Path, lineno: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        raise TabularFormatError(
            f"not valid JSON ({err.msg}). Each line of a JSON-lines file must be one JSON object; "
            "fix or remove the line.",
            path=path,
            line=lineno,
        ) from err
    return value if isinstance(value, dict) else {"value": value}


def _iter_json_lines(path: Path) -> Iterator[dict[str, Any]]:
    for lineno, line in _lines(path):
        if line.strip():
            yield _json_line(path, lineno, line)


def _iter_json(path: Path) -> Iterator[dict[str, Any]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8").removeprefix(_BOM)
    except UnicodeDecodeError as err:
        raise TabularFormatError(
            f"not UTF-8 text ({err.reason}). Re-encode the file as UTF-8.",
            path=path,
            line=raw.count(b"\n", 0, err.start) + 1,
        ) from err
    try:
        whole = json.loads(text)
    except json.JSONDecodeError as err:
        if text.lstrip().startswith("["):
            raise TabularFormatError(
                f"not valid JSON ({err.msg}, column {err.colno}). A .json table is a JSON array of "
                "objects or JSON lines; fix the file.",
                path=path,
                line=err.lineno,
            ) from err
        # JSON lines stored as .json.
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield _json_line(path, lineno, line)
        return
    if not (isinstance(whole, list) and all(isinstance(item, dict) for item in whole)):
        raise NotATableError(
            "holds one JSON document, not records: a .json table is a JSON array of objects or JSON lines.",
            path=path,
        )
    yield from whole


def _csv_value(raw: str | None) -> Any:
    if raw is None or raw == "":
        return None
    if _INT_RE.fullmatch(raw):
        return int(raw)
    if _FLOAT_RE.fullmatch(raw):
        number = float(raw)
        if math.isfinite(number):
            return number
    return raw


def _iter_csv(path: Path, delimiter: str) -> Iterator[dict[str, Any]]:
    # A parse error is on the last line handed to the csv module (its own line_num lags by
    # one when the error is raised).
    last_line = 0

    def lines() -> Iterator[str]:
        nonlocal last_line
        for lineno, text in _lines(path):
            last_line = lineno
            yield text

    try:
        for row in csv.DictReader(lines(), delimiter=delimiter):
            yield {str(key): _csv_value(value) for key, value in row.items() if key is not None}
    except csv.Error as err:
        raise TabularFormatError(f"not valid CSV ({err}); fix the row.", path=path, line=last_line) from err


def _iter_parquet(path: Path) -> Iterator[dict[str, Any]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise TabularReaderMissingError(
            f"reading Parquet needs pyarrow, which is not installed on this worker ({err}). "
            "Install it (`pip install pyarrow`; airflow-provider-llmops depends on it).",
            path=path,
        ) from err
    try:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches():
            yield from batch.to_pylist()
    except (pa.ArrowException, OSError) as err:
        raise TabularFormatError(
            f"not a readable Parquet file ({err}). Rewrite it with a Parquet writer (pyarrow, pandas, "
            "Spark) and version it again.",
            path=path,
        ) from err
