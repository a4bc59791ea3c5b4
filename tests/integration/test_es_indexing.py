"""kNN index builds against the real Elasticsearch node, with real all-MiniLM-L6-v2 embeddings.

The full flow, reruns, the gate, the alias switch, rollback, retention, the compatibility guard
and search (kNN with filters, hybrid with client-side RRF). No mocks: a real server, a real
model, a real corpus (the standard library's docstrings, see tests/fixtures/es_knn.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_llmops.exceptions import (
    ElasticsearchCompatibilityError,
    ElasticsearchGateError,
)
from airflow_provider_llmops.utils.chunking import ChunkingSpec
from airflow_provider_llmops.utils.es_eval import GateSpec
from airflow_provider_llmops.utils.es_index import EsIndexManager
from airflow_provider_llmops.utils.es_indexer import IndexBuild, KnnIndexBuilder, chunk_id, load_judgments

pytestmark = pytest.mark.integration

CHUNKING = ChunkingSpec(size=600, overlap=80)


def build(client, encoder, path, alias, rev, **kwargs):
    kwargs.setdefault("gate", GateSpec(k=10, sample_size=20, min_recall=0.8))
    kwargs.setdefault("chunking", CHUNKING)
    kwargs.setdefault("metadata_fields", {"module": "keyword"})
    request = IndexBuild(alias=alias, input_path=str(path), dataset_rev=rev, run_id="test", **kwargs)
    return KnnIndexBuilder(client, encoder, base64_vectors=True).build(request)


def all_ids(client, index):
    from elasticsearch.helpers import scan

    return sorted(
        hit["_id"] for hit in scan(client, index=index, query={"query": {"match_all": {}}}, _source=False)
    )


def small_corpus(tmp_path: Path, docs, n=12) -> Path:
    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[:n]))
    return folder


def test_full_flow_on_real_text_with_judgments(es_client, es_index_prefix, es_corpus, minilm):
    alias = f"{es_index_prefix}docs"
    version = build(
        es_client,
        minilm,
        es_corpus.path,
        alias,
        "v1",
        judgments=load_judgments(str(es_corpus.judgments_path)),
        gate=GateSpec(k=10, sample_size=30, min_recall=0.9, min_ndcg=0.3),
    )
    assert version.index == f"{alias}-v1-{minilm.model_version}"
    assert version.switched and version.previous_index is None
    assert version.documents == len(es_corpus.docs)
    assert version.doc_count == es_client.count(index=alias)["count"] > version.documents
    assert version.recall >= 0.9 and version.ndcg is not None and version.ndcg >= 0.3
    assert version.mrr is not None and version.mrr > 0.5

    mapping = es_client.indices.get_mapping(index=version.index)[version.index]["mappings"]
    vector = mapping["properties"]["embedding"]
    assert (vector["dims"], vector["similarity"], vector["index_options"]["type"]) == (384, "cosine", "hnsw")
    assert mapping["properties"]["text"]["type"] == "text"
    assert mapping["properties"]["module"]["type"] == "keyword"
    meta = mapping["_meta"]["llmops"]
    assert meta["model_name"] == "all-MiniLM-L6-v2" and meta["model_version"] == minilm.model_version
    assert (meta["dims"], meta["similarity"], meta["dataset_rev"], meta["run_id"]) == (
        384,
        "cosine",
        "v1",
        "test",
    )
    assert meta["evaluation"]["recall"] == version.recall
    settings = es_client.indices.get_settings(index=version.index)[version.index]["settings"]["index"]
    assert settings["refresh_interval"] == "1s" and settings["number_of_replicas"] == "1"

    # Ids are deterministic: doc id, chunk number, model version.
    ids = all_ids(es_client, alias)
    assert chunk_id("json", 0, minilm.model_version) in ids
    assert len(ids) == version.doc_count

    # The stored vectors (sent as base64 float32) are the encoder's.
    doc = es_client.get(index=alias, id=chunk_id("json", 0, minilm.model_version))["_source"]
    assert doc["doc_id"] == "json" and doc["chunk"] == 0 and doc["module"] == "json"


def test_rerun_leaves_count_and_ids_unchanged(es_client, es_index_prefix, es_corpus, minilm, tmp_path):
    alias = f"{es_index_prefix}docs"
    corpus = small_corpus(tmp_path, es_corpus.docs, 40)
    first = build(es_client, minilm, corpus, alias, "v1")
    ids = all_ids(es_client, first.index)
    second = build(es_client, minilm, corpus, alias, "v1")
    assert second.index == first.index and not second.switched
    assert second.doc_count == first.doc_count == len(ids)
    assert all_ids(es_client, first.index) == ids
    assert EsIndexManager(es_client).alias_target(alias) == first.index


def test_new_rev_switches_alias_atomically_and_rollback_returns(
    es_client, es_index_prefix, es_corpus, minilm, tmp_path, es_conn_id
):
    from airflow_provider_llmops.hooks.elasticsearch import ElasticsearchVectorHook

    alias = f"{es_index_prefix}docs"
    corpus = small_corpus(tmp_path, es_corpus.docs, 30)
    v1 = build(es_client, minilm, corpus, alias, "v1")
    v2 = build(es_client, minilm, corpus, alias, "v2")
    assert v2.previous_index == v1.index and v2.switched
    assert sorted(es_client.indices.get_alias(name=alias).body) == [v2.index]

    hook = ElasticsearchVectorHook(es_conn_id)
    assert hook.rollback_alias(alias) == (v2.index, v1.index)
    assert hook.alias_indices(alias) == [v1.index]
    assert es_client.count(index=alias)["count"] == v1.doc_count


def test_retention_keeps_the_last_k_indices(es_client, es_index_prefix, es_corpus, minilm, tmp_path):
    alias = f"{es_index_prefix}docs"
    corpus = small_corpus(tmp_path, es_corpus.docs, 8)
    names = [build(es_client, minilm, corpus, alias, f"r{i}", keep=2).index for i in range(4)]
    left = sorted(es_client.indices.get(index=f"{alias}-*").body)
    assert left == sorted(names[-2:])
    assert EsIndexManager(es_client).alias_target(alias) == names[-1]


def test_failing_gate_leaves_alias_on_the_old_index(es_client, es_index_prefix, es_corpus, minilm, tmp_path):
    alias = f"{es_index_prefix}docs"
    corpus = small_corpus(tmp_path, es_corpus.docs, 20)
    v1 = build(es_client, minilm, corpus, alias, "v1")
    with pytest.raises(ElasticsearchGateError, match=r"failed the quality gate: .*nDCG") as info:
        build(
            es_client,
            minilm,
            corpus,
            alias,
            "v2",
            judgments=load_judgments(str(es_corpus.judgments_path)),
            gate=GateSpec(k=10, sample_size=20, min_recall=0.5, min_ndcg=0.999),
        )
    assert info.value.evaluation["ndcg"] < 0.999
    assert f"still points at {v1.index}" in str(info.value)
    assert EsIndexManager(es_client).alias_target(alias) == v1.index
    assert es_client.count(index=v1.index)["count"] == v1.doc_count


def test_gate_refuses_an_index_worse_than_the_current_one(
    es_client, es_index_prefix, es_corpus, minilm, tmp_path
):
    alias = f"{es_index_prefix}docs"
    corpus = small_corpus(tmp_path, es_corpus.docs, 20)
    v1 = build(es_client, minilm, corpus, alias, "v1")
    # The current index claims perfect judged quality: a new one with real numbers is worse.
    EsIndexManager(es_client).update_meta(v1.index, evaluation={"recall": 1.0, "ndcg": 1.0})
    with pytest.raises(ElasticsearchGateError, match="worse than the current index"):
        build(
            es_client,
            minilm,
            corpus,
            alias,
            "v2",
            judgments=load_judgments(str(es_corpus.judgments_path)),
            gate=GateSpec(k=10, sample_size=20, min_recall=0.5, tolerance=0.01),
        )
    assert EsIndexManager(es_client).alias_target(alias) == v1.index


def test_guard_refuses_writing_with_another_similarity(
    es_client, es_index_prefix, es_corpus, minilm, tmp_path
):
    alias = f"{es_index_prefix}docs"
    corpus = small_corpus(tmp_path, es_corpus.docs, 10)
    v1 = build(es_client, minilm, corpus, alias, "v1")
    ids = all_ids(es_client, v1.index)
    # Same alias, rev and model: same index name, but another similarity: refused, named.
    with pytest.raises(
        ElasticsearchCompatibilityError,
        match=r"similarity: index has 'cosine', encoder in use has 'dot_product'",
    ):
        build(es_client, minilm, corpus, alias, "v1", index={"similarity": "dot_product"})
    assert all_ids(es_client, v1.index) == ids


def test_guard_refuses_searching_with_another_model(
    es_client, es_index_prefix, es_corpus, minilm, tmp_path, es_conn_id
):
    from airflow_provider_llmops.hooks.elasticsearch import ElasticsearchVectorHook
    from airflow_provider_llmops.utils.es_search import VectorSearcher

    alias = f"{es_index_prefix}docs"
    build(es_client, minilm, small_corpus(tmp_path, es_corpus.docs, 10), alias, "v1")
    hook = ElasticsearchVectorHook(es_conn_id)

    class Other:
        model_name, model_version, dims, normalized = "all-MiniLM-L6-v2", "other-version", 384, True

        def encode(self, texts):
            return minilm.encode(texts)

    with pytest.raises(
        ElasticsearchCompatibilityError,
        match=r"model_version: index has '.+', encoder in use has 'other-version'",
    ):
        VectorSearcher(hook, alias, Other())

    class Smaller(Other):
        model_version, dims = minilm.model_version, 128

    with pytest.raises(ElasticsearchCompatibilityError, match=r"dims: index has 384, encoder in use has 128"):
        VectorSearcher(hook, alias, Smaller())


def test_knn_filters_and_client_side_hybrid_search(es_client, es_index_prefix, es_corpus, minilm, es_conn_id):
    from elasticsearch import BadRequestError

    from airflow_provider_llmops.hooks.elasticsearch import ElasticsearchVectorHook
    from airflow_provider_llmops.utils.es_search import VectorSearcher, hybrid_search

    alias = f"{es_index_prefix}docs"
    build(es_client, minilm, es_corpus.path, alias, "v1")
    hook = ElasticsearchVectorHook(es_conn_id)
    # This node has no rank-rrf module: capability detection picks client-side fusion.
    assert hook.capabilities().rrf_retriever is False
    assert hook.capabilities().base64_vectors is True
    searcher = VectorSearcher(hook, alias, minilm)
    assert searcher.server_side_rrf is False

    hits = searcher.knn("encode python objects as JSON text", k=5)
    assert hits[0].source["module"] == "json"
    filtered = searcher.knn("encode python objects as JSON text", k=5, filter={"term": {"module": "pickle"}})
    assert filtered and {h.source["module"] for h in filtered} == {"pickle"}

    hybrid = searcher.hybrid("gzip compress decompress files", k=5)
    assert hybrid[0].source["module"] in ("gzip", "zlib")
    assert all(h.score > 0 for h in hybrid) and len({h.id for h in hybrid}) == len(hybrid)
    in_module = searcher.hybrid("compress", k=5, filter={"term": {"module": "bz2"}})
    assert in_module and {h.source["module"] for h in in_module} == {"bz2"}

    # And why detection matters: server-side RRF is refused by this distribution.
    with pytest.raises(BadRequestError, match="rrf"):
        hybrid_search(es_client, alias, "gzip", minilm.encode(["gzip"])[0], server_side=True, k=5)


def test_token_chunking_with_the_model_tokenizer(es_client, es_index_prefix, es_corpus, minilm, tmp_path):
    alias = f"{es_index_prefix}docs"
    version = build(
        es_client,
        minilm,
        small_corpus(tmp_path, es_corpus.docs, 10),
        alias,
        "v1",
        chunking=ChunkingSpec(64, 16, "tokens"),
    )
    meta = EsIndexManager(es_client).meta(version.index)
    assert meta["chunking"] == "tokens:64:16"
    assert version.doc_count > version.documents
