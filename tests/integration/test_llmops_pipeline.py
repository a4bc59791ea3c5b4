"""llmops_finetune_and_deploy end to end with dag.test(), CI-sized: tiny data, 3 training steps.

Real servers throughout: a git + DVC project with a local remote (data/llmops v1 and v2), the
harness's Elasticsearch and Triton, torchrun on 2 CPU processes fine-tuning the real
all-MiniLM-L6-v2. The approval step is answered the way the REST API does (dev.pipeline_stack
.answer_hitl) from a thread while dag.test() waits. The Asset events of the run must link
reviewed dataset version -> model manifest -> Triton model version -> index -> alias.
"""

from __future__ import annotations

import pytest

from dev.pipeline_stack import (
    TINY_PARAMS,
    approve_in_background,
    make_pipeline_project,
    pipeline_env,
    prepare_model_env,
)
from tests.fixtures.airflow import asset_events, run_dag, undeclared_event_assets
from tests.integration.pipeline_support import (
    ALIAS_URI,
    BUILD_URI,
    FINETUNE_DAG_FILE,
    FINETUNE_DAG_ID,
    MODEL_URI,
    REVIEW_URI,
    TINY_CONF,
    TRITON_URI,
    load_dag,
    task_states,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


@pytest.fixture
def stack(tmp_path, airflow_db, elasticsearch_server, triton_server, triton_model_repo, monkeypatch):
    project = make_pipeline_project(tmp_path / "dvc", TINY_PARAMS)
    prepare_model_env()
    env = pipeline_env(
        project,
        es_port=int(elasticsearch_server.url.rsplit(":", 1)[1]),
        triton_http_port=int(triton_server.http_port or 0),
        model_repository=triton_model_repo,
        data_dir=tmp_path / "work",
    )
    env["LLMOPS_DVC_CLONE_DIR"] = str(tmp_path / "clones")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield project
    from elasticsearch import Elasticsearch

    client = Elasticsearch(elasticsearch_server.url)
    names = list(client.indices.get(index="stdlib-docs*", expand_wildcards="all").body)
    if names:  # the cluster refuses wildcard deletes (action.destructive_requires_name)
        client.indices.delete(index=",".join(names))
    client.close()


def test_finetune_deploy_index_switch_with_lineage(stack):
    dag = load_dag(FINETUNE_DAG_FILE)
    approval = approve_in_background(FINETUNE_DAG_ID, "approve_dataset")
    dag_run = run_dag(dag, run_conf=TINY_CONF)
    assert approval.get("run_id") == dag_run.run_id, approval
    states = task_states(dag_run)
    assert str(dag_run.state) == "success", states
    assert states["train_kubernetes"] == "skipped" and states["train_local"] == "success", states

    # Every Asset the run put an event on is declared by the DAG (the review as the approval's
    # inlet): Airflow neither creates one on the fly nor warns of an inactive AssetModel.
    assert undeclared_event_assets(dag, dag_run.run_id) == []

    tags = stack.tags()
    sha = tags["v2"]  # dataset_rev main == v2
    review = [e for e in asset_events(REVIEW_URI) if e["dag_id"] == FINETUNE_DAG_ID][-1]["extra"]
    assert review["new_sha"] == sha

    # model://<name>: the manifest names the dataset version it was trained on.
    model_events = [e for e in asset_events(MODEL_URI) if e["dag_id"] == FINETUNE_DAG_ID]
    assert len(model_events) == 1, model_events
    model = model_events[0]["extra"]
    assert model["dataset_rev"] == sha and model["task"] == "embedding"
    assert model["first_loss"] is not None and model["steps"] == TINY_CONF["max_steps"]

    triton = [e for e in asset_events(TRITON_URI) if e["dag_id"] == FINETUNE_DAG_ID][-1]["extra"]
    assert triton["spec_hash"] == model["spec_hash"] and triton["dataset_rev"] == sha
    assert triton["version"] >= 1

    built = [e for e in asset_events(BUILD_URI) if e["dag_id"] == FINETUNE_DAG_ID][-1]["extra"]
    assert built["model_name"] == "stdlib_minilm" and built["model_version"] == str(triton["version"])
    assert built["dataset_rev"] == f"g{sha[:12]}"
    assert built["index"] == f"stdlib-docs-build-g{sha[:12]}-{triton['version']}"

    alias = [e for e in asset_events(ALIAS_URI) if e["dag_id"] == FINETUNE_DAG_ID][-1]["extra"]
    assert alias["index"] == built["index"] and alias["model_version"] == built["model_version"]

    # The summary task's record holds what the demo prints.
    import json

    record = json.loads((stack.root.parent / "work" / "runs" / sha[:12] / "summary.json").read_text())
    assert record["index"] == built["index"] and record["triton_version"] == triton["version"]
    assert record["eval"]["queries"] == TINY_PARAMS["eval_queries"]
    assert 0 <= record["eval"]["base"]["ndcg"] <= 1 and 0 <= record["eval"]["fine_tuned"]["ndcg"] <= 1
