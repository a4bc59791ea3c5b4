"""Compare two materialised dataset versions and write a human-readable review.

This module is a plain service: it needs no Airflow, imports matplotlib only inside the chart
functions (Agg canvas, no pyplot global state) and never imports numpy itself, so importing it
at DAG parse time costs nothing. `DvcDatasetReviewOperator` calls `review_datasets` on two
folders (or files) that `dvc` materialised, and the approval step shows
`DatasetReview.summary_text` to the reviewer.

What it reports:

* files added, removed, modified (by content md5, the hash DVC uses) and their sizes;
* for tabular files (``.jsonl``/``.ndjson``, ``.json`` holding JSON lines or an array of
  objects, ``.csv``/``.tsv``, ``.parquet`` when pyarrow is installed): record counts, schema
  changes (columns added, removed, type changes), value counts of low-cardinality columns
  (labels: strings, booleans, and integers such as class ids 0/1/2), text length percentiles
  (p50/p90/p99) of the other string columns, and the first few records of the new version;
* PNG charts of those distribution changes.

Output is deterministic: keys and rows are sorted, samples are the first N records, and
nothing depends on the wall clock, so a rerun on the same inputs gives identical files.
Labels that are full git shas (the operator passes them when no tag names the version) are
shown as their first 12 characters in the text, Markdown and charts; the summary dict keeps
them whole.

Example::

    review = review_datasets(old, new, out, old_label="v1", new_label="v2")
    print(review.summary_text)
    review.markdown_path  # out/review.md, next to out/files.png and out/dist-*.png
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_llmops.exceptions import LlmopsError

__all__ = [
    "DatasetFormatError",
    "DatasetNotFoundError",
    "DatasetReview",
    "DatasetReviewError",
    "review_datasets",
]

MARKDOWN_NAME = "review.md"
FILES_CHART_NAME = "files.png"
# A string column is "categorical" (a label) when it has at most this many distinct values and
# either its values repeat (distinct <= half the values) or they are short (<= MAX_LABEL_CHARS).
# An integer column (class ids such as 0/1/2) is categorical when it has at most this many
# distinct values and they repeat (distinct <= half the values), so small ids/counters are not.
MAX_CATEGORIES = 20
MAX_LABEL_CHARS = 32
# Tables analysed in depth; further tabular files are still listed as files.
MAX_TABLES = 20
# Columns charted per table (first ones in sorted order).
MAX_CHART_COLUMNS = 6
# Longest value shown in a sample record.
MAX_SAMPLE_CHARS = 160
# Items listed per category in the summary dict and the summary text.
MAX_LISTED = 10
PERCENTILES = (50, 90, 99)
# Labels shown shortened: full git shas (SHA-1 or SHA-256).
_FULL_SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
SHORT_SHA_CHARS = 12
TABULAR_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")
_HASH_CHUNK = 1 << 20


class DatasetReviewError(LlmopsError):
    """The dataset review could not be produced."""


class DatasetNotFoundError(DatasetReviewError, FileNotFoundError):
    """A dataset folder or file to review does not exist."""


class DatasetFormatError(DatasetReviewError, ValueError):
    """A tabular file could not be parsed; the message names the file and the line."""


@dataclass(frozen=True)
class DatasetReview:
    """What `review_datasets` wrote, and a small JSON-serialisable summary of it."""

    markdown_path: Path
    chart_paths: list[Path]
    summary: dict[str, Any]
    summary_text: str


# --------------------------------------------------------------------------------------------
# File inventory
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FileInfo:
    path: Path
    size: int
    md5: str


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _inventory(root: Path, single_name: str | None = None) -> dict[str, _FileInfo]:
    """Map relative POSIX paths to file info. A single file is keyed by `single_name` or its name."""
    if root.is_file():
        return {single_name or root.name: _FileInfo(root, root.stat().st_size, _md5(root))}
    files: dict[str, _FileInfo] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        # DVC/git bookkeeping is not data.
        if any(part in (".dvc", ".git") for part in rel.parts) or not path.is_file():
            continue
        files[rel.as_posix()] = _FileInfo(path, path.stat().st_size, _md5(path))
    return files


# --------------------------------------------------------------------------------------------
# Tabular statistics
# --------------------------------------------------------------------------------------------


def _is_tabular(name: str) -> bool:
    lower = name.lower()
    if lower.endswith(".parquet"):
        return _has_pyarrow()
    return lower.endswith(TABULAR_SUFFIXES)


def _has_pyarrow() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return type(value).__name__


_INT_RE = re.compile(r"[+-]?\d+")


def _csv_value(raw: str | None) -> Any:
    """Infer a CSV cell's type: empty -> None, then int, float, str."""
    if raw is None or raw == "":
        return None
    if _INT_RE.fullmatch(raw):
        return int(raw)
    try:
        number = float(raw)
    except ValueError:
        return raw
    return number if math.isfinite(number) else raw


