"""review_datasets on real files: the Markdown, charts and summary show the real differences."""

from __future__ import annotations

import itertools
import json
import re
import struct
import sys
from pathlib import Path

import pytest

from airflow_provider_llmops.dataset_review import (
    DatasetFormatError,
    DatasetNotFoundError,
    DatasetReview,
    review_datasets,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _old_records() -> list[dict]:
    return [
        {"text": "short review " * (i + 1), "label": ["pos", "neg"][i % 2], "meta": {"i": i}, "score": i}
        for i in range(10)
    ]


def _new_records() -> list[dict]:
    return [
        {
            "text": "a much longer review text " * (i + 5),
            "label": ["pos", "neg", "neutral"][i % 3],
            "score": i + 0.5,
        }
        for i in range(13)
    ]


@pytest.fixture
def versions(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old", tmp_path / "new"
    _write_jsonl(old / "train.jsonl", _old_records())
    _write_jsonl(new / "train.jsonl", _new_records())
    (old / "README.txt").write_text("same in both\n")
    (new / "README.txt").write_text("same in both\n")
    (old / "eval.csv").write_text("id,question,answer\n1,q1,a1\n2,q2,a2\n")
    (new / "images").mkdir()
    (new / "images" / "cat.bin").write_bytes(b"\x00" * 2048)
    return old, new


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    # IHDR chunk: width and height are big-endian uint32 right after the chunk type.
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 300 and height >= 200
    assert len(data) > 5_000, f"{path} is suspiciously small ({len(data)} bytes)"


def test_review_reports_real_differences(versions: tuple[Path, Path], tmp_path: Path):
    old, new = versions
    review = review_datasets(old, new, tmp_path / "out", old_label="v1", new_label="v2")

    assert isinstance(review, DatasetReview)
    assert review.markdown_path == tmp_path / "out" / "review.md"
    md = review.markdown_path.read_text()

    # Files: eval.csv removed, images/cat.bin added, train.jsonl modified, README unchanged.
    files = review.summary["files"]
    assert (files["added"], files["removed"], files["modified"], files["unchanged"]) == (1, 1, 1, 1)
    assert files["changed"] == {
        "added": ["images/cat.bin"],
        "removed": ["eval.csv"],
        "modified": ["train.jsonl"],
    }
    assert "| added | `images/cat.bin` |" in md
    assert "| removed | `eval.csv` |" in md
    assert "| modified | `train.jsonl` |" in md
    assert "Added: 1, removed: 1, modified: 1, unchanged: 1." in md

    # Records, schema and label changes of the JSONL table.
    train = review.summary["tables"]["train.jsonl"]
    assert (train["old_records"], train["new_records"]) == (10, 13)
    assert train["columns_removed"] == ["meta"]
    assert train["columns_added"] == []
    assert train["type_changes"] == {"score": ["int", "float"]}
    assert train["label_changes"] == {"label": {"added": ["neutral"], "removed": []}}
    assert train["label_counts"] == {"label": {"neg": 4, "neutral": 4, "pos": 5}}
    assert set(train["text_length"]) == {"text"}
    assert train["text_length"]["text"]["p50"] > 26 * 5  # every new text has >= 5 repetitions
    assert "Records: 10 -> 13 (+3)" in md
    assert "| `meta` | dict |  | removed |" in md
    assert "| `score` | int | float | type changed |" in md
    assert "| neutral | 0 | 4 | new value |" in md
    assert "| pos | 5 | 5 |  |" in md
    assert "### Text length (characters)" in md
    # The text column is long and unique: lengths, not value counts.
    assert "`text`:" not in md

    # Samples: the first records of the new version, long values truncated.
    assert "### Sample records (v2, first 3)" in md
    assert '"label": "pos"' in md and '"label": "neutral"' in md
    assert "... (+" in md  # the 3rd sample's text is over the limit

    # The removed CSV is a removed table.
    assert review.summary["tables"]["eval.csv"]["new_records"] is None
    assert review.summary["tables"]["eval.csv"]["old_records"] == 2

    # Charts exist, are real PNGs and are linked from the Markdown.
    names = [p.name for p in review.chart_paths]
    assert names == ["files.png", "dist-train-jsonl.png"]
    for chart in review.chart_paths:
        _assert_png(chart)
        assert f"]({chart.name})" in md

    # The summary text carries the headline for the approval prompt.
    text = review.summary_text
    assert text.splitlines()[0].startswith(
        "Dataset review v1 -> v2: 1 added, 1 removed, 1 modified, 1 unchanged"
    )
    assert "train.jsonl: 10 -> 13 records (+3)" in text
    assert "columns removed: meta" in text
    assert "label values added: neutral" in text
    assert "score type int -> float" in text
    json.dumps(review.summary)  # JSON-serialisable


def test_rerun_gives_identical_files(versions: tuple[Path, Path], tmp_path: Path):
    old, new = versions
    first = review_datasets(old, new, tmp_path / "a", old_label="v1", new_label="v2")
    second = review_datasets(old, new, tmp_path / "b", old_label="v1", new_label="v2")
    assert first.markdown_path.read_bytes() == second.markdown_path.read_bytes()
    assert [p.name for p in first.chart_paths] == [p.name for p in second.chart_paths]
    for a, b in zip(first.chart_paths, second.chart_paths, strict=True):
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between runs"
    assert json.dumps(first.summary, sort_keys=True) == json.dumps(second.summary, sort_keys=True)
    assert first.summary_text == second.summary_text


def test_first_version_everything_added(versions: tuple[Path, Path], tmp_path: Path):
    _, new = versions
    review = review_datasets(None, new, tmp_path / "out", old_label="(none)", new_label="v1")
    files = review.summary["files"]
    assert (files["added"], files["removed"], files["modified"], files["unchanged"]) == (3, 0, 0, 0)
    assert review.summary["first_version"] is True
    train = review.summary["tables"]["train.jsonl"]
    assert (train["old_records"], train["new_records"]) == (None, 13)
    assert train["columns_added"] == [] and train["label_changes"] == {}
    md = review.markdown_path.read_text()
    assert "First version" in md
    assert "| added | `train.jsonl` |" in md
    assert "(first version)" in review.summary_text
    assert "train.jsonl: 13 records (new table)" in review.summary_text
    for chart in review.chart_paths:
        _assert_png(chart)


def test_csv_column_added_and_label_removed(tmp_path: Path):
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    old.write_text("id,label\n" + "".join(f"{i},{['spam', 'ham', 'eggs'][i % 3]}\n" for i in range(9)))
    new.write_text("id,label,lang\n" + "".join(f"{i},{['spam', 'ham'][i % 2]},en\n" for i in range(6)))
    review = review_datasets(old, new, tmp_path / "out", old_label="a", new_label="b")
    # Two single files are compared as one dataset file, keyed by the new file's name.
    assert review.summary["files"]["modified"] == 1
    table = review.summary["tables"]["new.csv"]
    assert (table["old_records"], table["new_records"]) == (9, 6)
    assert table["columns_added"] == ["lang"]
    assert table["type_changes"] == {}  # ids inferred as int in both
    assert table["label_changes"]["label"] == {"added": [], "removed": ["eggs"]}
    md = review.markdown_path.read_text()
    assert "| eggs | 3 | 0 | gone |" in md
    assert "| `lang` |  | str | added |" in md


def test_json_array_file_and_non_table_json(tmp_path: Path):
    new = tmp_path / "new"
    new.mkdir()
    (new / "data.json").write_text(json.dumps([{"q": "x", "a": 1}, {"q": "y", "a": 2}]))
    (new / "meta.json").write_text(json.dumps({"version": 3}))
    review = review_datasets(None, new, tmp_path / "out", old_label="-", new_label="v1")
    assert set(review.summary["tables"]) == {"data.json"}
    assert review.summary["tables"]["data.json"]["new_records"] == 2


def test_missing_new_dir_is_a_specific_error(tmp_path: Path):
    with pytest.raises(DatasetNotFoundError, match=r"not found at .*missing"):
        review_datasets(None, tmp_path / "missing", tmp_path / "out", old_label="a", new_label="b")
    assert not (tmp_path / "out").exists()


def test_missing_old_dir_is_a_specific_error(versions: tuple[Path, Path], tmp_path: Path):
    _, new = versions
    with pytest.raises(DatasetNotFoundError, match="Old dataset version 'v0'"):
        review_datasets(tmp_path / "nope", new, tmp_path / "out", old_label="v0", new_label="v1")


def test_broken_jsonl_names_file_and_line(tmp_path: Path):
    new = tmp_path / "new"
    new.mkdir()
    (new / "train.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DatasetFormatError, match=r"train\.jsonl:2"):
        review_datasets(None, new, tmp_path / "out", old_label="-", new_label="v1")


def test_parquet_without_pyarrow_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A worker without pyarrow lists the Parquet file as not analysed, with the reason, everywhere."""
    pytest.importorskip("matplotlib")
    # None in sys.modules makes `import pyarrow` raise ImportError, as on a worker without it.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    new = tmp_path / "new"
    new.mkdir()
    (new / "part-0.parquet").write_bytes(b"PAR1 not really")
    review = review_datasets(None, new, tmp_path / "out", old_label="-", new_label="v1")
    assert review.summary["files"]["added"] == 1
    assert review.summary["tables"] == {}
    [item] = review.summary["not_analysed"]
    assert (item["file"], item["version"]) == ("part-0.parquet", "v1")
    assert "reading Parquet needs pyarrow, which is not installed" in item["reason"]
    md = review.markdown_path.read_text()
    assert "## Not analysed" in md
    assert "| `part-0.parquet` | v1 | reading Parquet needs pyarrow" in md
    assert "Not analysed: part-0.parquet (v1): reading Parquet needs pyarrow" in review.summary_text
    assert "`part-0.parquet` (v1): reading Parquet needs pyarrow" in review.approval_markdown


def test_module_imports_no_matplotlib_numpy_or_airflow():
    import subprocess
    import sys

    code = (
        "import sys, airflow_provider_llmops.dataset_review as m; "
        "print(sorted(x for x in ('matplotlib', 'numpy', 'pyarrow', 'airflow') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_integer_labels_get_value_counts(tmp_path: Path):
    """Class ids (int 0/1/2, as in the demo dataset) are labels; unique integer ids are not."""
    old, new = tmp_path / "old", tmp_path / "new"
    _write_jsonl(old / "train.jsonl", [{"id": i, "label": i % 3, "text": f"q{i}"} for i in range(20)])
    _write_jsonl(new / "train.jsonl", [{"id": i, "label": i % 4, "text": f"q{i}"} for i in range(25)])
    review = review_datasets(old, new, tmp_path / "out", old_label="v1", new_label="v2")

    train = review.summary["tables"]["train.jsonl"]
    # 25 records, i % 4: 0 -> 7, 1..3 -> 6; ids 0..24 are unique, so they get no value counts.
    assert train["label_counts"]["label"] == {"0": 7, "1": 6, "2": 6, "3": 6}
    assert "id" not in train["label_counts"]
    assert train["label_changes"] == {"label": {"added": ["3"], "removed": []}}
    md = review.markdown_path.read_text()
    assert "`label`:" in md and "`id`:" not in md
    assert "| 0 | 7 | 7 |  |" in md  # v1: 20 records, i % 3 -> 0 seven times
    assert "| 3 | 0 | 6 | new value |" in md
    assert "label values added: 3" in review.summary_text
    # The label column is charted next to the file chart.
    assert [p.name for p in review.chart_paths] == ["files.png", "dist-train-jsonl.png"]


def test_integer_labels_sorted_numerically(tmp_path: Path):
    new = tmp_path / "new.csv"
    new.write_text("label\n" + "".join(f"{i % 12}\n" for i in range(48)))
    review = review_datasets(None, new, tmp_path / "out", old_label="-", new_label="v1")
    counts = review.summary["tables"]["new.csv"]["label_counts"]["label"]
    assert list(counts) == [str(i) for i in range(12)]


def test_many_distinct_integers_are_not_labels(tmp_path: Path):
    new = tmp_path / "new.jsonl"
    # 21 distinct values, each repeated: over MAX_CATEGORIES, so no value counts.
    _write_jsonl(new, [{"bucket": i % 21} for i in range(84)])
    review = review_datasets(None, new, tmp_path / "out", old_label="-", new_label="v1")
    assert review.summary["tables"]["new.jsonl"]["label_counts"] == {}


def test_full_sha_labels_are_shortened_for_people(versions: tuple[Path, Path], tmp_path: Path):
    old, new = versions
    old_sha, new_sha = "a" * 40, "0123456789abcdef" * 2 + "01234567"
    review = review_datasets(old, new, tmp_path / "out", old_label=old_sha, new_label=new_sha)

    first = review.summary_text.splitlines()[0]
    assert first.startswith(f"Dataset review {'a' * 12} -> 0123456789ab: ")
    assert old_sha not in review.summary_text and new_sha not in review.summary_text
    md = review.markdown_path.read_text()
    assert md.splitlines()[0] == f"# Dataset review: {'a' * 12} -> 0123456789ab"
    assert f"Versions: `{old_sha}` -> `{new_sha}`" in md  # the full shas are still on record
    # The machine-readable summary keeps the full shas.
    assert (review.summary["old_label"], review.summary["new_label"]) == (old_sha, new_sha)


def test_non_sha_labels_kept_as_given(versions: tuple[Path, Path], tmp_path: Path):
    old, new = versions
    # A tag or branch, even a long or hex-looking one, is not shortened; neither is a 12-char sha.
    review = review_datasets(
        old, new, tmp_path / "out", old_label="deadbeefcafe", new_label="release-2024-01-03"
    )
    assert review.summary_text.startswith("Dataset review deadbeefcafe -> release-2024-01-03: ")
    md = review.markdown_path.read_text()
    assert md.startswith("# Dataset review: deadbeefcafe -> release-2024-01-03\n")
    assert "Versions:" not in md


def test_demo_dataset_label_distribution(tmp_path: Path):
    """The demo project's data (int labels 0..2) gets a label distribution in the review."""
    from dev.harness.dvc import demo_records

    _write_jsonl(tmp_path / "v1" / "train.jsonl", demo_records(1))
    _write_jsonl(tmp_path / "v2" / "train.jsonl", demo_records(2))
    review = review_datasets(
        tmp_path / "v1", tmp_path / "v2", tmp_path / "out", old_label="v1", new_label="v2"
    )
    train = review.summary["tables"]["train.jsonl"]
    assert train["label_counts"] == {"label": {"0": 9, "1": 8, "2": 8}}
    assert "id" not in train["label_counts"]
    md = review.markdown_path.read_text()
    assert "### Value counts" in md and "| 0 | 7 | 9 |  |" in md


def test_label_changes_not_claimed_when_one_side_has_too_many_values(tmp_path: Path):
    """30 labels before (too many to count), 3 after: no made-up 'added' labels."""
    old, new = tmp_path / "old", tmp_path / "new"
    _write_jsonl(old / "train.jsonl", [{"label": f"c{i % 30}"} for i in range(60)])
    _write_jsonl(new / "train.jsonl", [{"label": f"c{i % 3}"} for i in range(60)])
    review = review_datasets(old, new, tmp_path / "out", old_label="v1", new_label="v2")

    train = review.summary["tables"]["train.jsonl"]
    assert train["label_changes"] == {}
    assert train["label_counts"]["label"] == {"c0": 20, "c1": 20, "c2": 20}
    md = review.markdown_path.read_text()
    assert "new value" not in md and "gone" not in md
    assert "| c0 |  | 20 |  |" in md
    assert "label values added" not in review.summary_text


# --- Parquet -----------------------------------------------------------------------------------


def _write_parquet(path: Path, columns: dict[str, list]) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=16)


def test_parquet_v1_to_v2_is_analysed(tmp_path: Path):
    """Real pyarrow-written Parquet: records, schema, labels, nulls and lengths like any table."""
    old, new = tmp_path / "v1", tmp_path / "v2"
    _write_parquet(
        old / "part-0.parquet",
        {
            "text": [f"question {i}?" for i in range(40)],
            "label": ["pos" if i % 2 else "neg" for i in range(40)],
            "score": list(range(40)),
        },
    )
    _write_parquet(
        new / "part-0.parquet",
        {
            "text": [f"a much longer question about the topic, number {i}?" for i in range(50)],
            "label": ["pos" if i % 10 else "neg" for i in range(50)],
            "score": [i + 0.5 for i in range(50)],
            "source": [None if i % 5 == 0 else "web" for i in range(50)],
        },
    )
    review = review_datasets(old, new, tmp_path / "out", old_label="v1", new_label="v2")

    table = review.summary["tables"]["part-0.parquet"]
    assert (table["old_records"], table["new_records"]) == (40, 50)
    assert table["columns_added"] == ["source"]
    assert table["type_changes"] == {"score": ["int", "float"]}
    assert table["old_label_counts"]["label"] == {"neg": 20, "pos": 20}
    assert table["label_counts"]["label"] == {"neg": 5, "pos": 45}
    assert table["null_rates"]["source"] == [None, 20.0]
    assert table["text_length"]["text"]["p50"] > table["old_text_length"]["text"]["p50"]
    assert review.summary["not_analysed"] == []
    md = review.markdown_path.read_text()
    assert "## Table `part-0.parquet`" in md
    assert "| pos | 20 | 45 |  | 50.0% | 90.0% | **⚠ +40.0 pp** |" in md
    assert "| `source` |  | str | added |  | 20.0% |  |" in md
    text = review.summary_text
    assert "part-0.parquet: 40 -> 50 records (+10)" in text
    assert "label share neg 50.0% -> 10.0% (-40.0 pp), pos 50.0% -> 90.0% (+40.0 pp)" in text
    assert "columns added: source" in text and "score type int -> float" in text
    assert "text length p50" in text
    assert [p.name for p in review.chart_paths] == ["files.png", "dist-part-0-parquet.png"]
    for chart in review.chart_paths:
        _assert_png(chart)


def test_corrupt_parquet_is_reported_not_skipped(tmp_path: Path):
    pytest.importorskip("pyarrow")
    old, new = tmp_path / "v1", tmp_path / "v2"
    _write_parquet(old / "part-0.parquet", {"label": ["a", "b"] * 10})
    new.mkdir()
    (new / "part-0.parquet").write_bytes(b"PAR1 truncated upload")
    review = review_datasets(old, new, tmp_path / "out", old_label="v1", new_label="v2")

    assert review.summary["files"]["modified"] == 1
    assert "part-0.parquet" not in review.summary["tables"]  # nothing to compare against
    [item] = review.summary["not_analysed"]
    assert (item["file"], item["version"]) == ("part-0.parquet", "v2")
    assert item["reason"].startswith("not a readable Parquet file")
    assert "| `part-0.parquet` | v2 | not a readable Parquet file" in review.markdown_path.read_text()
    assert "Not analysed: part-0.parquet (v2): not a readable Parquet file" in review.summary_text


def test_broken_baseline_is_reported_not_fatal(tmp_path: Path):
    """v1 had a bad line and v2 fixes it: reviewing the fix must not fail on the old data."""
    old, new = tmp_path / "v1", tmp_path / "v2"
    old.mkdir()
    (old / "train.jsonl").write_text('{"a": 1}\n{"a": \n')
    _write_jsonl(new / "train.jsonl", [{"a": 1}, {"a": 2}])
    review = review_datasets(old, new, tmp_path / "out", old_label="v1", new_label="v2")
    [item] = review.summary["not_analysed"]
    assert (item["file"], item["version"]) == ("train.jsonl", "v1")
    assert item["reason"].startswith("line 2: not valid JSON")
    assert "Not analysed: train.jsonl (v1): line 2: not valid JSON" in review.summary_text


def test_broken_new_version_error_is_a_tabular_error(tmp_path: Path):
    from airflow_provider_llmops.utils.tabular import TabularFormatError

    new = tmp_path / "new.csv"
    new.write_bytes(b"id,name\n1,caf\xe9\n")
    with pytest.raises(TabularFormatError, match=r"new\.csv:2: not UTF-8") as info:
        review_datasets(None, new, tmp_path / "out", old_label="-", new_label="v1")
    assert isinstance(info.value, DatasetFormatError) and info.value.line == 2


# --- Flagged shifts ----------------------------------------------------------------------------


def _labels_csv(path: Path, labels: list[str], extra: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id,label\n" + "".join(f"{i},{label}\n" for i, label in enumerate(labels)) + extra)


def test_label_share_shift_50_50_to_90_10_is_flagged(tmp_path: Path):
    """The issue's case: same record count, same label set, only the distribution moved."""
    old, new = tmp_path / "v1" / "t.csv", tmp_path / "v2" / "t.csv"
    _labels_csv(old, ["pos", "neg"] * 500)
    _labels_csv(new, ["pos"] * 900 + ["neg"] * 100)
    review = review_datasets(old.parent, new.parent, tmp_path / "out", old_label="v1", new_label="v2")

    text = review.summary_text
    assert "t.csv: 1000 -> 1000 records (+0); label share neg 50.0% -> 10.0% (-40.0 pp), " in text
    assert "pos 50.0% -> 90.0% (+40.0 pp)" in text
    assert review.summary["flags"] == [
        "t.csv: label share neg 50.0% -> 10.0% (-40.0 pp), pos 50.0% -> 90.0% (+40.0 pp)"
    ]
    md = review.markdown_path.read_text()
    assert "## Flagged shifts\n\n- ⚠ `t.csv`: label share neg 50.0% -> 10.0% (-40.0 pp)" in md
    assert "| pos | 500 | 900 |  | 50.0% | 90.0% | **⚠ +40.0 pp** |" in md
    assert "| neg | 500 | 100 |  | 50.0% | 10.0% | **⚠ -40.0 pp** |" in md
    approval = review.approval_markdown
    assert "**⚠ Flagged shifts**" in approval
    assert "| pos | 500 (50.0%) | 900 (90.0%) | **⚠ +40.0 pp** |" in approval
    assert "| `t.csv` | 1000 -> 1000 records (+0) |  |" in approval


def test_small_share_change_is_not_flagged(tmp_path: Path):
    old, new = tmp_path / "v1" / "t.csv", tmp_path / "v2" / "t.csv"
    _labels_csv(old, ["pos", "neg"] * 50)
    _labels_csv(new, ["pos"] * 55 + ["neg"] * 45)  # 5 pp: under the 10 pp threshold
    review = review_datasets(old.parent, new.parent, tmp_path / "out", old_label="v1", new_label="v2")
    assert review.summary["flags"] == []
    assert "t.csv: 100 -> 100 records (+0); no shift beyond the thresholds." in review.summary_text
    md = review.markdown_path.read_text()
    assert "## Flagged shifts\n\nNone beyond the thresholds." in md
    assert "| pos | 50 | 55 |  | 50.0% | 55.0% | +5.0 pp |" in md
    assert "No shift beyond the thresholds" in review.approval_markdown


def test_null_rate_shift_is_flagged(tmp_path: Path):
    old, new = tmp_path / "v1", tmp_path / "v2"
    _write_jsonl(old / "d.jsonl", [{"q": f"question {i}", "a": f"answer {i}"} for i in range(20)])
    _write_jsonl(
        new / "d.jsonl", [{"q": f"question {i}", "a": None if i < 6 else f"answer {i}"} for i in range(20)]
    )
    review = review_datasets(old, new, tmp_path / "out", old_label="v1", new_label="v2")
    table = review.summary["tables"]["d.jsonl"]
    assert table["null_rates"] == {"a": [0.0, 30.0]}
    assert "a nulls 0.0% -> 30.0% (+30.0 pp)" in review.summary_text
    assert "| `a` | str | str |  | 0.0% | 30.0% | **⚠ +30.0 pp** |" in review.markdown_path.read_text()
    assert "d.jsonl: a nulls 0.0% -> 30.0% (+30.0 pp)" in review.summary["flags"]


def test_text_length_shift_is_flagged(tmp_path: Path):
    old, new = tmp_path / "v1", tmp_path / "v2"
    _write_jsonl(old / "d.jsonl", [{"text": f"short text number {i:03d}"} for i in range(30)])
    _write_jsonl(new / "d.jsonl", [{"text": f"short text number {i:03d}" * 4} for i in range(30)])
    review = review_datasets(old, new, tmp_path / "out", old_label="v1", new_label="v2")
    assert "text length p50 21 -> 84 chars (+300%), p90 21 -> 84 chars (+300%)" in review.summary_text
    md = review.markdown_path.read_text()
    assert "| `text` | 21/21/21 | 84/84/84 | **⚠ p50 +300%, p90 +300%** |" in md


def test_summary_text_names_files_added_and_removed(versions: tuple[Path, Path], tmp_path: Path):
    old, new = versions
    review = review_datasets(old, new, tmp_path / "out", old_label="v1", new_label="v2")
    assert review.summary_text.splitlines()[1] == "Files added: images/cat.bin; removed: eval.csv."
    assert "Added: `images/cat.bin`." in review.approval_markdown
    assert "Removed: `eval.csv`." in review.approval_markdown


def test_first_version_summary_shows_label_shares(tmp_path: Path):
    new = tmp_path / "v1" / "t.csv"
    _labels_csv(new, ["pos"] * 3 + ["neg"])
    review = review_datasets(None, new.parent, tmp_path / "out", old_label="(none)", new_label="v1")
    assert "t.csv: 4 records (new table); label pos 75.0%, neg 25.0%." in review.summary_text
    assert "| pos | 3 (75.0%) |" in review.approval_markdown
    assert "Flagged shifts" not in review.markdown_path.read_text()


# --- Approval Markdown -------------------------------------------------------------------------


def test_approval_markdown_is_bounded_and_works_from_xcom(tmp_path: Path):
    """Many shifted tables: the body stays under the limit, flags first, and says what it left out."""
    from airflow_provider_llmops.dataset_review import APPROVAL_MAX_CHARS, render_approval_markdown

    old, new = tmp_path / "v1", tmp_path / "v2"
    for t in range(12):
        _labels_csv(old / f"t{t:02d}.csv", [f"class-{i % 12}" for i in range(120)])
        _labels_csv(new / f"t{t:02d}.csv", ["class-0"] * 100 + [f"class-{i % 12}" for i in range(20)])
    review = review_datasets(old, new, tmp_path / "out", old_label="v1", new_label="v2")
    summary = json.loads(json.dumps(review.summary))  # what the approval task gets from XCom
    body = render_approval_markdown(summary)
    assert body == review.approval_markdown
    assert len(body) <= APPROVAL_MAX_CHARS
    assert body.index("Flagged shifts") < body.index("| table |") < body.index("**`t00.csv` `label`**")
    assert "more section(s) left out here; see the full review" in body
    assert "| class-0 | 10 (8.3%) | 102 (85.0%) | **⚠ +76.7 pp** |" in body
    linked = render_approval_markdown(summary, full_review_url="https://airflow.test/review.md")
    assert "see [full review](https://airflow.test/review.md) with charts" in linked
    small = render_approval_markdown(summary, max_chars=500)
    assert small.startswith("### Dataset review v1 -> v2")
    assert len(small) < 1000  # the headline always fits, whatever the limit


# --- Charts ------------------------------------------------------------------------------------


def _diff(tmp_path: Path, old_records: list[dict], new_records: list[dict]):
    from airflow_provider_llmops.dataset_review import _compare_tables, _table_stats

    _write_jsonl(tmp_path / "old.jsonl", old_records)
    _write_jsonl(tmp_path / "new.jsonl", new_records)
    old, new = _table_stats(tmp_path / "old.jsonl", 0), _table_stats(tmp_path / "new.jsonl", 0)
    return _compare_tables("d.jsonl", old, new)


def _axes():
    from airflow_provider_llmops.dataset_review import _new_figure

    return _new_figure(6, 3).add_subplot(1, 1, 1)


def _integer_ticks(ticks) -> bool:
    return all(float(t).is_integer() for t in ticks)


def test_chart_shows_shares_when_totals_differ(tmp_path: Path):
    from airflow_provider_llmops.dataset_review import _bar_counts

    diff = _diff(tmp_path, [{"y": "a"}, {"y": "b"}] * 10, [{"y": "a"}] * 90 + [{"y": "b"}] * 10)
    ax = _axes()
    _bar_counts(ax, diff, "y", "v1", "v2")
    assert ax.get_ylabel() == "share of values (%)"
    heights = [round(bar.get_height(), 1) for bar in ax.patches]
    assert heights == [50.0, 50.0, 90.0, 10.0]  # v1 a, b then v2 a, b: shares, not 10/10 vs 90/10
    # Flagged values stand out: both moved 40 pp.
    assert [t.get_color() for t in ax.get_xticklabels()] == ["#d62728", "#d62728"]


def test_chart_shows_counts_with_whole_ticks_when_totals_match(tmp_path: Path):
    from airflow_provider_llmops.dataset_review import _bar_counts

    diff = _diff(tmp_path, [{"y": "a"}, {"y": "b"}] * 2, [{"y": "a"}] * 3 + [{"y": "b"}])
    ax = _axes()
    _bar_counts(ax, diff, "y", "v1", "v2")
    assert ax.get_ylabel() == "records"
    assert _integer_ticks(ax.get_yticks())


def test_length_histograms_side_by_side_with_whole_ticks(tmp_path: Path):
    from airflow_provider_llmops.dataset_review import _hist_lengths

    old = [{"t": "x" * (10 + i % 7)} for i in range(30)]
    new = [{"t": "x" * (12 + i % 9)} for i in range(30)]
    diff = _diff(tmp_path, old, new)
    ax = _axes()
    _hist_lengths(ax, diff, "t", "v1", "v2")
    assert _integer_ticks(ax.get_xticks()) and _integer_ticks(ax.get_yticks())
    assert ax.get_ylabel() == "records"
    # Side by side: no bar of one version covers a bar of the other.
    bars = [(p.get_x(), p.get_x() + p.get_width()) for p in ax.patches if p.get_height() > 0]
    spans = sorted(bars)
    assert all(a_end <= b_start + 1e-9 for (_, a_end), (b_start, _) in itertools.pairwise(spans))


def test_length_histograms_use_shares_when_totals_differ(tmp_path: Path):
    from airflow_provider_llmops.dataset_review import _hist_lengths

    diff = _diff(tmp_path, [{"t": "abc" * 4}] * 10, [{"t": "abcd" * 5}] * 40)
    ax = _axes()
    _hist_lengths(ax, diff, "t", "v1", "v2")
    assert ax.get_ylabel() == "share of values (%)"
    assert sorted(round(p.get_height(), 6) for p in ax.patches if p.get_height() > 0) == [100.0, 100.0]


def test_values_cannot_inject_markdown_into_the_approval(tmp_path: Path):
    """Label values come from the data; the approval body is rendered in the Airflow UI."""
    new = tmp_path / "v1" / "t.jsonl"
    _write_jsonl(new, [{"label": "![x](http://e.test/p.png)"}, {"label": "<img src=x>"}] * 3)
    review = review_datasets(None, new.parent, tmp_path / "out", old_label="-", new_label="v1")
    body = review.approval_markdown
    assert "![x](" not in body and not re.search(r"(?<!\\)<img", body)
    assert r"| !\[x\](http://e.test/p.png) | 3 (50.0%) |" in body
    assert r"| \<img src=x> | 3 (50.0%) |" in body
    md = review.markdown_path.read_text()
    assert "| !\\[x\\](http://e.test/p.png) | " in md and "| \\<img src=x> | " in md
