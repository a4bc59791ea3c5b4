"""Quickstart: pull a DVC-versioned dataset, review what changed, smoke-test Triton and Elasticsearch.

Copy this DAG to check that the provider and your ``llmops_dvc``, ``llmops_triton`` and
``elasticsearch_default`` connections work together. ``./dev/demo`` runs it against a local stack.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_llmops.operators.dvc import DvcDatasetReviewOperator, DvcPullOperator

with DAG(
    dag_id="llmops_quickstart",
    description="Pull a DVC dataset, review the change between two versions, smoke-test Triton and Elasticsearch",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["llmops", "example", "dvc", "triton", "elasticsearch"],
    doc_md=__doc__,
    params={
        "dataset_path": Param("data/train", type="string", description="DVC-tracked path in the project"),
        "old_rev": Param("v1", type="string", description="Rev the review compares from"),
        "new_rev": Param("v2", type="string", description="Rev to pull and review"),
        "model_name": Param("llmops_echo", type="string", description="Triton model to load and query"),
        "es_index": Param(
            "llmops-quickstart", type="string", description="Elasticsearch index to smoke-test"
        ),
    },
) as dag:
    # [START howto_operator_dvc_pull]
    pull = DvcPullOperator(
        task_id="pull_dataset",
        dvc_conn_id="llmops_dvc_default",
        path="{{ params.dataset_path }}",
        rev="{{ params.new_rev }}",
        local_path="{{ var.value.get('llmops_data_dir', '/tmp/llmops-data') }}/{{ params.new_rev }}",
    )
    # [END howto_operator_dvc_pull]

    # [START howto_operator_dvc_review]
    review = DvcDatasetReviewOperator(
        task_id="review_dataset",
        dvc_conn_id="llmops_dvc_default",
        path="{{ params.dataset_path }}",
        old_rev="{{ params.old_rev }}",
        new_rev="{{ params.new_rev }}",
        output_dir="{{ var.value.get('llmops_data_dir', '/tmp/llmops-data') }}/reviews/{{ params.old_rev }}..{{ params.new_rev }}",
    )
    # [END howto_operator_dvc_review]

    @task
    def triton_smoke(model_name: str) -> dict:
        """Load the model through the explicit model-control API and check one inference."""
        import numpy as np

        from airflow_provider_llmops.hooks.triton import TritonHook

        hook = TritonHook(triton_conn_id="llmops_triton_default")
        hook.load_model(model_name)
        sample = np.arange(4, dtype=np.float32)
        outputs = hook.infer(model_name, {"INPUT0": sample}, ["OUTPUT0"])
        if not np.allclose(outputs["OUTPUT0"], sample * 2):
            raise ValueError(
                f"{model_name} returned {outputs['OUTPUT0']!r} for {sample!r}; expected 2x input"
            )
        return {"model": model_name, "output": outputs["OUTPUT0"].tolist()}

    @task
    def elasticsearch_smoke(index: str) -> dict:
        """Index three vectors (idempotent: fixed ids) and check the nearest neighbour of one of them."""
        from airflow.sdk import BaseHook
        from elasticsearch import Elasticsearch

        conn = BaseHook.get_connection("elasticsearch_default")
        es = Elasticsearch(f"{conn.schema or 'http'}://{conn.host}:{conn.port}", request_timeout=60)
        if not es.indices.exists(index=index):
            mapping = {"properties": {"vec": {"type": "dense_vector", "dims": 3, "similarity": "cosine"}}}
            es.indices.create(index=index, mappings=mapping)
        for doc_id, vec in {"a": [1.0, 0.0, 0.0], "b": [0.0, 1.0, 0.0], "c": [0.0, 0.0, 1.0]}.items():
            es.index(index=index, id=doc_id, document={"vec": vec})
        es.indices.refresh(index=index)
        knn = {"field": "vec", "query_vector": [0.1, 0.9, 0.0], "k": 1, "num_candidates": 3}
        hit = es.search(index=index, knn=knn)["hits"]["hits"][0]["_id"]
        if hit != "b":
            raise ValueError(f"kNN on {index} returned {hit!r}; expected 'b'")
        return {"index": index, "nearest": hit, "docs": es.count(index=index)["count"]}

    pull >> review >> [triton_smoke("{{ params.model_name }}"), elasticsearch_smoke("{{ params.es_index }}")]
