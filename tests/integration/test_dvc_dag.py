"""The DVC operators inside a real DAG run with `dag.test()` (Airflow on SQLite, real project)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.fixtures.airflow import asset_events, run_dag

pytestmark = pytest.mark.integration

SECRET = "pw-S3CRET-d8f7a6"
LOGIN = "dvc-user-x91"


def _collect(out: Path):
    from airflow.sdk import task

    @task(task_id="collect")
    def collect(**context):
        ti = context["ti"]
        results = {t: ti.xcom_pull(task_ids=t) for t in ("pull", "review", "publish")}
        out.write_text(json.dumps(results, default=str))

    return collect()


def _dag(dag_id: str, conn: str, tmp_path: Path, out: Path):
    from airflow.sdk import DAG

    from airflow_provider_llmops.operators.dvc import (
        DvcAddOperator,
        DvcDatasetReviewOperator,
        DvcPullOperator,
    )

    with DAG(
        dag_id, schedule="@daily", start_date=datetime(2024, 1, 1, tzinfo=timezone.utc), catchup=False
    ) as dag:
        pull = DvcPullOperator(
            task_id="pull",
            path="data/train",
            local_path=str(tmp_path / "pulled" / "{{ ds_nodash }}" / "train"),
            dvc_conn_id=conn,
        )
        review = DvcDatasetReviewOperator(
            task_id="review",
            path="data/train",
            new_rev="v2",
            output_dir=str(tmp_path / "review"),
            data_dir=str(tmp_path / "review-data"),
            dvc_conn_id=conn,
        )
        publish = DvcAddOperator(
            task_id="publish", path="data/train", tag="v2", message="noop", dvc_conn_id=conn
        )
        [pull, review, publish] >> _collect(out)
    return dag


def _assert_v1_v2_review(review: dict) -> None:
    """The review of v1 -> v2 of the `dvc_dataset` fixture says what changed, file by file and table by table."""
    markdown = Path(review["markdown"]).read_text()
    # Files: train.jsonl modified, extra.jsonl added, meta/info.json removed.
    assert "Added: 1, removed: 1, modified: 1, unchanged: 0." in markdown
    assert "| added | `extra.jsonl` |" in markdown
    assert "| removed | `meta/info.json` |" in markdown
    assert "| modified | `train.jsonl` |" in markdown
    # Record counts: train.jsonl 2 -> 3; extra.jsonl is a new table with its own schema.
    assert "## Table `train.jsonl`\n\nRecords: 2 -> 3 (+1)" in markdown
    assert "## Table `extra.jsonl`\n\nRecords: - -> 1" in markdown
    assert "| `label` |  | str |  |" in markdown  # extra.jsonl: column only in the new version
    assert "| world | 1 | 0 | gone |" in markdown and "| world! | 0 | 1 | new value |" in markdown
    files = review["summary"]["files"]["changed"]
    assert files == {"added": ["extra.jsonl"], "removed": ["meta/info.json"], "modified": ["train.jsonl"]}
    tables = review["summary"]["tables"]
    assert (tables["train.jsonl"]["old_records"], tables["train.jsonl"]["new_records"]) == (2, 3)
    assert (tables["extra.jsonl"]["old_records"], tables["extra.jsonl"]["new_records"]) == (None, 1)
    assert tables["extra.jsonl"]["columns"] == ["id", "label", "text"]
    # The charts: PNG files next to the markdown, each referenced by it.
    charts = [Path(c) for c in review["charts"]]
    assert {c.name for c in charts} >= {"files.png", "dist-train-jsonl.png", "dist-extra-jsonl.png"}
    for chart in charts:
        assert chart.parent == Path(review["markdown"]).parent
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", chart
        assert f"]({chart.name})" in markdown


def _assert_logged_without(reason: str, secret: str, capfd, caplog, airflow_db) -> None:
    """The failure's `reason` was logged, and `secret` is in no captured output or Airflow log file."""
    captured = capfd.readouterr()
    text = captured.out + captured.err + caplog.text
    assert reason in text
    assert secret not in text
    logs = Path(airflow_db["AIRFLOW_HOME"]) / "logs"
    for log in logs.rglob("*") if logs.exists() else []:
        if log.is_file():
            assert secret not in log.read_text(errors="replace"), log


