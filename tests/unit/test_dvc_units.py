"""DVC operators, sensor, trigger and hook helpers without any repository or server."""

from __future__ import annotations

import importlib
import json

import pytest

from airflow_provider_llmops.exceptions import DvcCommandError, DvcRemoteError, DvcWaitError
from airflow_provider_llmops.hooks.dvc import DvcHook, _strip_userinfo, repo_name
from airflow_provider_llmops.operators.dvc import (
    DvcAddOperator,
    DvcDatasetReviewOperator,
    DvcPullOperator,
    DvcPushOperator,
)
from airflow_provider_llmops.sensors.dvc import DvcUpdateSensor
from airflow_provider_llmops.triggers.dvc import DvcUpdateTrigger


def test_trigger_serialize_round_trip():
    trigger = DvcUpdateTrigger(
        path="data/train",
        since_md5="abc.dir",
        rev="main",
        tag_pattern="v*",
        dvc_conn_id="c",
        repo="/srv/ds",
        poke_interval=5,
        timeout=30,
    )
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    assert cls is DvcUpdateTrigger
    again = cls(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs == {
        "path": "data/train",
        "since_md5": "abc.dir",
        "rev": "main",
        "tag_pattern": "v*",
        "dvc_conn_id": "c",
        "repo": "/srv/ds",
        "poke_interval": 5.0,
        "timeout": 30.0,
        "max_transient_errors": 3,
    }


@pytest.mark.parametrize(
    ("op", "fields"),
    [
        (DvcPullOperator, {"path", "local_path", "rev", "branch", "repo"}),
        (DvcAddOperator, {"path", "tag", "message", "repo"}),
        (DvcPushOperator, {"path", "repo"}),
        (
            DvcDatasetReviewOperator,
            {"path", "new_rev", "old_rev", "output_dir", "data_dir", "branch", "repo"},
        ),
        (DvcUpdateSensor, {"path", "rev", "tag_pattern", "since_md5", "repo"}),
    ],
)
def test_template_fields(op, fields):
    assert set(op.template_fields) == fields


def test_pull_asset_declared_at_parse_time_from_repo():
    op = DvcPullOperator(
        task_id="p", path="data/train", local_path="/tmp/x", repo="https://github.com/org/datasets.git"
    )
    assert op.asset is not None
    assert op.asset.uri == "dvc://datasets/data/train"
    assert op.asset in op.outlets


def test_pull_asset_falls_back_to_conn_id():
    op = DvcPullOperator(task_id="p", path="data/train/", local_path="/tmp/x", dvc_conn_id="my_ds")
    assert op.asset is not None
    assert op.asset.uri == "dvc://my_ds/data/train"


def test_templated_path_declares_an_asset_alias():
    from airflow.sdk import DAG, AssetAlias

    with DAG("d", schedule=None):
        op = DvcPullOperator(task_id="p", path="data/{{ params.split }}", local_path="/tmp/x")
        review = DvcDatasetReviewOperator(task_id="r", path="data/train", repo="{{ params.repo }}")
    assert op.asset is None
    assert op.asset_alias == AssetAlias("dvc:d:p")
    assert op.outlets == [op.asset_alias]
    assert review.asset is None
    assert review.outlets == [AssetAlias("dvc-review:d:r")]


def test_emit_asset_false_declares_nothing():
    op = DvcPullOperator(task_id="p", path="data/{{ x }}", local_path="/tmp/x", emit_asset=False)
    assert op.asset is None and op.asset_alias is None and op.outlets == []


def test_operators_are_one_baseoperator_level():
    """A mixin, not an intermediate BaseOperator subclass: one apply_defaults layer per task."""
    from airflow.sdk import BaseOperator

    from airflow_provider_llmops.operators.dvc import _DvcLineage

    assert not issubclass(_DvcLineage, BaseOperator)
    for op in (DvcPullOperator, DvcAddOperator, DvcDatasetReviewOperator):
        assert op.__mro__[1:3] == (_DvcLineage, BaseOperator), op


def test_parsing_operators_does_not_import_hook_or_trigger():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import airflow_provider_llmops.operators.dvc, airflow_provider_llmops.sensors.dvc\n"
        "print(sorted(m for m in sys.modules if m.endswith(('hooks.dvc', 'triggers.dvc'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_review_asset_uri():
    op = DvcDatasetReviewOperator(task_id="r", path="data/train", repo="/srv/datasets")
    assert op.asset is not None
    assert op.asset.uri == "dvc-review://datasets/data/train"


def test_pull_rejects_empty_path():
    with pytest.raises(ValueError, match="path must be a non-empty string"):
        DvcPullOperator(task_id="p", path="", local_path="/tmp/x")


def test_pull_rejects_absolute_path():
    with pytest.raises(ValueError, match="relative to the DVC project root"):
        DvcPullOperator(task_id="p", path="/etc/passwd", local_path="/tmp/x")


def test_pull_rejects_parent_path():
    with pytest.raises(ValueError, match="relative to the DVC project root"):
        DvcPullOperator(task_id="p", path="../other/data", local_path="/tmp/x")


def test_pull_rejects_empty_local_path():
    with pytest.raises(ValueError, match="local_path"):
        DvcPullOperator(task_id="p", path="data", local_path="")


def test_pull_rejects_empty_rev():
    with pytest.raises(ValueError, match="rev"):
        DvcPullOperator(task_id="p", path="data", local_path="/tmp/x", rev=" ")


def test_add_rejects_empty_tag():
    with pytest.raises(ValueError, match="tag"):
        DvcAddOperator(task_id="a", path="data", tag="")


def test_push_rejects_empty_path():
    with pytest.raises(ValueError, match="path"):
        DvcPushOperator(task_id="p", path="")


def test_review_rejects_empty_old_rev():
    with pytest.raises(ValueError, match="old_rev"):
        DvcDatasetReviewOperator(task_id="r", path="data", old_rev="")


def test_sensor_rejects_empty_path():
    with pytest.raises(ValueError, match="path"):
        DvcUpdateSensor(task_id="s", path="")


def test_sensor_rejects_empty_tag_pattern():
    with pytest.raises(ValueError, match="tag_pattern"):
        DvcUpdateSensor(task_id="s", path="data", tag_pattern="")


def test_sensor_rejects_empty_branch():
    with pytest.raises(ValueError, match="rev must be a branch"):
        DvcUpdateSensor(task_id="s", path="data", rev="")


def test_sensor_rev_defaults_to_the_connection():
    sensor = DvcUpdateSensor(task_id="s", path="data")
    assert sensor.rev is None
    assert sensor._rev() is None  # the hook then uses the connection's rev (else main)


def test_sensor_reschedule_needs_since_md5():
    with pytest.raises(ValueError, match="reschedule"):
        DvcUpdateSensor(task_id="s", path="data", mode="reschedule", deferrable=False)


def test_sensor_execute_complete_success():
    sensor = DvcUpdateSensor(task_id="s", path="data")
    event = {"status": "success", "rev": "main", "sha": "a" * 40, "md5": "m.dir", "path": "data"}
    assert sensor.execute_complete({}, event) == {"rev": "main", "sha": "a" * 40, "md5": "m.dir"}


def test_sensor_execute_complete_timeout():
    from airflow.sdk.exceptions import AirflowSensorTimeout

    sensor = DvcUpdateSensor(task_id="s", path="data/train")
    with pytest.raises(AirflowSensorTimeout, match="No new version of 'data/train'"):
        sensor.execute_complete({}, {"status": "timeout", "timeout": 5.0, "since_md5": "x"})


def test_sensor_execute_complete_error():
    sensor = DvcUpdateSensor(task_id="s", path="data/train", tag_pattern="v*")
    with pytest.raises(DvcWaitError, match="DvcRevisionNotFoundError: nope"):
        sensor.execute_complete(
            {}, {"status": "error", "error": "nope", "error_type": "DvcRevisionNotFoundError"}
        )


@pytest.mark.parametrize(
    ("repo", "name"),
    [
        ("https://github.com/org/datasets.git", "datasets"),
        ("git@github.com:org/datasets.git", "datasets"),
        ("/srv/data/project/", "project"),
    ],
)
def test_repo_name(repo, name):
    assert repo_name(repo) == name


def test_strip_userinfo():
    assert _strip_userinfo("https://bob:hunter2@git.example/x.git") == "https://***@git.example/x.git"
    assert _strip_userinfo("/srv/x") == "/srv/x"


def test_hook_redacts_connection_secrets(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DVC_UNIT",
        json.dumps(
            {
                "conn_type": "llmops_dvc",
                "login": "AKIAUNIT",
                "password": "s3cr3t-unit-password",
                "extra": {
                    "repo": "https://bob:tok-in-url@git.example/ds.git",
                    "remote_config": {"session_token": "sess-token-value"},
                },
            }
        ),
    )
    hook = DvcHook("dvc_unit")
    text = "s3cr3t-unit-password sess-token-value tok-in-url"
    assert hook.redact(text) == "*** *** ***"
    assert "tok-in-url" not in hook.repo_label
    assert hook.repo_name == "ds"


def test_hook_treats_url_username_without_password_as_token(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DVC_TOKEN",
        json.dumps({"conn_type": "llmops_dvc", "extra": {"repo": "https://ghp_tok3n@git.example/ds.git"}}),
    )
    hook = DvcHook("dvc_token")
    assert "ghp_tok3n" not in hook.repo_label
    text = "fatal: unable to access 'https://ghp_tok3n@git.example/ds.git/': ghp_tok3n"
    assert "ghp_tok3n" not in hook.redact(text)
    # Any other URL with userinfo in a message loses it too.
    assert hook.redact("see https://u:p@other.example/x") == "see https://***@other.example/x"


def test_hook_without_repo_names_the_fix(monkeypatch):
    from airflow_provider_llmops.exceptions import DvcError

    monkeypatch.setenv("AIRFLOW_CONN_DVC_EMPTY", json.dumps({"conn_type": "llmops_dvc", "extra": {}}))
    with pytest.raises(DvcError, match="set the `repo` extra of connection 'dvc_empty'"):
        _ = DvcHook("dvc_empty").settings


# ---------------------------------------------------------------- transient poll errors
FOUND = {"rev": "main", "sha": "b" * 40, "md5": "new.dir"}


def _scripted_polls(monkeypatch, script):
    """Replace the blocking poll with `script` (exceptions are raised, values returned); return the call log."""
    import airflow_provider_llmops.triggers.dvc as trigger_module

    calls: list[object] = []
    steps = iter(script)

    def fake(*args, **kwargs):
        step = next(steps)
        calls.append(step)
        if isinstance(step, BaseException):
            raise step
        return step

    monkeypatch.setattr(trigger_module, "check_for_update", fake)
    return calls


def _trigger_events(trigger):
    import asyncio

    async def collect():
        return [event.payload async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout=10))


