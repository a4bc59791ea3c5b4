"""Smoke run of the provider on the oldest Airflow it supports (pyproject's floor).

Run by ./dev/test inside `.venv-floor` (Airflow 3.2.2 and the standard provider 1.12.2, pinned
by constraints-floor.txt): the provider loads through its entry point, the example DAGs parse,
a real DAG processor's parses find the modules its plugin pre-imports, and one `dag.test()`
pulls a dataset and waits for a version with the sensor, against a real git + DVC project.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from dev.harness.airflow import migrate_db, prepare_airflow_env, probe_dag_processor

work = Path(tempfile.mkdtemp(prefix="llmops-floor-"))
env = prepare_airflow_env(name="floor-smoke", home=work / "airflow")
os.environ.update(env)
os.environ.update({"DVC_NO_ANALYTICS": "1", "LLMOPS_DVC_CLONE_DIR": str(work / "clones")})
migrate_db(env)


def main() -> int:
    from importlib.metadata import version

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk import DAG

    from airflow_provider_llmops.operators.dvc import DvcPullOperator
    from airflow_provider_llmops.plugins.preimport import parse_time_modules
    from airflow_provider_llmops.sensors.dvc import DvcUpdateSensor
    from dev.harness.dvc import make_dvc_project

    print(
        f"Airflow {version('apache-airflow')}, standard provider {version('apache-airflow-providers-standard')}"
    )
    assert "airflow-provider-llmops" in ProvidersManager().providers, (
        "provider not found through its entry point"
    )
    bag = DagBag(dag_folder="dags")
    assert not bag.import_errors, bag.import_errors
    assert bag.dags, "no example DAGs parsed"
    print(f"parsed {len(bag.dags)} example DAGs: {sorted(bag.dags)}")
    probe = probe_dag_processor(work / "parse-probe")
    wanted = set(parse_time_modules())
    assert probe.inherited(wanted), (
        f"the DAG processor's parses did not inherit the provider's modules: {probe}"
    )
    print(f"dag-processor: {len(probe.parses)} parse(s) found the provider's {len(wanted)} modules imported")

    project = make_dvc_project(work / "dvc")
    project.publish("data/train", {"train.jsonl": '{"id": 0, "text": "hello"}\n'}, tag="v1")
    with DAG("floor_smoke", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)) as dag:
        wait = DvcUpdateSensor(
            task_id="wait",
            path="data/train",
            since_md5="none",
            repo=str(project.path),
            dvc_conn_id=None,
            deferrable=True,
            poke_interval=1,
            timeout=60,
        )
        pull = DvcPullOperator(
            task_id="pull",
            path="data/train",
            local_path=str(work / "pulled" / "train"),
            rev="v1",
            repo=str(project.path),
            dvc_conn_id=None,
        )
        wait >> pull
    DagBundlesManager().sync_bundles_to_db()
    single = DagBag(dag_folder=os.devnull)
    single.bag_dag(dag)
    sync_bag_to_db(single, "dags-folder", None)
    run = dag.test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert (work / "pulled" / "train" / "train.jsonl").read_text().startswith('{"id": 0')
    print("floor smoke passed:", states)
    return 0


if __name__ == "__main__":
    sys.exit(main())
