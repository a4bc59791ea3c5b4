"""The example DAG dags/dvc_dataset_review.py parses quickly, with the documented task chain."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "dvc_dataset_review.py"
DAG_ID = "llmops_dvc_dataset_review"


@pytest.fixture(scope="module")
def dag():
    started = time.monotonic()
    bag = DagBag(dag_folder=str(DAG_FILE))
    elapsed = time.monotonic() - started
    assert bag.import_errors == {}
    assert elapsed < 30, f"parsing took {elapsed:.1f}s"
    return bag.dags[DAG_ID]


def test_task_chain(dag):
    assert set(dag.task_ids) == {
        "wait_for_dataset",
        "pull_dataset",
        "review_dataset",
        "approve_dataset",
        "train",
    }
    down = {task_id: set(dag.get_task(task_id).downstream_task_ids) for task_id in dag.task_ids}
    assert down["wait_for_dataset"] == {"pull_dataset"}
    assert down["pull_dataset"] == {"review_dataset", "train"}  # train also reads the pulled dataset
    assert down["review_dataset"] == {"approve_dataset"}
    assert down["approve_dataset"] == {"train"}
    assert down["train"] == set()


def test_operator_types(dag):
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    from airflow_provider_llmops.operators.dvc import DvcDatasetReviewOperator, DvcPullOperator
    from airflow_provider_llmops.sensors.dvc import DvcUpdateSensor

    assert isinstance(dag.get_task("wait_for_dataset"), DvcUpdateSensor)
    assert isinstance(dag.get_task("pull_dataset"), DvcPullOperator)
    assert isinstance(dag.get_task("review_dataset"), DvcDatasetReviewOperator)
    approve = dag.get_task("approve_dataset")
    assert isinstance(approve, ApprovalOperator)
    # Rejecting must skip training, not fail the approval task.
    assert approve.fail_on_reject is False
    assert "approval_markdown" in approve.body  # the review's Markdown: flagged shifts first


def test_params_have_defaults(dag):
    params = dag.params.dump()
    assert params["path"] == "data/train"
    assert params["rev"] == "main"
    assert params["repo"] is None and params["baseline_rev"] is None and params["since_md5"] is None
    for task in dag.tasks:
        if hasattr(task, "dvc_conn_id"):
            assert task.dvc_conn_id == "llmops_dvc_default"


def test_paths_derive_from_the_dataset_sha(dag):
    """Idempotency: pulled data and reviews live under the git sha, not a timestamp."""
    assert "['sha']" in dag.get_task("pull_dataset").local_path
    assert "['sha']" in dag.get_task("review_dataset").output_dir


def test_usage_markers_for_docs():
    text = DAG_FILE.read_text()
    assert text.count("# [START howto_operator_dvc_dataset_review]") == 1
    assert text.count("# [END howto_operator_dvc_dataset_review]") == 1


def test_docs_tags_and_backfill_note(dag):
    assert "llmops" in dag.tags
    assert dag.doc_md and "Backfills" in dag.doc_md
    import ast

    docstring = ast.get_docstring(ast.parse(DAG_FILE.read_text())) or ""
    # The module docstring says which version a backfilled run gets from which task.
    assert "logical date" in docstring and "backfill" in docstring
    assert "tip of the branch" in docstring
