"""Quickstart: pull a DVC-versioned dataset, review what changed, and smoke-test a Triton model.

Copy this DAG to check that the provider, your ``llmops_dvc`` connection and your
``llmops_triton`` connection work together. ``./dev/demo`` runs it against a local stack.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_llmops.operators.dvc import DvcDatasetReviewOperator, DvcPullOperator

with DAG(
    dag_id="llmops_quickstart",
    description="Pull a DVC dataset, review the change between two versions, smoke-test Triton",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["llmops", "example", "dvc", "triton"],
    doc_md=__doc__,
    params={
        "dataset_path": Param("data/train", type="string", description="DVC-tracked path in the project"),
        "old_rev": Param("v1", type="string", description="Rev the review compares from"),
        "new_rev": Param("v2", type="string", description="Rev to pull and review"),
        "model_name": Param("llmops_echo", type="string", description="Triton model to load and query"),
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

    pull >> review >> triton_smoke("{{ params.model_name }}")
