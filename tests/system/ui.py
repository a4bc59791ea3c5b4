"""Shared pieces of the browser tests: the Airflow stack they drive, REST waits, HITL settling.

One `airflow standalone` serves the whole tests/system session (start-up dominates: about two
minutes on two cores); every test uses its own DAG runs. The browser is Debian's chromium,
driven by Playwright through its executable path (`CHROMIUM_ARGS`; no Playwright download).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dev.harness.airflow import ADMIN_USER, AirflowStandalone, prepare_airflow_env
from dev.harness.common import REPO_ROOT, HarnessError, log_tail
from dev.harness.dvc import DvcProject, make_demo_project

# Without the background-networking flags, chromium's own traffic meets the closed network and
# many connections are refused; Playwright adds --headless and a fresh, empty profile itself.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ENSURE_CHROMIUM = REPO_ROOT / "dev" / "ensure_chromium.sh"
ARTIFACTS = REPO_ROOT / ".llmops" / "test-artifacts" / "browser"
TERMINAL_RUN_STATES = {"success", "failed"}
PARKED_STATES = {"awaiting_input", "deferred"}


def chromium_executable() -> str:
    """Debian's chromium; installed with apt-get by dev/ensure_chromium.sh when missing."""
    found = os.environ.get("LLMOPS_CHROMIUM") or shutil.which("chromium")
    if found:
        return found
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", str(ENSURE_CHROMIUM)], capture_output=True, text=True, timeout=900, check=False
    )
    found = shutil.which("chromium")
    if proc.returncode != 0 or not found:
        raise HarnessError(
            f"chromium is not installed and {ENSURE_CHROMIUM.name} could not install it "
            f"(code {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}"
        )
    print(f"installed chromium in {time.monotonic() - started:.0f}s")
    return found