def _trigger(**kwargs):
    return DvcUpdateTrigger(path="data/train", since_md5="old.dir", poke_interval=0, timeout=30, **kwargs)


@pytest.mark.parametrize(
    "transient",
    [
        DvcRemoteError("git fetch failed: could not resolve host"),
        DvcCommandError("`git fetch` timed out after 120s"),
        OSError("No space left on device"),
    ],
    ids=["remote", "command", "os"],
)
def test_trigger_tolerates_transient_errors_then_fires(monkeypatch, capfd, transient):
    calls = _scripted_polls(monkeypatch, [transient, transient, None, FOUND])
    events = _trigger_events(_trigger())
    assert events == [{"status": "success", **FOUND, "path": "data/train"}]
    assert len(calls) == 4
    out = capfd.readouterr()
    warnings = [line for line in (out.out + out.err).splitlines() if "retrying at the next poll" in line]
    assert len(warnings) == 2, warnings
    assert "warning" in warnings[0] and "1 of 2 tolerated" in warnings[0] and str(transient) in warnings[0]


def test_trigger_fails_after_max_transient_errors_in_a_row(monkeypatch):
    err = DvcRemoteError("origin unreachable")
    calls = _scripted_polls(monkeypatch, [err, None, err, err, err, FOUND])
    events = _trigger_events(_trigger())  # the success between resets the count
    assert len(calls) == 5
    assert len(events) == 1
    assert events[0]["status"] == "error"
    assert events[0]["error_type"] == "DvcRemoteError"
    assert events[0]["error"] == "origin unreachable"
    assert events[0]["failed_polls"] == 3


