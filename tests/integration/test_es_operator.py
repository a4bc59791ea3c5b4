"""The kNN operators inside a real DAG run (`dag.test()`, Airflow on SQLite) against the real node.

Two builds (templated dataset revs) then a rollback: XCom carries the IndexVersion and the
evaluation, the Asset ``elasticsearch://<cluster>/<alias>`` gets one event per task with the
index version as its extra.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from tests.fixtures.airflow import asset_events, run_dag

pytestmark = pytest.mark.integration


def test_index_twice_then_roll_back_in_a_dag(
    airflow_db, es_client, es_index_prefix, es_conn_id, es_corpus, minilm, tmp_path
):
    from airflow.sdk import DAG, task

    from airflow_provider_llmops.operators.elasticsearch import (
        ElasticsearchAliasRollbackOperator,
        ElasticsearchKnnIndexOperator,
    )

    alias = f"{es_index_prefix}docs"
    data = tmp_path / "data"
    data.mkdir()
    (data / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in es_corpus.docs[:15]))
    out = tmp_path / "xcom.json"
    common = dict(
        alias=alias,
        input_path=str(data),
        elasticsearch_conn_id=es_conn_id,
        cluster="test-cluster",
        encoder_kwargs={"device": "cpu"},
        metadata_fields={"module": "keyword"},
        chunk_size=500,
        chunk_overlap=50,
        gate_k=5,
        gate_sample_size=10,
        min_recall=0.5,
        judgments_path=str(es_corpus.judgments_path),
        replicas=0,
    )
    with DAG(
        "es_knn_flow",
        schedule=None,
        start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
        params={"rev": "a"},
    ) as dag:
        first = ElasticsearchKnnIndexOperator(task_id="index_a", dataset_rev="{{ params.rev }}", **common)
        second = ElasticsearchKnnIndexOperator(
            task_id="index_b", dataset_rev="{{ params.rev }}-next", **common
        )
        rollback = ElasticsearchAliasRollbackOperator(
            task_id="rollback", alias=alias, elasticsearch_conn_id=es_conn_id, cluster="test-cluster"
        )

        @task(task_id="collect")
        def collect(**context):
            ti = context["ti"]
            results = {t: ti.xcom_pull(task_ids=t) for t in ("index_a", "index_b", "rollback")}
            results["evaluation"] = ti.xcom_pull(task_ids="index_b", key="evaluation")
            out.write_text(json.dumps(results))

        first >> second >> rollback >> collect()

    assert first.asset is not None and first.asset.uri == f"elasticsearch://test-cluster/{alias}"
    dr = run_dag(dag)
    assert dr.state == "success", [(ti.task_id, ti.state) for ti in dr.get_task_instances()]
    results = json.loads(out.read_text())
    a, b, back = results["index_a"], results["index_b"], results["rollback"]
    assert (
        a["index"] == f"{alias}-a-{minilm.model_version}"
        and b["index"] == f"{alias}-a-next-{minilm.model_version}"
    )
    assert b["previous_index"] == a["index"] and b["switched"]
    assert b["ndcg"] is not None and b["recall"] >= 0.5
    assert results["evaluation"]["recall"] == b["recall"] and results["evaluation"]["index"] == b["index"]
    assert back == {
        "cluster": "test-cluster",
        "alias": alias,
        "from_index": b["index"],
        "to_index": a["index"],
    }
    assert sorted(es_client.indices.get_alias(name=alias).body) == [a["index"]]

    events = asset_events(f"elasticsearch://test-cluster/{alias}")
    by_task = {e["task_id"]: e["extra"] for e in events}
    assert set(by_task) == {"index_a", "index_b", "rollback"}
    extra = by_task["index_b"]
    assert extra["index"] == b["index"] and extra["doc_count"] == b["doc_count"]
    assert extra["model_version"] == minilm.model_version and extra["dataset_rev"] == "a-next"
    assert extra["recall"] == b["recall"] and extra["ndcg"] == b["ndcg"]
    assert by_task["rollback"] == {"index": a["index"], "rolled_back_from": b["index"]}


def test_failed_gate_in_a_dag_pushes_the_evaluation_and_keeps_the_alias(
    airflow_db, es_client, es_index_prefix, es_conn_id, es_corpus, tmp_path
):
    from airflow.sdk import DAG

    from airflow_provider_llmops.operators.elasticsearch import ElasticsearchKnnIndexOperator

    alias = f"{es_index_prefix}docs"
    data = tmp_path / "data"
    data.mkdir()
    (data / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in es_corpus.docs[:6]))
    with DAG("es_knn_gate_fail", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=timezone.utc)) as dag:
        ElasticsearchKnnIndexOperator(
            task_id="index",
            alias=alias,
            input_path=str(data),
            dataset_rev="v1",
            elasticsearch_conn_id=es_conn_id,
            encoder_kwargs={"device": "cpu"},
            gate_sample_size=5,
            min_ndcg=0.5,  # without judgments: the gate cannot pass
        )
    dr = run_dag(dag)
    assert dr.state == "failed"
    ti = dr.get_task_instance("index")
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalars(
            select(XComModel.value).where(
                XComModel.dag_id == "es_knn_gate_fail",
                XComModel.run_id == ti.run_id,
                XComModel.key == "evaluation",
            )
        ).first()
    evaluation = value if isinstance(value, dict) else json.loads(value)
    assert evaluation["recall"] >= 0 and evaluation["index"].startswith(f"{alias}-v1-")
    assert not es_client.indices.exists_alias(name=alias)
