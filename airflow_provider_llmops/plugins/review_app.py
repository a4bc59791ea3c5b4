"""The FastAPI app behind the dataset-review pages (imported by the API server only).

``GET /reviews/<dag_id>/<run_id>/<task_id>/<map_index>/`` renders the ``review.md`` that
`DvcDatasetReviewOperator` wrote, and ``.../<file>`` serves its charts (and ``review.md`` itself).
Which files exist is read from the task instance's return value (its ``markdown`` and ``charts``),
never from the request: a name that is not one of them is refused, and so is a listed file that
is not a regular ``.md``/``.png`` file inside the review's folder (a symlink out of it included).
Access is Airflow's: the caller must be logged in (the UI's session cookie or a Bearer token) and
may read the DAG's XComs. The files must be readable where the API server runs (a volume shared
with the workers, as the review operator's ``output_dir``).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import DagAccessEntity, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from airflow_provider_llmops.plugins.links import REVIEW_URL_PREFIX

__all__ = ["create_app", "render_review_html"]

SERVED_SUFFIXES = {".png": "image/png", ".md": "text/markdown; charset=utf-8"}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 72rem; padding: 0 1rem;
       color: #1a202c; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.75rem 0; }
th, td { border: 1px solid #cbd5e0; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #edf2f7; }
img { max-width: 100%; border: 1px solid #e2e8f0; margin: 0.5rem 0; }
code { background: #f7fafc; padding: 0 0.2rem; }
pre { background: #f7fafc; padding: 0.5rem; overflow-x: auto; }
nav { font-size: 0.9rem; margin-bottom: 1rem; color: #4a5568; }
"""


def _markdown() -> Any:
    from markdown_it import MarkdownIt

    # No raw HTML: the review quotes sample records, which are the dataset's (untrusted) text.
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def render_review_html(markdown: str, *, title: str, task_url: str, raw_name: str) -> str:
    """A standalone HTML page for a review's Markdown (relative image links resolve beside it)."""
    body = _markdown().render(markdown)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<nav><a href='{html.escape(task_url)}'>Back to the task in Airflow</a> · "
        f"<a href='{html.escape(raw_name)}'>review.md</a></nav>"
        f"<main>{body}</main></body></html>"
    )


def _review_record(session: Any, dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any]:
    """The review task's return value ({markdown, charts, ...}), or 404 saying why there is none."""
    from airflow.models.xcom import XComModel

    query = XComModel.get_many(
        run_id=run_id,
        key="return_value",
        task_ids=task_id,
        dag_ids=dag_id,
        map_indexes=map_index,
        limit=1,
    )
    row = session.scalars(query).first()
    if row is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"No review yet for task {task_id!r} of run {run_id!r} (DAG {dag_id!r}): the review task "
            "has not finished successfully.",
        )
    value = row.value
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            value = XComModel.deserialize_value(row)
    if not isinstance(value, dict) or not value.get("markdown"):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"Task {task_id!r} of run {run_id!r} returned no dataset review (no 'markdown' in its return "
            "value): is it a DvcDatasetReviewOperator?",
        )
    return value


def _served_files(review: dict[str, Any]) -> dict[str, Path]:
    """File name -> path for what a review may serve: its review.md and its listed charts."""
    markdown = Path(str(review["markdown"]))
    files = {markdown.name: markdown}
    for chart in review.get("charts") or []:
        path = Path(str(chart))
        files.setdefault(path.name, path)
    return files


def _checked(path: Path, folder: Path) -> Path:
    """`path` resolved, when it is a regular file of a served type inside `folder` (else 404)."""
    try:
        resolved = path.resolve(strict=True)
        root = folder.resolve(strict=True)
    except OSError:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"{path.name} is not readable on the API server (is the review's output_dir a volume the "
            "API server shares with the workers?)",
        ) from None
    if (
        resolved.suffix.lower() not in SERVED_SUFFIXES
        or not resolved.is_file()
        or root not in resolved.parents
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{path.name} is not a file of this review")
    return resolved


def create_app() -> FastAPI:
    """The app the plugin mounts at `REVIEW_URL_PREFIX`."""
    app = FastAPI(
        title="LLMOps dataset reviews",
        description="Dataset reviews written by DvcDatasetReviewOperator, rendered with their charts.",
    )
    can_read = [Depends(requires_access_dag("GET", DagAccessEntity.XCOM))]
    prefix = "/reviews/{dag_id}/{run_id}/{task_id}/{map_index}"

    @app.get(prefix, dependencies=can_read, include_in_schema=False)
    def review_no_slash(dag_id: str, run_id: str, task_id: str, map_index: int) -> RedirectResponse:
        # Relative chart links resolve beside the page only with the trailing slash.
        return RedirectResponse(f"{map_index}/")

    @app.get(prefix + "/", dependencies=can_read, response_class=HTMLResponse)
    def review_page(
        dag_id: str, run_id: str, task_id: str, map_index: int, session: SessionDep
    ) -> HTMLResponse:
        """The review rendered as HTML; its images load from the routes below."""
        review = _review_record(session, dag_id, run_id, task_id, map_index)
        markdown = Path(str(review["markdown"]))
        text = _checked(markdown, markdown.parent).read_text(encoding="utf-8", errors="replace")
        # Up from .../reviews/<dag>/<run>/<task>/<map_index>/ to the UI's task instance page.
        ups = "../" * (5 + REVIEW_URL_PREFIX.count("/"))
        task_url = ups + "/".join(("dags", quote(dag_id, safe=""), "runs", quote(run_id, safe="")))
        task_url += f"/tasks/{quote(task_id, safe='')}"
        if map_index >= 0:
            task_url += f"/mapped/{map_index}"
        title = f"Dataset review: {dag_id} / {run_id} / {task_id}"
        return HTMLResponse(render_review_html(text, title=title, task_url=task_url, raw_name=markdown.name))

    @app.get(prefix + "/{name}", dependencies=can_read)
    def review_file(
        dag_id: str, run_id: str, task_id: str, map_index: int, name: str, session: SessionDep
    ) -> FileResponse:
        """One chart (PNG) or the review's Markdown, only when the review lists it."""
        review = _review_record(session, dag_id, run_id, task_id, map_index)
        files = _served_files(review)
        if name not in files:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{name!r} is not a file of this review")
        path = _checked(files[name], Path(str(review["markdown"])).parent)
        return FileResponse(path, media_type=SERVED_SUFFIXES[path.suffix.lower()])

    return app
