"""Bad params of llmops_finetune_and_deploy: the run fails at its first task, and nothing is published.

An unknown launcher, a negative GPU count and a dataset rev that does not exist each fail
``check_inputs`` with a message naming the param; no other task runs, so no data is pulled, no
model trained, deployed or indexed, and no Asset event is emitted.
"""

from __future__ import annotations

import pytest

from dev.harness.dvc import DvcProject
from dev.pipeline_stack import TINY_PARAMS, make_pipeline_project
from tests.fixtures.airflow import run_dag
from tests.integration.pipeline_support import (
    ALIAS_URI,
    BUILD_URI,
    FINETUNE_DAG_FILE,
    REVIEW_URI,
    TINY_CONF,
    TRITON_URI,
    load_dag,
    task_states,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> DvcProject:
    return make_pipeline_project(tmp_path_factory.mktemp("bad-input") / "dvc", TINY_PARAMS)


@pytest.fixture
def dag(project, airflow_db, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_LLMOPS_DVC_DEFAULT",
        json.dumps({"conn_type": "llmops_dvc", "extra": {"repo": str(project.path), "rev": "main"}}),
    )
    for key, value in project.env.items():
        if key.startswith(("DVC_", "GIT_")):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("LLMOPS_DVC_CLONE_DIR", str(tmp_path / "clones"))
    monkeypatch.setenv("AIRFLOW_VAR_LLMOPS_DATA_DIR", str(tmp_path / "work"))
    return load_dag(FINETUNE_DAG_FILE)


def _run_and_check_first_task_failed(dag, capfd, conf) -> str:
    from tests.fixtures.airflow import asset_events

    uris = (REVIEW_URI, TRITON_URI, BUILD_URI, ALIAS_URI)
    before = {uri: len(asset_events(uri)) for uri in uris}  # other tests of the session may emit
    dag_run = run_dag(dag, run_conf={**TINY_CONF, **conf})
    assert str(dag_run.state) == "failed"
    states = task_states(dag_run)
    assert states["check_inputs"] == "failed", states
    ran = {t: s for t, s in states.items() if t != "check_inputs" and s not in (None, "upstream_failed")}
    assert not ran, f"tasks ran after the failed check: {ran}"
    assert {uri: len(asset_events(uri)) for uri in uris} == before
    out, err = capfd.readouterr()
    return out + err


def test_unknown_launcher_fails_the_first_task(dag, capfd):
    log = _run_and_check_first_task_failed(dag, capfd, {"launcher": "slurm"})
    assert "launcher 'slurm' is not one of local, kubernetes" in log


def test_a_bad_launcher_variable_fails_the_first_task(project, dag, capfd, monkeypatch):
    # The launcher param's default comes from the Variable: a typo there fails just as clearly.
    monkeypatch.setenv("AIRFLOW_VAR_LLMOPS_TRAINING_LAUNCHER", "kubernets")
    dag = load_dag(FINETUNE_DAG_FILE)
    assert dag.params["launcher"] == "kubernets"
    log = _run_and_check_first_task_failed(dag, capfd, {})
    assert "launcher 'kubernets' is not one of local, kubernetes" in log


def test_negative_gpus_fail_the_first_task(dag, capfd):
    log = _run_and_check_first_task_failed(dag, capfd, {"gpus": -2})
    assert "gpus must be an integer >= 0, got -2" in log


def test_missing_dataset_rev_fails_the_first_task(dag, capfd):
    log = _run_and_check_first_task_failed(dag, capfd, {"dataset_rev": "v9-does-not-exist"})
    assert "dataset_rev 'v9-does-not-exist' does not exist" in log
