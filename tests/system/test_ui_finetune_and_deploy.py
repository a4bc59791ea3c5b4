"""llmops_finetune_and_deploy driven from the Airflow UI in a real browser (issue 12).

Log in, trigger the DAG from its trigger form with CI-sized params (3 training steps on 2 CPU
processes), approve the dataset review in the Required actions view, wait for the run to
succeed: pull -> review -> approval -> fine-tune -> Triton deploy -> index -> gate -> alias.
Real servers throughout (the harness's Elasticsearch and Triton, a git + DVC project with a local
remote), on the session's shared `airflow standalone`. Screenshots go to the test artifacts.

About three minutes for the run itself on two cores, plus the servers' start-up in the shared
fixture (Elasticsearch, Triton and the standalone: about 75 seconds warm).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.system.conftest import FINETUNE_DAG_ID
from tests.system.ui import UiStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]

HITL_TASK = "approve_dataset"
# The form's params for a CI-sized run (tests/integration/pipeline_support.TINY_CONF); a 3-step run
# need not beat the base model, so the relevance gate only asks it not to lose everything.
FORM_PARAMS = {
    "launcher": "local",
    "max_steps": "3",
    "micro_batch_size": "8",
    "cpu_procs": "2",
    "max_length": "48",
    "warmup_steps": "1",
    "min_improvement": "-1",
}


@pytest.fixture
def clean_indices(ui_stack: UiStack) -> Iterator[None]:
    yield
    from elasticsearch import Elasticsearch

    es_conn = json.loads(ui_stack.af.env["AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"])
    client = Elasticsearch(f"http://{es_conn['host']}:{es_conn['port']}")
    names = list(client.indices.get(index="stdlib-docs*", expand_wildcards="all").body)
    if names:  # the cluster refuses wildcard deletes
        client.indices.delete(index=",".join(names))
    client.close()


def _trigger_from_the_form(ui: Any, stack: UiStack, shots: Any) -> str:
    ui.goto(f"{stack.url}/dags/{FINETUNE_DAG_ID}")
    ui.get_by_role("button", name="Trigger").first.click()
    dialog = ui.get_by_role("dialog")
    dialog.get_by_text("Run Parameters").wait_for()
    for name, value in FORM_PARAMS.items():
        ui.locator(f"input[name=element_{name}]").fill(value)  # number fields' ids are generated
    shots(ui, "trigger-form")
    with ui.expect_response(lambda r: r.url.endswith("/dagRuns") and r.request.method == "POST") as posted:
        dialog.get_by_role("button", name="Trigger").click()
    assert posted.value.status == 200, posted.value.text()
    run_id = str(posted.value.json()["dag_run_id"])
    conf = posted.value.json().get("conf") or {}
    assert conf.get("max_steps") == 3 and conf.get("launcher") == "local", conf
    return run_id


def test_trigger_approve_and_succeed_from_the_ui(ui: Any, ui_stack: UiStack, shots: Any, clean_indices: None):
    assert ui_stack.pipeline_project is not None
    run_id = _trigger_from_the_form(ui, ui_stack, shots)
    request = ui_stack.wait_for_hitl_request(FINETUNE_DAG_ID, run_id, HITL_TASK, timeout=900)

    # The reviewer's view: the request listed in Required actions, opened from there.
    ui.goto(f"{ui_stack.url}/required_actions")
    ui.get_by_text(request["subject"]).first.click()
    ui.wait_for_url(f"**/runs/{run_id}/tasks/{HITL_TASK}/required_actions")
    ui.get_by_role("button", name="Approve").wait_for()
    shots(ui, "required-action")

    print(ui_stack.wait_until_settled(FINETUNE_DAG_ID, run_id, HITL_TASK))
    ui.reload()
    ui.get_by_role("button", name="Approve").click()
    ui.get_by_text("from admin").first.wait_for(timeout=60_000)
    shots(ui, "approved")

    state = ui_stack.wait_for_run(FINETUNE_DAG_ID, run_id, timeout=1800)
    ui.goto(f"{ui_stack.url}/dags/{FINETUNE_DAG_ID}/runs/{run_id}")
    ui.get_by_text(run_id).first.wait_for()
    shots(ui, "run-finished")
    assert state == "success", ui_stack.diagnose(FINETUNE_DAG_ID, run_id)
    states = ui_stack.task_states(FINETUNE_DAG_ID, run_id)
    assert states["train_local"] == "success" and states["train_kubernetes"] == "skipped", states

    # The lineage as a user sees it: the Assets page lists each link of the chain, with its latest event.
    ui.goto(f"{ui_stack.url}/assets")
    ui.wait_for_load_state("networkidle")
    shots(ui, "assets")
    for uri in (
        "dvc-review://datasets/data/llmops",
        "model://stdlib-minilm",
        "triton://llmops_triton_default/stdlib_minilm",
        "elasticsearch://elasticsearch_default/stdlib-docs",
    ):
        ui.get_by_text(uri).first.wait_for(timeout=30_000)
