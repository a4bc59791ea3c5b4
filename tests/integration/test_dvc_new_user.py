"""What a new user ran into with DVC (issue 7): exact dirty-tree names, non-ASCII paths, monorepos,
errors naming the rev as written, paths inside tracked folders, no connection needed with repo=."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from airflow_provider_llmops.exceptions import DvcDirtyWorkspaceError, DvcPathNotTrackedError
from airflow_provider_llmops.hooks.dvc import DvcHook
from airflow_provider_llmops.utils.dvc_publish import DvcPublisher
from airflow_provider_llmops.utils.dvc_pull import DvcPuller
from dev.harness.dvc import make_dvc_project
from tests.fixtures.dvc import V1_FILES

pytestmark = pytest.mark.integration


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_dirty_tree_error_names_the_file_exactly(dvc_dataset, dvc_conn):
    project = dvc_dataset["project"]
    (project.path / "README.md").write_text("readme\n")
    project.commit("readme", ["README.md"])
    (project.path / "README.md").write_text("changed\n")  # ` M README.md`: a leading space
    project.write_files("data/train", {"train.jsonl": '{"id": 7}\n'})
    before = project.snapshot()
    with pytest.raises(DvcDirtyWorkspaceError, match=r"\(README\.md\)"):
        DvcPublisher(DvcHook(dvc_conn)).publish("data/train", "v3")
    assert project.snapshot() == before


def test_publishing_after_a_manual_dvc_add_is_allowed(dvc_dataset, dvc_conn):
    """Only the dataset's own .dvc file (and .gitignore) changed: that is what publishing commits."""
    project = dvc_dataset["project"]
    project.write_files("data/train", {"train.jsonl": '{"id": 8, "text": "by hand"}\n'})
    project.dvc("add", "data/train")
    published = DvcPublisher(DvcHook(dvc_conn)).publish("data/train", "v3", "after dvc add")
    assert published.created and project.tags()["v3"] == project.head()
    assert project.git("status", "--porcelain") == ""


def test_non_ascii_names_with_spaces_and_quotes_publish_and_pull(dvc_project, dvc_conn, tmp_path):
    files = {"a b.txt": "espace\n", 'q"uote.txt': "quote\n", "über/été.jsonl": '{"id": 1}\n'}
    dvc_project.write_files("data/données", files)
    published = DvcPublisher(DvcHook(dvc_conn)).publish("data/données", "v1", "first")
    assert published.created and published.nfiles == 3
    assert dvc_project.git("status", "--porcelain") == ""
    pulled = DvcPuller(DvcHook(dvc_conn)).pull("data/données", "v1", tmp_path / "données")
    assert _files(Path(pulled.local_path)) == files


@pytest.fixture
def monorepo(tmp_path, dvc_env):
    """A company repository with its DVC project in ml/ (`dvc init --subdir`), data/train in v1."""
    project = make_dvc_project(tmp_path / "mono", subdir="ml")
    (project.path / "service").mkdir()
    (project.path / "service" / "app.py").write_text("print('not data')\n")
    project.commit("service code", ["service/app.py"])
    project.publish("data/train", V1_FILES, tag="v1")
    return project


@pytest.mark.parametrize("how", ["git-root-and-subdir", "subfolder-as-repo", "git-url-and-subdir"])
def test_monorepo_pull_and_review(monorepo, dvc_conn_factory, tmp_path, how):
    from airflow_provider_llmops.operators.dvc import DvcDatasetReviewOperator

    repo, extra = {
        "git-root-and-subdir": (monorepo.path, {"subdir": "ml"}),
        "subfolder-as-repo": (monorepo.path / "ml", {}),
        "git-url-and-subdir": (f"file://{monorepo.origin}", {"subdir": "ml"}),
    }[how]
    conn = dvc_conn_factory("dvc_mono", repo, **extra)
    pulled = DvcPuller(DvcHook(conn)).pull("data/train", "v1", tmp_path / "train")
    assert _files(tmp_path / "train") == V1_FILES and pulled.md5 == monorepo.md5_of("data/train", "v1")
    monorepo.publish("data/train", {**V1_FILES, "more.jsonl": '{"id": 3}\n'}, tag="v2")
    review = DvcDatasetReviewOperator(
        task_id="review",
        path="data/train",
        new_rev="v2",
        old_rev="v1",
        dvc_conn_id=conn,
        output_dir=str(tmp_path / "review"),
        data_dir=str(tmp_path / "review-data"),
    ).execute({})
    assert "Added: 1" in Path(review["markdown"]).read_text()