def test_operators_in_a_dag_backfill_date(airflow_db, dvc_dataset, dvc_conn, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOPS_DVC_WORK_DIR", str(tmp_path / "work"))
    out = tmp_path / "results.json"
    dag = _dag("dvc_ops_test", dvc_conn, tmp_path, out)
    # A run for 2024-01-04 must see v1 (v2 was committed on 2024-01-05).
    dr = run_dag(dag, logical_date=datetime(2024, 1, 4, tzinfo=timezone.utc))
    assert dr.state == "success", [(ti.task_id, ti.state) for ti in dr.get_task_instances()]
    results = json.loads(out.read_text())
    pull = results["pull"]
    assert pull["sha"] == dvc_dataset["v1"]
    assert pull["md5"] == dvc_dataset["md5_v1"]
    assert pull["local_path"].endswith("20240104/train")
    assert (Path(pull["local_path"]) / "meta" / "info.json").exists()
    assert set(pull) >= {"repo", "path", "rev", "sha", "md5", "size", "nfiles", "local_path"}
    review = results["review"]
    assert review["new_sha"] == dvc_dataset["v2"]
    assert review["old_sha"] == dvc_dataset["v1"]
    assert review["summary_text"]
    _assert_v1_v2_review(review)
    assert results["publish"]["created"] is False


class _AuthRecorder:
    """HTTP server on 127.0.0.1 that records each Authorization header and answers 401."""

    def __init__(self) -> None:
        import http.server
        import threading

        headers: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _deny(self) -> None:
                headers.append(self.headers.get("Authorization") or "")
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="dvc"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = do_POST = do_PUT = do_PROPFIND = _deny

            def log_message(self, *args: object) -> None:
                pass

        self.headers = headers
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/dvc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _db_rows_text(dag_id: str) -> str:
    """XCom values and rendered template fields of every task of `dag_id`, as one text."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        xcoms = session.scalars(select(XComModel).where(XComModel.dag_id == dag_id)).all()
        rtifs = session.scalars(
            select(RenderedTaskInstanceFields).where(RenderedTaskInstanceFields.dag_id == dag_id)
        ).all()
        return json.dumps(
            {
                "xcom": [[x.task_id, x.key, x.value] for x in xcoms],
                "rendered": [[r.task_id, r.rendered_fields] for r in rtifs],
            },
            default=str,
        )


def test_credentials_never_reach_logs_xcom_or_errors(
    airflow_db, dvc_dataset, dvc_conn_factory, tmp_path, monkeypatch, capfd, caplog
):
    """The connection password really goes to DVC (HTTP basic auth), and nowhere else.

    The DVC remote is an HTTP server that records the Authorization header and answers 401, so
    the push fails after DVC used the credentials; the secret must be in no exception, task
    log, XCom value or rendered template field.
    """
    import base64

    from airflow.sdk import DAG

    from airflow_provider_llmops.exceptions import DvcRemoteError
    from airflow_provider_llmops.operators.dvc import DvcPushOperator

    project = dvc_dataset["project"]
    server = _AuthRecorder()
    try:
        conn = dvc_conn_factory(
            "dvc_secret",
            project.path,
            login=LOGIN,
            password=SECRET,
            remote="web",  # a remote of its own: the project's local one has local-only keys
            remote_url=server.url,
        )
        # Direct call: the exception text itself.
        with pytest.raises(DvcRemoteError) as err:
            DvcPushOperator(task_id="push_direct", path="data/train", dvc_conn_id=conn).execute({})
        assert "127.0.0.1" in str(err.value)
        assert SECRET not in str(err.value) and SECRET not in repr(err.value.args)
        expected = "Basic " + base64.b64encode(f"{LOGIN}:{SECRET}".encode()).decode()
        assert expected in server.headers, server.headers  # the password did reach DVC

        dag_id = "dvc_secret_push"
        with DAG(
            dag_id,
            schedule=None,
            start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
            params={"path": "data/train"},
        ) as dag:
            DvcPushOperator(task_id="push", path="{{ params.path }}", dvc_conn_id=conn)
        seen = len(server.headers)
        dr = run_dag(dag)
    finally:
        server.close()
    assert dr.state == "failed"
    assert expected in server.headers[seen:]  # the task run sent the credentials too
    _assert_logged_without("DvcRemoteError", SECRET, capfd, caplog, airflow_db)
    rows = _db_rows_text(dag_id)
    assert "data/train" in rows  # the rendered path was recorded ...
    assert SECRET not in rows  # ... and no secret next to it
    # Rendering the task's templates directly gives the same answer.
    ti = dr.get_task_instance("push")
    assert ti is not None and ti.state == "failed"


TOKEN = "ghp-T0KEN-in-url-5c1d"


def test_token_in_repo_url_never_reaches_errors_or_logs(
    airflow_db, dvc_env, dvc_conn_factory, tmp_path, capfd, caplog
):
    """https://TOKEN@host/repo.git that cannot be cloned: the token is in no message or log."""
    from airflow.sdk import DAG

    from airflow_provider_llmops.exceptions import DvcRemoteError
    from airflow_provider_llmops.hooks.dvc import DvcHook
    from airflow_provider_llmops.operators.dvc import DvcPullOperator
    from airflow_provider_llmops.utils.dvc_pull import DvcPuller

    url = f"https://{TOKEN}@127.0.0.1:9/org/datasets.git"  # nothing listens on port 9
    conn = dvc_conn_factory("dvc_token", url)
    with pytest.raises(DvcRemoteError) as err:
        DvcPuller(DvcHook(conn)).pull("data/train", "main", tmp_path / "out")
    assert "Cannot clone" in str(err.value)
    assert TOKEN not in str(err.value)
    assert TOKEN not in err.value.repo

    with DAG("dvc_token_fail", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=timezone.utc)) as bad:
        DvcPullOperator(task_id="pull", path="data/train", local_path=str(tmp_path / "x"), dvc_conn_id=conn)
    dr = run_dag(bad)
    assert dr.state == "failed"
    _assert_logged_without("Cannot clone", TOKEN, capfd, caplog, airflow_db)


