"""DatasetApprovalOperator: the review in the request, and who decided and when, in words."""

from __future__ import annotations

from datetime import datetime, timezone
from unittest import mock

from airflow_provider_llmops.operators.approval import DatasetApprovalOperator, decision_sentence

AT = datetime(2026, 1, 2, 10, 0, tzinfo=timezone.utc)


def test_decision_sentences():
    assert decision_sentence("Approve", {"id": "admin", "name": "admin"}, AT) == (
        "Approved by admin at 2026-01-02 10:00:00 UTC"
    )
    assert decision_sentence("Reject", {"id": "7", "name": "Ada"}, AT.isoformat()) == (
        "Rejected by Ada at 2026-01-02 10:00:00 UTC"
    )
    assert decision_sentence("Reject", None, AT, timed_out=True).startswith("Rejected by default")


def test_request_defaults_to_the_reviews_markdown():
    op = DatasetApprovalOperator(task_id="approve", review_task_id="review")
    assert "ti.xcom_pull(task_ids='review')['approval_markdown']" in op.body
    assert "['new_sha'][:12]" in op.subject and "['path']" in op.subject
    assert op.options == ["Approve", "Reject"]
    assert op.fail_on_reject is False


def test_execute_complete_logs_and_returns_the_decision():
    op = DatasetApprovalOperator(task_id="approve", subject="Train?", body="b")
    event = {
        "chosen_options": ["Approve"],
        "params_input": {},
        "responded_at": AT,
        "responded_by_user": {"id": "admin", "name": "admin"},
    }
    with mock.patch.object(type(op), "log") as log:
        ret = op.execute_complete(context={}, event=event)  # type: ignore[arg-type]
    assert ret["decision"] == "Approved by admin at 2026-01-02 10:00:00 UTC"
    assert ret["approved"] is True and ret["responded_by"] == "admin"
    assert ret["chosen_options"] == ["Approve"]
    log.info.assert_any_call("%s: %s", "Approved by admin at 2026-01-02 10:00:00 UTC", "Train?")
