"""URLs of the dataset-review pages and the review operator's extra link (light: no FastAPI here).

The pages are served by the ``llmops`` Airflow plugin (`airflow_provider_llmops.plugins.review`)
under ``/llmops/reviews/<dag_id>/<run_id>/<task_id>/<map_index>/`` on the API server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

__all__ = ["REVIEW_URL_PREFIX", "DatasetReviewLink", "review_url"]

# Where the plugin's FastAPI app is mounted on the API server.
REVIEW_URL_PREFIX = "/llmops"


def _base_url() -> str:
    """``[api] base_url`` without its trailing slash, or "" (links are then relative to the host)."""
    from airflow.sdk.configuration import conf

    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")


def review_url(
    dag_id: str, run_id: str, task_id: str, map_index: int = -1, base_url: str | None = None
) -> str:
    """The page that shows the review written by one task instance (Markdown rendered, with charts)."""
    base = _base_url() if base_url is None else base_url.rstrip("/")
    parts = "/".join(quote(str(part), safe="") for part in (dag_id, run_id, task_id, map_index))
    return f"{base}{REVIEW_URL_PREFIX}/reviews/{parts}/"


class DatasetReviewLink(BaseOperatorLink):
    """ "Dataset review" button on the review task's page: the full review with its charts."""

    name = "Dataset review"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return review_url(ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index)
