"""Shared by the pipeline tests: load an example DAG file, its run's task states, its Asset events."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
FINETUNE_DAG_ID = "llmops_finetune_and_deploy"
FINETUNE_DAG_FILE = REPO_ROOT / "dags" / "llmops_finetune_and_deploy.py"
REINDEX_DAG_FILE = REPO_ROOT / "dags" / "llmops_reindex.py"

# The Asset URIs one run of llmops_finetune_and_deploy emits on (default connection ids).
REVIEW_URI = "dvc-review://datasets/data/llmops"
MODEL_URI = "model://stdlib-minilm"
TRITON_URI = "triton://llmops_triton_default/stdlib_minilm"
BUILD_URI = "elasticsearch://elasticsearch_default/stdlib-docs-build"
ALIAS_URI = "elasticsearch://elasticsearch_default/stdlib-docs"

# CI-sized training: a few steps on the tiny dataset.
TINY_CONF: dict[str, Any] = {
    "max_steps": 3,
    "micro_batch_size": 8,
    "cpu_procs": 2,
    "max_length": 48,
    "warmup_steps": 1,
    "min_improvement": -1.0,  # a 3-step run need not beat the base model; the demo checks that it does
}


def load_dag(path: Path) -> Any:
    """Import an example DAG file afresh (its Variable-backed defaults are read now) and return its DAG."""
    name = f"_llmops_example_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.dag


def task_states(dag_run: Any) -> dict[str, str | None]:
    from airflow.utils.session import create_session

    with create_session() as session:
        from airflow.models.dagrun import DagRun

        run = session.get(DagRun, dag_run.id)
        return {
            ti.task_id: (str(ti.state) if ti.state else None)
            for ti in run.get_task_instances(session=session)
        }


def events_of(uri: str, run_id: str | None = None) -> list[dict[str, Any]]:
    """Asset events on `uri` (optionally of one run: those whose extra names it)."""
    from tests.fixtures.airflow import asset_events

    return asset_events(uri)