@pytest.mark.parametrize("how", ["literal-repo", "templated-path", "connection"])
def test_pull_records_asset_event_with_version(airflow_db, dvc_dataset, dvc_conn, tmp_path, how):
    """One dataset, one URI: dvc://<repo-name>/<path>, whether the task names the project, templates
    its path, or takes the project from the connection."""
    from airflow.sdk import DAG

    from airflow_provider_llmops.operators.dvc import DvcPullOperator

    templated = how != "literal-repo"
    dag_id = f"dvc_asset_{how.replace('-', '_')}"
    with DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
        params={"path": "data/train"},
    ) as dag:
        op = DvcPullOperator(
            task_id="pull",
            path="{{ params.path }}" if how == "templated-path" else "data/train",
            local_path=str(tmp_path / "pulled" / "train"),
            rev="v1",
            dvc_conn_id=dvc_conn,
            repo=str(dvc_dataset["project"].path) if how == "literal-repo" else None,
        )
    if templated:
        assert op.asset is None
        assert op.asset_alias is not None and op.asset_alias.name == f"dvc:{dag_id}:pull"
        assert op.asset_alias in op.outlets
    else:
        assert op.asset is not None and op.asset in op.outlets
    uri = "dvc://project/data/train"  # the project's folder is named `project`
    before = len(asset_events(uri))
    dr = run_dag(dag)
    assert dr.state == "success", [(ti.task_id, ti.state) for ti in dr.get_task_instances()]
    events = [e for e in asset_events(uri) if e["dag_id"] == dag_id]
    assert len(events) == 1 and len(asset_events(uri)) == before + 1, events
    event = events[0]
    assert event["task_id"] == "pull"
    extra = event["extra"]
    assert extra["rev"] == "v1"
    assert extra["sha"] == dvc_dataset["v1"]
    assert extra["md5"] == dvc_dataset["md5_v1"]
    assert extra["nfiles"] == 2 and extra["size"] > 0
    assert extra["path"] == "data/train"
    assert event["aliases"] == ([f"dvc:{dag_id}:pull"] if templated else [])