def _iter_json_lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                raise DatasetFormatError(
                    f"{path}:{lineno}: not valid JSON ({err.msg}). Each line of a JSON-lines file must be "
                    "one JSON object; fix or remove the line and version the dataset again."
                ) from err
            yield value if isinstance(value, dict) else {"value": value}


def _iter_records(path: Path) -> Iterator[dict[str, Any]] | None:
    """Records of a tabular file, or None when the file turns out not to be a table."""
    lower = path.name.lower()
    if lower.endswith((".jsonl", ".ndjson")):
        return _iter_json_lines(path)
    if lower.endswith(".json"):
        text = path.read_text(encoding="utf-8")
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            return _iter_json_lines(path)  # JSON lines stored as .json
        if isinstance(whole, list) and all(isinstance(item, dict) for item in whole):
            return iter(whole)
        return None  # one JSON document (metadata, config): not a table
    if lower.endswith((".csv", ".tsv")):
        return _iter_csv(path, delimiter="\t" if lower.endswith(".tsv") else ",")
    if lower.endswith(".parquet"):
        return _iter_parquet(path)
    return None


def _iter_csv(path: Path, delimiter: str) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        try:
            for row in reader:
                yield {str(key): _csv_value(value) for key, value in row.items() if key is not None}
        except csv.Error as err:
            raise DatasetFormatError(f"{path}:{reader.line_num}: not valid CSV ({err}).") from err


def _iter_parquet(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq  # optional; only reached when installed

    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches():
        yield from batch.to_pylist()


@dataclass
class _ColumnStats:
    types: Counter[str] = field(default_factory=Counter)
    values: Counter[str] | None = field(default_factory=Counter)  # None once over MAX_CATEGORIES
    lengths: list[int] = field(default_factory=list)

    def add(self, value: Any) -> None:
        kind = _type_name(value)
        self.types[kind] += 1
        if isinstance(value, str):
            self.lengths.append(len(value))
            if self.values is not None:
                self.values[value] += 1
                if len(self.values) > MAX_CATEGORIES:
                    self.values = None
        elif isinstance(value, bool):
            if self.values is not None:
                self.values[str(value).lower()] += 1
        elif isinstance(value, int) and self.values is not None:
            # Low-cardinality integers are class labels (0/1/2); counted under their decimal text.
            self.values[str(value)] += 1
            if len(self.values) > MAX_CATEGORIES:
                self.values = None

    @property
    def type(self) -> str:
        kinds = sorted(kind for kind in self.types if kind != "null")
        if kinds == ["float", "int"]:
            return "float"
        return "|".join(kinds) if kinds else "null"

    @property
    def categorical(self) -> bool:
        if self.type not in ("str", "bool", "int") or not self.values:
            return False
        if self.type == "bool":
            return True
        distinct, total = len(self.values), sum(self.values.values())
        if self.type == "int":
            return distinct * 2 <= total
        return distinct * 2 <= total or max(self.lengths, default=0) <= MAX_LABEL_CHARS

    @property
    def is_text(self) -> bool:
        return self.type == "str" and not self.categorical and bool(self.lengths)


@dataclass
class _TableStats:
    records: int = 0
    columns: dict[str, _ColumnStats] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)


