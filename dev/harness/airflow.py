"""An isolated Airflow 3 on SQLite: a home folder, a migrated database, and `airflow standalone`.

`prepare_airflow_env` gives the environment for an isolated AIRFLOW_HOME (examples off, this
repository's dags/ folder, a migrated SQLite database copied from a per-version template so
only the first run pays for `airflow db migrate`). `AirflowStandalone` runs API server,
scheduler, triggerer and DAG processor in one process group for UI and API tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple

from dev.harness.common import (
    REPO_ROOT,
    WORK_DIR,
    HarnessError,
    ServiceProcess,
    ensure_port_free,
    free_port,
    http_get,
    log_tail,
    serve_until_stopped,
    stop_on_signal,
)

ADMIN_USER = "admin"


def _airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow")


def _airflow_bin() -> str:
    # The venv's `airflow` next to the running interpreter, so a bare PATH still works.
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else "airflow"


def prepare_airflow_env(
    name: str, home: Path | None = None, dags_folder: Path | None = None
) -> dict[str, str]:
    """Create an isolated AIRFLOW_HOME and return the environment variables that select it.

    The database is not migrated here (that would run at import of tests/conftest.py);
    call `migrate_db(env)` before using it.
    """
    home = home or WORK_DIR / "airflow" / name
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "simple_auth_manager_passwords.json.generated"
    if not passwords.exists():
        passwords.write_text(json.dumps({ADMIN_USER: secrets.token_urlsafe(12)}))
    jwt_secret = home / "jwt_secret"
    if not jwt_secret.exists():
        jwt_secret.write_text(secrets.token_urlsafe(32))
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder or REPO_ROOT / "dags"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret.read_text(),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "DVC_NO_ANALYTICS": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }


def migrate_db(env: dict[str, str], timeout: float = 600) -> None:
    """Bring the home's SQLite database to the current schema (template copy when possible)."""
    db = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    if _is_migrated(db):
        return
    template = WORK_DIR / "airflow-templates" / f"airflow-{_airflow_version()}.db"
    if not template.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        tmp_home = template.parent / f"migrate-{os.getpid()}"
        shutil.rmtree(tmp_home, ignore_errors=True)
        tmp_env = prepare_airflow_env(name="template", home=tmp_home)
        run_airflow(["db", "migrate"], tmp_env, timeout=timeout)
        os.replace(tmp_home / "airflow.db", template)
        shutil.rmtree(tmp_home, ignore_errors=True)
    shutil.copyfile(template, db)


def _is_migrated(db: Path) -> bool:
    # An early connection can leave an empty SQLite file behind; only a schema counts.
    if not db.exists():
        return False
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute("SELECT name FROM sqlite_master WHERE name = 'alembic_version'").fetchone()
    return row is not None