def test_review_baseline_is_the_last_successful_run(airflow_db, dvc_dataset, dvc_conn, tmp_path):
    """No old_rev: the second run reviews against what the first run reviewed (its new_sha).

    Run 1 (2024-01-03) sees v1. v3 is published after v2. Run 2 (2024-01-08) sees v3; the
    previous change of the data is v2, but the last successful review was of v1, so the
    baseline must be v1: nothing published in between goes unreviewed.
    """
    from airflow.sdk import DAG, task

    from airflow_provider_llmops.operators.dvc import DvcDatasetReviewOperator

    out = tmp_path / "out"
    out.mkdir()

    with DAG(
        "dvc_review_baseline",
        schedule="@daily",
        start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
        catchup=False,
    ) as dag:

        @task(task_id="collect")
        def collect(**context):
            value = context["ti"].xcom_pull(task_ids="review")
            (out / f"{context['ds_nodash']}.json").write_text(json.dumps(value, default=str))

        DvcDatasetReviewOperator(task_id="review", path="data/train", dvc_conn_id=dvc_conn) >> collect()

    dr = run_dag(dag, logical_date=datetime(2024, 1, 3, tzinfo=timezone.utc))
    assert dr.state == "success", [(ti.task_id, ti.state) for ti in dr.get_task_instances()]
    first = json.loads((out / "20240103.json").read_text())
    assert first["new_sha"] == dvc_dataset["v1"]
    assert first["old_sha"] is None  # first version: everything is new

    project = dvc_dataset["project"]
    v3 = project.publish(
        "data/train",
        {"train.jsonl": '{"id": 7, "text": "v3", "label": "a"}\n'},
        tag="v3",
        date=datetime(2024, 1, 7, 12, tzinfo=timezone.utc),
    )
    dr = run_dag(dag, logical_date=datetime(2024, 1, 8, tzinfo=timezone.utc))
    assert dr.state == "success", [(ti.task_id, ti.state) for ti in dr.get_task_instances()]
    second = json.loads((out / "20240108.json").read_text())
    assert second["new_sha"] == v3
    assert second["old_sha"] == first["new_sha"] == dvc_dataset["v1"]  # not v2, the previous change
    assert second["summary"]["files"]["changed"]["removed"] == ["meta/info.json"]


def test_add_and_review_record_asset_events(airflow_db, dvc_dataset, dvc_conn, tmp_path):
    """DvcAddOperator publishes v3 (event on dvc://...), the review of v2 -> v3 its summary (dvc-review://...)."""
    from airflow.sdk import DAG

    from airflow_provider_llmops.operators.dvc import DvcAddOperator, DvcDatasetReviewOperator

    project = dvc_dataset["project"]
    project.write_files("data/train", {"train.jsonl": '{"id": 5, "text": "v3", "label": "z"}\n'})
    dag_id = "dvc_add_review_assets"
    with DAG(dag_id, schedule=None, start_date=datetime(2024, 1, 1, tzinfo=timezone.utc)) as dag:
        publish = DvcAddOperator(task_id="publish", path="data/train", tag="v3", dvc_conn_id=dvc_conn)
        review = DvcDatasetReviewOperator(
            task_id="review",
            path="data/train",
            new_rev="v3",
            old_rev="v2",
            output_dir=str(tmp_path / "review"),
            data_dir=str(tmp_path / "review-data"),
            dvc_conn_id=dvc_conn,
        )
        publish >> review
    dr = run_dag(dag)
    assert dr.state == "success", [(ti.task_id, ti.state) for ti in dr.get_task_instances()]
    v3 = project.tags()["v3"]
    md5_v3 = project.md5_of("data/train", "v3")

    added = [e for e in asset_events("dvc://project/data/train") if e["dag_id"] == dag_id]
    assert len(added) == 1, added
    assert added[0]["task_id"] == "publish"
    extra = added[0]["extra"]
    assert (extra["rev"], extra["sha"], extra["md5"], extra["path"]) == ("v3", v3, md5_v3, "data/train")
    assert extra["nfiles"] == 1 and extra["size"] > 0

    reviewed = [e for e in asset_events("dvc-review://project/data/train") if e["dag_id"] == dag_id]
    assert len(reviewed) == 1, reviewed
    assert reviewed[0]["task_id"] == "review"
    extra = reviewed[0]["extra"]
    assert (extra["old_rev"], extra["new_rev"]) == ("v2", "v3")
    assert (extra["old_sha"], extra["new_sha"], extra["md5"]) == (dvc_dataset["v2"], v3, md5_v3)
    changed = extra["summary"]["files"]["changed"]
    assert changed == {"added": [], "removed": ["extra.jsonl"], "modified": ["train.jsonl"]}
    assert extra["summary"]["tables"]["train.jsonl"]["new_records"] == 1


