"""`TrainingPodTrigger`: the cncf KubernetesPodTrigger with the task's deadline.

Airflow does not apply ``execution_timeout`` to a deferred task, and a deferral that runs into its
own ``timeout`` fails the task without any cleanup: the training pod would keep its GPUs. This
trigger waits like KubernetesPodTrigger until ``deadline`` (epoch seconds, from ``time.time()``) and
then hands back a ``{"status": "running", "llmops_deadline_passed": true}`` event, on which
`DeepSpeedTrainingOperator` deletes the pod and fails the task with its log tail. The operator pads the
framework's own deferral timeout past the deadline, so this trigger's event comes first.

The class is built on first access (module ``__getattr__``): importing this module loads neither
the kubernetes client nor the cncf trigger module.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["DEADLINE_PASSED", "TrainingPodTrigger"]  # noqa: F822 - built in __getattr__

DEADLINE_PASSED = "llmops_deadline_passed"


@functools.cache
def _trigger_class() -> type:
    import asyncio
    import time

    from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger
    from airflow.triggers.base import TriggerEvent

    class TrainingPodTrigger(KubernetesPodTrigger):  # type: ignore[misc]
        def __init__(self, *, deadline: float | None = None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.deadline = deadline

        def serialize(self) -> tuple[str, dict[str, Any]]:
            _, kwargs = super().serialize()
            if self.deadline is not None:  # emitted only when set: a stable serialisation
                kwargs["deadline"] = self.deadline
            return f"{__name__}.TrainingPodTrigger", kwargs

        async def run(self) -> Any:
            if self.deadline is None:
                async for event in super().run():
                    yield event
                return
            events: Any = super().run().__aiter__()
            try:
                event = await asyncio.wait_for(
                    events.__anext__(), timeout=max(0.0, self.deadline - time.time())
                )
            except asyncio.TimeoutError:
                yield TriggerEvent(
                    {
                        "status": "running",
                        "name": self.pod_name,
                        "namespace": self.pod_namespace,
                        "message": "the task's execution_timeout passed",
                        DEADLINE_PASSED: True,
                    }
                )
                return
            finally:
                await events.aclose()
            yield event

    TrainingPodTrigger.__module__ = __name__
    return TrainingPodTrigger


def __getattr__(name: str) -> Any:
    if name == "TrainingPodTrigger":
        return _trigger_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
