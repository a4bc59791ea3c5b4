"""The example DAGs users copy run end to end with `dag.test()` against real services."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from airflow.dag_processing.dagbag import DagBag

from dev.harness.dvc import make_demo_project
from dev.harness.triton import write_python_model

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


def test_quickstart_dag_pulls_reviews_and_queries_triton_and_elasticsearch(
    airflow_db,
    dvc_env,
    triton_server,
    triton_model_repo,
    elasticsearch_server,
    es_client,
    es_index_prefix,
    tmp_path,
    monkeypatch,
):
    project = make_demo_project(tmp_path / "dvc")
    write_python_model(triton_model_repo, "llmops_echo")
    monkeypatch.setenv(
        "AIRFLOW_CONN_LLMOPS_DVC_DEFAULT",
        json.dumps({"conn_type": "llmops_dvc", "extra": {"repo": str(project.path), "rev": "main"}}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_LLMOPS_TRITON_DEFAULT",
        json.dumps({"conn_type": "llmops_triton", "host": "127.0.0.1", "port": triton_server.http_port}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT",
        json.dumps(
            {"conn_type": "elasticsearch", "host": "127.0.0.1", "port": elasticsearch_server.http_port}
        ),
    )
    data_dir = tmp_path / "data"
    monkeypatch.setenv("AIRFLOW_VAR_LLMOPS_DATA_DIR", str(data_dir))

    dag = DagBag(dag_folder=str(DAGS_DIR / "llmops_quickstart.py")).dags["llmops_quickstart"]
    run = dag.test(
        logical_date=datetime(2024, 1, 3, tzinfo=timezone.utc),
        run_conf={"es_index": f"{es_index_prefix}quickstart"},
    )

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    pulled = data_dir / "v2" / "train.jsonl"
    assert len(pulled.read_text().splitlines()) == 25
    review = (data_dir / "reviews" / "v1..v2" / "review.md").read_text()
    assert "Records: 20 -> 25 (+5)" in review
    assert list((data_dir / "reviews" / "v1..v2").glob("*.png"))
    smoke = next(ti for ti in run.get_task_instances() if ti.task_id == "triton_smoke")
    assert smoke.xcom_pull(task_ids="triton_smoke") == {
        "model": "llmops_echo",
        "output": [0.0, 2.0, 4.0, 6.0],
    }
