"""Importing the provider or parsing its DAGs must not pull heavy libraries into the scheduler."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.unit.provider_modules import provider_modules

HEAVY = (
    "torch",
    "deepspeed",
    "transformers",
    "sentence_transformers",
    "elasticsearch",
    "tritonclient",
    "dvc",
    "kubernetes",
    # Not banned by name in the guide, but just as costly for the scheduler: review charts only.
    "matplotlib",
    "numpy",
    "pandas",
)


def _heavy_modules_after(code: str) -> dict:
    report = f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    script = "\n".join(["import json, sys", code, report])
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_provider_modules_import_no_heavy_libraries():
    modules = provider_modules()
    assert "airflow_provider_llmops.operators.dvc" in modules
    code = "import importlib\n" + "\n".join(f"importlib.import_module({m!r})" for m in modules)
    assert _heavy_modules_after(code) == []


def test_parsing_example_dags_imports_no_heavy_libraries():
    code = textwrap.dedent(
        """
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder="dags")
        assert not bag.import_errors, bag.import_errors
        assert bag.dags, "no DAGs found in dags/"
        """
    )
    assert _heavy_modules_after(code) == []
