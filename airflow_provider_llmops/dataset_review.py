"""Compare two materialised dataset versions and write a human-readable review.

This module is a plain service: it needs no Airflow, imports matplotlib only inside the chart
functions (Agg canvas, no pyplot global state), pyarrow only when it reads a Parquet file, and
never imports numpy itself, so importing it at DAG parse time costs nothing.
`DvcDatasetReviewOperator` calls `review_datasets` on two folders (or files) that `dvc`
materialised; the approval step shows `DatasetReview.approval_markdown` (or `summary_text`).

What it reports:

* files added, removed, modified (by content md5, the hash DVC uses) and their sizes;
* for tabular files (read by `airflow_provider_llmops.utils.tabular`: ``.jsonl``/``.ndjson``,
  ``.json`` holding JSON lines or an array of objects, ``.csv``/``.tsv``, ``.parquet``): record
  counts, schema changes (columns added, removed, type changes), null rates, value counts and
  shares of low-cardinality columns (labels: strings, booleans, and integers such as class ids
  0/1/2), text length percentiles (p50/p90/p99) of the other string columns, and the first few
  records of the new version;
* flagged shifts: a label's share moving by `SHARE_SHIFT_PP` percentage points or more (50/50 ->
  90/10 is flagged), a column's null rate moving by `NULL_SHIFT_PP` points, a text column's
  p50 or p90 length changing by `LENGTH_SHIFT_PCT` percent, the record count by
  `RECORDS_SHIFT_PCT` percent. They lead the Markdown, the summary text and the approval body;
* files it could not analyse (the library for a format missing, a damaged file, a baseline that
  does not parse), with the reason, instead of leaving them out;
* PNG charts of those distributions: shares instead of counts when the two totals differ,
  whole-number ticks for counts and lengths, histograms of the two versions side by side.

The review fails (DatasetFormatError, naming file and line) only when the version under
review has a record that does not parse: that data must be fixed before anyone approves it.

Output is deterministic: keys and rows are sorted, samples are the first N records, and
nothing depends on the wall clock, so a rerun on the same inputs gives identical files.
Labels that are full git shas (the operator passes them when no tag names the version) are
shown as their first 12 characters in the text, Markdown and charts; the summary dict keeps
them whole.

Example::

    review = review_datasets(old, new, out, old_label="v1", new_label="v2")
    print(review.summary_text)
    review.approval_markdown  # compact Markdown for the approval (HITL) body
    review.markdown_path  # out/review.md, next to out/files.png and out/dist-*.png
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_llmops.exceptions import LlmopsError
from airflow_provider_llmops.utils.tabular import (
    NotATableError,
    TabularFormatError,
    TabularReaderMissingError,
    is_tabular,
    iter_records,
)

__all__ = [
    "DatasetFormatError",
    "DatasetNotFoundError",
    "DatasetReview",
    "DatasetReviewError",
    "render_approval_markdown",
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
# Longest value shown in the summary text and flags.
MAX_VALUE_CHARS = 40
# Items listed per category in the summary dict and the summary text.
MAX_LISTED = 10
# Flagged shifts kept in the summary (the Markdown review lists them all).
MAX_FLAGS = 40
PERCENTILES = (50, 90, 99)
# Flag thresholds. Shares are of a column's non-null values; rates and shares in percent.
SHARE_SHIFT_PP = 10.0
NULL_SHIFT_PP = 5.0
LENGTH_SHIFT_PCT = 25.0
# A length change of a few characters is noise however large in percent (2 -> 3 chars).
MIN_LENGTH_SHIFT_CHARS = 5
RECORDS_SHIFT_PCT = 25.0
# The approval body: the Airflow UI shows it in a drawer, so keep it to a screen or two.
APPROVAL_MAX_CHARS = 6000
APPROVAL_MAX_ROWS = 8
FLAG_MARK = "⚠"
# Labels shown shortened: full git shas (SHA-1 or SHA-256).
_FULL_SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
SHORT_SHA_CHARS = 12
_INT_RE = re.compile(r"[+-]?\d+")
_HASH_CHUNK = 1 << 20
OLD_COLOR, NEW_COLOR, FLAG_COLOR = "#1f77b4", "#ff7f0e", "#d62728"


class DatasetReviewError(LlmopsError):
    """The dataset review could not be produced."""


class DatasetNotFoundError(DatasetReviewError, FileNotFoundError):
    """A dataset folder or file to review does not exist."""


class DatasetFormatError(DatasetReviewError, TabularFormatError):
    """A record of the version under review does not parse; ``path`` and ``line`` say where."""


@dataclass(frozen=True)
class DatasetReview:
    """What `review_datasets` wrote, and a small JSON-serialisable summary of it.

    Example::

        review = review_datasets(old, new, out, old_label="v1", new_label="v2")
        review.summary["flags"]  # ["train.jsonl: label share neg 50.0% -> 10.0% (-40.0 pp)", ...]
    """

    markdown_path: Path
    chart_paths: list[Path]
    summary: dict[str, Any]
    summary_text: str

    @property
    def approval_markdown(self) -> str:
        """Compact Markdown for an approval body: flagged shifts and key tables, bounded in size."""
        return render_approval_markdown(self.summary)


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


def _table_stats(path: Path, samples: int) -> _TableStats:
    stats = _TableStats()
    for record in iter_records(path):
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
    return stats


@dataclass(frozen=True)
class _Unreadable:
    """A table (or one version of it) that could not be analysed, and why."""

    name: str
    version: str
    reason: str


def _read_table(
    path: Path, samples: int, *, name: str, version: str, under_review: bool
) -> _TableStats | _Unreadable | None:
    """Stats of one version of a table; None when the file holds no records (a JSON document).

    A record that does not parse in the version under review fails the review; everything
    else that cannot be read is reported, so a broken baseline never blocks reviewing its fix.
    """
    try:
        return _table_stats(path, samples)
    except NotATableError:
        return None
    except TabularReaderMissingError as err:
        return _Unreadable(name, version, err.reason)
    except TabularFormatError as err:
        if under_review and err.line is not None:
            raise DatasetFormatError(
                f"{err.reason} Then version the dataset again.", path=err.path, line=err.line
            ) from err
        where = f"line {err.line}: " if err.line is not None else ""
        return _Unreadable(name, version, where + err.reason)


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


@dataclass(frozen=True)
class _Share:
    value: str
    old_count: int | None  # None: that side has no counts (no such column, too many values)
    new_count: int | None
    old_pct: float | None
    new_pct: float | None

    @property
    def delta_pp(self) -> float | None:
        if self.old_pct is None or self.new_pct is None:
            return None
        return self.new_pct - self.old_pct

    @property
    def flagged(self) -> bool:
        return self.delta_pp is not None and abs(self.delta_pp) >= SHARE_SHIFT_PP


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

    def shares(self, column: str) -> list[_Share]:
        """Count and share of each value on both sides, in `_ordered_values` order."""
        old_seen, new_seen = _counted(self.old, column), _counted(self.new, column)
        old_counts, new_counts = old_seen or Counter(), new_seen or Counter()
        old_total, new_total = sum(old_counts.values()), sum(new_counts.values())
        rows = []
        for value in _ordered_values(old_counts, new_counts):
            old_c = old_counts.get(value, 0) if old_seen is not None else None
            new_c = new_counts.get(value, 0) if new_seen is not None else None
            rows.append(
                _Share(
                    value,
                    old_c,
                    new_c,
                    _pct(old_c, old_total) if old_c is not None else None,
                    _pct(new_c, new_total) if new_c is not None else None,
                )
            )
        return rows

    def share_shifts(self, column: str) -> list[_Share]:
        flagged = [share for share in self.shares(column) if share.flagged]
        return sorted(flagged, key=lambda s: (-abs(s.delta_pp or 0.0), _value_key(s.value)))

    def null_rate(self, stats: _TableStats | None, column: str) -> float | None:
        if stats is None or column not in stats.columns or not stats.records:
            return None
        return _pct(stats.columns[column].types["null"], stats.records)

    def null_shift(self, column: str) -> tuple[float, float] | None:
        old, new = self.null_rate(self.old, column), self.null_rate(self.new, column)
        if old is None or new is None or abs(new - old) < NULL_SHIFT_PP:
            return None
        return old, new

    def lengths(self, stats: _TableStats | None, column: str) -> dict[str, int]:
        if stats is None or column not in stats.columns:
            return {}
        return _percentiles(stats.columns[column].lengths)

    def length_shift(self, column: str) -> list[str]:
        """The percentiles (p50, p90) whose text length moved beyond the thresholds."""
        old, new = self.lengths(self.old, column), self.lengths(self.new, column)
        if not old or not new:
            return []
        return [
            key
            for key in ("p50", "p90")
            if abs(new[key] - old[key]) >= MIN_LENGTH_SHIFT_CHARS
            and abs(_pct_change(old[key], new[key])) >= LENGTH_SHIFT_PCT
        ]

    def records_shift(self) -> bool:
        if self.old is None or self.new is None:
            return False
        old, new = self.old.records, self.new.records
        return old != new and (old == 0 or abs(_pct_change(old, new)) >= RECORDS_SHIFT_PCT)

    def columns(self) -> list[str]:
        old_cols = self.old.columns if self.old else {}
        new_cols = self.new.columns if self.new else {}
        return sorted(set(old_cols) | set(new_cols))

    def flags(self) -> list[str]:
        """Each flagged shift of this table, as a short sentence (without the table name)."""
        flags = []
        if self.old is not None and self.new is not None and self.records_shift():
            old, new = self.old.records, self.new.records
            flags.append(f"records {old} -> {new} ({_fmt_change(old, new)})")
        if self.columns_added:
            flags.append("columns added: " + ", ".join(self.columns_added[:MAX_LISTED]))
        if self.columns_removed:
            flags.append("columns removed: " + ", ".join(self.columns_removed[:MAX_LISTED]))
        for col, (old_t, new_t) in sorted(self.type_changes.items()):
            flags.append(f"{col} type {old_t} -> {new_t}")
        for col in self.categorical:
            shifts = self.share_shifts(col)
            if shifts:
                flags.append(f"{col} share " + ", ".join(_fmt_share(s) for s in shifts[:MAX_LISTED]))
        for col in self.columns():
            nulls = self.null_shift(col)
            if nulls:
                flags.append(f"{col} nulls {_fmt_pct(nulls[0])} -> {_fmt_pct(nulls[1])} ({_fmt_pp(nulls)})")
        for col in self.text:
            moved = self.length_shift(col)
            if moved:
                old_p, new_p = self.lengths(self.old, col), self.lengths(self.new, col)
                flags.append(
                    f"{col} length "
                    + ", ".join(
                        f"{key} {old_p[key]} -> {new_p[key]} chars ({_fmt_change(old_p[key], new_p[key])})"
                        for key in moved
                    )
                )
        return flags

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "old_records": self.old.records if self.old else None,
            "new_records": self.new.records if self.new else None,
            "columns": sorted(self.new.columns)[: MAX_LISTED * 5] if self.new else [],
            "columns_added": self.columns_added[:MAX_LISTED],
            "columns_removed": self.columns_removed[:MAX_LISTED],
            "type_changes": {col: list(pair) for col, pair in sorted(self.type_changes.items())},
            "label_changes": self.label_changes(),
            "flags": self.flags(),
        }
        for side, stats in (("", self.new), ("old_", self.old)):
            if stats is None:
                continue
            # The new side lists every label column ({} when it has too many values to count);
            # the old side only the columns it could count, so a missing key means "no counts".
            summary[f"{side}label_counts"] = {
                col: dict(sorted(_counts(stats, col).items(), key=lambda kv: _value_key(kv[0])))
                for col in self.categorical
                if stats is self.new or _counted(stats, col) is not None
            }
            summary[f"{side}text_length"] = {
                col: _percentiles(stats.columns[col].lengths) for col in self.text if col in stats.columns
            }
        # Null rates of the columns that have nulls in either version, in percent.
        null_rates = {}
        for col in self.columns():
            old, new = self.null_rate(self.old, col), self.null_rate(self.new, col)
            if old or new:
                null_rates[col] = [old, new]
        summary["null_rates"] = dict(list(null_rates.items())[: MAX_LISTED * 5])
        return summary


def _pct(part: int, total: int) -> float:
    return round(100.0 * part / total, 1) if total else 0.0


def _pct_change(old: int, new: int) -> float:
    return 100.0 * (new - old) / old if old else math.inf


def _fmt_pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}%"


def _fmt_pp(pair: tuple[float, float]) -> str:
    return f"{pair[1] - pair[0]:+.1f} pp"


def _fmt_change(old: int, new: int) -> str:
    change = _pct_change(old, new)
    return "new" if math.isinf(change) else f"{change:+.0f}%"


def _fmt_share(share: _Share) -> str:
    return f"{_truncate(share.value, MAX_VALUE_CHARS)} {_fmt_pct(share.old_pct)} -> {_fmt_pct(share.new_pct)} ({share.delta_pp:+.1f} pp)"


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


def _json(value: Any) -> str:
    # Parquet gives datetimes, decimals and bytes: shown as text.
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


# Markdown that data could use to change the page (links, images, HTML, emphasis): escaped,
# since values come from the dataset and the approval body is rendered in the Airflow UI.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<])")


def _one_line(value: Any) -> str:
    text = value if isinstance(value, str) else _json(value)
    return _truncate(text.replace("\r", " ").replace("\n", " "))


def _md_cell(value: Any) -> str:
    """Data as plain text in a Markdown table cell or line."""
    return _MD_SPECIAL.sub(r"\\\1", _one_line(value)).replace("|", "\\|")


def _md_code(value: Any) -> str:
    """Data inside a `code span` (names): literal there, except the backtick that would end it."""
    return _one_line(value).replace("`", "'").replace("|", "\\|")


def _truncate(text: str, limit: int = MAX_SAMPLE_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... (+{len(text) - limit} chars)"


def _sample_record(record: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for key in sorted(record):
        value = record[key]
        if isinstance(value, str):
            shown[key] = _truncate(value)
        elif isinstance(value, list | dict):
            shown[key] = _truncate(_json(value))
        elif value is None or isinstance(value, bool | int | float):
            shown[key] = value
        else:
            shown[key] = _truncate(str(value))
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


def _thresholds_note() -> str:
    return (
        f"label share {SHARE_SHIFT_PP:g} pp, null rate {NULL_SHIFT_PP:g} pp, "
        f"text length (p50/p90) {LENGTH_SHIFT_PCT:g}%, records {RECORDS_SHIFT_PCT:g}%"
    )


def _flag(text: str) -> str:
    return f"**{FLAG_MARK} {text}**"


def _listed(names: list[str], total: int) -> str:
    shown = ", ".join(f"`{_md_code(n)}`" for n in names)
    return shown + (f" (+{total - len(names)} more)" if total > len(names) else "")


def _render_markdown(
    *,
    old_label: str,
    new_label: str,
    first_version: bool,
    changes: dict[str, list[str]],
    old_files: dict[str, _FileInfo],
    new_files: dict[str, _FileInfo],
    tables: list[_TableDiff],
    unreadable: list[_Unreadable],
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

    flags = [(diff.name, flag) for diff in tables for flag in diff.flags()]
    if not first_version:
        lines += ["## Flagged shifts", ""]
        lines += [f"- {FLAG_MARK} `{_md_code(name)}`: {_md_cell(flag)}" for name, flag in flags] or [
            "None beyond the thresholds."
        ]
        lines += ["", f"Thresholds: {_thresholds_note()}.", ""]
    if unreadable or skipped_tables:
        lines += ["## Not analysed", "", "| file | version | reason |", "|---|---|---|"]
        lines += [f"| `{_md_code(u.name)}` | {u.version} | {_md_cell(u.reason)} |" for u in unreadable]
        lines += [
            f"| `{_md_code(name)}` | | more than {MAX_TABLES} tables: listed as a file only |"
            for name in skipped_tables
        ]
        lines.append("")

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
                f"| {kind} | `{_md_code(name)}` "
                f"| {_human_bytes(old_info.size) if old_info else ''} "
                f"| {_human_bytes(new_info.size) if new_info else ''} "
                f"| {new_info.md5 if new_info else ''} |"
            )
        lines.append("")
    lines += [f"![File changes]({FILES_CHART_NAME})", ""]

    for diff in tables:
        lines += _render_table(diff, old_label, new_label, charts.get(diff.name, []), samples)
    return "\n".join(lines).rstrip() + "\n"


def _render_table(
    diff: _TableDiff, old_label: str, new_label: str, charts: list[Path], samples: int
) -> list[str]:
    old_n = diff.old.records if diff.old else None
    new_n = diff.new.records if diff.new else None
    records = f"Records: {old_n if old_n is not None else '-'} -> {new_n if new_n is not None else '-'}"
    if old_n is not None and new_n is not None:
        records += f" ({_delta(old_n, new_n)})"
        if diff.records_shift():
            records += " " + _flag(_fmt_change(old_n, new_n))
    lines = [f"## Table `{diff.name}`", "", records, ""]
    lines += _render_schema(diff, old_label, new_label)
    if diff.categorical:
        lines += [
            "### Value counts",
            "",
            f"Shares are of each column's non-null values; {FLAG_MARK} marks a share that moved by "
            f"{SHARE_SHIFT_PP:g} percentage points or more.",
            "",
        ]
        for col in diff.categorical:
            lines += _render_value_counts(diff, col, old_label, new_label)
    if diff.text:
        lines += _render_text_lengths(diff, old_label, new_label)
    for chart in charts:
        lines += [f"![Distributions of {diff.name}]({chart.name})", ""]
    if diff.new is not None and diff.new.samples:
        lines += [f"### Sample records ({new_label}, first {min(samples, len(diff.new.samples))})", ""]
        lines.append("```json")
        lines += [_json(_sample_record(record)) for record in diff.new.samples]
        lines += ["```", ""]
    return lines


def _render_schema(diff: _TableDiff, old_label: str, new_label: str) -> list[str]:
    old_cols = diff.old.columns if diff.old else {}
    new_cols = diff.new.columns if diff.new else {}
    # Null-rate columns come after "change", so rows read "| col | old type | new type | change |".
    lines = [
        "### Schema",
        "",
        f"| column | {old_label} | {new_label} | change | {old_label} nulls | {new_label} nulls | null shift |",
        "|---|---|---|---|---:|---:|---|",
    ]
    for col in diff.columns():
        change = next(
            (
                note
                for note, cols in (
                    ("added", diff.columns_added),
                    ("removed", diff.columns_removed),
                    ("type changed", diff.type_changes),
                )
                if col in cols
            ),
            "",
        )
        old_null, new_null = diff.null_rate(diff.old, col), diff.null_rate(diff.new, col)
        shift = ""
        if old_null is not None and new_null is not None and old_null != new_null:
            shift = f"{new_null - old_null:+.1f} pp"
            shift = _flag(shift) if diff.null_shift(col) else shift
        lines.append(
            f"| `{_md_code(col)}` | {old_cols[col].type if col in old_cols else ''} "
            f"| {new_cols[col].type if col in new_cols else ''} | {change} "
            f"| {_fmt_pct(old_null)} | {_fmt_pct(new_null)} | {shift} |"
        )
    return [*lines, ""]


def _render_value_counts(diff: _TableDiff, col: str, old_label: str, new_label: str) -> list[str]:
    old_seen, new_seen = _counted(diff.old, col), _counted(diff.new, col)
    lines = [
        f"`{_md_code(col)}`:",
        "",
        f"| value | {old_label} | {new_label} | change | {old_label} share | {new_label} share | share shift |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for share in diff.shares(col):
        note = ""
        if old_seen is not None and new_seen is not None:
            note = (
                "new value" if share.value not in old_seen else "gone" if share.value not in new_seen else ""
            )
        shift = "" if share.delta_pp is None else f"{share.delta_pp:+.1f} pp"
        lines.append(
            f"| {_md_cell(share.value)} | {'' if share.old_count is None else share.old_count} "
            f"| {'' if share.new_count is None else share.new_count} | {note} "
            f"| {_fmt_pct(share.old_pct)} | {_fmt_pct(share.new_pct)} | {_flag(shift) if share.flagged else shift} |"
        )
    return [*lines, ""]


def _render_text_lengths(diff: _TableDiff, old_label: str, new_label: str) -> list[str]:
    lines = [
        "### Text length (characters)",
        "",
        f"| column | {old_label} p50/p90/p99 | {new_label} p50/p90/p99 | shift |",
        "|---|---|---|---|",
    ]
    for col in diff.text:
        old_p, new_p = diff.lengths(diff.old, col), diff.lengths(diff.new, col)
        shift = ""
        if old_p and new_p:
            shift = ", ".join(f"{key} {_fmt_change(old_p[key], new_p[key])}" for key in ("p50", "p90"))
            shift = _flag(shift) if diff.length_shift(col) else shift
        lines.append(
            f"| `{_md_code(col)}` | {_fmt_percentiles(old_p)} | {_fmt_percentiles(new_p)} | {shift} |"
        )
    return [*lines, ""]


def _fmt_percentiles(values: dict[str, int]) -> str:
    return "/".join(str(values[f"p{p}"]) for p in PERCENTILES) if values else "-"


def _ordered_values(old: Counter[str], new: Counter[str]) -> list[str]:
    """Values by new count (then old count) descending, then by value: stable across runs."""
    values = set(old) | set(new)
    return sorted(values, key=lambda v: (-new.get(v, 0), -old.get(v, 0), _value_key(v)))


# --------------------------------------------------------------------------------------------
# Summary text and approval Markdown (both from the JSON summary alone)
# --------------------------------------------------------------------------------------------


def _files_headline(summary: dict[str, Any]) -> str:
    files = summary["files"]
    return (
        f"{files['added']} added, {files['removed']} removed, {files['modified']} modified, "
        f"{files['unchanged']} unchanged files ({_human_bytes(files['old_bytes'])} -> "
        f"{_human_bytes(files['new_bytes'])})"
    )


def _records_phrase(table: dict[str, Any]) -> str:
    old_n, new_n = table["old_records"], table["new_records"]
    if old_n is None:
        return f"{new_n} records (new table)"
    if new_n is None:
        return f"removed table (had {old_n} records)"
    return f"{old_n} -> {new_n} records ({_delta(old_n, new_n)})"


def _shares_phrase(counts: dict[str, int], limit: int = 5) -> str:
    total = sum(counts.values())
    top = sorted(counts.items(), key=lambda kv: (-kv[1], _value_key(kv[0])))[:limit]
    more = f" (+{len(counts) - limit} more)" if len(counts) > limit else ""
    return ", ".join(f"{value} {_fmt_pct(_pct(n, total))}" for value, n in top) + more


def _summary_text(summary: dict[str, Any]) -> str:
    old_label, new_label = _display_label(summary["old_label"]), _display_label(summary["new_label"])
    head = f"Dataset review {old_label} -> {new_label}"
    if summary["first_version"]:
        head += " (first version)"
    lines = [f"{head}: {_files_headline(summary)}."]
    files = summary["files"]
    listed = [
        f"{kind}: {', '.join(names)}"
        + (f" (+{files[kind] - len(names)} more)" if files[kind] > len(names) else "")
        for kind, names in files["changed"].items()
        if names and kind != "modified"
    ]
    if listed and not summary["first_version"]:
        lines.append("Files " + "; ".join(listed) + ".")
    for name, table in summary["tables"].items():
        parts = [_records_phrase(table)]
        if table["old_records"] is None:
            # A first version has nothing to shift from: show what the labels look like.
            parts += [
                f"{col} {_shares_phrase(counts)}"
                for col, counts in table.get("label_counts", {}).items()
                if counts
            ]
        for col, change in table["label_changes"].items():
            for kind in ("added", "removed"):
                if change[kind]:
                    shown = (_truncate(value, MAX_VALUE_CHARS) for value in change[kind])
                    parts.append(f"{col} values {kind}: " + ", ".join(shown))
        parts += [flag for flag in table["flags"] if not flag.startswith("records ")]
        if table["old_records"] is not None and table["new_records"] is not None and len(parts) == 1:
            parts.append("no shift beyond the thresholds")
        lines.append(f"{name}: " + "; ".join(parts) + ".")
    for item in summary["not_analysed"]:
        lines.append(f"Not analysed: {item['file']} ({_display_label(item['version'])}): {item['reason']}")
    if summary["tables_skipped"]:
        lines.append(f"Not analysed: {summary['tables_skipped']} more tables (over {MAX_TABLES}).")
    return "\n".join(lines)


def _approval_label_table(
    name: str, col: str, table: dict[str, Any], old_label: str, new_label: str
) -> list[str]:
    new_counts: dict[str, int] = table.get("label_counts", {}).get(col, {})
    old_counts: dict[str, int] | None = table.get("old_label_counts", {}).get(col)
    new_total, old_total = sum(new_counts.values()), sum((old_counts or {}).values())

    def row_key(value: str) -> tuple[float, int, tuple[int, int, str]]:
        moved = (
            abs(_pct(new_counts.get(value, 0), new_total) - _pct(old_counts.get(value, 0), old_total))
            if old_counts is not None
            else 0.0
        )
        return (-moved, -new_counts.get(value, 0), _value_key(value))

    values = sorted(set(new_counts) | set(old_counts or {}), key=row_key)
    if old_counts is None:
        lines = [f"| value | {new_label} |", "|---|---:|"]
        for value in values[:APPROVAL_MAX_ROWS]:
            n = new_counts.get(value, 0)
            lines.append(f"| {_md_cell(value)} | {n} ({_fmt_pct(_pct(n, new_total))}) |")
    else:
        lines = [f"| value | {old_label} | {new_label} | shift |", "|---|---:|---:|---|"]
        for value in values[:APPROVAL_MAX_ROWS]:
            o, n = old_counts.get(value, 0), new_counts.get(value, 0)
            delta = _pct(n, new_total) - _pct(o, old_total)
            shift = f"{delta:+.1f} pp"
            lines.append(
                f"| {_md_cell(value)} | {o} ({_fmt_pct(_pct(o, old_total))}) "
                f"| {n} ({_fmt_pct(_pct(n, new_total))}) "
                f"| {_flag(shift) if abs(delta) >= SHARE_SHIFT_PP else shift} |"
            )
    if len(values) > APPROVAL_MAX_ROWS:
        cells = " |" * (lines[0].count("|") - 2)
        lines.append(f"| ... {len(values) - APPROVAL_MAX_ROWS} more values |{cells}")
    return [f"**`{_md_code(name)}` `{_md_code(col)}`**", "", *lines]


def render_approval_markdown(
    summary: dict[str, Any], *, max_chars: int = APPROVAL_MAX_CHARS, full_review_url: str | None = None
) -> str:
    """Compact Markdown for an approval body, from `DatasetReview.summary` (or its XCom copy).

    Flagged shifts first, then not-analysed files, a table of record counts and schema changes,
    and the label tables (counts with shares). Sections that would go over `max_chars` are left
    out and counted in a closing line that points at the full review (a link when
    `full_review_url` is given, e.g. the operator's extra link or where the UI serves review.md).

    Example::

        ApprovalOperator(..., body="{{ ti.xcom_pull('review')['approval_markdown'] }}")
    """
    old_label, new_label = _display_label(summary["old_label"]), _display_label(summary["new_label"])
    sections = [
        _approval_intro(summary, old_label, new_label),
        _approval_flags(summary),
        _approval_not_analysed(summary),
        _approval_tables(summary),
    ]
    # Label tables with a flagged share first: those are what the approver must look at.
    label_tables = [
        (not any(flag.startswith(f"{col} share ") for flag in table["flags"]), name, col)
        for name, table in summary["tables"].items()
        for col, counts in table.get("label_counts", {}).items()
        if counts
    ]
    for _, name, col in sorted(label_tables):
        sections.append(_approval_label_table(name, col, summary["tables"][name], old_label, new_label))

    full = f"[full review]({full_review_url})" if full_review_url else "the full review"
    closing = f"_Charts and sample records: {full}._"
    body: list[str] = []
    size = len(closing)
    left_out = 0
    for section in filter(None, sections):
        text = "\n".join([*section, ""]) + "\n"
        if size + len(text) > max_chars and body:
            left_out += 1
            continue
        body.append(text)
        size += len(text)
    if left_out:
        closing = f"_{left_out} more section(s) left out here; see {full} with charts._"
    return "".join(body) + closing + "\n"


def _approval_intro(summary: dict[str, Any], old_label: str, new_label: str) -> list[str]:
    head = f"### Dataset review {old_label} -> {new_label}"
    if summary["first_version"]:
        head += " (first version)"
    files = summary["files"]
    lines = [head, "", _files_headline(summary) + "."]
    for kind in ("added", "removed", "modified"):
        names = files["changed"][kind]
        if names and not (summary["first_version"] and kind == "added"):
            lines.append(f"{kind.capitalize()}: {_listed(names, files[kind])}.")
    return lines


def _approval_flags(summary: dict[str, Any]) -> list[str]:
    flags = [(name, flag) for name, table in summary["tables"].items() for flag in table["flags"]]
    if not flags:
        if summary["first_version"] or not summary["tables"]:
            return []
        return [f"No shift beyond the thresholds ({_thresholds_note()})."]
    shown = flags[: MAX_LISTED * 2]
    lines = [f"**{FLAG_MARK} Flagged shifts** ({_thresholds_note()}):", ""]
    lines += [f"- `{_md_code(name)}`: {_md_cell(flag)}" for name, flag in shown]
    if len(flags) > len(shown):
        lines.append(f"- ... {len(flags) - len(shown)} more in the full review")
    return lines


def _approval_not_analysed(summary: dict[str, Any]) -> list[str]:
    if not summary["not_analysed"] and not summary["tables_skipped"]:
        return []
    lines = ["**Not analysed:**", ""]
    lines += [
        f"- `{_md_code(item['file'])}` ({_display_label(item['version'])}): {_md_cell(item['reason'])}"
        for item in summary["not_analysed"]
    ]
    if summary["tables_skipped"]:
        lines.append(f"- {summary['tables_skipped']} more tables (over {MAX_TABLES})")
    return lines


def _approval_tables(summary: dict[str, Any]) -> list[str]:
    if not summary["tables"]:
        return []
    lines = ["| table | records | schema changes |", "|---|---|---|"]
    for name, table in summary["tables"].items():
        schema = [f"+{c}" for c in table["columns_added"]] + [f"-{c}" for c in table["columns_removed"]]
        schema += [f"{c} {a} -> {b}" for c, (a, b) in table["type_changes"].items()]
        lines.append(f"| `{_md_code(name)}` | {_records_phrase(table)} | {_md_cell(', '.join(schema))} |")
    return lines


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


def _integer_axis(axis: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _legend(ax: Any) -> None:
    # Outside the plot, so it never covers a bar.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)


def _tick(value: str, limit: int = 20) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _files_chart(path: Path, changes: dict[str, list[str]], old_label: str, new_label: str) -> Path:
    fig = _new_figure(6.0, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    kinds = ["added", "removed", "modified", "unchanged"]
    counts = [len(changes[kind]) for kind in kinds]
    bars = ax.bar(kinds, counts, color=["#2ca02c", "#d62728", "#ff7f0e", "#7f7f7f"])
    ax.bar_label(bars)
    ax.margins(y=0.15)
    _integer_axis(ax.yaxis)
    ax.set_ylabel("files")
    ax.set_title(f"File changes {old_label} -> {new_label}")
    fig.tight_layout()
    return _save(fig, path)


def _table_chart(path: Path, diff: _TableDiff, old_label: str, new_label: str) -> Path | None:
    columns = [("counts", c) for c in diff.categorical] + [("lengths", c) for c in diff.text]
    columns = columns[:MAX_CHART_COLUMNS]
    if not columns or diff.new is None:
        return None
    fig = _new_figure(8.5, 3.4 * len(columns))
    for index, (kind, col) in enumerate(columns, start=1):
        ax = fig.add_subplot(len(columns), 1, index)
        if kind == "counts":
            _bar_counts(ax, diff, col, old_label, new_label)
        else:
            _hist_lengths(ax, diff, col, old_label, new_label)
    fig.tight_layout()
    return _save(fig, path)


def _bar_counts(ax: Any, diff: _TableDiff, col: str, old_label: str, new_label: str) -> None:
    shares = diff.shares(col)
    has_old = diff.old is not None and any(s.old_count is not None for s in shares)
    old_total = sum(s.old_count or 0 for s in shares)
    new_total = sum(s.new_count or 0 for s in shares)
    # Two versions of different size compare by share; counts would show the size change instead.
    as_share = has_old and old_total != new_total
    xs = list(range(len(shares)))
    width = 0.4 if has_old else 0.6
    series = [(new_label, NEW_COLOR, [s.new_pct if as_share else s.new_count for s in shares])]
    if has_old:
        series.insert(0, (old_label, OLD_COLOR, [s.old_pct if as_share else s.old_count for s in shares]))
    for offset, (label, color, heights) in zip(
        [-width / 2, width / 2] if has_old else [0.0], series, strict=True
    ):
        bars = ax.bar([x + offset for x in xs], [h or 0 for h in heights], width, label=label, color=color)
        if len(shares) <= 8:
            ax.bar_label(bars, fmt="%.1f%%" if as_share else "%d", fontsize=8)
    ax.set_xticks(xs)
    ax.set_xticklabels([_tick(s.value) for s in shares], rotation=30, ha="right")
    flagged = False
    for tick, share in zip(ax.get_xticklabels(), shares, strict=True):
        if share.flagged:
            tick.set_color(FLAG_COLOR)
            tick.set_fontweight("bold")
            flagged = True
    ax.margins(y=0.15)
    if as_share:
        ax.set_ylabel("share of values (%)")
        title = f"{diff.name}: {col} shares ({old_label}: {old_total}, {new_label}: {new_total} values)"
    else:
        _integer_axis(ax.yaxis)
        ax.set_ylabel("records")
        title = f"{diff.name}: {col} value counts"
    if flagged:
        title += f"\nred: share moved >= {SHARE_SHIFT_PP:g} pp"
    ax.set_title(title, fontsize=10)
    _legend(ax)


def _hist_lengths(ax: Any, diff: _TableDiff, col: str, old_label: str, new_label: str) -> None:
    series = []
    if diff.old is not None and col in diff.old.columns and diff.old.columns[col].lengths:
        series.append((old_label, OLD_COLOR, diff.old.columns[col].lengths))
    if diff.new is not None and col in diff.new.columns and diff.new.columns[col].lengths:
        series.append((new_label, NEW_COLOR, diff.new.columns[col].lengths))
    if not series:
        ax.set_axis_off()
        ax.set_title(f"{diff.name}: {col} length (no values)", fontsize=10)
        return
    everything = [n for _, _, lengths in series for n in lengths]
    low, high = min(everything), max(everything)
    # Whole-number bins: each bin covers the same number of characters.
    step = max(1, math.ceil((high - low + 1) / 30))
    edges = [low + i * step for i in range(math.ceil((high - low + 1) / step) + 1)]
    as_share = len(series) == 2 and len(series[0][2]) != len(series[1][2])
    weights = [[100.0 / len(lengths)] * len(lengths) if as_share else None for _, _, lengths in series]
    # Side by side (one list per version), so neither version hides the other.
    ax.hist(
        [lengths for _, _, lengths in series],
        bins=edges,
        weights=weights if as_share else None,
        color=[color for _, color, _ in series],
        label=[f"{label} (p50 {_percentiles(lengths)['p50']})" for label, _, lengths in series],
        rwidth=0.9,
    )
    for _, color, lengths in series:
        ax.axvline(_percentiles(lengths)["p50"], color=color, linestyle="--", linewidth=1)
    _integer_axis(ax.xaxis)
    ax.set_xlabel("characters")
    if as_share:
        ax.set_ylabel("share of values (%)")
    else:
        _integer_axis(ax.yaxis)
        ax.set_ylabel("records")
    flagged = " (shifted)" if diff.length_shift(col) else ""
    ax.set_title(f"{diff.name}: {col} length{flagged}; dashed: p50", fontsize=10)
    _legend(ax)


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
    not exist, and DatasetFormatError when a record of the new version does not parse. Files
    that cannot be analysed otherwise are listed in the review with the reason.
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

    table_names = sorted(name for name in set(old_files) | set(new_files) if is_tabular(name))
    skipped_tables = table_names[MAX_TABLES:]
    tables, unreadable = _read_tables(
        table_names[:MAX_TABLES], old_files, new_files, samples, old_label, new_label
    )

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
        unreadable=unreadable,
        skipped_tables=skipped_tables,
        charts=charts,
        samples=samples,
    )
    markdown_path = out_dir / MARKDOWN_NAME
    markdown_path.write_text(markdown, encoding="utf-8")

    table_summaries = {diff.name: diff.summary() for diff in tables}
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
        "tables": table_summaries,
        "tables_skipped": len(skipped_tables),
        "not_analysed": [
            {"file": u.name, "version": u.version, "reason": _truncate(u.reason, 300)} for u in unreadable
        ],
        "flags": [f"{name}: {flag}" for name, table in table_summaries.items() for flag in table["flags"]][
            :MAX_FLAGS
        ],
        "thresholds": {
            "share_pp": SHARE_SHIFT_PP,
            "null_rate_pp": NULL_SHIFT_PP,
            "text_length_pct": LENGTH_SHIFT_PCT,
            "records_pct": RECORDS_SHIFT_PCT,
        },
    }
    return DatasetReview(
        markdown_path=markdown_path,
        chart_paths=chart_paths,
        summary=summary,
        summary_text=_summary_text(summary),
    )


def _read_tables(
    names: Iterable[str],
    old_files: dict[str, _FileInfo],
    new_files: dict[str, _FileInfo],
    samples: int,
    old_label: str,
    new_label: str,
) -> tuple[list[_TableDiff], list[_Unreadable]]:
    """Compare each table; one that either version could not be read for is reported instead."""
    tables: list[_TableDiff] = []
    unreadable: list[_Unreadable] = []
    for name in names:
        sides: dict[str, _TableStats | None] = {}
        failed = False
        for side, files, label in (("old", old_files, old_label), ("new", new_files, new_label)):
            if name not in files:
                sides[side] = None
                continue
            read = _read_table(
                files[name].path, samples, name=name, version=label, under_review=side == "new"
            )
            if isinstance(read, _Unreadable):
                unreadable.append(read)
                failed = True
                read = None
            sides[side] = read
        if failed or (sides["old"] is None and sides["new"] is None):
            continue  # not comparable, or a .json holding one document on both sides
        tables.append(_compare_tables(name, sides["old"], sides["new"]))
    return tables, unreadable
