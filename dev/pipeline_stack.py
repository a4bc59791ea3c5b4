"""The pieces the end-to-end pipeline needs around Airflow: its DVC project, connections and HITL answers.

Shared by ``./dev/demo`` (dev/run_demo.py) and the pipeline tests, so both run the example DAGs
``llmops_finetune_and_deploy`` and ``llmops_reindex`` the same way:

- `make_pipeline_project`: a git + DVC project named ``datasets`` whose ``data/llmops`` (corpus,
  training pairs, held-out judgments from the standard library's docstrings, dev/stdlib_docs.py)
  is published as v1 (2024-01-02) and v2 (2024-01-03) to a local-folder remote;
- `pipeline_env`: the ``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*`` variables for it, the harness's
  Elasticsearch and Triton;
- `prepare_model_env`: what Triton's python backend imports for an embedding model, installed
  into the harness's model venv before a deploy;
- `answer_hitl`: record a response to a waiting Human-in-the-loop task in the metadata database,
  the way the REST API's ``PATCH .../hitlDetails`` does (for ``dag.test()`` runs, which have no
  API server).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dev.harness.dvc import DvcProject, make_dvc_project

DATASET_PATH = "data/llmops"
PROJECT_NAME = "datasets"  # the DAG follows the Asset dvc://datasets/data/llmops

# Small enough for CI (seconds of embedding and training), big enough to learn something.
TINY_PARAMS: dict[str, Any] = {
    "train_pairs": 64,
    "eval_queries": 24,
    "max_passages": 160,
    "max_passage_chars": 240,
}


def make_pipeline_project(root: Path, params: Mapping[str, Any] | None = None) -> DvcProject:
    """A DVC project with `data/llmops` at version 1 (tag v1) and version 2 (tag v2, main), both pushed."""
    from dev.stdlib_docs import write_datasets

    proj = make_dvc_project(root, name=PROJECT_NAME)
    for version, day in ((1, 2), (2, 3)):
        target = proj.dvc_root / DATASET_PATH
        if target.exists():
            import shutil

            shutil.rmtree(target)
        counts = write_datasets(target, {**(params or {}), "version": version})
        proj.publish(
            DATASET_PATH,
            message=f"llmops datasets v{version}: " + ", ".join(f"{n} {k}" for k, n in counts.items()),
            tag=f"v{version}",
            date=datetime(2024, 1, day, 12, tzinfo=timezone.utc),
        )
    return proj


def pipeline_env(
    project: DvcProject,
    *,
    es_port: int,
    triton_http_port: int,
    model_repository: Path,
    data_dir: Path,
    launcher: str = "local",
) -> dict[str, str]:
    """Connections and Variables of the example DAGs for the harness's servers."""
    return {
        "AIRFLOW_CONN_LLMOPS_DVC_DEFAULT": json.dumps(
            # No "rev": "main" (the default): Airflow warns about any extra value under 5 characters.
            {"conn_type": "llmops_dvc", "extra": {"repo": str(project.path)}}
        ),
        "AIRFLOW_CONN_LLMOPS_TRITON_DEFAULT": json.dumps(
            {
                "conn_type": "llmops_triton",
                "host": "127.0.0.1",
                "port": triton_http_port,
                "schema": "http",
                "extra": {"model_repository": str(model_repository)},
            }
        ),
        "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT": json.dumps(
            {"conn_type": "elasticsearch", "host": "127.0.0.1", "port": es_port, "schema": "http"}
        ),
        "AIRFLOW_VAR_LLMOPS_DATA_DIR": str(data_dir),
        "AIRFLOW_VAR_LLMOPS_TRAINING_LAUNCHER": launcher,
        **{k: v for k, v in project.env.items() if k.startswith(("DVC_", "GIT_"))},
    }


def prepare_model_env() -> None:
    """Install what a packaged embedding model imports (numpy 1.x, onnxruntime, tokenizers) for Triton."""
    import tempfile
    from importlib import metadata

    from airflow_provider_llmops.serving.package import DEFAULT_NUMPY_REQUIREMENT
    from dev.harness.triton import install_model_requirements

    lines = [DEFAULT_NUMPY_REQUIREMENT] + [
        f"{d}=={metadata.version(d)}" for d in ("onnxruntime", "tokenizers")
    ]
    # The same text TritonDeployOperator writes, so the install marker matches a package's.
    text = (
        "# Python packages the python-backend model imports; install them into the Python that\n"
        "# Triton's python backend runs (see the README, 'Model environment').\n" + "\n".join(lines) + "\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(text)
        install_model_requirements(req)


def approve_in_background(
    dag_id: str, task_id: str, option: str = "Approve", **kwargs: Any
) -> dict[str, str]:
    """Run `answer_hitl` in a daemon thread; the returned dict gets ``run_id`` (or ``error``) when done.

    The ORM models are imported and their mappers configured here, in the caller's thread: a
    first query in the new thread would otherwise import them while the caller (dag.test()) is
    importing them too, and the two deadlock on Python's import locks.
    """
    import threading

    from airflow.models import import_all_models
    from sqlalchemy.orm import configure_mappers

    import_all_models()
    configure_mappers()
    result: dict[str, str] = {}

    def run() -> None:
        try:
            result["run_id"] = answer_hitl(dag_id, task_id, option, **kwargs)
        except Exception as err:
            result["error"] = f"{type(err).__name__}: {err}"

    threading.Thread(target=run, name=f"answer-{task_id}", daemon=True).start()
    return result


def answer_hitl(
    dag_id: str, task_id: str, option: str = "Approve", *, run_id: str | None = None, timeout: float = 900
) -> str:
    """Wait until `task_id` waits for input (in `run_id`, else any run), answer `option`; return the run id.

    Mirrors the REST API's response handler (airflow/api_fastapi/.../hitl.py): record the response
    on the HITL detail, then resume the parked task with the same event submission.
    """
    from airflow.models.hitl import HITLDetail, HITLUser
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    deadline = time.monotonic() + timeout
    parked = (TaskInstanceState.AWAITING_INPUT, TaskInstanceState.DEFERRED)
    while time.monotonic() < deadline:
        with create_session() as session:
            query = select(TaskInstance).where(
                TaskInstance.dag_id == dag_id, TaskInstance.task_id == task_id, TaskInstance.state.in_(parked)
            )
            if run_id is not None:
                query = query.where(TaskInstance.run_id == run_id)
            for ti in session.scalars(query).all():
                detail = session.scalar(select(HITLDetail).where(HITLDetail.ti_id == ti.id))
                if detail is None or detail.response_received:
                    continue
                detail.responded_by = HITLUser(id="demo", name="llmops demo")
                detail.responded_at = datetime.now(timezone.utc)
                detail.chosen_options = [option]
                detail.params_input = {}
                session.add(detail)
                handle_event_submit(
                    TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session
                )
                session.commit()
                return str(ti.run_id)
        time.sleep(1.0)
    raise TimeoutError(f"{dag_id}.{task_id} did not ask for input within {timeout:.0f}s")