def test_monorepo_publish_and_sensor(monorepo, dvc_conn_factory):
    from airflow_provider_llmops.triggers.dvc import check_for_update

    conn = dvc_conn_factory("dvc_mono", monorepo.path, subdir="ml")
    monorepo.write_files("data/train", {"train.jsonl": '{"id": 5}\n'})
    published = DvcPublisher(DvcHook(conn)).publish("data/train", "v2", "mono v2")
    assert published.created and monorepo.tags()["v2"] == monorepo.head()
    assert monorepo.git("show", "--name-only", "--format=", "HEAD").splitlines() == ["ml/data/train.dvc"]
    found = check_for_update(conn, None, "data/train", "main", None, monorepo.md5_of("data/train", "v1"))
    assert found is not None and found["md5"] == published.md5


def test_monorepo_without_subdir_says_how_to_point_at_it(monorepo, dvc_conn_factory, tmp_path):
    conn = dvc_conn_factory("dvc_mono", f"file://{monorepo.origin}")
    with pytest.raises(DvcPathNotTrackedError, match=r"no DVC project at its root.*set `subdir`"):
        DvcPuller(DvcHook(conn)).pull("data/train", "v1", tmp_path / "train")


def test_errors_and_logs_name_the_rev_as_written_and_its_sha(dvc_dataset, dvc_conn, tmp_path, capfd, caplog):
    from airflow_provider_llmops.operators.dvc import DvcPullOperator

    short = dvc_dataset["v1"][:12]
    with pytest.raises(DvcPathNotTrackedError, match=rf"rev 'v1' \({short}\)"):
        DvcPuller(DvcHook(dvc_conn)).pull("data/absent", "v1", tmp_path / "x")
    with caplog.at_level(logging.INFO):
        DvcPullOperator(
            task_id="p", path="data/train", rev="v1", local_path=str(tmp_path / "t"), dvc_conn_id=dvc_conn
        ).execute({})
    captured = capfd.readouterr()
    assert f"Pulled data/train@v1 ({short}" in captured.out + captured.err + caplog.text


def test_pull_a_folder_or_file_inside_a_tracked_folder(dvc_dataset, dvc_conn, tmp_path):
    puller = DvcPuller(DvcHook(dvc_conn))
    sub = puller.pull("data/train/meta", "v1", tmp_path / "meta")
    assert _files(tmp_path / "meta") == {"info.json": V1_FILES["meta/info.json"]}
    assert sub.tracked == "data/train" and sub.path == "data/train/meta"
    one = puller.pull("data/train/train.jsonl", "v1", tmp_path / "train.jsonl")
    assert Path(one.local_path).read_text() == V1_FILES["train.jsonl"]
    assert puller.pull("data/train/meta", "v1", tmp_path / "meta").transferred is False
    with pytest.raises(DvcPathNotTrackedError, match="'data/train' is tracked by DVC but holds no 'nope'"):
        puller.pull("data/train/nope", "v1", tmp_path / "nope")


def test_no_connection_needed_when_repo_is_given(dvc_dataset, tmp_path, monkeypatch):
    from airflow_provider_llmops.operators.dvc import DvcPullOperator

    monkeypatch.delenv("AIRFLOW_CONN_LLMOPS_DVC_DEFAULT", raising=False)
    result = DvcPullOperator(
        task_id="p",
        path="data/train",
        rev="v1",
        local_path=str(tmp_path / "t"),
        repo=str(dvc_dataset["project"].path),
    ).execute({})
    assert result["sha"] == dvc_dataset["v1"] and _files(tmp_path / "t") == V1_FILES


@pytest.mark.parametrize("keep_data", [False, True])
def test_review_writes_only_under_its_folders_and_cleans_up(dvc_dataset, dvc_conn, tmp_path, keep_data):
    import os

    from airflow_provider_llmops.operators.dvc import DvcDatasetReviewOperator

    out = tmp_path / "review"
    result = DvcDatasetReviewOperator(
        task_id="review",
        path="data/train",
        new_rev="v2",
        old_rev="v1",
        output_dir=str(out),
        dvc_conn_id=dvc_conn,
        keep_data=keep_data,
    ).execute({})
    assert Path(result["markdown"]).parent == out
    assert not Path(os.environ["LLMOPS_DVC_WORK_DIR"]).exists()  # nothing in the default work root
    pulled = out / "data"
    if keep_data:
        assert _files(pulled / dvc_dataset["v2"][:12] / "train")  # both versions kept
        assert (pulled / dvc_dataset["v1"][:12] / "train").is_dir()
    else:
        assert not pulled.exists()
    assert "| added |" in result["approval_markdown"] or "Files" in result["approval_markdown"]
