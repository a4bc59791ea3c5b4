"""Shared helpers of the DVC unit tests: scripted polls for the trigger and sensor, repo URLs with credentials."""

from __future__ import annotations

from airflow_provider_llmops.operators.dvc import (
    DvcAddOperator,
    DvcDatasetReviewOperator,
    DvcPullOperator,
    DvcPushOperator,
)
from airflow_provider_llmops.sensors.dvc import DvcUpdateSensor

# ---------------------------------------------------------------- transient poll errors
FOUND = {"rev": "main", "sha": "b" * 40, "md5": "new.dir"}


def scripted_polls(monkeypatch, script):
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


def trigger_events(trigger):
    import asyncio

    async def collect():
        return [event.payload async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout=10))


# ---------------------------------------------------------------- credentials in `repo`
TOKEN_URLS = [
    "https://ghp_T0KEN@github.com/org/datasets.git",
    "https://user:s3cret@git.example.com/org/datasets.git",
    "http://oauth2:glpat-x@gitlab.local/ds.git",
    "ssh://git:pw@host/ds.git",
]


def operators_with_repo(repo):
    return [
        lambda: DvcPullOperator(task_id="p", path="data", local_path="/tmp/x", repo=repo),
        lambda: DvcAddOperator(task_id="a", path="data", tag="v1", repo=repo),
        lambda: DvcPushOperator(task_id="u", path="data", repo=repo),
        lambda: DvcDatasetReviewOperator(task_id="r", path="data", repo=repo),
        lambda: DvcUpdateSensor(task_id="s", path="data", repo=repo),
    ]
