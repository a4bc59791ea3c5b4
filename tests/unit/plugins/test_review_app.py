"""The review pages' building blocks: URLs, Markdown rendering, and which files may be served."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi import HTTPException

from airflow_provider_llmops.plugins.links import DatasetReviewLink, review_url
from airflow_provider_llmops.plugins.review_app import _checked, _served_files, render_review_html


def _review(tmp_path: Path) -> dict:
    out = tmp_path / "reviews" / "abc"
    out.mkdir(parents=True)
    (out / "review.md").write_text("# Review\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![Files](files.png)\n")
    (out / "files.png").write_bytes(b"\x89PNG\r\n\x1a\nxx")
    (out / "secret.txt").write_text("not served")
    return {"markdown": str(out / "review.md"), "charts": [str(out / "files.png")]}


def test_review_url_quotes_run_ids_and_keeps_the_trailing_slash():
    url = review_url("dag", "manual__2024-01-01T00:00:00+00:00", "review", -1, base_url="http://af:8080/")
    assert url == "http://af:8080/llmops/reviews/dag/manual__2024-01-01T00%3A00%3A00%2B00%3A00/review/-1/"
    assert review_url("d", "r", "t", 3, base_url="").startswith("/llmops/reviews/d/r/t/3/")


def test_extra_link_points_at_the_task_instance_review(monkeypatch):
    from airflow.models.taskinstancekey import TaskInstanceKey

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.test")
    key = TaskInstanceKey(dag_id="d", task_id="review_dataset", run_id="r1", try_number=1, map_index=-1)
    assert (
        DatasetReviewLink().get_link(None, ti_key=key)
        == "http://airflow.test/llmops/reviews/d/r1/review_dataset/-1/"
    )  # type: ignore[arg-type]


def test_markdown_renders_tables_and_relative_images_but_no_raw_html():
    page = render_review_html(
        "| a |\n|---|\n| <script>alert(1)</script> |\n\n![c](dist-t.png)\n\n[x](javascript:alert(1))",
        title="t",
        task_url="../dags/d",
        raw_name="review.md",
    )
    assert "<table>" in page and '<img src="dist-t.png"' in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'href="javascript:' not in page  # markdown-it refuses the link: shown as text


def test_only_the_reviews_own_files_are_served(tmp_path: Path):
    review = _review(tmp_path)
    files = _served_files(review)
    assert sorted(files) == ["files.png", "review.md"]
    folder = Path(review["markdown"]).parent
    assert _checked(files["files.png"], folder).name == "files.png"
    with pytest.raises(HTTPException) as err:
        _checked(folder / "secret.txt", folder)  # not .png/.md
    assert err.value.status_code == 404


def test_a_listed_chart_outside_the_review_folder_or_a_symlink_out_is_refused(tmp_path: Path):
    review = _review(tmp_path)
    folder = Path(review["markdown"]).parent
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(b"\x89PNG")
    link = folder / "link.png"
    os.symlink(outside, link)
    for path in (outside, link, folder / ".." / "abc" / ".." / ".." / "elsewhere.png"):
        with pytest.raises(HTTPException):
            _checked(path, folder)
    with pytest.raises(HTTPException, match="not readable"):
        _checked(folder / "gone.png", folder)
