"""The main job on embedded defaults: a local stack, then every runnable example DAG via `airflow dags test`.

Started by ``./dev/demo``. Each run rebuilds the demo DVC project and Triton model repository
under ``.llmops/demo`` so that it gives the same result every time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from dev.harness.airflow import migrate_db, prepare_airflow_env
from dev.harness.common import WORK_DIR, HarnessError
from dev.harness.dvc import make_demo_project
from dev.harness.elasticsearch import ElasticsearchServer
from dev.harness.triton import TritonServer, write_python_model

# DAGs that finish unattended; the review-and-approval DAG waits for a person in the UI.
DEMO_DAGS = [("llmops_quickstart", "2024-01-03")]
MODEL_NAME = "llmops_echo"


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def main() -> int:
    demo_dir = WORK_DIR / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    demo_dir.mkdir(parents=True)

    say("building a DVC project with a local-folder remote (data/train tagged v1 and v2)")
    project = make_demo_project(demo_dir / "dvc")
    models = demo_dir / "models"
    write_python_model(models, MODEL_NAME)

    env = prepare_airflow_env("demo", home=demo_dir / "airflow")
    say(f"migrating the Airflow database in {env['AIRFLOW_HOME']}")
    migrate_db(env)

    say("starting Elasticsearch and Triton Inference Server (explicit model control, CPU)")
    with ElasticsearchServer("demo", fresh=True) as es, TritonServer(models) as triton:
        host, port = triton.http_url.removeprefix("http://").split(":")
        env.update(
            {
                "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT": json.dumps(
                    {
                        "conn_type": "elasticsearch",
                        "host": "127.0.0.1",
                        "port": es.http_port,
                        "schema": "http",
                    }
                ),
                "AIRFLOW_CONN_LLMOPS_DVC_DEFAULT": json.dumps(
                    {"conn_type": "llmops_dvc", "extra": {"repo": str(project.path), "rev": "main"}}
                ),
                "AIRFLOW_CONN_LLMOPS_TRITON_DEFAULT": json.dumps(
                    {"conn_type": "llmops_triton", "host": host, "port": int(port), "schema": "http"}
                ),
                "AIRFLOW_VAR_LLMOPS_DATA_DIR": str(demo_dir / "data"),
                "DVC_SITE_CACHE_DIR": str(demo_dir / "dvc-site-cache"),
            }
        )
        for dag_id, logical_date in DEMO_DAGS:
            say(f"airflow dags test {dag_id} {logical_date}")
            started = time.monotonic()
            proc = subprocess.run(
                [sys.executable, "-m", "airflow", "dags", "test", dag_id, logical_date],
                env={**os.environ, **env},
                timeout=1800,
                check=False,
            )
            if proc.returncode != 0:
                say(f"{dag_id} failed (exit {proc.returncode}); logs under {env['AIRFLOW_HOME']}/logs")
                return proc.returncode
            say(f"{dag_id} succeeded in {time.monotonic() - started:.0f}s")

    for review in sorted((demo_dir / "data" / "reviews").glob("*/review.md")):
        charts = ", ".join(p.name for p in sorted(review.parent.glob("*.png")))
        say(f"dataset review: {review} (charts: {charts})")
    say(f"done; everything the demo made is under {demo_dir}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HarnessError as err:
        print(f"[demo] error: {err}", file=sys.stderr)
        sys.exit(1)
