"""llmops_reindex backfilled over a date range through the REST API of a real `airflow standalone`.

data/llmops v1 was committed on 2024-01-02 12:00 UTC and v2 on 2024-01-03 12:00 UTC. A backfill of
2024-01-03..2024-01-05 must pull v1 for the 3rd and v2 for the 4th and 5th, and build each date the
index version of its dataset rev and the served model version: the 4th and 5th share one index
(one index version per dataset rev, nothing duplicated). A backfill leaves the readers' alias alone
(unpausing the DAG may also start today's scheduled run, which does move it, to v2's index).

Real servers: the harness's Elasticsearch and Triton (serving all-MiniLM-L6-v2 as stdlib_minilm),
a git + DVC project with a local remote, and `airflow standalone` on SQLite (about 2 minutes of
start-up on 2 cores).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dev.harness.airflow import AirflowStandalone, prepare_airflow_env
from dev.harness.common import HarnessError, log_tail
from dev.pipeline_stack import TINY_PARAMS, make_pipeline_project, pipeline_env
from tests.integration.pipeline_support import REINDEX_DAG_FILE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

DAG_ID = "llmops_reindex"
TERMINAL = {"success", "failed"}


@pytest.fixture(scope="module")
def served_model(triton_server, minilm_package) -> Iterator[int]:
    """all-MiniLM-L6-v2 served as stdlib_minilm (the model name the reindex DAG embeds with)."""
    import logging

    from airflow_provider_llmops.hooks.triton import TritonHook
    from airflow_provider_llmops.serving.publish import ModelRepository
    from airflow_provider_llmops.utils.triton_deploy import TritonDeployManager

    conn = {
        "conn_type": "llmops_triton",
        "host": "127.0.0.1",
        "port": triton_server.http_port,
        "schema": "http",
    }
    os.environ["AIRFLOW_CONN_LLMOPS_TRITON_REINDEX"] = json.dumps(conn)
    hook = TritonHook("llmops_triton_reindex")
    repo = triton_server.model_repository
    try:
        record = TritonDeployManager(hook, ModelRepository(str(repo)), logging.getLogger(__name__)).deploy(
            minilm_package, "stdlib_minilm"
        )
        yield record.version
    finally:
        try:
            hook.unload_model("stdlib_minilm")
        except Exception as err:  # the model dir goes anyway
            print(f"unloading stdlib_minilm: {err}")
        hook.close()
        shutil.rmtree(repo / "stdlib_minilm", ignore_errors=True)
        os.environ.pop("AIRFLOW_CONN_LLMOPS_TRITON_REINDEX", None)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory, elasticsearch_server, triton_server, served_model) -> Iterator[Any]:
    base = tmp_path_factory.mktemp("reindex-backfill")
    project = make_pipeline_project(base / "dvc", TINY_PARAMS)
    dags = base / "dags"
    dags.mkdir()
    shutil.copy(REINDEX_DAG_FILE, dags / REINDEX_DAG_FILE.name)
    env = prepare_airflow_env("reindex-backfill", home=base / "airflow", dags_folder=dags)
    env.update(
        pipeline_env(
            project,
            es_port=int(elasticsearch_server.url.rsplit(":", 1)[1]),
            triton_http_port=int(triton_server.http_port or 0),
            model_repository=triton_server.model_repository,
            data_dir=base / "work",
        )
    )
    env["LLMOPS_DVC_CLONE_DIR"] = str(base / "dvc-clones")
    af = AirflowStandalone(env)
    af.start(timeout=420)
    try:
        token = af.token()
        af.wait_for_dag(DAG_ID, token, timeout=180)
        af.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False}, token=token)
        yield af, token, project
    finally:
        af.stop()
        from elasticsearch import Elasticsearch

        client = Elasticsearch(elasticsearch_server.url)
        names = list(client.indices.get(index="stdlib-docs*", expand_wildcards="all").body)
        if names:
            client.indices.delete(index=",".join(names))
        client.close()


def _runs(af: AirflowStandalone, token: str) -> list[dict[str, Any]]:
    body = af.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns", token=token)
    return [r for r in body["dag_runs"] if r["run_type"] == "backfill"]


def _wait(af: AirflowStandalone, token: str, runs: int = 3, timeout: float = 900) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = _runs(af, token)
        if len(found) == runs and all(r["state"] in TERMINAL for r in found):
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"backfill did not finish: {found}\n{log_tail(af.process.log_path, 60)}")
        time.sleep(3)


def _xcom(af: AirflowStandalone, token: str, run_id: str, task_id: str) -> dict[str, Any]:
    value = af.api(
        "GET",
        f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
        token=token,
    )["value"]
    return dict(json.loads(value) if isinstance(value, str) else value)


def test_backfill_builds_each_dates_index_version(standalone, served_model, elasticsearch_server):
    from airflow_provider_llmops.utils.retry import retry_call

    af, token, project = standalone
    tags = project.tags()
    started = time.monotonic()
    retry_call(  # on SQLite the API answers 503 while the scheduler holds the database lock
        lambda: af.api(
            "POST",
            "/api/v2/backfills",
            {
                "dag_id": DAG_ID,
                "from_date": "2024-01-03T00:00:00Z",
                "to_date": "2024-01-05T00:00:00Z",
                "max_active_runs": 1,
                "reprocess_behavior": "none",
            },
            token=token,
        ),
        should_retry=lambda err: isinstance(err, HarnessError) and "-> 503" in str(err),
        attempts=12,
        base_delay=1.0,
        max_delay=8.0,
        what="POST /api/v2/backfills",
    )
    runs = _wait(af, token)
    failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
    if failed:  # a task can fail on a locked SQLite database after its work: clear it once
        print(f"clearing failed backfill runs once: {failed}\n{log_tail(af.process.log_path, 40)}")
        for run_id in failed:
            af.api(
                "POST",
                f"/api/v2/dags/{DAG_ID}/clearTaskInstances",
                {"dry_run": False, "dag_run_id": run_id, "only_failed": True, "reset_dag_runs": True},
                token=token,
            )
        runs = _wait(af, token)
    assert all(r["state"] == "success" for r in runs), f"{runs}\n{log_tail(af.process.log_path, 60)}"
    print(f"backfill of 3 dates finished in {time.monotonic() - started:.0f}s")

    by_date = {r["logical_date"][:10]: r["dag_run_id"] for r in runs}
    pulled = {d: _xcom(af, token, run_id, "pull_dataset")["sha"] for d, run_id in by_date.items()}
    assert pulled == {"2024-01-03": tags["v1"], "2024-01-04": tags["v2"], "2024-01-05": tags["v2"]}
    indices = {d: _xcom(af, token, run_id, "index_corpus") for d, run_id in by_date.items()}
    for day, built in indices.items():
        assert built["index"] == f"stdlib-docs-build-g{pulled[day][:12]}-{served_model}", built
        assert built["model_version"] == str(served_model) and built["dataset_rev"] == f"g{pulled[day][:12]}"
    assert indices["2024-01-03"]["index"] != indices["2024-01-04"]["index"] == indices["2024-01-05"]["index"]

    # The rerun of v2 on the 5th overwrote the 4th's documents by id: no duplicates.
    from elasticsearch import Elasticsearch

    client = Elasticsearch(elasticsearch_server.url)
    try:
        for day in ("2024-01-03", "2024-01-04"):
            count = client.count(index=indices[day]["index"])["count"]
            assert count == indices[day]["doc_count"] == indices[day]["documents"], (day, count)
        # Backfill runs leave the alias alone. Unpausing may also start today's scheduled run,
        # which moves it, to v2's index (the one the 4th and 5th reused): nothing else.
        exists = client.indices.exists_alias(name="stdlib-docs")
        live = list(client.indices.get_alias(name="stdlib-docs").body) if exists else []
    finally:
        client.close()
    assert live in ([], [indices["2024-01-04"]["index"]]), live
    switched = {d: _xcom(af, token, run_id, "switch_alias") for d, run_id in by_date.items()}
    assert not any(s["moved"] for s in switched.values()), switched
