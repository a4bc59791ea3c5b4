"""The deferrable sensors' way to wait: one poke in the worker, then the trigger.

Example::

    def execute(self, context):
        if not self.deferrable:
            return super().execute(context)
        return poke_then_defer(self, context, lambda: MyTrigger(...))
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import BaseSensorOperator, Context
    from airflow.triggers.base import BaseTrigger

__all__ = ["DEFER_PADDING_S", "poke_then_defer"]

# The framework's deferral timeout is padded past the trigger's own deadline, so the trigger's
# timeout event (with its actionable message) arrives first instead of a bare framework timeout.
DEFER_PADDING_S = 60.0


def poke_then_defer(
    sensor: BaseSensorOperator, context: Context, make_trigger: Callable[[], BaseTrigger]
) -> Any:
    """Return the first poke's value when it is done already; otherwise defer to `make_trigger()`."""
    first = sensor.poke(context)
    if getattr(first, "is_done", first):
        return getattr(first, "xcom_value", None)
    timeout = float(sensor.timeout) if sensor.timeout else None
    sensor.defer(
        trigger=make_trigger(),
        method_name="execute_complete",
        timeout=timedelta(seconds=timeout + DEFER_PADDING_S) if timeout else None,
    )
