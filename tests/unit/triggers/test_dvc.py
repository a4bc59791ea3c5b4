"""DvcUpdateTrigger without a repository: serialization, transient errors, validation."""

from __future__ import annotations

import importlib
import json

import pytest

from airflow_provider_llmops.exceptions import DvcCommandError, DvcRemoteError
from airflow_provider_llmops.sensors.dvc import DvcUpdateSensor
from airflow_provider_llmops.triggers.dvc import DvcUpdateTrigger
from tests.unit.dvc_support import FOUND, scripted_polls, trigger_events


def _trigger(**kwargs):
    return DvcUpdateTrigger(path="data/train", since_md5="old.dir", poke_interval=0, timeout=30, **kwargs)


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
    "transient",
    [
        DvcRemoteError("git fetch failed: could not resolve host"),
        DvcCommandError("`git fetch` timed out after 120s"),
        OSError("No space left on device"),
    ],
    ids=["remote", "command", "os"],
)
def test_trigger_tolerates_transient_errors_then_fires(monkeypatch, capfd, transient):
    calls = scripted_polls(monkeypatch, [transient, transient, None, FOUND])
    events = trigger_events(_trigger())
    assert events == [{"status": "success", **FOUND, "path": "data/train"}]
    assert len(calls) == 4
    out = capfd.readouterr()
    warnings = [line for line in (out.out + out.err).splitlines() if "retrying at the next poll" in line]
    assert len(warnings) == 2, warnings
    assert "warning" in warnings[0] and "1 of 2 tolerated" in warnings[0] and str(transient) in warnings[0]


def test_trigger_fails_after_max_transient_errors_in_a_row(monkeypatch):
    err = DvcRemoteError("origin unreachable")
    calls = scripted_polls(monkeypatch, [err, None, err, err, err, FOUND])
    events = trigger_events(_trigger())  # the success between resets the count
    assert len(calls) == 5
    assert len(events) == 1
    assert events[0]["status"] == "error"
    assert events[0]["error_type"] == "DvcRemoteError"
    assert events[0]["error"] == "origin unreachable"
    assert events[0]["failed_polls"] == 3


def test_trigger_max_transient_errors_is_configurable(monkeypatch):
    calls = scripted_polls(monkeypatch, [OSError("x"), FOUND])
    events = trigger_events(_trigger(max_transient_errors=1))
    assert len(calls) == 1 and events[0]["status"] == "error"


def test_trigger_fails_at_once_on_a_permanent_error(monkeypatch):
    from airflow_provider_llmops.exceptions import DvcRevisionNotFoundError

    calls = scripted_polls(monkeypatch, [DvcRevisionNotFoundError("no branch 'mian'"), FOUND])
    events = trigger_events(_trigger())
    assert len(calls) == 1
    assert events[0]["status"] == "error" and events[0]["error_type"] == "DvcRevisionNotFoundError"


@pytest.mark.parametrize("value", [0, -1, "3", None])
def test_max_transient_errors_must_be_positive(value):
    with pytest.raises(ValueError, match="max_transient_errors"):
        _trigger(max_transient_errors=value)
    with pytest.raises(ValueError, match="max_transient_errors"):
        DvcUpdateSensor(task_id="s", path="data", max_transient_errors=value)