def test_push_operator_in_a_dag_fills_the_remote(airflow_db, dvc_project, dvc_conn):
    """A version committed without `dvc push`: DvcPushOperator sends its objects to the local remote."""
    from airflow.sdk import DAG

    from airflow_provider_llmops.operators.dvc import DvcPushOperator

    files = {"a.jsonl": '{"id": 1}\n', "b/c.txt": "push me\n"}
    dvc_project.publish("data/train", files, tag="v1", push=False)
    md5 = dvc_project.md5_of("data/train", "v1")
    dir_object = f"files/md5/{md5[:2]}/{md5[2:]}"
    before = dvc_project.remote_objects()
    assert dir_object not in before

    out = dvc_project.root / "push-result.json"
    with DAG("dvc_push_dag", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=timezone.utc)) as dag:
        from airflow.sdk import task

        @task(task_id="collect")
        def collect(**context):
            out.write_text(json.dumps(context["ti"].xcom_pull(task_ids="push")))

        DvcPushOperator(task_id="push", path="data/train", dvc_conn_id=dvc_conn) >> collect()
    dr = run_dag(dag)
    assert dr.state == "success", [(ti.task_id, ti.state) for ti in dr.get_task_instances()]
    result = json.loads(out.read_text())
    assert result["path"] == "data/train"
    assert result["pushed"] >= 3  # two files and the .dir listing
    after = dvc_project.remote_objects()
    assert dir_object in after and len(after - before) == 3, after  # the .dir listing and both files
    cache = dvc_project.cache_dir()
    for rel in after - before:
        assert (dvc_project.remote / rel).read_bytes() == (cache / rel).read_bytes()


PARAM_TOKEN = "ghp-P4RAM-t0ken-77e1"


def test_token_in_templated_repo_is_refused_before_rendered_fields_are_stored(
    airflow_db, dvc_env, dvc_conn_factory, tmp_path, capfd, caplog
):
    """`repo` from a Param holding https://TOKEN@...: every task fails right after rendering,
    and the token is in no rendered template field, log, XCom or message."""
    from airflow.sdk import DAG

    from airflow_provider_llmops.operators.dvc import (
        DvcAddOperator,
        DvcDatasetReviewOperator,
        DvcPullOperator,
        DvcPushOperator,
    )
    from airflow_provider_llmops.sensors.dvc import DvcUpdateSensor

    conn = dvc_conn_factory("dvc_param_repo", tmp_path / "unused")
    dag_id = "dvc_param_token"
    repo = "{{ params.repo }}"
    with DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
        params={"repo": f"https://{PARAM_TOKEN}@127.0.0.1:9/org/datasets.git"},
    ) as dag:
        common = {"path": "data/train", "dvc_conn_id": conn, "repo": repo}
        DvcPullOperator(task_id="pull", local_path=str(tmp_path / "x"), **common)
        DvcAddOperator(task_id="publish", tag="v9", **common)
        DvcPushOperator(task_id="push", **common)
        DvcDatasetReviewOperator(task_id="review", **common)
        DvcUpdateSensor(task_id="wait", since_md5="x", deferrable=False, timeout=5, **common)
    dr = run_dag(dag)
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert set(states.values()) == {"failed"}, states
    _assert_logged_without("must not carry credentials", PARAM_TOKEN, capfd, caplog, airflow_db)
    assert PARAM_TOKEN not in _db_rows_text(dag_id)


