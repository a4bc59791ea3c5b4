"""Fixtures of the browser tests: Debian's chromium under pytest-playwright, one shared Airflow.

pytest-playwright's `page` fixture launches the browser with `browser_type_launch_args`, here
Debian's chromium by its executable path (installed by dev/ensure_chromium.sh when missing).
Screenshots of every test go to .llmops/test-artifacts/browser/ (printed at the end of the test).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dev.harness.common import REPO_ROOT
from tests.system.ui import CHROMIUM_ARGS, UiStack, chromium_executable, start_ui_stack

REVIEW_DAG = REPO_ROOT / "dags" / "dvc_dataset_review.py"
REVIEW_DAG_ID = "llmops_dvc_dataset_review"
FINETUNE_DAG = REPO_ROOT / "dags" / "llmops_finetune_and_deploy.py"
FINETUNE_DAG_ID = "llmops_finetune_and_deploy"
# Tests of this module need the whole pipeline (Elasticsearch, Triton, the pipeline's DVC project):
# the shared standalone gets them only when such a test was collected.
PIPELINE_MODULE = "test_ui_finetune_and_deploy"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    executable = chromium_executable()
    print(f"chromium: {executable} (ready after {time.monotonic() - started:.1f}s)")
    return {**browser_type_launch_args, "executable_path": executable, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1440, "height": 1000}}


@pytest.fixture(scope="session")
def ui_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiStack]:
    """One `airflow standalone` for the whole session, with the example DAGs the tests drive."""
    base = tmp_path_factory.mktemp("ui")
    dag_files, dag_ids = [REVIEW_DAG], [REVIEW_DAG_ID]
    extra_env: dict[str, str] = {}
    pipeline_project = None
    if any(item.module.__name__.endswith(PIPELINE_MODULE) for item in request.session.items):
        from dev.pipeline_stack import TINY_PARAMS, make_pipeline_project, pipeline_env, prepare_model_env

        es = request.getfixturevalue("elasticsearch_server")
        triton = request.getfixturevalue("triton_server")
        pipeline_project = make_pipeline_project(base / "pipeline-dvc", TINY_PARAMS)
        prepare_model_env()
        extra_env = pipeline_env(
            pipeline_project,
            es_port=int(es.url.rsplit(":", 1)[1]),
            triton_http_port=int(triton.http_port or 0),
            model_repository=triton.model_repository,
            data_dir=base / "work",
        )
        dag_files.append(FINETUNE_DAG)
        dag_ids.append(FINETUNE_DAG_ID)
    stack = start_ui_stack(base, dag_files, dag_ids, extra_env)
    stack.pipeline_project = pipeline_project
    try:
        yield stack
    finally:
        stack.af.stop()


class Shots:
    """Numbered full-page screenshots of one test, kept as test artifacts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    def __call__(self, page: Any, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shots(ui_stack: UiStack, request: pytest.FixtureRequest) -> Iterator[Shots]:
    folder = ui_stack.artifacts / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    shooter = Shots(folder)
    yield shooter
    print(f"screenshots: {folder} ({shooter.count})")


@pytest.fixture
def ui(page: Any, ui_stack: UiStack) -> Any:
    """A page logged in to the stack's Airflow UI as the admin user."""
    page.set_default_timeout(30_000)
    page.goto(ui_stack.url + "/")
    page.get_by_label("Username").fill(ui_stack.user)
    page.get_by_label("Password").fill(ui_stack.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url and "/auth" not in url)
    return page
