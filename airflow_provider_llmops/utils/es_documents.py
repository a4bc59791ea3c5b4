"""Documents to index, read with `utils.tabular.iter_records` (JSONL, Parquet, JSON, CSV/TSV).

`path` is a file, or a folder of them such as a DvcPullOperator's output. Each record needs an
id field and a text field; a record without them is refused with the file and line (record
number for formats without lines) before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_llmops.exceptions import ElasticsearchInputError
from airflow_provider_llmops.utils.tabular import NotATableError, TabularFormatError, is_tabular, iter_records

__all__ = ["SourceDocument", "input_files", "iter_documents", "where"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceDocument:
    """One input record: its id, text and the metadata fields asked for, and where it came from."""

    id: str
    text: str
    metadata: dict[str, Any]
    path: str
    record: int


def input_files(path: str | Path) -> list[Path]:
    """The data files at `path`: the file itself, or the folder's tabular files, sorted."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ElasticsearchInputError(f"Input path {str(root)!r} does not exist.", path=str(root))
    files = sorted(p for p in root.rglob("*") if p.is_file() and is_tabular(p.name))
    if not files:
        raise ElasticsearchInputError(
            f"Input folder {str(root)!r} holds no JSONL, Parquet, JSON or CSV files; nothing to index.",
            path=str(root),
        )
    return files


def _line_of(path: Path, record: int) -> int | None:
    """The line of the `record`-th record (1-based) in a line-based file, for error messages."""
    name = path.name.lower()
    if name.endswith((".jsonl", ".ndjson")):
        with path.open(encoding="utf-8-sig") as fh:
            seen = 0
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    seen += 1
                    if seen == record:
                        return number
    if name.endswith((".csv", ".tsv")):
        return record + 1  # after the header row
    return None


def _records(file: Path, single: bool) -> Iterator[dict[str, Any]]:
    try:
        yield from iter_records(file)
    except NotATableError:
        if single:
            raise
        # A folder pulled from DVC may hold metadata documents next to the data.
        log.warning("Skipping %s: a JSON document, not records", file)
    except TabularFormatError as err:
        raise ElasticsearchInputError(
            f"{err}. Fix the file, or remove it from the input folder.", path=str(err.path), line=err.line
        ) from err


def where(file: Path, number: int) -> tuple[str, int | None]:
    """("<file>, line L" or "<file>, record N", line) for the `number`-th record of `file`."""
    line = _line_of(file, number)
    return (f"{file}, line {line}" if line is not None else f"{file}, record {number}"), line


def iter_documents(
    path: str | Path, *, id_field: str = "id", text_field: str = "text", metadata_fields: Sequence[str] = ()
) -> Iterator[SourceDocument]:
    """Every document under `path`, validated; ElasticsearchInputError names the file and line."""
    files = input_files(path)
    for file in files:
        for number, record in enumerate(_records(file, len(files) == 1), start=1):
            doc_id, text = record.get(id_field), record.get(text_field)
            missing = [
                name for name, value in ((id_field, doc_id), (text_field, text)) if value in (None, "")
            ]
            if missing:
                place, line = where(file, number)
                raise ElasticsearchInputError(
                    f"{place}: missing the {' and '.join(repr(m) for m in missing)} field"
                    f"{'s' if len(missing) > 1 else ''} (id_field={id_field!r}, text_field={text_field!r}). "
                    "Fix the record, or set id_field/text_field to the names your data uses.",
                    path=str(file),
                    line=line,
                )
            if not isinstance(text, str):
                place, line = where(file, number)
                raise ElasticsearchInputError(
                    f"{place}: field {text_field!r} must be a string, got {type(text).__name__}.",
                    path=str(file),
                    line=line,
                )
            yield SourceDocument(
                id=str(doc_id),
                text=text,
                metadata={name: record.get(name) for name in metadata_fields if record.get(name) is not None},
                path=str(file),
                record=number,
            )
