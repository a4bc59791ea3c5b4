"""The training package runs in containers without Airflow: it must never import it."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import airflow_provider_llmops.training as training


def test_training_package_never_imports_airflow():
    modules = [
        m.name for m in pkgutil.walk_packages(training.__path__, prefix="airflow_provider_llmops.training.")
    ]
    assert "airflow_provider_llmops.training.trainer" in modules
    code = "\n".join(
        [
            "import importlib, sys",
            *(f"importlib.import_module({m!r})" for m in modules if not m.endswith("__main__")),
            "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))",
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_check_mode_prints_the_resolved_config(spec, tmp_path):
    path = tmp_path / "job.json"
    path.write_text(spec.to_json())
    out = subprocess.run(
        [sys.executable, "-m", "airflow_provider_llmops.training", str(path), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # The model folder of the fixture spec does not exist: the preflight names it.
    assert out.returncode == 2
    assert "model folder" in out.stderr and "does not exist" in out.stderr
