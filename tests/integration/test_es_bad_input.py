"""Each bad input gives a clear error, and the alias and the index behind it stay untouched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from airflow_provider_llmops.exceptions import (
    ElasticsearchAliasError,
    ElasticsearchGateError,
    ElasticsearchInputError,
    EmbeddingError,
)
from airflow_provider_llmops.utils.chunking import ChunkingSpec
from airflow_provider_llmops.utils.es_eval import GateSpec
from airflow_provider_llmops.utils.es_index import EsIndexManager
from airflow_provider_llmops.utils.es_indexer import IndexBuild, KnnIndexBuilder

pytestmark = pytest.mark.integration


def _write(folder: Path, name: str, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(line + "\n" for line in lines))
    return folder


def _build(client, encoder, path: Path, alias: str, rev: str, **kwargs):
    kwargs.setdefault("gate", GateSpec(k=5, sample_size=10, min_recall=0.5))
    request = IndexBuild(
        alias=alias, input_path=str(path), dataset_rev=rev, chunking=ChunkingSpec(400, 50), **kwargs
    )
    return KnnIndexBuilder(client, encoder).build(request)


@pytest.fixture
def live(es_client, es_index_prefix, es_corpus, minilm, tmp_path):
    """An alias already serving an index; `check()` asserts both are as they were."""
    alias = f"{es_index_prefix}docs"
    good = _write(tmp_path / "good", "docs.jsonl", [json.dumps(d) for d in es_corpus.docs[:8]])
    version = _build(es_client, minilm, good, alias, "v1")
    before = set(es_client.indices.get(index=f"{alias}-*").body)

    def check() -> None:
        assert EsIndexManager(es_client).alias_target(alias) == version.index
        assert es_client.count(index=version.index)["count"] == version.doc_count
        assert EsIndexManager(es_client).meta(version.index)["dataset_rev"] == "v1"

    class Live:
        pass

    live = Live()
    live.alias, live.version, live.check, live.before = alias, version, check, before
    return live


def test_empty_input(es_client, minilm, tmp_path, live):
    empty = _write(tmp_path / "empty", "docs.jsonl", [])
    with pytest.raises(ElasticsearchInputError, match="nothing to index"):
        _build(es_client, minilm, empty, live.alias, "v2")
    live.check()
    assert set(es_client.indices.get(index=f"{live.alias}-*").body) == live.before  # nothing created


def test_missing_id_names_file_and_line(es_client, minilm, tmp_path, live):
    bad = _write(
        tmp_path / "bad-id",
        "docs.jsonl",
        [json.dumps({"id": "a", "text": "fine"}), json.dumps({"text": "no id here"})],
    )
    with pytest.raises(ElasticsearchInputError, match=r"docs\.jsonl, line 2: missing the 'id' field") as info:
        _build(es_client, minilm, bad, live.alias, "v2")
    assert info.value.line == 2 and info.value.path.endswith("docs.jsonl")
    live.check()
    assert set(es_client.indices.get(index=f"{live.alias}-*").body) == live.before


def test_missing_text_names_file_and_line(es_client, minilm, tmp_path, live):
    bad = _write(
        tmp_path / "bad-text",
        "part-1.jsonl",
        [
            json.dumps({"id": "a", "text": "fine"}),
            json.dumps({"id": "b", "text": "ok"}),
            json.dumps({"id": "c"}),
        ],
    )
    with pytest.raises(ElasticsearchInputError, match=r"part-1\.jsonl, line 3: missing the 'text' field"):
        _build(es_client, minilm, bad, live.alias, "v2")
    live.check()


def test_vectors_of_the_wrong_dimension(es_client, minilm, tmp_path, live, es_corpus):
    class Truncating:
        """An encoder whose model changed behind it: it claims 384 dims and returns 383."""

        model_name, model_version, dims, normalized = minilm.model_name, minilm.model_version, 384, True

        def encode(self, texts):
            return np.asarray(minilm.encode(texts))[:, :383]

    good = _write(tmp_path / "v2", "docs.jsonl", [json.dumps(d) for d in es_corpus.docs[:8]])
    with pytest.raises(EmbeddingError, match=r"shape \(\d+, 383\) .* expected \(\d+, 384\)"):
        _build(es_client, Truncating(), good, live.alias, "v2")
    live.check()
    assert set(es_client.indices.get(index=f"{live.alias}-*").body) == live.before


def test_alias_pointing_at_several_indices(es_client, minilm, tmp_path, live, es_index_prefix, es_corpus):
    other = f"{es_index_prefix}stray"
    es_client.indices.create(index=other)
    es_client.indices.put_alias(index=other, name=live.alias)
    good = _write(tmp_path / "v2", "docs.jsonl", [json.dumps(d) for d in es_corpus.docs[:8]])
    with pytest.raises(ElasticsearchAliasError, match=r"points at 2 indices .* exactly one"):
        _build(es_client, minilm, good, live.alias, "v2")
    assert sorted(es_client.indices.get_alias(name=live.alias).body) == sorted([live.version.index, other])
    assert es_client.count(index=live.version.index)["count"] == live.version.doc_count
    assert set(es_client.indices.get(index=f"{live.alias}-*").body) == live.before


def test_alias_name_that_is_a_concrete_index(es_client, minilm, tmp_path, es_index_prefix, es_corpus):
    concrete = f"{es_index_prefix}concrete"
    es_client.indices.create(index=concrete)
    es_client.index(index=concrete, id="keep-me", document={"x": 1}, refresh=True)
    good = _write(tmp_path / "v1", "docs.jsonl", [json.dumps(d) for d in es_corpus.docs[:4]])
    with pytest.raises(ElasticsearchAliasError, match="is a concrete index, not an alias"):
        _build(es_client, minilm, good, concrete, "v1")
    assert es_client.count(index=concrete)["count"] == 1
    assert not es_client.indices.get(index=f"{concrete}-*", allow_no_indices=True).body


def test_gate_failure(es_client, minilm, tmp_path, live, es_corpus):
    good = _write(tmp_path / "v2", "docs.jsonl", [json.dumps(d) for d in es_corpus.docs[:8]])
    with pytest.raises(ElasticsearchGateError, match="min_ndcg is set but no judgments were given") as info:
        _build(
            es_client,
            minilm,
            good,
            live.alias,
            "v2",
            gate=GateSpec(k=5, sample_size=10, min_recall=0.5, min_ndcg=0.9),
        )
    assert f"still points at {live.version.index}" in str(info.value)
    live.check()
