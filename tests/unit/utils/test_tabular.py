"""iter_records / is_tabular on real files of every supported format, and their errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_llmops.exceptions import LlmopsError
from airflow_provider_llmops.utils.tabular import (
    NotATableError,
    TabularFormatError,
    TabularReaderMissingError,
    is_tabular,
    iter_records,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jsonl", True),
        ("a.NDJSON", True),
        ("dir/a.json", True),
        ("a.csv", True),
        ("a.TSV", True),
        ("part-0.parquet", True),
        ("a.txt", False),
        ("a.jsonl.gz", False),
        ("csv", False),
    ],
)
def test_is_tabular_by_suffix(name: str, expected: bool):
    assert is_tabular(name) is expected
    assert is_tabular(Path(name)) is expected


def test_unknown_suffix_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match=r"not a tabular file name"):
        iter_records(tmp_path / "notes.txt")


def test_json_lines(tmp_path: Path):
    path = tmp_path / "a.jsonl"
    path.write_bytes('\ufeff{"a": 1}\n\n  \n{"a": "é"}\n[1, 2]\n'.encode())
    assert list(iter_records(path)) == [{"a": 1}, {"a": "é"}, {"value": [1, 2]}]


def test_broken_json_line_names_file_and_line_lazily(tmp_path: Path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    records = iter_records(path)
    assert next(records) == {"a": 1}  # records before the bad line still come out
    with pytest.raises(TabularFormatError, match=r"train\.jsonl:2: not valid JSON") as info:
        next(records)
    assert (info.value.path, info.value.line) == (path, 2)
    assert isinstance(info.value, LlmopsError) and isinstance(info.value, ValueError)


def test_non_utf8_line_is_named_exactly(tmp_path: Path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"id,name\n1,ok\n2,caf\xe9\n")
    with pytest.raises(TabularFormatError, match=r"latin\.csv:3: not UTF-8") as info:
        list(iter_records(path))
    assert info.value.line == 3


def test_json_array_and_json_lines_in_dot_json(tmp_path: Path):
    array = tmp_path / "array.json"
    array.write_text(json.dumps([{"q": "x"}, {"q": "y"}]))
    lines = tmp_path / "lines.json"
    lines.write_text('{"q": "x"}\n{"q": "y"}\n')
    assert list(iter_records(array)) == list(iter_records(lines)) == [{"q": "x"}, {"q": "y"}]


@pytest.mark.parametrize("document", [{"version": 3}, [1, 2, 3], "text"])
def test_json_document_is_not_a_table(tmp_path: Path, document: object):
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(document))
    with pytest.raises(NotATableError, match=r"meta\.json: holds one JSON document"):
        list(iter_records(path))


def test_broken_json_array_names_its_line(tmp_path: Path):
    path = tmp_path / "data.json"
    path.write_text('[\n  {"q": "x"},\n  {"q": \n]\n')
    with pytest.raises(TabularFormatError, match=r"data\.json:4: not valid JSON") as info:
        list(iter_records(path))
    assert info.value.line == 4


def test_csv_cells_are_typed(tmp_path: Path):
    path = tmp_path / "t.csv"
    path.write_bytes(
        '\ufeffid,zip,score,note,big,odd\n12,007,1.5,"two\nlines",1e3,nan\n-3,0,.5,,1_000,inf\n4\n'.encode()
    )
    rows = list(iter_records(path))
    assert rows == [
        {"id": 12, "zip": "007", "score": 1.5, "note": "two\nlines", "big": 1000.0, "odd": "nan"},
        {"id": -3, "zip": 0, "score": 0.5, "note": None, "big": "1_000", "odd": "inf"},
        {"id": 4, "zip": None, "score": None, "note": None, "big": None, "odd": None},
    ]


def test_tsv_and_extra_cells(tmp_path: Path):
    path = tmp_path / "t.tsv"
    path.write_text("a\tb\n1\tx\ty\tz\n")
    assert list(iter_records(path)) == [{"a": 1, "b": "x"}]


def test_csv_error_names_its_line(tmp_path: Path):
    path = tmp_path / "big.csv"
    path.write_text("a\n1\n" + "x" * 200_000 + "\n")  # over csv's field size limit
    with pytest.raises(TabularFormatError, match=r"big\.csv:3: not valid CSV") as info:
        list(iter_records(path))
    assert info.value.line == 3


def test_parquet_round_trip(tmp_path: Path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "id": list(range(25)),
            "text": [None if i % 5 == 0 else f"t{i}" for i in range(25)],
            "tags": [["a", "b"][: i % 3] for i in range(25)],
        }
    )
    path = tmp_path / "part-0.parquet"
    pq.write_table(table, path, row_group_size=10)  # three row groups
    rows = list(iter_records(path))
    assert len(rows) == 25
    assert rows[0] == {"id": 0, "text": None, "tags": []}
    assert rows[11] == {"id": 11, "text": "t11", "tags": ["a", "b"]}


def test_corrupt_parquet(tmp_path: Path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "part-0.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(TabularFormatError, match=r"part-0\.parquet: not a readable Parquet file") as info:
        list(iter_records(path))
    assert info.value.line is None and info.value.path == path
    assert not isinstance(info.value, TabularReaderMissingError)


def test_parquet_without_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # None in sys.modules makes `import pyarrow` raise ImportError, as on a worker without it.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    path = tmp_path / "part-0.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(TabularReaderMissingError, match=r"part-0\.parquet: reading Parquet needs pyarrow"):
        list(iter_records(path))


def test_import_is_free():
    code = (
        "import sys, airflow_provider_llmops.utils.tabular; "
        "print(sorted(m for m in ('pyarrow', 'numpy', 'pandas', 'airflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