def test_trigger_max_transient_errors_is_configurable(monkeypatch):
    calls = _scripted_polls(monkeypatch, [OSError("x"), FOUND])
    events = _trigger_events(_trigger(max_transient_errors=1))
    assert len(calls) == 1 and events[0]["status"] == "error"


def test_trigger_fails_at_once_on_a_permanent_error(monkeypatch):
    from airflow_provider_llmops.exceptions import DvcRevisionNotFoundError

    calls = _scripted_polls(monkeypatch, [DvcRevisionNotFoundError("no branch 'mian'"), FOUND])
    events = _trigger_events(_trigger())
    assert len(calls) == 1
    assert events[0]["status"] == "error" and events[0]["error_type"] == "DvcRevisionNotFoundError"


@pytest.mark.parametrize("value", [0, -1, "3", None])
def test_max_transient_errors_must_be_positive(value):
    with pytest.raises(ValueError, match="max_transient_errors"):
        _trigger(max_transient_errors=value)
    with pytest.raises(ValueError, match="max_transient_errors"):
        DvcUpdateSensor(task_id="s", path="data", max_transient_errors=value)


def test_sensor_poke_tolerates_transient_errors(monkeypatch, capfd):
    err = DvcRemoteError("origin unreachable")
    calls = _scripted_polls(monkeypatch, [err, err, FOUND, err, err, err])
    sensor = DvcUpdateSensor(task_id="s", path="data/train", since_md5="old.dir", deferrable=False)
    assert sensor.poke({}).is_done is False
    assert sensor.poke({}).is_done is False
    assert sensor.poke({}).xcom_value == FOUND
    assert sensor.poke({}).is_done is False
    assert sensor.poke({}).is_done is False
    with pytest.raises(DvcRemoteError, match="origin unreachable"):
        sensor.poke({})
    assert len(calls) == 6
    out = capfd.readouterr()
    assert (out.out + out.err).count("retrying at the next poll") == 4


