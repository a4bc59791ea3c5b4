"""The example DAG dags/dvc_dataset_review.py end to end on a real `airflow standalone`.

A real git + DVC project (tags v1 and v2 of data/train, pushed to a local DVC remote) feeds the
unmodified example DAG. Runs are triggered through the REST API; the test waits for the
approval task's Human-in-the-loop request (GET .../hitlDetails), answers it through the API
(PATCH .../taskInstances/approve_dataset/-1/hitlDetails) and checks that `train` ran after
"Approve" and was skipped after "Reject", and that the review's Markdown and PNGs exist.

Start-up of the standalone dominates (about 2 minutes on 2 cores); both paths share it.

Airflow 3.3.2 race: a response that lands before the scheduler has processed the executor's
"workload finished" event of the attempt that parked the task makes the scheduler mark the
approval task FAILED ("state changed externally"): the resumed attempt has the same try number,
and the late event removes it from the executor's running set. People never answer that fast,
but a test does. So before answering, the test waits until the request has *settled*: the task
instance is `awaiting_input` with the same try number and dates over two polls some seconds
apart, and the scheduler has logged the parking attempt as finished ("TaskInstance Finished:
... state=awaiting_input"). That event leaves no trace in the database, so the REST API cannot
show it; the scheduler's log line is the one exact signal. Should a future Airflow word it
differently, the test falls back to a long quiet period. If the race strikes anyway (a "state
mismatch" event log entry for the approval task), the test clears the approval task and answers
the new request once more.
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
BACKFILL_DAG_FILE = REPO_ROOT / "dags" / "dvc_backfill_by_date.py"
BACKFILL_DAG_ID = "llmops_dvc_backfill_by_date"
DAG_ID = "llmops_dvc_dataset_review"
HITL_TASK = "approve_dataset"
TERMINAL_RUN_STATES = {"success", "failed"}
PARKED_STATES = {"awaiting_input", "deferred"}
# Settling before an answer (see the module docstring): poll this often; the task instance must
# look the same over polls at least STABLE_FOR_S apart.
POLL_S = 1.0
STABLE_FOR_S = 2.0
# Without the scheduler's log line, answer only after the request has been quiet this long.
QUIET_FALLBACK_S = 45.0
# The request must settle within this long (a loaded 2-core CI is slow, not this slow).
SETTLE_TIMEOUT_S = 300.0


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
    shutil.copy(BACKFILL_DAG_FILE, dags / BACKFILL_DAG_FILE.name)
    env = prepare_airflow_env("dvc-approval", home=base / "airflow", dags_folder=dags)
    # The tasks run git/dvc against the throwaway project: same env as the harness used.
    env.update({k: v for k, v in project.env.items() if k.startswith(("DVC_", "GIT_"))})
    env["LLMOPS_DVC_CLONE_DIR"] = str(base / "dvc-clones")
    env["AIRFLOW_VAR_LLMOPS_DATA_DIR"] = str(base / "work")
    # The DAG's default connection id, pointing at the project (the runs also pass repo= in conf).
    env["AIRFLOW_CONN_LLMOPS_DVC_DEFAULT"] = json.dumps(
        {"conn_type": "llmops_dvc", "extra": {"repo": str(project.path)}}
    )
    af = AirflowStandalone(env)
    started = time.monotonic()
    af.start(timeout=420)
    try:
        token = af.token()
        af.wait_for_dag(DAG_ID, token, timeout=180)
        af.wait_for_dag(BACKFILL_DAG_ID, token, timeout=180)
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


def _approval_ti(stack: Stack, run_id: str) -> dict[str, Any]:
    return dict(
        stack.af.api(
            "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{HITL_TASK}", token=stack.token
        )
    )


def _wait_until_settled(stack: Stack, run_id: str, timeout: float = SETTLE_TIMEOUT_S) -> str:
    """Wait until answering the approval request cannot race the scheduler; say what settled it."""
    started = time.monotonic()
    deadline = started + timeout
    stable_since: float | None = None
    last: tuple[Any, ...] | None = None
    while time.monotonic() < deadline:
        ti = _approval_ti(stack, run_id)
        if ti["state"] not in PARKED_STATES:
            pytest.fail(
                f"{HITL_TASK} left {ti['state']!r} before it was answered.\n{_diagnose(stack, run_id)}"
            )
        snapshot = (ti["state"], ti["try_number"], ti.get("start_date"), ti.get("end_date"))
        now = time.monotonic()
        if snapshot != last:
            last, stable_since = snapshot, now
        assert stable_since is not None
        if now - stable_since >= STABLE_FOR_S:
            if stack.af.scheduler_saw_park(DAG_ID, HITL_TASK, run_id, int(ti["try_number"])):
                return f"scheduler processed the parking attempt ({now - started:.0f}s)"
            if now - stable_since >= QUIET_FALLBACK_S:
                return f"no scheduler log line; {ti['state']} unchanged for {now - stable_since:.0f}s"
        time.sleep(POLL_S)
    pytest.fail(
        f"{HITL_TASK} did not settle within {timeout:.0f}s (last: {last}).\n{_diagnose(stack, run_id)}"
    )


def _hit_the_race(stack: Stack, run_id: str) -> bool:
    """Did the scheduler fail the approval task as "state changed externally" (the 3.3.2 race)?"""
    if _approval_ti(stack, run_id)["state"] not in ("failed", "up_for_retry"):
        return False
    body = stack.af.api(
        "GET",
        f"/api/v2/eventLogs?dag_id={DAG_ID}&run_id={run_id}&task_id={HITL_TASK}",
        token=stack.token,
    )
    return any(entry["event"] == "state mismatch" for entry in body["event_logs"])


def _clear_approval(stack: Stack, run_id: str) -> None:
    """Run the approval task (and training) again: it asks a fresh question."""
    stack.af.api(
        "POST",
        f"/api/v2/dags/{DAG_ID}/clearTaskInstances",
        {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": [HITL_TASK],
            "include_downstream": True,
            "only_failed": False,
            "reset_dag_runs": True,
        },
        token=stack.token,
    )


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
    """The run's final state, or "race" as soon as the approval task failed from the 3.3.2 race."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _run_state(stack, run_id)
        if _hit_the_race(stack, run_id):
            return "race"
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
    for attempt in (1, 2):
        request = _wait_for_hitl_request(stack, run_id)
        asked = time.monotonic()
        states = _task_states(stack, run_id)
        assert states[HITL_TASK] in PARKED_STATES, states
        assert states["train"] in (None, "none", "scheduled"), states
        settled_by = _wait_until_settled(stack, run_id)
        answered = time.monotonic()
        response = _respond(stack, run_id, option)
        outcome = _wait_for_run(stack, run_id)
        print(
            f"{prefix} (attempt {attempt}): approval asked after {asked - started:.0f}s, answered "
            f"{answered - asked:.0f}s later [{settled_by}], run {outcome} "
            f"{time.monotonic() - answered:.0f}s after the answer"
        )
        if outcome != "race":
            break
        if attempt == 2:
            pytest.fail(f"the approval task failed from the answer race twice.\n{_diagnose(stack, run_id)}")
        print(f"{prefix}: hit the Airflow answer race ('state mismatch'); clearing {HITL_TASK} to ask again")
        _clear_approval(stack, run_id)
    assert outcome == "success", _diagnose(stack, run_id)
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


