"""The connections the demo and the pipeline tests write read back without Airflow's masking warning."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

from dev.pipeline_stack import pipeline_env

READ_BACK = """
import json, os
from airflow.sdk import BaseHook
for var in json.loads(os.environ["CONN_VARS"]):
    BaseHook.get_connection(var.removeprefix("AIRFLOW_CONN_").lower())
print("read")
"""


def test_demo_connections_raise_no_too_short_warning(tmp_path):
    """Airflow's secrets masker warns "too short" for any connection extra value under 5 characters.

    A fresh interpreter, because Airflow warns once per process.
    """
    project = SimpleNamespace(path=tmp_path / "project", env={})
    env = pipeline_env(
        project,  # type: ignore[arg-type]
        es_port=9200,
        triton_http_port=8000,
        model_repository=tmp_path / "models",
        data_dir=tmp_path / "data",
    )
    conn_vars = [k for k in env if k.startswith("AIRFLOW_CONN_")]
    assert conn_vars
    proc = subprocess.run(
        [sys.executable, "-c", READ_BACK],
        env={
            **env,
            "CONN_VARS": json.dumps(conn_vars),
            "PATH": "/usr/bin:/bin",
            "AIRFLOW_HOME": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0 and "read" in proc.stdout, proc.stderr
    assert "too short" not in proc.stdout + proc.stderr