def test_sensor_passes_max_transient_errors_to_the_trigger(monkeypatch):
    from airflow.sdk.exceptions import TaskDeferred

    _scripted_polls(monkeypatch, [None])
    sensor = DvcUpdateSensor(task_id="s", path="data/train", since_md5="old.dir", max_transient_errors=5)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    assert deferred.value.trigger.max_transient_errors == 5


def test_sensor_execute_complete_error_says_how_many_polls_failed():
    sensor = DvcUpdateSensor(task_id="s", path="data/train")
    event = {"status": "error", "error": "down", "error_type": "DvcRemoteError", "failed_polls": 3}
    with pytest.raises(DvcWaitError, match=r"failed \(3 polls in a row\): DvcRemoteError: down"):
        sensor.execute_complete({}, event)


# ---------------------------------------------------------------- path validation in the sensor
@pytest.mark.parametrize("path", ["/etc/data", "../outside", "data/../../x", "C:\\data"])
def test_sensor_and_trigger_reject_paths_outside_the_project(path):
    with pytest.raises(ValueError, match="relative to the DVC project root"):
        DvcUpdateSensor(task_id="s", path=path)
    with pytest.raises(ValueError, match="relative to the DVC project root"):
        DvcUpdateTrigger(path=path, since_md5=None)


def test_sensor_checks_the_rendered_path_at_execute(monkeypatch):
    calls = _scripted_polls(monkeypatch, [None])
    sensor = DvcUpdateSensor(task_id="s", path="{{ params.path }}", since_md5="old.dir")
    sensor.path = "../secrets"  # what rendering a Param gave
    with pytest.raises(ValueError, match="relative to the DVC project root"):
        sensor.execute({})
    assert calls == []


# ---------------------------------------------------------------- credentials in `repo`
TOKEN_URLS = [
    "https://ghp_T0KEN@github.com/org/datasets.git",
    "https://user:s3cret@git.example.com/org/datasets.git",
    "http://oauth2:glpat-x@gitlab.local/ds.git",
    "ssh://git:pw@host/ds.git",
]


def _ops(repo):
    return [
        lambda: DvcPullOperator(task_id="p", path="data", local_path="/tmp/x", repo=repo),
        lambda: DvcAddOperator(task_id="a", path="data", tag="v1", repo=repo),
        lambda: DvcPushOperator(task_id="u", path="data", repo=repo),
        lambda: DvcDatasetReviewOperator(task_id="r", path="data", repo=repo),
        lambda: DvcUpdateSensor(task_id="s", path="data", repo=repo),
    ]


@pytest.mark.parametrize("url", TOKEN_URLS)
def test_repo_with_credentials_is_refused_at_parse_time(url):
    secret = url.split("://", 1)[1].split("@", 1)[0]
    for make in _ops(url):
        with pytest.raises(ValueError, match="put the user/token in the llmops_dvc connection") as err:
            make()
        assert secret not in str(err.value)
    with pytest.raises(ValueError, match="must not carry credentials"):
        DvcUpdateTrigger(path="data", since_md5=None, repo=url)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/org/datasets.git",
        "git@github.com:org/datasets.git",
        "ssh://git@github.com/org/datasets.git",
        "/srv/data/project",
        "file:///srv/data/origin.git",
        None,
    ],
)
def test_repo_without_credentials_is_accepted(url):
    for make in _ops(url):
        make()


@pytest.mark.parametrize("url", TOKEN_URLS[:2])
def test_templated_repo_is_checked_once_rendered(monkeypatch, url):
    """A Param can bring a token in at run time: execute() refuses it before any git/DVC call."""
    import airflow_provider_llmops.hooks.dvc as hook_module

    def no_hook(*args, **kwargs):
        raise AssertionError("the hook must not be built for a repo with credentials")

    monkeypatch.setattr(hook_module, "DvcHook", no_hook)
    _scripted_polls(monkeypatch, [None])
    secret = url.split("://", 1)[1].split("@", 1)[0]
    for make in _ops("{{ params.repo }}"):
        op = make()  # templated: not checked at parse time
        op.repo = url  # what rendering gave
        with pytest.raises(ValueError, match="must not carry credentials") as err:
            op.execute({})
        assert secret not in str(err.value)
