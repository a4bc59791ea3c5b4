"""TrainingPodTrigger: the cncf pod trigger plus the task's deadline, serialised stably."""

from __future__ import annotations

import asyncio
import importlib
import time

from airflow_provider_llmops.triggers.training_pod import DEADLINE_PASSED, TrainingPodTrigger

KWARGS = dict(
    pod_name="train-x",
    pod_namespace="team-nlp",
    trigger_start_time=None,
    base_container_name="base",
    kubernetes_conn_id="kubernetes_default",
)


def test_serialize_round_trip_names_an_importable_class():
    trigger = TrainingPodTrigger(**KWARGS, deadline=123.5)
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    assert getattr(importlib.import_module(module), name) is TrainingPodTrigger
    assert kwargs["deadline"] == 123.5
    assert TrainingPodTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_without_deadline_the_kwargs_are_the_cncf_triggers():
    from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger

    _, ours = TrainingPodTrigger(**KWARGS).serialize()
    _, theirs = KubernetesPodTrigger(**KWARGS).serialize()
    assert ours == theirs


def test_a_passed_deadline_hands_back_without_touching_the_cluster():
    trigger = TrainingPodTrigger(**KWARGS, deadline=time.time() - 1)

    async def first():
        async for event in trigger.run():
            return event.payload

    payload = asyncio.run(first())
    assert payload[DEADLINE_PASSED] is True
    assert (payload["name"], payload["namespace"], payload["status"]) == ("train-x", "team-nlp", "running")
