"""The ``llmops`` Airflow plugin: the dataset-review pages on the API server, cheaper DAG parses.

Registered through the ``airflow.plugins`` entry point (pyproject.toml), which Airflow loads in
every component; the FastAPI app (`review_app`) is only built when the API server asks for it,
so the scheduler, DAG processor and workers never import FastAPI or Markdown code for it. Loaded
by the DAG processor, it imports the modules DAG files use from the provider (`preimport`), so
that the parses, forked from that process, find them imported.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_llmops.plugins.links import REVIEW_URL_PREFIX

__all__ = ["LlmopsPlugin"]


class LlmopsPlugin(AirflowPlugin):
    """Serves `DvcDatasetReviewOperator`'s review (Markdown rendered, PNG charts) under /llmops.

    Its ``on_load`` pre-imports the provider's parse-time modules in the DAG processor.
    """

    name = "llmops"
    _apps: list[dict[str, Any]] | None = None

    @classmethod
    def on_load(cls, *args: Any, **kwargs: Any) -> None:
        from airflow_provider_llmops.plugins.preimport import preimport_for_dag_processor

        preimport_for_dag_processor()

    # Built on first use: only the API server asks for it.
    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        if self._apps is None:
            from airflow_provider_llmops.plugins.review_app import create_app

            self._apps = [
                {"app": create_app(), "url_prefix": REVIEW_URL_PREFIX, "name": "LLMOps dataset reviews"}
            ]
        return self._apps
