"""Bulk loads through a real fault-injecting proxy (dev/harness/faultproxy.py) in front of the real node.

The proxy answers bulk requests with 429/503, rejects a share of their items and drops
connections after forwarding; the index must end with exactly the expected documents.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_llmops.exceptions import ElasticsearchBulkError
from airflow_provider_llmops.utils.chunking import ChunkingSpec
from airflow_provider_llmops.utils.es_eval import GateSpec
from airflow_provider_llmops.utils.es_index import EsIndexManager
from airflow_provider_llmops.utils.es_indexer import BulkSpec, IndexBuild, KnnIndexBuilder, chunk_id
from dev.harness.faultproxy import FaultProxy

pytestmark = pytest.mark.integration


def _corpus(tmp_path: Path, docs, n: int) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[:n]))
    return folder


def _request(alias: str, path: Path, rev: str, **bulk) -> IndexBuild:
    return IndexBuild(
        alias=alias,
        input_path=str(path),
        dataset_rev=rev,
        chunking=ChunkingSpec(300, 50),
        gate=GateSpec(k=5, sample_size=10, min_recall=0.5),
        bulk=BulkSpec(
            **{"max_docs": 8, "concurrency": 3, "attempts": 12, "base_delay": 0.02, "max_delay": 0.2, **bulk}
        ),
    )


def test_faults_end_with_exactly_the_expected_documents(
    elasticsearch_server, es_client, es_index_prefix, es_corpus, minilm, tmp_path
):
    from elasticsearch import Elasticsearch
    from elasticsearch.helpers import scan

    alias = f"{es_index_prefix}docs"
    corpus = _corpus(tmp_path, es_corpus.docs, 60)
    with FaultProxy(
        elasticsearch_server.url, status_rate=0.2, partial_rate=0.25, drop_rate=0.15, seed=11
    ) as proxy:
        client = Elasticsearch(proxy.url, request_timeout=60)
        version = KnnIndexBuilder(client, minilm).build(_request(alias, corpus, "v1"))
        client.close()
    # Every kind of fault really happened.
    assert proxy.stats["status"] >= 1 and proxy.stats["drop"] >= 1 and proxy.stats["rejected_items"] >= 1, (
        proxy.stats
    )

    ids = sorted(
        h["_id"]
        for h in scan(es_client, index=version.index, query={"query": {"match_all": {}}}, _source=False)
    )
    # Expected ids, computed independently from the chunker.
    from airflow_provider_llmops.utils.chunking import chunk_text

    expected = sorted(
        chunk_id(d["id"], c.number, minilm.model_version)
        for d in es_corpus.docs[:60]
        for c in chunk_text(d["text"], ChunkingSpec(300, 50))
    )
    assert ids == expected
    assert es_client.count(index=version.index)["count"] == len(expected) == version.doc_count
    assert EsIndexManager(es_client).alias_target(alias) == version.index


def test_items_that_finally_fail_fail_the_task_and_settings_are_restored(
    elasticsearch_server, es_client, es_index_prefix, es_corpus, minilm, tmp_path
):
    from elasticsearch import Elasticsearch

    alias = f"{es_index_prefix}docs"
    corpus = _corpus(tmp_path, es_corpus.docs, 10)
    v1 = KnnIndexBuilder(es_client, minilm).build(_request(alias, corpus, "v1"))
    # Every bulk request is rejected: after the attempts are used up the load fails, loudly.
    with FaultProxy(elasticsearch_server.url, status_rate=1.0, seed=3) as proxy:
        client = Elasticsearch(proxy.url, request_timeout=60)
        builder = KnnIndexBuilder(client, minilm)
        with pytest.raises(
            ElasticsearchBulkError, match=r"could not be indexed into .*-v2-.*HTTP (429|503)"
        ) as info:
            builder.build(_request(alias, corpus, "v2", attempts=3))
        client.close()
    assert len(info.value.failed) == v1.doc_count
    assert "The alias was not switched" in str(info.value)
    # Refresh and replicas are back to their final values although the load failed.
    assert builder.index is not None
    settings = es_client.indices.get_settings(index=builder.index)[builder.index]["settings"]["index"]
    assert settings["refresh_interval"] == "1s" and settings["number_of_replicas"] == "1"
    assert EsIndexManager(es_client).alias_target(alias) == v1.index
    assert es_client.count(index=v1.index)["count"] == v1.doc_count
