"""The example DAG dags/dvc_dataset_review.py end to end on a real `airflow standalone`.

A real git + DVC project (tags v1 and v2 of data/train, pushed to a local DVC remote) feeds the
unmodified example DAG. Runs are triggered through the REST API; the test waits for the
approval task's Human-in-the-loop request (GET .../hitlDetails), answers it through the API
(PATCH .../taskInstances/approve_dataset/-1/hitlDetails) and checks that `train` ran after
"Approve" and was skipped after "Reject", and that the review's Markdown and PNGs exist.

Start-up of the standalone dominates (about 2 minutes on 2 cores); both paths share it.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dev.harness.airflow import AirflowStandalone, prepare_airflow_env
from dev.harness.common import REPO_ROOT, HarnessError, log_tail
from dev.harness.dvc import DvcProject, make_demo_project

pytestmark = pytest.mark.integration

DAG_FILE = REPO_ROOT / "dags" / "dvc_dataset_review.py"
DAG_ID = "llmops_dvc_dataset_review"
HITL_TASK = "approve_dataset"
TERMINAL_RUN_STATES = {"success", "failed"}
# Airflow 3.3.2 race: an answer that lands before the scheduler has processed the executor's
# "workload finished" event of the parking attempt makes the scheduler mark the approval task
# FAILED ("state changed externally"). People never answer that fast; the test waits this long.
SETTLE_BEFORE_ANSWER_S = 5.0


@dataclass
class Stack:
    af: AirflowStandalone
    token: str
    project: DvcProject
    workdir: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("dvc-approval")
    project = make_demo_project(base / "dvc")  # data/train: v1 (20 rows), v2 = main (25 rows)
    dags = base / "dags"
    dags.mkdir()
    shutil.copy(DAG_FILE, dags / DAG_FILE.name)
    env = prepare_airflow_env("dvc-approval", home=base / "airflow", dags_folder=dags)
    # The tasks run git/dvc against the throwaway project: same env as the harness used.
    env.update({k: v for k, v in project.env.items() if k.startswith(("DVC_", "GIT_"))})
    env["LLMOPS_DVC_CLONE_DIR"] = str(base / "dvc-clones")
    # The DAG's default connection id, pointing at the project (the runs also pass repo= in conf).
    env["AIRFLOW_CONN_LLMOPS_DVC_DEFAULT"] = json.dumps(
        {"conn_type": "llmops_dvc", "extra": {"repo": str(project.path), "rev": "main"}}
    )
    af = AirflowStandalone(env)
    started = time.monotonic()
    af.start(timeout=420)
    try:
        token = af.token()
        af.wait_for_dag(DAG_ID, token, timeout=180)
        print(f"standalone healthy and DAG parsed after {time.monotonic() - started:.0f}s")
        af.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False}, token=token)
        yield Stack(af=af, token=token, project=project, workdir=base / "work")
    finally:
        af.stop()


def _trigger(stack: Stack, prefix: str) -> str:
    run_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    conf = {
        "repo": str(stack.project.path),
        "path": "data/train",
        "rev": "main",
        "baseline_rev": "v1",
        # "Already trained on v1": the sensor finds v2 (main) at once instead of waiting.
        "since_md5": stack.project.md5_of("data/train", "v1"),
        "workdir": str(stack.workdir),
    }
    stack.af.api(
        "POST",
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        {"dag_run_id": run_id, "logical_date": None, "conf": conf},
        token=stack.token,
    )
    return run_id


def _task_states(stack: Stack, run_id: str) -> dict[str, str | None]:
    body = stack.af.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", token=stack.token)
    return {ti["task_id"]: ti["state"] for ti in body["task_instances"]}


def _run_state(stack: Stack, run_id: str) -> str:
    return str(stack.af.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", token=stack.token)["state"])


def _diagnose(stack: Stack, run_id: str) -> str:
    return (
        f"task states: {_task_states(stack, run_id)}\n"
        f"standalone log:\n{log_tail(stack.af.process.log_path, 60)}"
    )


def _wait_for_hitl_request(stack: Stack, run_id: str, timeout: float = 300) -> dict[str, Any]:
    """Poll the run's HITL details until the approval task has written its request."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = stack.af.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/hitlDetails", token=stack.token)
        for detail in body["hitl_details"]:
            if detail["task_instance"]["task_id"] == HITL_TASK and not detail["response_received"]:
                return dict(detail)
        if _run_state(stack, run_id) in TERMINAL_RUN_STATES:
            pytest.fail(f"run {run_id} ended before asking for approval.\n{_diagnose(stack, run_id)}")
        time.sleep(2)
    pytest.fail(f"no HITL request from {HITL_TASK} within {timeout:.0f}s.\n{_diagnose(stack, run_id)}")


