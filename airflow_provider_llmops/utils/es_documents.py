"""Documents to index, read from JSONL or Parquet files (a file, or a folder of them such as a DVC pull).

Each record needs an id field and a text field; a record without them is refused with the file
and record number (= line number in JSONL), before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_llmops.exceptions import ElasticsearchInputError

__all__ = ["SUFFIXES", "SourceDocument", "input_files", "iter_documents", "read_records"]

SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet")


@dataclass(frozen=True)
class SourceDocument:
    """One input record: its id, text and the metadata fields asked for, and where it came from."""

    id: str
    text: str
    metadata: dict[str, Any]
    path: str
    record: int


def input_files(path: str | Path) -> list[Path]:
    """The data files at `path` (the file itself, or those of the folder, sorted); refuses none."""
    root = Path(path)
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    else:
        raise ElasticsearchInputError(f"Input path {str(root)!r} does not exist.", path=str(root))
    if not files:
        raise ElasticsearchInputError(
            f"Input folder {str(root)!r} holds no {', '.join(SUFFIXES)} files; nothing to index.",
            path=str(root),
        )
    return files


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of one JSONL/JSON/Parquet file, through the shared `utils.tabular` reader."""
    try:
        from airflow_provider_llmops.utils.tabular import iter_records
    except ImportError:  # until utils.tabular is merged: the two formats this capability needs
        yield from _read_fallback(Path(path))
        return
    yield from iter_records(path)


def _read_fallback(path: Path) -> Iterator[dict[str, Any]]:
    import json

    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches():
            yield from batch.to_pylist()
        return
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as err:
                    raise ElasticsearchInputError(
                        f"{path}, line {number}: not JSON: {err}", path=str(path), line=number
                    ) from err


def iter_documents(
    path: str | Path, *, id_field: str = "id", text_field: str = "text", metadata_fields: Sequence[str] = ()
) -> Iterator[SourceDocument]:
    """Every document under `path`, validated; ElasticsearchInputError names the file and record."""
    for file in input_files(path):
        for number, record in enumerate(read_records(file), start=1):
            where = f"{file}, record {number}" + (f" (line {number})" if file.suffix != ".parquet" else "")
            if not isinstance(record, dict):
                raise ElasticsearchInputError(
                    f"{where}: expected an object, got {type(record).__name__}.", path=str(file), line=number
                )
            doc_id, text = record.get(id_field), record.get(text_field)
            missing = [
                name for name, value in ((id_field, doc_id), (text_field, text)) if value in (None, "")
            ]
            if missing:
                raise ElasticsearchInputError(
                    f"{where}: missing the {' and '.join(repr(m) for m in missing)} field"
                    f"{'s' if len(missing) > 1 else ''} (id_field={id_field!r}, text_field={text_field!r}). "
                    "Fix the record, or set id_field/text_field to the names your data uses.",
                    path=str(file),
                    line=number,
                )
            if not isinstance(text, str):
                raise ElasticsearchInputError(
                    f"{where}: field {text_field!r} must be a string, got {type(text).__name__}.",
                    path=str(file),
                    line=number,
                )
            yield SourceDocument(
                id=str(doc_id),
                text=text,
                metadata={name: record.get(name) for name in metadata_fields if record.get(name) is not None},
                path=str(file),
                record=number,
            )
