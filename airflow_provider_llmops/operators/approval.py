"""Human approval of a dataset review: Airflow's `ApprovalOperator` with the review in its body.

The request in the *Required actions* view shows what a reviewer needs (the review task's
``approval_markdown``: flagged shifts, record and schema changes, label shares, and a link to the
full review with its charts). Once answered, the task's log and return value say in words who
approved or rejected it and when (``Approved by admin at 2026-01-02 10:00:00 UTC``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["DatasetApprovalOperator", "decision_sentence"]


def _user_name(user: Any) -> str:
    if isinstance(user, dict):
        return str(user.get("name") or user.get("id") or "an unknown user")
    return str(user or "an unknown user")


def _utc(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value.utcoffset() is not None else value.isoformat()
    return str(value)


def decision_sentence(chosen: str, user: Any, at: Any, timed_out: bool = False) -> str:
    """``Approved by admin at 2026-01-02 10:00:00 UTC`` (or Rejected, or taken on timeout)."""
    verb = {ApprovalOperator.APPROVE: "Approved", ApprovalOperator.REJECT: "Rejected"}.get(chosen, chosen)
    if timed_out or user is None:
        return f"{verb} by default: no answer before the timeout ({_utc(at)})"
    return f"{verb} by {_user_name(user)} at {_utc(at)}"


class DatasetApprovalOperator(ApprovalOperator):
    """Ask a human to approve a reviewed dataset version; say who decided, and when.

    Example::

        review = DvcDatasetReviewOperator(task_id="review_dataset", path="data/train", ...)
        approve = DatasetApprovalOperator(task_id="approve_dataset", review_task_id="review_dataset")
        review >> approve >> train

    :param review_task_id: the `DvcDatasetReviewOperator` whose return value fills the request:
        `subject` defaults to ``Train on <path> @ <sha>?`` and `body` to its ``approval_markdown``.
        Pass `subject`/`body` to word them yourself.
    :param response_timeout: how long the request stays open (default: three days); `defaults`
        (e.g. ``["Reject"]``) is what happens then, else the task fails on timeout.
    Other arguments are `ApprovalOperator`'s. *Approve* lets the downstream tasks run; *Reject*
    skips them. The return value adds ``decision`` (e.g. ``Approved by admin at ... UTC``),
    ``approved``, ``responded_by`` and ``responded_at`` to Airflow's response.
    """

    ui_color = "#f0e4ff"

    def __init__(
        self,
        *,
        review_task_id: str = "review_dataset",
        subject: str | None = None,
        body: str | None = None,
        response_timeout: timedelta | None = timedelta(days=3),
        **kwargs: Any,
    ) -> None:
        review = f"ti.xcom_pull(task_ids={review_task_id!r})"
        self.review_task_id = review_task_id
        super().__init__(
            subject=subject
            or "Train on {{ " + review + "['path'] }} @ {{ " + review + "['new_sha'][:12] }}?",
            body=body if body is not None else "{{ " + review + "['approval_markdown'] }}",
            response_timeout=response_timeout,
            **kwargs,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        chosen = (event.get("chosen_options") or ["?"])[0]
        sentence = decision_sentence(
            chosen, event.get("responded_by_user"), event.get("responded_at"), bool(event.get("timedout"))
        )
        self.log.info("%s: %s", sentence, self.subject)
        ret = super().execute_complete(context, event)
        user = event.get("responded_by_user")
        return {
            **dict(ret or {}),
            "decision": sentence,
            "approved": chosen == self.APPROVE,
            "responded_by": _user_name(user) if user else None,
            "responded_at": _utc(event.get("responded_at")),
        }