def _respond(stack: Stack, run_id: str, option: str) -> dict[str, Any]:
    return dict(
        stack.af.api(
            "PATCH",
            f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{HITL_TASK}/-1/hitlDetails",
            {"chosen_options": [option], "params_input": {}},
            token=stack.token,
        )
    )


def _wait_for_run(stack: Stack, run_id: str, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _run_state(stack, run_id)
        if state in TERMINAL_RUN_STATES:
            return state
        time.sleep(2)
    pytest.fail(f"run {run_id} did not finish within {timeout:.0f}s.\n{_diagnose(stack, run_id)}")


def _review_xcom(stack: Stack, run_id: str) -> dict[str, Any]:
    body = stack.af.api(
        "GET",
        f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/review_dataset/xcomEntries/return_value",
        token=stack.token,
    )
    value = body["value"]
    return json.loads(value) if isinstance(value, str) else dict(value)


def _assert_review_files(review: dict[str, Any]) -> None:
    markdown = Path(review["markdown"])
    assert markdown.is_file(), review
    text = markdown.read_text()
    assert "20 -> 25" in text  # v1 has 20 records, v2 has 25
    assert review["charts"], review
    for chart in map(Path, review["charts"]):
        data = chart.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000, chart


def _run_to_decision(stack: Stack, prefix: str, option: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    started = time.monotonic()
    run_id = _trigger(stack, prefix)
    request = _wait_for_hitl_request(stack, run_id)
    asked = time.monotonic()
    states = _task_states(stack, run_id)
    assert states[HITL_TASK] == "awaiting_input", states
    assert states["train"] in (None, "none", "scheduled"), states
    time.sleep(SETTLE_BEFORE_ANSWER_S)
    response = _respond(stack, run_id, option)
    assert _wait_for_run(stack, run_id) == "success", _diagnose(stack, run_id)
    print(
        f"{prefix}: approval asked after {asked - started:.0f}s, "
        f"run finished {time.monotonic() - asked:.0f}s after the answer"
    )
    return run_id, request, response


def test_approve_runs_training(stack: Stack):
    run_id, request, response = _run_to_decision(stack, "approve", "Approve")

    # The request shows the review's summary to the reviewer.
    assert request["options"] == ["Approve", "Reject"]
    assert "data/train" in request["subject"]
    assert "Dataset review" in request["body"] and "20 -> 25 records" in request["body"]
    assert response["chosen_options"] == ["Approve"]

    states = _task_states(stack, run_id)
    assert states == {
        "wait_for_dataset": "success",
        "pull_dataset": "success",
        "review_dataset": "success",
        "approve_dataset": "success",
        "train": "success",
    }
    review = _review_xcom(stack, run_id)
    _assert_review_files(review)
    assert review["new_sha"] == stack.project.head()

    detail = stack.af.api(
        "GET",
        f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{HITL_TASK}/-1/hitlDetails",
        token=stack.token,
    )
    assert detail["response_received"] is True
    assert detail["chosen_options"] == ["Approve"]


def test_reject_skips_training(stack: Stack):
    run_id, _, response = _run_to_decision(stack, "reject", "Reject")
    assert response["chosen_options"] == ["Reject"]

    states = _task_states(stack, run_id)
    assert states["approve_dataset"] == "success"  # a human answer is not a task failure
    assert states["train"] == "skipped"
    _assert_review_files(_review_xcom(stack, run_id))

    # A second answer is refused: the decision is final.
    with pytest.raises(HarnessError, match="409"):
        _respond(stack, run_id, "Approve")
