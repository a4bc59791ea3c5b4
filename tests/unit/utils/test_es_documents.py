"""Reading the documents to index: folders, bad records named by file and line."""

from __future__ import annotations

import json

import pytest

from airflow_provider_llmops.exceptions import ElasticsearchInputError
from airflow_provider_llmops.utils.es_documents import iter_documents


def test_folder_of_jsonl_and_parquet_with_metadata(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.jsonl").write_text(json.dumps({"id": 1, "text": "one", "lang": "en"}) + "\n\n")
    pq.write_table(pa.table({"id": ["p1"], "text": ["from parquet"], "lang": ["de"]}), tmp_path / "b.parquet")
    (tmp_path / "info.json").write_text(json.dumps({"about": "metadata, not records"}))
    docs = list(iter_documents(tmp_path, metadata_fields=["lang"]))
    assert [(d.id, d.text, d.metadata) for d in docs] == [
        ("1", "one", {"lang": "en"}),
        ("p1", "from parquet", {"lang": "de"}),
    ]


def test_missing_fields_name_the_line_even_after_blank_lines(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"id": "a", "text": "x"}\n\n{"id": "b"}\n')
    with pytest.raises(ElasticsearchInputError, match=r"d\.jsonl, line 3: missing the 'text' field") as info:
        list(iter_documents(tmp_path))
    assert info.value.line == 3


def test_missing_both_fields_with_custom_names(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"other": 1}\n')
    with pytest.raises(
        ElasticsearchInputError, match=r"missing the 'doc' and 'body' fields \(id_field='doc'"
    ):
        list(iter_documents(tmp_path, id_field="doc", text_field="body"))


def test_non_string_text_and_broken_json(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"id": "a", "text": 5}\n')
    with pytest.raises(ElasticsearchInputError, match="must be a string"):
        list(iter_documents(tmp_path))
    (tmp_path / "d.jsonl").write_text('{"id": "a", "text": "ok"}\n{not json\n')
    with pytest.raises(ElasticsearchInputError, match=r"d\.jsonl:2"):
        list(iter_documents(tmp_path))


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(ElasticsearchInputError, match="does not exist"):
        list(iter_documents(tmp_path / "nope"))
    with pytest.raises(ElasticsearchInputError, match="holds no JSONL, Parquet"):
        list(iter_documents(tmp_path))