def run_airflow(args: list[str], env: dict[str, str], timeout: float = 300) -> str:
    """Run an `airflow` CLI command in the isolated home and return its stdout."""
    proc = subprocess.run(
        [_airflow_bin(), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise HarnessError(
            f"`airflow {' '.join(args)}` failed with code {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}"
        )
    return proc.stdout


_PROBE_DAG = """
import json, os, sys
from airflow.sdk import DAG
loaded = sorted(m for m in sys.modules if m.startswith("airflow_provider_llmops"))
with open(os.environ["LLMOPS_PROBE_OUT"], "a") as out:
    out.write(json.dumps({"pid": os.getpid(), "parent": os.getppid(), "loaded": loaded}) + "\\n")
with DAG(dag_id="llmops_parse_probe", schedule=None):
    pass
"""
# Records the process that loads the plugins (the llmops plugin loads in the same pass).
_PROBE_PLUGIN = """
import json, os
from airflow.plugins_manager import AirflowPlugin
with open(os.environ["LLMOPS_PROBE_OUT"], "a") as out:
    out.write(json.dumps({"plugins_loaded_in": os.getpid()}) + "\\n")
class ProbePlugin(AirflowPlugin):
    name = "llmops_parse_probe"
"""


class ProbedParse(NamedTuple):
    """One parse of the probe DAG: its process, that process's parent, our modules already imported."""

    pid: int
    parent: int
    loaded: frozenset[str]


class DagProcessorProbe(NamedTuple):
    """What `probe_dag_processor` saw: the processes that loaded the plugins, and each parse."""

    plugin_loaders: frozenset[int]
    parses: list[ProbedParse]

    def inherited(self, modules: set[str]) -> bool:
        """Every parse ran in a child of a process that loaded the plugins, did not load them itself,
        and found `modules` imported."""
        return bool(self.parses) and all(
            p.parent in self.plugin_loaders and p.pid not in self.plugin_loaders and modules <= p.loaded
            for p in self.parses
        )


def probe_dag_processor(
    work: Path, extra_env: dict[str, str] | None = None, timeout: float = 300
) -> DagProcessorProbe:
    """Run a real `airflow dag-processor --num-runs 1` over one probe DAG in a fresh home under `work`.

    Returns the processes that loaded the plugins and, per parse, which provider modules were
    imported before the DAG file's own code ran. This relies on the manager forking each parse
    directly (Airflow 3.2 and 3.3 do); the probe plugin's file runs again in any process that loads
    plugins from the folder itself, which is how a parse that did so would show.
    """
    dags, home, out = work / "dags", work / "home", work / "probe.jsonl"
    (home / "plugins").mkdir(parents=True, exist_ok=True)
    dags.mkdir(parents=True, exist_ok=True)
    (dags / "probe.py").write_text(_PROBE_DAG)
    (home / "plugins" / "probe_plugin.py").write_text(_PROBE_PLUGIN)
    env = {
        **prepare_airflow_env(name="parse-probe", home=home, dags_folder=dags),
        "LLMOPS_PROBE_OUT": str(out),
        **(extra_env or {}),
    }
    migrate_db(env)
    run_airflow(["dag-processor", "--num-runs", "1"], env, timeout=timeout)
    records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return DagProcessorProbe(
        frozenset(r["plugins_loaded_in"] for r in records if "plugins_loaded_in" in r),
        [ProbedParse(r["pid"], r["parent"], frozenset(r["loaded"])) for r in records if "pid" in r],
    )


class AirflowStandalone:
    """`airflow standalone` (API server, scheduler, triggerer, DAG processor) on a free port.

    Example::

        with AirflowStandalone(prepare_airflow_env("e2e")) as af:
            token = af.token()
            af.api("GET", "/api/v2/dags", token=token)
    """

    def __init__(self, env: dict[str, str], port: int | None = None) -> None:
        self.port = port or free_port()
        ensure_port_free(self.port, "Airflow API server")
        home = Path(env["AIRFLOW_HOME"])
        self.env = {
            **os.environ,
            **env,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        }
        self.password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())[
            ADMIN_USER
        ]
        self.process = ServiceProcess(
            "airflow standalone", [_airflow_bin(), "standalone"], home / "standalone.log", env=self.env
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 300) -> AirflowStandalone:
        migrate_db(self.env)
        self.process.start()

        def healthy() -> bool:
            status, body = http_get(f"{self.url}/api/v2/monitor/health")
            if status != 200:
                return False
            health = json.loads(body)
            return all(
                health.get(part, {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "dag_processor")
            )

        self.process.wait_until(healthy, timeout=timeout, what="healthy (API, scheduler, DAG processor)")
        return self

    def stop(self) -> None:
        self.process.stop(grace=20)

    def __enter__(self) -> AirflowStandalone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def token(self) -> str:
        """A JWT for the admin user, from the API server's /auth/token endpoint."""
        body = self.api("POST", "/auth/token", payload={"username": ADMIN_USER, "password": self.password})
        return str(body["access_token"])

    def api(self, method: str, path: str, payload: Any = None, token: str | None = None) -> Any:
        """Call the REST API and return the decoded JSON; raise HarnessError with the body on errors."""
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raise HarnessError(f"{method} {path} -> {err.code}: {err.read()[:2000]!r}") from err
        return json.loads(raw) if raw else None

    def scheduler_saw_park(self, dag_id: str, task_id: str, run_id: str, try_number: int) -> bool:
        """Has the scheduler processed the executor's "finished" event of the attempt that parked the task?

        A task parked for a human (HITL: awaiting_input or deferred) must not be answered before
        this, or Airflow 3.3.2 can lose the answer (tests/integration/test_dvc_approval.py).
        """
        needle = f"TaskInstance Finished: dag_id={dag_id}, task_id={task_id}, run_id={run_id},"
        try:
            text = self.process.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return False
        for line in text.splitlines():
            if needle in line and re.search(r"\bstate=(awaiting_input|deferred)\b", line):
                match = re.search(r"\btry_number=(\d+)", line)
                if match is None or int(match.group(1)) == try_number:
                    return True
        return False

    def wait_for_dag(self, dag_id: str, token: str, timeout: float = 120) -> None:
        """Wait until the DAG processor has parsed `dag_id` into the database."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.api("GET", f"/api/v2/dags/{dag_id}", token=token)
                return
            except HarnessError:
                time.sleep(2)
        raise HarnessError(
            f"DAG {dag_id!r} did not appear within {timeout:.0f}s. Last lines of the standalone log:\n"
            f"{log_tail(self.process.log_path)}"
        )


def main(argv: list[str]) -> int:
    """`python -m dev.harness airflow [name]`: run a standalone Airflow until interrupted."""
    name = argv[0] if argv else "standalone"
    env = prepare_airflow_env(name)
    with stop_on_signal() as stop, AirflowStandalone(env) as af:
        print(f"AIRFLOW_URL={af.url}")
        print(f"AIRFLOW_HOME={env['AIRFLOW_HOME']}")
        print(f"login: {ADMIN_USER} / password in {env['AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE']}")
        sys.stdout.flush()
        return serve_until_stopped(af.process, stop, af.process.log_path)