def _table_stats(path: Path, samples: int) -> _TableStats | None:
    records = _iter_records(path)
    if records is None:
        return None
    stats = _TableStats()
    try:
        for record in records:
            stats.records += 1
            if len(stats.samples) < samples:
                stats.samples.append(record)
            for key, value in record.items():
                column = stats.columns.get(key)
                if column is None:
                    column = stats.columns[key] = _ColumnStats()
                    # Records before this one lacked the key: count them as nulls.
                    column.types["null"] += stats.records - 1
                column.add(value)
            for key, column in stats.columns.items():
                if key not in record:
                    column.types["null"] += 1
    except UnicodeDecodeError as err:
        raise DatasetFormatError(
            f"{path}: not UTF-8 text ({err.reason}); cannot read it as a table."
        ) from err
    return stats


def _percentiles(lengths: list[int]) -> dict[str, int]:
    """Nearest-rank percentiles (deterministic, integer)."""
    if not lengths:
        return {}
    ordered = sorted(lengths)
    n = len(ordered)
    return {f"p{p}": ordered[max(0, math.ceil(p / 100 * n) - 1)] for p in PERCENTILES}


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------


@dataclass
class _TableDiff:
    name: str
    old: _TableStats | None
    new: _TableStats | None
    columns_added: list[str]
    columns_removed: list[str]
    type_changes: dict[str, tuple[str, str]]
    categorical: list[str]
    text: list[str]

    def label_changes(self) -> dict[str, dict[str, list[str]]]:
        changes: dict[str, dict[str, list[str]]] = {}
        for column in self.categorical:
            old_values = _counted(self.old, column)
            new_values = _counted(self.new, column)
            # A side with too many distinct values (or without the column) has no counts to compare.
            if old_values is None or new_values is None:
                continue
            added = sorted(set(new_values) - set(old_values), key=_value_key)
            removed = sorted(set(old_values) - set(new_values), key=_value_key)
            if added or removed:
                changes[column] = {"added": added[:MAX_LISTED], "removed": removed[:MAX_LISTED]}
        return changes

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "old_records": self.old.records if self.old else None,
            "new_records": self.new.records if self.new else None,
            "columns": sorted(self.new.columns)[: MAX_LISTED * 5] if self.new else [],
            "columns_added": self.columns_added[:MAX_LISTED],
            "columns_removed": self.columns_removed[:MAX_LISTED],
            "type_changes": {col: list(pair) for col, pair in sorted(self.type_changes.items())},
            "label_changes": self.label_changes(),
        }
        if self.new is not None:
            summary["label_counts"] = {
                col: dict(sorted(_counts(self.new, col).items(), key=lambda kv: _value_key(kv[0])))
                for col in self.categorical
            }
            summary["text_length"] = {
                col: _percentiles(self.new.columns[col].lengths)
                for col in self.text
                if col in self.new.columns
            }
        return summary


def _value_key(value: str) -> tuple[int, int, str]:
    """Sort key for counted values: integers (class ids) numerically, then strings."""
    if _INT_RE.fullmatch(value):
        return (0, int(value), value)
    return (1, 0, value)


def _counted(stats: _TableStats | None, column: str) -> Counter[str] | None:
    """Value counts of `column`, or None when that side lacks the column or has too many values."""
    if stats is None or column not in stats.columns:
        return None
    return stats.columns[column].values


def _counts(stats: _TableStats | None, column: str) -> Counter[str]:
    return _counted(stats, column) or Counter()


def _compare_tables(name: str, old: _TableStats | None, new: _TableStats | None) -> _TableDiff:
    old_cols = old.columns if old else {}
    new_cols = new.columns if new else {}
    added = sorted(set(new_cols) - set(old_cols)) if old is not None else []
    removed = sorted(set(old_cols) - set(new_cols)) if new is not None else []
    type_changes = {
        col: (old_cols[col].type, new_cols[col].type)
        for col in sorted(set(old_cols) & set(new_cols))
        if old_cols[col].type != new_cols[col].type
    }
    categorical, text = [], []
    for col in sorted(set(old_cols) | set(new_cols)):
        # Judge by the new version; a removed column by the old one.
        stats = new_cols.get(col) or old_cols[col]
        if stats.categorical:
            categorical.append(col)
        elif stats.is_text or (col in old_cols and old_cols[col].is_text and col not in new_cols):
            text.append(col)
    return _TableDiff(name, old, new, added, removed, type_changes, categorical, text)


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover - loop always returns