def test_backfill_through_the_rest_api_pulls_the_version_of_each_date(stack: Stack):
    """The daily example DAG accepts a backfill (periodic schedule); each date gets its own version:
    v1 was committed on 2024-01-02 12:00 UTC and v2 on 2024-01-03 12:00 UTC."""
    project = stack.project
    v1, v2 = project.tags()["v1"], project.tags()["v2"]
    from airflow_provider_llmops.utils.retry import retry_call

    # Backfill runs of a paused DAG stay queued.
    stack.af.api("PATCH", f"/api/v2/dags/{BACKFILL_DAG_ID}", {"is_paused": False}, token=stack.token)
    # On SQLite the API answers 503 ("Database is locked") while the scheduler holds the lock.
    body = retry_call(
        lambda: stack.af.api(
            "POST",
            "/api/v2/backfills",
            {
                "dag_id": BACKFILL_DAG_ID,
                "from_date": "2024-01-03T00:00:00Z",
                "to_date": "2024-01-05T00:00:00Z",
                "max_active_runs": 1,
                "reprocess_behavior": "none",
            },
            token=stack.token,
        ),
        should_retry=lambda err: isinstance(err, HarnessError) and "-> 503" in str(err),
        attempts=12,
        base_delay=1.0,
        max_delay=8.0,
        what="POST /api/v2/backfills",
    )
    assert body["dag_id"] == BACKFILL_DAG_ID
    backfilled = _wait_for_backfill(stack)
    failed = [r["dag_run_id"] for r in backfilled if r["state"] != "success"]
    if failed:
        # Airflow on SQLite, four processes writing: a task can fail on a locked database after
        # its work is done. Say why, then run the failed tasks once more (they are idempotent).
        print(f"backfill runs failed, clearing them once:\n{_backfill_diagnosis(stack, failed)}")
        for run_id in failed:
            stack.af.api(
                "POST",
                f"/api/v2/dags/{BACKFILL_DAG_ID}/clearTaskInstances",
                {"dry_run": False, "dag_run_id": run_id, "only_failed": True, "reset_dag_runs": True},
                token=stack.token,
            )
        backfilled = _wait_for_backfill(stack)
        failed = [r["dag_run_id"] for r in backfilled if r["state"] != "success"]
    assert not failed, _backfill_diagnosis(stack, failed)
    pulled: dict[str, str] = {}
    for run in backfilled:
        xcom = stack.af.api(
            "GET",
            f"/api/v2/dags/{BACKFILL_DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/pull_dataset"
            "/xcomEntries/return_value",
            token=stack.token,
        )["value"]
        value = json.loads(xcom) if isinstance(xcom, str) else xcom
        pulled[run["logical_date"][:10]] = value["sha"]
    assert pulled == {"2024-01-03": v1, "2024-01-04": v2, "2024-01-05": v2}, pulled


