"""DVC operators, sensor, trigger and hook helpers without any repository or server."""

from __future__ import annotations

import importlib
import json

import pytest

from airflow_provider_llmops.exceptions import DvcWaitError
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