def _md_cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    text = text.replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    return _truncate(text)


def _truncate(text: str, limit: int = MAX_SAMPLE_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... (+{len(text) - limit} chars)"


def _sample_record(record: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for key in sorted(record):
        value = record[key]
        if isinstance(value, str):
            shown[key] = _truncate(value)
        elif isinstance(value, list | dict):
            shown[key] = _truncate(json.dumps(value, sort_keys=True, ensure_ascii=False))
        else:
            shown[key] = value
    return shown


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() or "table"


def _display_label(label: str) -> str:
    """A label for people: a full git sha is shortened to its first 12 characters."""
    return label[:SHORT_SHA_CHARS] if _FULL_SHA_RE.fullmatch(label) else label


def _delta(old: int | None, new: int | None) -> str:
    if old is None or new is None:
        return ""
    diff = new - old
    return f"{diff:+d}"


def _render_markdown(
    *,
    old_label: str,
    new_label: str,
    first_version: bool,
    changes: dict[str, list[str]],
    old_files: dict[str, _FileInfo],
    new_files: dict[str, _FileInfo],
    tables: list[_TableDiff],
    skipped_tables: list[str],
    charts: dict[str, list[Path]],
    samples: int,
) -> str:
    full_labels = (old_label, new_label)
    old_label, new_label = _display_label(old_label), _display_label(new_label)
    lines: list[str] = [f"# Dataset review: {old_label} -> {new_label}", ""]
    if (old_label, new_label) != full_labels:
        shown = (f"`{full}`" for full in full_labels)
        lines += ["Versions: " + " -> ".join(shown), ""]
    if first_version:
        lines += [f"First version: there is no previous version to compare `{new_label}` with.", ""]
    old_bytes = sum(info.size for info in old_files.values())
    new_bytes = sum(info.size for info in new_files.values())
    lines += [
        "## Files",
        "",
        f"| | {old_label} | {new_label} |",
        "|---|---:|---:|",
        f"| files | {len(old_files)} | {len(new_files)} |",
        f"| size | {_human_bytes(old_bytes)} | {_human_bytes(new_bytes)} |",
        "",
        f"Added: {len(changes['added'])}, removed: {len(changes['removed'])}, "
        f"modified: {len(changes['modified'])}, unchanged: {len(changes['unchanged'])}.",
        "",
    ]
    changed_rows = [(kind, name) for kind in ("added", "removed", "modified") for name in changes[kind]]
    if changed_rows:
        lines += ["| change | file | old size | new size | new md5 |", "|---|---|---:|---:|---|"]
        for kind, name in changed_rows:
            old_info, new_info = old_files.get(name), new_files.get(name)
            lines.append(
                f"| {kind} | `{_md_cell(name)}` "
                f"| {_human_bytes(old_info.size) if old_info else ''} "
                f"| {_human_bytes(new_info.size) if new_info else ''} "
                f"| {new_info.md5 if new_info else ''} |"
            )
        lines.append("")
    lines += [f"![File changes]({FILES_CHART_NAME})", ""]

    for diff in tables:
        lines += _render_table(diff, old_label, new_label, charts.get(diff.name, []), samples)
    if skipped_tables:
        lines += [
            f"Not analysed (more than {MAX_TABLES} tables): " + ", ".join(f"`{n}`" for n in skipped_tables),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def _render_table(  # noqa: C901 - one table section, step by step
    diff: _TableDiff, old_label: str, new_label: str, charts: list[Path], samples: int
) -> list[str]:
    old_n = diff.old.records if diff.old else None
    new_n = diff.new.records if diff.new else None
    lines = [
        f"## Table `{diff.name}`",
        "",
        f"Records: {old_n if old_n is not None else '-'} -> {new_n if new_n is not None else '-'}"
        + (f" ({_delta(old_n, new_n)})" if old_n is not None and new_n is not None else ""),
        "",
    ]
    old_cols = diff.old.columns if diff.old else {}
    new_cols = diff.new.columns if diff.new else {}
    lines += ["### Schema", "", f"| column | {old_label} | {new_label} | change |", "|---|---|---|---|"]
    for col in sorted(set(old_cols) | set(new_cols)):
        if col in diff.columns_added:
            change = "added"
        elif col in diff.columns_removed:
            change = "removed"
        elif col in diff.type_changes:
            change = "type changed"
        else:
            change = ""
        lines.append(
            f"| `{_md_cell(col)}` | {old_cols[col].type if col in old_cols else ''} "
            f"| {new_cols[col].type if col in new_cols else ''} | {change} |"
        )
    lines.append("")

    if diff.categorical:
        lines += ["### Value counts", ""]
        for col in diff.categorical:
            old_seen, new_seen = _counted(diff.old, col), _counted(diff.new, col)
            old_counts, new_counts = old_seen or Counter(), new_seen or Counter()
            lines += [f"`{_md_cell(col)}`:", "", f"| value | {old_label} | {new_label} | change |"]
            lines.append("|---|---:|---:|---|")
            for value in _ordered_values(old_counts, new_counts):
                old_c = old_counts.get(value, 0) if old_seen is not None else None
                new_c = new_counts.get(value, 0) if new_seen is not None else None
                note = ""
                if old_seen is not None and new_seen is not None:
                    note = "new value" if value not in old_seen else "gone" if value not in new_seen else ""
                lines.append(
                    f"| {_md_cell(value)} | {'' if old_c is None else old_c} "
                    f"| {'' if new_c is None else new_c} | {note} |"
                )
            lines.append("")

    if diff.text:
        lines += [
            "### Text length (characters)",
            "",
            f"| column | {old_label} p50/p90/p99 | {new_label} p50/p90/p99 |",
            "|---|---|---|",
        ]
        for col in diff.text:
            old_p = _percentiles(old_cols[col].lengths) if col in old_cols else {}
            new_p = _percentiles(new_cols[col].lengths) if col in new_cols else {}
            lines.append(f"| `{_md_cell(col)}` | {_fmt_percentiles(old_p)} | {_fmt_percentiles(new_p)} |")
        lines.append("")

    for chart in charts:
        lines += [f"![Distributions of {diff.name}]({chart.name})", ""]

    if diff.new is not None and diff.new.samples:
        lines += [f"### Sample records ({new_label}, first {min(samples, len(diff.new.samples))})", ""]
        lines.append("```json")
        lines += [
            json.dumps(_sample_record(record), sort_keys=True, ensure_ascii=False)
            for record in diff.new.samples
        ]
        lines += ["```", ""]
    return lines


def _fmt_percentiles(values: dict[str, int]) -> str:
    return "/".join(str(values[f"p{p}"]) for p in PERCENTILES) if values else "-"


def _ordered_values(old: Counter[str], new: Counter[str]) -> list[str]:
    """Values by new count (then old count) descending, then by value: stable across runs."""
    values = set(old) | set(new)
    return sorted(values, key=lambda v: (-new.get(v, 0), -old.get(v, 0), _value_key(v)))


# --------------------------------------------------------------------------------------------
# Charts (matplotlib imported here only)
# --------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    # No timestamps or software version in the PNG, so reruns give identical bytes.
    fig.savefig(path, format="png", metadata={"Software": None})
    return path


def _integer_y(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _files_chart(path: Path, changes: dict[str, list[str]], old_label: str, new_label: str) -> Path:
    fig = _new_figure(6.0, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    kinds = ["added", "removed", "modified", "unchanged"]
    counts = [len(changes[kind]) for kind in kinds]
    bars = ax.bar(kinds, counts, color=["#2ca02c", "#d62728", "#ff7f0e", "#7f7f7f"])
    ax.bar_label(bars)
    ax.margins(y=0.15)
    _integer_y(ax)
    ax.set_ylabel("files")
    ax.set_title(f"File changes {old_label} -> {new_label}")
    fig.tight_layout()
    return _save(fig, path)


def _table_chart(path: Path, diff: _TableDiff, old_label: str, new_label: str) -> Path | None:
    columns = [("counts", c) for c in diff.categorical] + [("lengths", c) for c in diff.text]
    columns = columns[:MAX_CHART_COLUMNS]
    if not columns or diff.new is None:
        return None
    fig = _new_figure(7.0, 3.0 * len(columns))
    for index, (kind, col) in enumerate(columns, start=1):
        ax = fig.add_subplot(len(columns), 1, index)
        if kind == "counts":
            _bar_counts(ax, diff, col, old_label, new_label)
        else:
            _hist_lengths(ax, diff, col, old_label, new_label)
    fig.tight_layout()
    return _save(fig, path)


def _bar_counts(ax: Any, diff: _TableDiff, col: str, old_label: str, new_label: str) -> None:
    old_counts, new_counts = _counts(diff.old, col), _counts(diff.new, col)
    values = _ordered_values(old_counts, new_counts)
    xs = list(range(len(values)))
    width = 0.4
    if diff.old is not None:
        ax.bar([x - width / 2 for x in xs], [old_counts.get(v, 0) for v in values], width, label=old_label)
    ax.bar([x + width / 2 for x in xs], [new_counts.get(v, 0) for v in values], width, label=new_label)
    ax.set_xticks(xs)
    ax.set_xticklabels([_truncate(v, 20) for v in values], rotation=30, ha="right")
    _integer_y(ax)
    ax.set_ylabel("records")
    ax.set_title(f"{diff.name}: {col} value counts")
    ax.legend()


def _hist_lengths(ax: Any, diff: _TableDiff, col: str, old_label: str, new_label: str) -> None:
    series = []
    if diff.old is not None and col in diff.old.columns:
        series.append((old_label, diff.old.columns[col].lengths))
    if diff.new is not None and col in diff.new.columns:
        series.append((new_label, diff.new.columns[col].lengths))
    everything = [n for _, lengths in series for n in lengths]
    low, high = (min(everything), max(everything)) if everything else (0, 1)
    bins = max(1, min(30, high - low + 1))
    for label, lengths in series:
        if lengths:
            ax.hist(lengths, bins=bins, range=(low, max(high, low + 1)), alpha=0.5, label=label)
    ax.set_xlabel("characters")
    ax.set_ylabel("records")
    ax.set_title(f"{diff.name}: {col} length")
    ax.legend()


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def review_datasets(
    old_dir: Path | None,
    new_dir: Path,
    out_dir: Path,
    *,
    old_label: str,
    new_label: str,
    samples: int = 3,
) -> DatasetReview:
    """Compare `old_dir` (None for a first version) with `new_dir`; write review.md and PNGs to `out_dir`.

    Both may be folders or single files. Raises DatasetNotFoundError when a given path does
    not exist, and DatasetFormatError when a tabular file cannot be parsed.
    """
    new_dir = Path(new_dir)
    out_dir = Path(out_dir)
    if not new_dir.exists():
        raise DatasetNotFoundError(
            f"New dataset version {new_label!r} not found at {new_dir}. Pull it first "
            "(DvcPullOperator / `dvc pull`) and pass the folder or file it materialised."
        )
    if old_dir is not None:
        old_dir = Path(old_dir)
        if not old_dir.exists():
            raise DatasetNotFoundError(
                f"Old dataset version {old_label!r} not found at {old_dir}. Pass old_dir=None to review "
                "a first version, or materialise the old revision first."
            )
    if samples < 0:
        raise ValueError(f"samples must be >= 0, got {samples}")

    new_files = _inventory(new_dir)
    # Two single files are the same dataset under (possibly) different names: compare them.
    single = new_dir.name if new_dir.is_file() and old_dir is not None and old_dir.is_file() else None
    old_files = _inventory(old_dir, single) if old_dir is not None else {}

    both = set(old_files) & set(new_files)
    changes: dict[str, list[str]] = {
        "added": sorted(set(new_files) - set(old_files)),
        "removed": sorted(set(old_files) - set(new_files)),
        "modified": sorted(n for n in both if old_files[n].md5 != new_files[n].md5),
        "unchanged": sorted(n for n in both if old_files[n].md5 == new_files[n].md5),
    }

    table_names = sorted(name for name in set(old_files) | set(new_files) if _is_tabular(name))
    skipped_tables = table_names[MAX_TABLES:]
    tables: list[_TableDiff] = []
    for name in table_names[:MAX_TABLES]:
        old_stats = _table_stats(old_files[name].path, samples) if name in old_files else None
        new_stats = _table_stats(new_files[name].path, samples) if name in new_files else None
        if old_stats is None and new_stats is None:
            continue  # e.g. a .json that holds one document
        tables.append(_compare_tables(name, old_stats, new_stats))

    out_dir.mkdir(parents=True, exist_ok=True)
    old_shown, new_shown = _display_label(old_label), _display_label(new_label)
    chart_paths = [_files_chart(out_dir / FILES_CHART_NAME, changes, old_shown, new_shown)]
    charts: dict[str, list[Path]] = {}
    used_slugs: set[str] = set()
    for diff in tables:
        slug = _slug(diff.name)
        while slug in used_slugs:
            slug += "-x"
        used_slugs.add(slug)
        chart = _table_chart(out_dir / f"dist-{slug}.png", diff, old_shown, new_shown)
        if chart is not None:
            charts[diff.name] = [chart]
            chart_paths.append(chart)

    markdown = _render_markdown(
        old_label=old_label,
        new_label=new_label,
        first_version=old_dir is None,
        changes=changes,
        old_files=old_files,
        new_files=new_files,
        tables=tables,
        skipped_tables=skipped_tables,
        charts=charts,
        samples=samples,
    )
    markdown_path = out_dir / MARKDOWN_NAME
    markdown_path.write_text(markdown, encoding="utf-8")

    summary: dict[str, Any] = {
        "old_label": old_label,
        "new_label": new_label,
        "first_version": old_dir is None,
        "files": {
            **{kind: len(names) for kind, names in changes.items()},
            "old_count": len(old_files),
            "new_count": len(new_files),
            "old_bytes": sum(info.size for info in old_files.values()),
            "new_bytes": sum(info.size for info in new_files.values()),
            "changed": {kind: changes[kind][:MAX_LISTED] for kind in ("added", "removed", "modified")},
        },
        "tables": {diff.name: diff.summary() for diff in tables},
        "tables_skipped": len(skipped_tables),
    }
    return DatasetReview(
        markdown_path=markdown_path,
        chart_paths=chart_paths,
        summary=summary,
        summary_text=_summary_text(summary, tables),
    )


def _summary_text(summary: dict[str, Any], tables: list[_TableDiff]) -> str:
    files = summary["files"]
    old_label, new_label = _display_label(summary["old_label"]), _display_label(summary["new_label"])
    head = f"Dataset review {old_label} -> {new_label}"
    if summary["first_version"]:
        head += " (first version)"
    lines = [
        f"{head}: {files['added']} added, {files['removed']} removed, {files['modified']} modified, "
        f"{files['unchanged']} unchanged files ({_human_bytes(files['old_bytes'])} -> "
        f"{_human_bytes(files['new_bytes'])})."
    ]
    for diff in tables:
        table = summary["tables"][diff.name]
        old_n, new_n = table["old_records"], table["new_records"]
        if old_n is None:
            parts = [f"{new_n} records (new table)"]
        elif new_n is None:
            parts = [f"removed table (had {old_n} records)"]
        else:
            parts = [f"{old_n} -> {new_n} records ({_delta(old_n, new_n)})"]
        if table["columns_added"]:
            parts.append("columns added: " + ", ".join(table["columns_added"]))
        if table["columns_removed"]:
            parts.append("columns removed: " + ", ".join(table["columns_removed"]))
        for col, (old_t, new_t) in table["type_changes"].items():
            parts.append(f"{col} type {old_t} -> {new_t}")
        for col, change in table["label_changes"].items():
            if change["added"]:
                parts.append(f"{col} values added: " + ", ".join(change["added"]))
            if change["removed"]:
                parts.append(f"{col} values removed: " + ", ".join(change["removed"]))
        lines.append(f"{diff.name}: " + "; ".join(parts) + ".")
    return "\n".join(lines)
