"""The DVC review and approval in a real browser (issue 7, points 13 and 14).

- The DVC connection form: Repository visible in the always-open section, relabelled and with
  its placeholder; the extra fields with their labels and descriptions; remote settings typed
  as key=value lines (no JSON editor), saved as the hook reads them.
- The review DAG's trigger form: titles and descriptions, and a since_md5 of the wrong shape
  refused when triggering.
- A review run: the approval in the Required actions view shows the key tables and flagged
  shifts; its link opens the full review, whose charts load; Approve is clicked; the run
  succeeds and the task page says who approved, and when.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.system.conftest import REVIEW_DAG_ID
from tests.system.ui import UiStack, unique_run_id

pytestmark = pytest.mark.integration

HITL_TASK = "approve_dataset"


def _open_trigger_form(ui: Any, stack: UiStack) -> Any:
    ui.goto(f"{stack.url}/dags/{REVIEW_DAG_ID}")
    ui.get_by_role("button", name="Trigger").first.click()
    dialog = ui.get_by_role("dialog")
    dialog.get_by_text("Run Parameters").wait_for()
    return dialog


def test_dvc_connection_form_is_usable(ui: Any, ui_stack: UiStack, shots: Any):
    ui.goto(f"{ui_stack.url}/connections")
    ui.get_by_role("button", name="Add Connection").first.click()
    dialog = ui.get_by_role("dialog")
    dialog.get_by_role("combobox").fill("DVC")
    ui.keyboard.press("Enter")
    dialog.get_by_text("DVC Project").first.wait_for()

    # Repository is in the section that is open from the start, marked required, with a placeholder.
    repo = dialog.locator("input[name=host]")
    repo.wait_for()
    assert dialog.get_by_text("Repository (required)").is_visible()
    assert "https://github.com/acme/datasets.git" in (repo.get_attribute("placeholder") or "")
    assert dialog.locator("input[name=login]").get_attribute("placeholder") == "AKIA... (S3) or user"
    assert dialog.locator("input[name=port]").count() == 0  # hidden: meaningless for DVC
    dialog.locator("input[name=connection_id]").fill("dvc_from_the_form")
    repo.fill("https://git.example/acme/datasets.git")
    shots(ui, "connection-form")

    # Opening the extra fields closes the standard ones (one section open at a time).
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    for label in ("Default rev", "DVC project folder (monorepos)", "DVC remote URL", "DVC remote settings"):
        assert dialog.get_by_text(label, exact=True).is_visible(), label
    assert dialog.get_by_text("one key=value per line").is_visible()
    # The remote URL offers its examples as a pick list.
    options = dialog.locator("#list_remote_url option").evaluate_all("els => els.map(e => e.value)")
    assert "s3://my-bucket/dvc-store" in options
    # Remote settings: a plain text box, one setting per line (not the JSON editor).
    settings = dialog.locator("textarea[name=element_remote_config]")
    settings.fill("region=eu-west-1\nendpointurl=https://minio:9000")
    dialog.locator("#element_remote_url").fill("s3://my-bucket/dvc-store")
    shots(ui, "connection-form-extra-fields")
    dialog.get_by_role("button", name="Save").click()
    ui.get_by_text("dvc_from_the_form").first.wait_for()
    shots(ui, "connection-saved")

    saved = ui_stack.api("GET", "/api/v2/connections/dvc_from_the_form")
    extra = json.loads(saved["extra"])
    assert saved["conn_type"] == "llmops_dvc"
    assert saved["host"] == "https://git.example/acme/datasets.git"
    assert extra["remote_url"] == "s3://my-bucket/dvc-store"
    # What the form saved is what the hook reads.
    from airflow_provider_llmops.hooks.dvc import _remote_config

    assert _remote_config(extra["remote_config"], "dvc_from_the_form") == {
        "region": "eu-west-1",
        "endpointurl": "https://minio:9000",
    }


def test_trigger_form_has_titles_and_refuses_a_malformed_since_md5(ui: Any, ui_stack: UiStack, shots: Any):
    dialog = _open_trigger_form(ui, ui_stack)
    for title in ("DVC project", "Dataset path", "Already-trained version (md5)", "Compare with (rev)"):
        assert dialog.locator("label", has_text=title).first.is_visible(), title
    assert dialog.get_by_text("ending in .dir for a folder").is_visible()
    runs_before = ui_stack.api("GET", f"/api/v2/dags/{REVIEW_DAG_ID}/dagRuns")["total_entries"]

    ui.locator("#element_since_md5").fill("not-an-md5")
    with ui.expect_response(lambda r: r.url.endswith("/dagRuns") and r.request.method == "POST") as posted:
        dialog.get_by_role("button", name="Trigger").click()
    assert posted.value.status == 400
    ui.get_by_text("Failed to Trigger Dag").wait_for()
    shots(ui, "trigger-form-refused")
    assert ui_stack.api("GET", f"/api/v2/dags/{REVIEW_DAG_ID}/dagRuns")["total_entries"] == runs_before


def _trigger_review(stack: UiStack) -> str:
    run_id = unique_run_id("ui-review")
    conf = {
        "repo": str(stack.project.path),
        "path": "data/train",
        "rev": "main",
        "baseline_rev": "v1",
        "since_md5": stack.project.md5_of("data/train", "v1"),  # trained on v1: v2 is new at once
        "workdir": str(stack.workdir),
    }
    stack.api(
        "POST",
        f"/api/v2/dags/{REVIEW_DAG_ID}/dagRuns",
        {"dag_run_id": run_id, "logical_date": None, "conf": conf},
    )
    return run_id


def _status(url: str, token: str | None = None) -> int:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_review_and_approve_in_the_browser(ui: Any, ui_stack: UiStack, shots: Any):
    run_id = _trigger_review(ui_stack)
    request = ui_stack.wait_for_hitl_request(REVIEW_DAG_ID, run_id, HITL_TASK)
    assert "Flagged shifts" in request["body"]

    # The approval, as the approver sees it: key tables and flagged shifts, a link to the review.
    task_page = f"{ui_stack.url}/dags/{REVIEW_DAG_ID}/runs/{run_id}/tasks/{HITL_TASK}"
    ui.goto(f"{ui_stack.url}/required_actions")
    ui.get_by_text("Train on data/train").first.click()
    ui.wait_for_url(f"**/runs/{run_id}/tasks/{HITL_TASK}/required_actions")
    ui.get_by_text("Flagged shifts").wait_for()
    assert ui.get_by_text("records 20 -> 25 (+25%)").first.is_visible()
    assert ui.locator("table").count() >= 2  # records/schema, and the label shares
    assert ui.get_by_role("cell", name="7 (35.0%)").first.is_visible()
    shots(ui, "required-action")

    # The full review, opened from the approval's link: rendered Markdown, and charts that load.
    link = ui.get_by_role("link", name="full review")
    review_url = link.get_attribute("href")
    assert review_url and "/llmops/reviews/" in review_url
    with ui.context.expect_page() as opened:
        link.click()
    review = opened.value
    review.wait_for_load_state("load")
    review.get_by_role("heading", name="Flagged shifts").wait_for()
    images = review.locator("img")
    assert images.count() >= 2
    widths = images.evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
    assert all(w > 0 for w in widths), widths
    shots(review, "full-review")
    review.close()

    # The review's files are served only to a logged-in user, and only its own files.
    token = ui_stack.token
    assert _status(review_url) == 401
    assert _status(review_url, token) == 200
    assert _status(review_url + "files.png", token) == 200
    for bad in ("..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "review.json", "data"):
        assert _status(review_url + bad, token) == 404, bad

    # The same review from the review task's Details (its "Dataset review" extra link).
    ui.goto(f"{ui_stack.url}/dags/{REVIEW_DAG_ID}/runs/{run_id}/tasks/review_dataset/details")
    assert ui.get_by_role("link", name="Dataset review").get_attribute("href") == review_url

    # Approve with the button, once the request has settled (see UiStack.wait_until_settled).
    print(ui_stack.wait_until_settled(REVIEW_DAG_ID, run_id, HITL_TASK))
    ui.goto(task_page + "/required_actions")
    ui.get_by_role("button", name="Approve").click()
    ui.get_by_text("from admin").first.wait_for(timeout=60_000)
    assert ui_stack.wait_for_run(REVIEW_DAG_ID, run_id) == "success", ui_stack.diagnose(REVIEW_DAG_ID, run_id)
    assert ui_stack.task_states(REVIEW_DAG_ID, run_id)["train"] == "success"

    # After the decision the task page says, in words, who approved and when.
    decision = ui_stack.xcom(REVIEW_DAG_ID, run_id, HITL_TASK)
    assert decision["decision"].startswith("Approved by admin at "), decision
    ui.goto(task_page)
    ui.get_by_text(decision["decision"]).first.wait_for(timeout=60_000)
    shots(ui, "approved-task-log")