MAPPED_TOKEN = "ghp-M4PPED-t0ken-31b9"


def test_mapped_tasks_refuse_a_token_in_repo_and_still_emit_their_assets(
    airflow_db, dvc_dataset, dvc_conn, tmp_path, capfd, caplog
):
    """`.partial().expand(repo=[...])`: a mapped task renders through `_do_render_template_fields`
    only, so that is where the credential check runs. The mapped instances with a token in
    `repo` (from a Param, or literal) fail before their rendered fields are stored, the token is
    in no rendered field, log or XCom, and the instance with a good repo emits its Asset event
    through the AssetAlias that `partial()` declared."""
    from airflow.sdk import DAG, AssetAlias

    from airflow_provider_llmops.operators.dvc import (
        DvcAddOperator,
        DvcDatasetReviewOperator,
        DvcPullOperator,
        DvcPushOperator,
    )
    from airflow_provider_llmops.sensors.dvc import DvcUpdateSensor

    project = dvc_dataset["project"]
    dag_id = "dvc_mapped_repo"
    repos = [str(project.path), "{{ params.repo }}", f"https://{MAPPED_TOKEN}@127.0.0.1:9/org/x.git"]
    with DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
        params={"repo": f"https://user:{MAPPED_TOKEN}@127.0.0.1:9/org/datasets.git"},
    ) as dag:
        common = {"path": "data/train", "dvc_conn_id": dvc_conn}
        pull = DvcPullOperator.partial(
            task_id="pull", local_path=str(tmp_path / "pulled" / "{{ ti.map_index }}"), rev="v1", **common
        ).expand(repo=repos)
        DvcAddOperator.partial(task_id="publish", tag="v2", **common).expand(repo=repos)
        DvcPushOperator.partial(task_id="push", **common).expand(repo=repos)
        DvcDatasetReviewOperator.partial(
            task_id="review",
            new_rev="v2",
            old_rev="v1",
            output_dir=str(tmp_path / "review" / "{{ ti.map_index }}"),
            **common,
        ).expand(repo=repos)
        DvcUpdateSensor.partial(task_id="wait", since_md5="x", deferrable=False, timeout=5, **common).expand(
            repo=repos
        )
    assert AssetAlias(f"dvc:{dag_id}:pull") in pull.partial_kwargs["outlets"]
    dr = run_dag(dag)
    states = {(ti.task_id, ti.map_index): ti.state for ti in dr.get_task_instances()}
    for task_id in ("pull", "publish", "push", "review", "wait"):
        assert states[(task_id, 0)] == "success", states
        assert states[(task_id, 1)] == states[(task_id, 2)] == "failed", states
    _assert_logged_without("must not carry credentials", MAPPED_TOKEN, capfd, caplog, airflow_db)
    assert MAPPED_TOKEN not in _db_rows_text(dag_id)

    pulled = [e for e in asset_events("dvc://project/data/train") if e["dag_id"] == dag_id]
    by_task = {e["task_id"]: e for e in pulled}
    assert set(by_task) == {"pull", "publish"}, pulled
    assert by_task["pull"]["aliases"] == [f"dvc:{dag_id}:pull"]
    assert by_task["pull"]["extra"]["sha"] == dvc_dataset["v1"]
    assert by_task["publish"]["extra"]["rev"] == "v2"
    reviewed = [e for e in asset_events("dvc-review://project/data/train") if e["dag_id"] == dag_id]
    assert len(reviewed) == 1 and reviewed[0]["aliases"] == [f"dvc-review:{dag_id}:review"]
