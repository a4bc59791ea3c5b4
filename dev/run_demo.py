"""The main job on embedded defaults: the whole fine-tune -> deploy -> re-index pipeline, then a summary.

Started by ``./dev/demo``. It builds a git + DVC project (``datasets``, a local-folder remote) whose
``data/llmops`` holds the corpus, training pairs and held-out queries made from the standard
library's docstrings (dev/stdlib_docs.py, params.yaml's ``llmops_data``), starts the harness's
Elasticsearch and Triton, and runs ``dags/llmops_finetune_and_deploy.py`` with
``airflow dags test`` on an Airflow home on SQLite, with the local training launcher on CPU.

The DAG's approval step waits for a person. The demo answers it itself, as the demo user, the
same way the REST API's ``PATCH .../hitlDetails`` does (dev.pipeline_stack.answer_hitl), and
says so. At the end it prints the summary table and exits 1 unless the fine-tuned model beats
the base model on the held-out queries (recall@10 and nDCG@10).

Options: ``--steps N`` (training steps, default 45), ``--keep`` (reuse .llmops/demo: a rerun
then reuses the pulled data, trained model, Triton version and index, as a rerun of the DAG does).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dev.harness.airflow import migrate_db, prepare_airflow_env
from dev.harness.common import REPO_ROOT, WORK_DIR, HarnessError
from dev.harness.elasticsearch import ElasticsearchServer
from dev.harness.triton import TritonServer

DAG_ID = "llmops_finetune_and_deploy"


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def _params() -> dict[str, Any]:
    import yaml

    return dict((yaml.safe_load((REPO_ROOT / "params.yaml").read_text()) or {}).get("llmops_data", {}))


def _stage_times(db: Path, run_id: str) -> list[tuple[str, str, float]]:
    """(task, state, seconds) of the run's task instances, in the order they started."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT task_id, state, start_date, end_date FROM task_instance WHERE dag_id = ? AND run_id = ? "
            "ORDER BY start_date",
            (DAG_ID, run_id),
        ).fetchall()
    from datetime import datetime

    out = []
    for task_id, state, start, end in rows:
        if not start or not end:
            out.append((task_id, state or "none", 0.0))
            continue
        seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
        out.append((task_id, state or "none", seconds))
    return out


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    line = "+" + "-" * (width + 2) + "+" + "-" * 62 + "+"
    body = [f"| {k.ljust(width)} | {v[:60].ljust(60)} |" for k, v in rows]
    return "\n".join([line, *body, line])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=45, help="training steps (16 pairs x 2 processes each)")
    parser.add_argument("--keep", action="store_true", help="reuse .llmops/demo from the last run")
    args = parser.parse_args(argv)
    started = time.monotonic()

    from dev.pipeline_stack import (
        approve_in_background,
        make_pipeline_project,
        pipeline_env,
        prepare_model_env,
    )

    demo_dir = WORK_DIR / "demo"
    if not args.keep:
        shutil.rmtree(demo_dir, ignore_errors=True)
    demo_dir.mkdir(parents=True, exist_ok=True)

    project_dir = demo_dir / "dvc"
    if (project_dir / "datasets" / ".dvc").exists():
        from dev.harness.dvc import DvcProject, dvc_env

        project = DvcProject(
            root=project_dir,
            path=project_dir / "datasets",
            origin=project_dir / "origin.git",
            remote=project_dir / "remote",
            site_cache=project_dir / "site-cache",
            env=dvc_env(project_dir / "site-cache", {"HOME": os.environ.get("HOME", str(project_dir))}),
        )
        say(f"reusing the DVC project {project.path}")
    else:
        say("building the datasets from the standard library's docstrings (dvc.yaml stage llmops_datasets)")
        say("and publishing them as data/llmops v1 and v2 to a DVC project with a local-folder remote")
        project = make_pipeline_project(project_dir, _params())
    counts = json.loads((project.path / "data/llmops/README.json").read_text())["counts"]
    say(
        f"dataset v2: {counts['corpus']} passages, {counts['pairs']} training pairs, "
        f"{counts['judgments']} held-out queries"
    )
    say("installing what Triton's python backend needs for an embedding model (cached after the first run)")
    prepare_model_env()

    env = prepare_airflow_env("demo", home=demo_dir / "airflow")
    say(f"Airflow home on SQLite: {env['AIRFLOW_HOME']}")
    migrate_db(env)
    models = demo_dir / "triton-models"
    say("starting Elasticsearch and Triton Inference Server (explicit model control, CPU)")
    with ElasticsearchServer("demo", fresh=not args.keep) as es, TritonServer(models) as triton:
        env.update(
            pipeline_env(
                project,
                es_port=int(es.http_port or 0),
                triton_http_port=int(triton.http_port or 0),
                model_repository=models,
                data_dir=demo_dir / "work",
                launcher="local",
            )
        )
        env["LLMOPS_DVC_CLONE_DIR"] = str(demo_dir / "dvc-clones")
        os.environ.update(env)  # the approver thread talks to the same metadata database
        conf = {"max_steps": args.steps, "micro_batch_size": 16, "cpu_procs": 2, "learning_rate": 1e-4}
        say(f"airflow dags test {DAG_ID} -c '{json.dumps(conf)}' (task logs follow)")
        say("the approval step will be answered by the demo itself, as the demo user (a reviewer clicks")
        say("Approve in the UI's Required actions; the REST API's PATCH .../hitlDetails does the same)")
        approval = approve_in_background(DAG_ID, "approve_dataset", "Approve", timeout=3600)
        dag_started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, "-c", json.dumps(conf)],
            env={**os.environ, **env},
            timeout=3600,
            check=False,
        )
        dag_seconds = time.monotonic() - dag_started
        if "error" in approval:
            say(f"could not answer the approval: {approval['error']}")
        run_id = approval.get("run_id", "")
        stages = _stage_times(Path(env["AIRFLOW_HOME"]) / "airflow.db", run_id) if run_id else []
        failed = [t for t, state, _ in stages if state not in ("success", "skipped")]
        if proc.returncode != 0 or failed or not run_id:
            say(f"{DAG_ID} failed (exit {proc.returncode}; tasks not successful: {failed or '?'})")
            say(f"task logs under {env['AIRFLOW_HOME']}/logs")
            return proc.returncode or 1

    summaries = sorted((demo_dir / "work" / "runs").glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
    record = json.loads(summaries[-1].read_text())
    gate = record["eval"]
    base, tuned = gate["base"], gate["fine_tuned"]
    rows = [
        ("dataset rev", f"{record['dataset_rev']} ({record['dataset_sha'][:12]})"),
        (
            "training loss",
            f"{record['loss_start']:.4f} -> {record['loss_end']:.4f} "
            f"(means of {record['loss_window_steps']} of {record['train_steps']} steps)",
        ),
        ("samples/s", f"{record['samples_per_s']:.1f} ({record['launcher']} launcher, 2 CPU processes)"),
        ("Triton serves", f"{record['triton_model']} version {record['triton_version']}"),
        ("alias -> index", f"{record['alias']} -> {record['index']}"),
        ("held-out queries", str(gate["queries"])),
        (
            "recall@10",
            f"base {base['recall']:.3f} -> fine-tuned {tuned['recall']:.3f} ({gate['recall_margin']:+.3f})",
        ),
        (
            "nDCG@10",
            f"base {base['ndcg']:.3f} -> fine-tuned {tuned['ndcg']:.3f} ({gate['ndcg_margin']:+.3f})",
        ),
    ]
    rows += [(f"time: {task}", f"{seconds:6.1f} s  {state}") for task, state, seconds in stages]
    rows += [
        ("time: DAG run", f"{dag_seconds:6.1f} s"),
        ("time: whole demo", f"{time.monotonic() - started:6.1f} s"),
    ]
    print(_table(rows), flush=True)
    reviews = sorted((demo_dir / "work" / "reviews").glob("*/review.md"))
    if reviews:
        say(f"dataset review: {reviews[-1]}")
    say(f"everything the demo made is under {demo_dir}")
    if gate["recall_margin"] > 0 and gate["ndcg_margin"] > 0:
        say(
            f"the fine-tuned model beats the base on {gate['queries']} held-out queries: "
            f"recall@10 {gate['recall_margin']:+.3f}, nDCG@10 {gate['ndcg_margin']:+.3f}"
        )
        return 0
    say("the fine-tuned model does NOT beat the base model on the held-out queries")
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HarnessError as err:
        print(f"[demo] error: {err}", file=sys.stderr)
        sys.exit(1)
