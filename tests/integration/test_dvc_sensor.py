"""DvcUpdateSensor / DvcUpdateTrigger against a real project: fire on a new version, time out, fail."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from airflow_provider_llmops.sensors.dvc import DvcUpdateSensor
from airflow_provider_llmops.triggers.dvc import DvcUpdateTrigger

pytestmark = pytest.mark.integration


async def _first_event(trigger: DvcUpdateTrigger, limit: float = 60):
    async def first():
        async for event in trigger.run():
            return event.payload
        return None

    return await asyncio.wait_for(first(), timeout=limit)


def _first_event_while(trigger: DvcUpdateTrigger, action, delay: float, limit: float = 30):
    """Run the trigger while `action` happens after `delay` seconds in a thread.

    An exception in `action` is re-raised: it is the cause, not the wait's timeout.
    """
    errors: list[BaseException] = []

    def later():
        try:
            time.sleep(delay)
            action()
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=later)
    thread.start()
    try:
        event = asyncio.run(_first_event(trigger, limit=limit))
    except BaseException:
        thread.join()
        if errors:
            raise errors[0] from None
        raise
    thread.join()
    if errors:
        raise errors[0]
    return event


def test_trigger_fires_when_a_new_version_is_published(dvc_dataset, dvc_conn):
    project = dvc_dataset["project"]
    trigger = DvcUpdateTrigger(
        path="data/train",
        since_md5=dvc_dataset["md5_v2"],
        rev="main",
        dvc_conn_id=dvc_conn,
        poke_interval=0.2,
        timeout=60,
    )

    event = _first_event_while(
        trigger, lambda: project.publish("data/train", {"train.jsonl": '{"id": 3}\n'}, tag="v3"), delay=1.0
    )
    assert event["status"] == "success"
    assert event["sha"] == project.head()
    assert event["md5"] == project.md5_of("data/train", "v3")


def test_trigger_watches_newest_tag_through_git_url_clone(dvc_dataset, dvc_conn_factory):
    project = dvc_dataset["project"]
    conn = dvc_conn_factory("dvc_origin_sensor", f"file://{project.origin}")
    trigger = DvcUpdateTrigger(
        path="data/train",
        since_md5=dvc_dataset["md5_v1"],
        tag_pattern="v*",
        dvc_conn_id=conn,
        poke_interval=0.2,
        timeout=30,
    )
    event = asyncio.run(_first_event(trigger))
    assert event == {
        "status": "success",
        "rev": "v2",
        "sha": dvc_dataset["v2"],
        "md5": dvc_dataset["md5_v2"],
        "path": "data/train",
    }


def test_trigger_times_out_without_new_version(dvc_dataset, dvc_conn):
    trigger = DvcUpdateTrigger(
        path="data/train",
        since_md5=dvc_dataset["md5_v2"],
        rev="main",
        dvc_conn_id=dvc_conn,
        poke_interval=0.2,
        timeout=1.0,
    )
    start = time.monotonic()
    event = asyncio.run(_first_event(trigger))
    assert event["status"] == "timeout"
    assert time.monotonic() - start < 20


def test_trigger_reports_errors_as_events(dvc_dataset, dvc_conn):
    trigger = DvcUpdateTrigger(
        path="data/train",
        since_md5=None,
        rev="no-such-branch",
        dvc_conn_id=dvc_conn,
        poke_interval=0.2,
        timeout=10,
    )
    event = asyncio.run(_first_event(trigger))
    assert event["status"] == "error"
    assert event["error_type"] == "DvcRevisionNotFoundError"
    assert "no-such-branch" in event["error"]


def test_sensor_poke(dvc_dataset, dvc_conn):
    project = dvc_dataset["project"]
    sensor = DvcUpdateSensor(task_id="wait", path="data/train", dvc_conn_id=dvc_conn, deferrable=False)
    sensor._init_baseline({})
    assert sensor._baseline == dvc_dataset["md5_v2"]
    assert sensor.poke({}).is_done is False
    project.publish("data/train", {"train.jsonl": '{"id": 4}\n'}, tag="v3")
    result = sensor.poke({})
    assert result.is_done is True
    assert result.xcom_value == {
        "rev": "main",
        "sha": project.head(),
        "md5": project.md5_of("data/train", "v3"),
    }


def test_sensor_defers_with_the_start_md5(dvc_dataset, dvc_conn):
    from airflow.sdk.exceptions import TaskDeferred

    sensor = DvcUpdateSensor(
        task_id="wait", path="data/train", dvc_conn_id=dvc_conn, poke_interval=5, timeout=60
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, DvcUpdateTrigger)
    assert trigger.since_md5 == dvc_dataset["md5_v2"]
    assert trigger.timeout == 60.0


def test_sensor_without_rev_follows_the_connection_rev(dvc_dataset, dvc_conn_factory):
    project = dvc_dataset["project"]
    conn = dvc_conn_factory("dvc_rev_v1", project.path, rev="v1")
    sensor = DvcUpdateSensor(task_id="wait", path="data/train", dvc_conn_id=conn, deferrable=False)
    sensor._init_baseline({})
    assert sensor._baseline == dvc_dataset["md5_v1"]  # not main's (v2)
    assert sensor.poke({}).is_done is False


def test_trigger_survives_an_unreachable_origin_for_a_few_polls(dvc_dataset, dvc_conn_factory, capfd):
    """The git origin vanishes for a while (a network blip): warnings, then the new version fires."""
    project = dvc_dataset["project"]
    v3 = project.publish("data/train", {"train.jsonl": '{"id": 3}\n'}, tag="v3")
    away = project.origin.with_name("origin-away.git")
    project.origin.rename(away)
    conn = dvc_conn_factory("dvc_flaky_origin", f"file://{project.origin}")
    trigger = DvcUpdateTrigger(
        path="data/train",
        since_md5=dvc_dataset["md5_v2"],
        rev="main",
        dvc_conn_id=conn,
        poke_interval=0.5,
        timeout=60,
        max_transient_errors=20,
    )
    event = _first_event_while(trigger, lambda: away.rename(project.origin), delay=1.5)
    assert event["status"] == "success", event
    assert event["sha"] == v3
    out = capfd.readouterr()
    warnings = [line for line in (out.out + out.err).splitlines() if "retrying at the next poll" in line]
    assert warnings, "the failed polls were not logged"
    assert "tolerated in a row" in warnings[0]


def test_trigger_fails_after_too_many_failed_polls(dvc_dataset, dvc_conn_factory):
    project = dvc_dataset["project"]
    conn = dvc_conn_factory("dvc_gone_origin", f"file://{project.origin}")
    project.origin.rename(project.origin.with_name("origin-gone.git"))
    trigger = DvcUpdateTrigger(
        path="data/train",
        since_md5=dvc_dataset["md5_v2"],
        rev="main",
        dvc_conn_id=conn,
        poke_interval=0.1,
        timeout=60,
        max_transient_errors=3,
    )
    start = time.monotonic()
    event = asyncio.run(_first_event(trigger, limit=30))
    assert event["status"] == "error", event
    assert event["error_type"] in ("DvcRemoteError", "DvcCommandError"), event
    assert event["failed_polls"] == 3
    assert time.monotonic() - start < 30


def test_misspelled_path_warns_on_every_poll(dvc_dataset, dvc_conn, capfd):
    trigger = DvcUpdateTrigger(
        path="data/trian",
        since_md5=None,
        rev="main",
        dvc_conn_id=dvc_conn,
        poke_interval=0.2,
        timeout=1.0,
    )
    event = asyncio.run(_first_event(trigger))
    assert event["status"] == "timeout"
    out = capfd.readouterr()
    warnings = [line for line in (out.out + out.err).splitlines() if "'data/trian' is not tracked" in line]
    assert len(warnings) >= 2, warnings  # one per poll, not once
    assert "rev 'main'" in warnings[0] and "misspelled" in warnings[0]

    sensor = DvcUpdateSensor(
        task_id="wait", path="data/trian", since_md5="x", dvc_conn_id=dvc_conn, deferrable=False
    )
    assert sensor.poke({}).is_done is False
    assert sensor.poke({}).is_done is False
    out = capfd.readouterr()
    assert (out.out + out.err).count("'data/trian' is not tracked") == 2
