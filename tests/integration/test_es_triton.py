"""A kNN index built with embeddings served by the real Triton server (TritonEmbeddingClient).

The Triton path gives the same neighbours as the local encoder, and the operator accepts it.
"""

from __future__ import annotations

import json
import logging

import pytest

from airflow_provider_llmops.hooks.triton import TritonHook
from airflow_provider_llmops.serving.publish import ModelRepository
from airflow_provider_llmops.utils.chunking import ChunkingSpec
from airflow_provider_llmops.utils.es_eval import GateSpec
from airflow_provider_llmops.utils.es_indexer import IndexBuild, KnnIndexBuilder
from airflow_provider_llmops.utils.es_search import knn_search
from airflow_provider_llmops.utils.triton_deploy import TritonDeployManager
from airflow_provider_llmops.utils.triton_embedding import TritonEmbeddingClient

pytestmark = pytest.mark.integration
log = logging.getLogger("test_es_triton")


def test_index_built_through_triton_matches_the_local_encoder(
    es_client, es_index_prefix, es_corpus, minilm, tmp_path, triton_conn_id, triton_model_repo, minilm_package
):
    hook = TritonHook(triton_conn_id)
    TritonDeployManager(hook, ModelRepository(triton_model_repo), log).deploy(minilm_package, "es_minilm")
    encoder = TritonEmbeddingClient(hook, "es_minilm", batch_size=16)
    assert encoder.dims == minilm.dims == 384

    data = tmp_path / "data"
    data.mkdir()
    (data / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in es_corpus.docs[:20]))
    alias = f"{es_index_prefix}docs"
    version = KnnIndexBuilder(es_client, encoder).build(
        IndexBuild(
            alias=alias,
            input_path=str(data),
            dataset_rev="v1",
            chunking=ChunkingSpec(400, 50),
            gate=GateSpec(k=5, sample_size=10, min_recall=0.8),
        )
    )
    assert version.index == f"{alias}-v1-{encoder.model_version}" and version.model_name == "es_minilm"
    assert version.recall >= 0.8

    # Same model behind Triton and in-process: a query finds the same top documents either way.
    query = "parse command line options"
    via_triton = knn_search(es_client, alias, encoder.encode([query])[0], k=3)
    via_local = knn_search(es_client, alias, minilm.encode([query])[0], k=3)
    assert [h.id for h in via_triton][:1] == [h.id for h in via_local][:1]