@dataclass
class UiStack:
    """A running standalone Airflow with the example DAGs, a DVC demo project and its login."""

    af: AirflowStandalone
    token: str
    project: DvcProject
    workdir: Path
    artifacts: Path
    dag_ids: list[str] = field(default_factory=list)
    pipeline_project: DvcProject | None = None  # set when the session runs the pipeline DAG

    @property
    def url(self) -> str:
        return self.af.url

    @property
    def user(self) -> str:
        return ADMIN_USER

    @property
    def password(self) -> str:
        return self.af.password

    def api(self, method: str, path: str, payload: Any = None) -> Any:
        return self.af.api(method, path, payload, token=self.token)

    # -- runs and tasks ------------------------------------------------------------------------

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in body["task_instances"]}

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"))

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        value = self.api(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        )["value"]
        return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value

    def diagnose(self, dag_id: str, run_id: str) -> str:
        return (
            f"task states: {self.task_states(dag_id, run_id)}\n"
            f"standalone log:\n{log_tail(self.af.process.log_path, 60)}"
        )

    def latest_run(self, dag_id: str) -> dict[str, Any] | None:
        runs = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after&limit=1")["dag_runs"]
        return dict(runs[0]) if runs else None

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL_RUN_STATES:
                return state
            time.sleep(2)
        raise AssertionError(
            f"run {run_id} did not finish within {timeout:.0f}s.\n{self.diagnose(dag_id, run_id)}"
        )

    def wait_for_task(
        self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout: float = 600
    ) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.task_states(dag_id, run_id).get(task_id)
            if state in states:
                return str(state)
            if self.run_state(dag_id, run_id) in TERMINAL_RUN_STATES:
                break
            time.sleep(2)
        raise AssertionError(
            f"{task_id} of {run_id} did not reach {sorted(states)}.\n{self.diagnose(dag_id, run_id)}"
        )

    # -- human in the loop ---------------------------------------------------------------------

    def wait_for_hitl_request(
        self, dag_id: str, run_id: str, task_id: str, timeout: float = 600
    ) -> dict[str, Any]:
        """The task's open Human-in-the-loop request, once it has written it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/hitlDetails")
            for detail in body["hitl_details"]:
                if detail["task_instance"]["task_id"] == task_id and not detail["response_received"]:
                    return dict(detail)
            if self.run_state(dag_id, run_id) in TERMINAL_RUN_STATES:
                raise AssertionError(f"{run_id} ended before asking.\n{self.diagnose(dag_id, run_id)}")
            time.sleep(2)
        raise AssertionError(
            f"no request from {task_id} within {timeout:.0f}s.\n{self.diagnose(dag_id, run_id)}"
        )

    def wait_until_settled(self, dag_id: str, run_id: str, task_id: str, timeout: float = 300) -> str:
        """Wait until answering cannot race the scheduler (Airflow 3.3.2; a person is never that fast).

        The request is settled once the task instance looks the same over polls two seconds apart
        and the scheduler has logged the parking attempt as finished; without that log line, after
        45 quiet seconds.
        """
        started = time.monotonic()
        stable_since: float | None = None
        last: tuple[Any, ...] | None = None
        while time.monotonic() < started + timeout:
            ti = self.task_instance(dag_id, run_id, task_id)
            if ti["state"] not in PARKED_STATES:
                raise AssertionError(
                    f"{task_id} left {ti['state']!r} unanswered.\n{self.diagnose(dag_id, run_id)}"
                )
            snapshot = (ti["state"], ti["try_number"], ti.get("start_date"), ti.get("end_date"))
            now = time.monotonic()
            if snapshot != last:
                last, stable_since = snapshot, now
            assert stable_since is not None
            if now - stable_since >= 2:
                if self.af.scheduler_saw_park(dag_id, task_id, run_id, int(ti["try_number"])):
                    return f"scheduler processed the parking attempt ({now - started:.0f}s)"
                if now - stable_since >= 45:
                    return f"no scheduler log line; unchanged for {now - stable_since:.0f}s"
            time.sleep(1)
        raise AssertionError(f"{task_id} did not settle.\n{self.diagnose(dag_id, run_id)}")


def start_ui_stack(
    base: Path, dag_files: list[Path], dag_ids: list[str], extra_env: dict[str, str] | None = None
) -> UiStack:
    """Start a standalone Airflow on `dag_files` (copied) with a DVC demo project; caller stops it.

    `extra_env` (e.g. the pipeline's connections and Variables) goes on top of the defaults.
    """
    project = make_demo_project(base / "dvc")  # data/train: v1 (20 rows), v2 = main (25 rows)
    dags = base / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    for dag_file in dag_files:
        shutil.copy(dag_file, dags / dag_file.name)
    env = prepare_airflow_env("ui", home=base / "airflow", dags_folder=dags)
    env.update({k: v for k, v in project.env.items() if k.startswith(("DVC_", "GIT_"))})
    env["LLMOPS_DVC_CLONE_DIR"] = str(base / "dvc-clones")
    env["AIRFLOW_VAR_LLMOPS_DATA_DIR"] = str(base / "work")
    env["AIRFLOW_CONN_LLMOPS_DVC_DEFAULT"] = json.dumps(
        {"conn_type": "llmops_dvc", "extra": {"repo": str(project.path)}}
    )
    env.update(extra_env or {})
    af = AirflowStandalone(env)
    started = time.monotonic()
    af.start(timeout=420)
    try:
        token = af.token()
        for dag_id in dag_ids:
            af.wait_for_dag(dag_id, token, timeout=180)
            af.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False}, token=token)
    except BaseException:
        af.stop()
        raise
    print(f"standalone at {af.url} healthy, DAGs parsed after {time.monotonic() - started:.0f}s")
    artifacts = ARTIFACTS
    artifacts.mkdir(parents=True, exist_ok=True)
    return UiStack(
        af=af, token=token, project=project, workdir=base / "work", artifacts=artifacts, dag_ids=dag_ids
    )


def unique_run_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
