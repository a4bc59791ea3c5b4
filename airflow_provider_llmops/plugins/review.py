"""The ``llmops`` Airflow plugin: the dataset-review pages on the API server.

Registered through the ``airflow.plugins`` entry point (pyproject.toml), which Airflow loads in
every component; the FastAPI app (`review_app`) is only built when the API server asks for it,
so the scheduler, DAG processor and workers never import FastAPI or Markdown code for it.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_llmops.plugins.links import REVIEW_URL_PREFIX

__all__ = ["LlmopsPlugin"]


class LlmopsPlugin(AirflowPlugin):
    """Serves `DvcDatasetReviewOperator`'s review (Markdown rendered, PNG charts) under /llmops."""

    name = "llmops"
    _apps: list[dict[str, Any]] | None = None

    # Built on first use: only the API server asks for it.
    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        if self._apps is None:
            from airflow_provider_llmops.plugins.review_app import create_app

            self._apps = [
                {"app": create_app(), "url_prefix": REVIEW_URL_PREFIX, "name": "LLMOps dataset reviews"}
            ]
        return self._apps
