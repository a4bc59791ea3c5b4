"""What the last successful run of a task produced: the baseline of "what changed since".

Example::

    old_sha = last_success_xcom(context, "review", "new_sha")  # None on the first run
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["last_success_xcom"]

log = logging.getLogger(__name__)


def last_success_xcom(context: Context, task_id: str, key: str) -> Any:
    """``return_value[key]`` of `task_id` in its dag's last successful run; None when there is none."""
    ti = context.get("ti")
    if ti is None:
        return None
    try:
        from airflow.sdk import TaskInstanceState

        prev = ti.get_previous_ti(state=TaskInstanceState.SUCCESS)  # type: ignore[union-attr]
        if prev is None:
            return None
        value = ti.xcom_pull(task_ids=task_id, dag_id=ti.dag_id, run_id=prev.run_id)
    except Exception as err:  # older API or no previous run: callers fall back
        log.info("No previous successful run to compare with (%s)", type(err).__name__)
        return None
    return value.get(key) if isinstance(value, dict) else None
