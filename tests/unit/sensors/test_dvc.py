"""DvcUpdateSensor without a repository: validation, events, transient errors."""

from __future__ import annotations

import pytest

from airflow_provider_llmops.exceptions import DvcRemoteError, DvcWaitError
from airflow_provider_llmops.sensors.dvc import DvcUpdateSensor
from airflow_provider_llmops.triggers.dvc import DvcUpdateTrigger
from tests.unit.dvc_support import FOUND, scripted_polls


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


def test_sensor_poke_tolerates_transient_errors(monkeypatch, capfd):
    err = DvcRemoteError("origin unreachable")
    calls = scripted_polls(monkeypatch, [err, err, FOUND, err, err, err])
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

    scripted_polls(monkeypatch, [None])
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


def test_sensor_checks_the_rendered_path(monkeypatch):
    calls = scripted_polls(monkeypatch, [None])
    sensor = DvcUpdateSensor(task_id="s", path="{{ params.path }}", since_md5="old.dir")
    with pytest.raises(ValueError, match="relative to the DVC project root"):
        sensor.render_template_fields({"params": {"path": "../secrets"}})  # what a Param gave
    assert calls == []