def _backfill_diagnosis(stack: Stack, run_ids: list[str]) -> str:
    """Task states of the failed backfill runs and the tail of each failed task's log."""
    lines: list[str] = []
    logs = Path(stack.af.env["AIRFLOW_HOME"]) / "logs"
    for run_id in run_ids:
        body = stack.af.api(
            "GET", f"/api/v2/dags/{BACKFILL_DAG_ID}/dagRuns/{run_id}/taskInstances", token=stack.token
        )
        for ti in body["task_instances"]:
            lines.append(f"{run_id} {ti['task_id']}: {ti['state']}")
            if ti["state"] == "failed":
                for log in logs.rglob(f"run_id={run_id}/task_id={ti['task_id']}/*.log"):
                    lines.append(log_tail(log, 40))
    text = stack.af.process.log_path.read_text(errors="replace").splitlines()
    lines += [
        line for line in text if any(r in line for r in run_ids) and ("rror" in line or "failed" in line)
    ]
    lines += [line for line in text if "Traceback" in line or "OperationalError" in line or "locked" in line][
        :20
    ]
    return "\n".join(lines)


def _wait_for_backfill(stack: Stack, runs: int = 3, timeout: float = 420) -> list[dict[str, Any]]:
    """The backfill's runs, once all of them have finished."""
    deadline = time.monotonic() + timeout
    while True:
        body = stack.af.api("GET", f"/api/v2/dags/{BACKFILL_DAG_ID}/dagRuns", token=stack.token)
        backfilled = [r for r in body["dag_runs"] if r["run_type"] == "backfill"]
        if len(backfilled) == runs and all(r["state"] in TERMINAL_RUN_STATES for r in backfilled):
            return backfilled
        if time.monotonic() > deadline:
            pytest.fail(f"backfill did not finish: {backfilled}\n{log_tail(stack.af.process.log_path, 60)}")
        time.sleep(3)
