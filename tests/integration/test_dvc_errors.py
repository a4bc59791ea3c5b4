"""Each bad input fails before anything changes, with a message naming repo, rev and path."""

from __future__ import annotations

import os
import shutil

import pytest

from airflow_provider_llmops.exceptions import (
    DvcChecksumError,
    DvcDirtyWorkspaceError,
    DvcPathNotTrackedError,
    DvcRemoteError,
    DvcRevisionNotFoundError,
    DvcTagExistsError,
)
from airflow_provider_llmops.hooks.dvc import DvcHook
from airflow_provider_llmops.utils.dvc_publish import DvcPublisher
from airflow_provider_llmops.utils.dvc_pull import DvcPuller

pytestmark = pytest.mark.integration


def _names_repo_rev_path(err: Exception, repo: str, rev: str, path: str) -> None:
    text = str(err)
    assert repo in text, text
    assert rev in text, text
    assert path in text, text


def _clear_cache(project) -> None:
    cache = project.cache_dir()
    if cache.exists():
        shutil.rmtree(cache)


def test_unknown_rev(dvc_dataset, dvc_conn, tmp_path):
    project = dvc_dataset["project"]
    before = project.snapshot()
    with pytest.raises(DvcRevisionNotFoundError) as err:
        DvcPuller(DvcHook(dvc_conn)).pull("data/train", "no-such-branch", tmp_path / "out")
    _names_repo_rev_path(err.value, str(project.path), "no-such-branch", "data/train")
    assert not (tmp_path / "out").exists()
    assert project.snapshot() == before


def test_unknown_tag(dvc_dataset, dvc_conn, tmp_path):
    with pytest.raises(DvcRevisionNotFoundError) as err:
        DvcHook(dvc_conn).version("data/train", "v99")
    _names_repo_rev_path(err.value, str(dvc_dataset["project"].path), "v99", "data/train")


def test_path_not_tracked(dvc_dataset, dvc_conn, tmp_path):
    project = dvc_dataset["project"]
    before = project.snapshot()
    with pytest.raises(DvcPathNotTrackedError) as err:
        DvcPuller(DvcHook(dvc_conn)).pull("data/missing", "v1", tmp_path / "out")
    _names_repo_rev_path(err.value, str(project.path), "v1", "data/missing")
    assert "dvc add data/missing" in str(err.value)
    assert project.snapshot() == before


def test_path_not_tracked_yet_at_old_rev(dvc_dataset, dvc_conn, tmp_path):
    init = dvc_dataset["project"].git("rev-list", "--max-parents=0", "HEAD")
    with pytest.raises(DvcPathNotTrackedError) as err:
        DvcPuller(DvcHook(dvc_conn)).pull("data/train", init, tmp_path / "out")
    _names_repo_rev_path(err.value, str(dvc_dataset["project"].path), init, "data/train")


def test_pull_remote_folder_missing(dvc_dataset, dvc_conn_factory, tmp_path):
    project = dvc_dataset["project"]
    _clear_cache(project)
    conn = dvc_conn_factory("dvc_gone", project.path, remote_url=tmp_path / "no-such-remote")
    with pytest.raises(DvcRemoteError) as err:
        DvcPuller(DvcHook(conn)).pull("data/train", "v1", tmp_path / "out")
    _names_repo_rev_path(err.value, str(project.path), "v1", "data/train")
    assert not (tmp_path / "no-such-remote").exists()
    assert not (tmp_path / "out").exists()


def test_pull_remote_not_configured(dvc_dataset, dvc_conn_factory, tmp_path):
    project = dvc_dataset["project"]
    _clear_cache(project)
    conn = dvc_conn_factory("dvc_noremote", project.path, remote="nonexistent")
    with pytest.raises(DvcRemoteError, match="'nonexistent' is not configured") as err:
        DvcPuller(DvcHook(conn)).pull("data/train", "v1", tmp_path / "out")
    assert str(project.path) in str(err.value)


def test_pull_remote_lacks_objects(dvc_dataset, dvc_conn, tmp_path):
    project = dvc_dataset["project"]
    _clear_cache(project)
    shutil.rmtree(project.remote)
    project.remote.mkdir()
    with pytest.raises(DvcRemoteError, match="lacks") as err:
        DvcPuller(DvcHook(dvc_conn)).pull("data/train", "v2", tmp_path / "out")
    _names_repo_rev_path(err.value, str(project.path), "v2", "data/train")


def _corrupt(path) -> None:
    path.chmod(0o644)
    path.write_text("corrupted bytes\n")


def test_corrupted_remote_object_fails_checksum(dvc_dataset, dvc_conn, tmp_path):
    project = dvc_dataset["project"]
    _clear_cache(project)
    data = [p for p in project.remote.rglob("*") if p.is_file() and not p.name.endswith(".dir")]
    for p in data:
        _corrupt(p)
    with pytest.raises(DvcChecksumError) as err:
        DvcPuller(DvcHook(dvc_conn)).pull("data/train", "v1", tmp_path / "out")
    _names_repo_rev_path(err.value, str(project.path), "v1", "data/train")
    assert "re-push" in str(err.value)
    assert not (tmp_path / "out").exists()
    # The bad object did not stay in the cache.
    bad = [
        p for p in project.cache_dir().rglob("*") if p.is_file() and p.read_bytes() == b"corrupted bytes\n"
    ]
    assert bad == []


def test_corrupted_cache_object_is_fetched_again(dvc_dataset, dvc_conn, tmp_path):
    project = dvc_dataset["project"]
    for p in project.cache_dir().rglob("*"):
        if p.is_file() and not p.name.endswith(".dir") and "files" in p.parts:
            _corrupt(p)
    result = DvcPuller(DvcHook(dvc_conn)).pull("data/train", "v2", tmp_path / "out")
    assert result.transferred is True
    assert (tmp_path / "out" / "extra.jsonl").read_text().startswith('{"id": 9')


def test_publish_dirty_working_tree(dvc_dataset, dvc_conn):
    project = dvc_dataset["project"]
    project.write_files("data/train", {"new.jsonl": "{}\n"}, clear=False)
    (project.path / "README.md").write_text("uncommitted\n")
    before = project.snapshot()
    with pytest.raises(DvcDirtyWorkspaceError) as err:
        DvcPublisher(DvcHook(dvc_conn)).publish("data/train", "v3", "x")
    _names_repo_rev_path(err.value, str(project.path), "v3", "data/train")
    assert "README.md" in str(err.value)
    assert project.snapshot() == before


def test_publish_existing_tag_with_other_data(dvc_dataset, dvc_conn):
    project = dvc_dataset["project"]
    project.write_files("data/train", {"new.jsonl": "{}\n"}, clear=False)
    before = project.snapshot()
    with pytest.raises(DvcTagExistsError) as err:
        DvcPublisher(DvcHook(dvc_conn)).publish("data/train", "v1", "x")
    _names_repo_rev_path(err.value, str(project.path), "v1", "data/train")
    assert project.snapshot() == before


def test_publish_remote_unreachable(dvc_dataset, dvc_conn_factory, tmp_path):
    project = dvc_dataset["project"]
    project.write_files("data/train", {"new.jsonl": "{}\n"}, clear=False)
    conn = dvc_conn_factory("dvc_badremote", project.path, remote_url=tmp_path / "missing-remote")
    before = project.snapshot()
    dvc_file = (project.path / "data/train.dvc").read_bytes()
    with pytest.raises(DvcRemoteError) as err:
        DvcPublisher(DvcHook(conn)).publish("data/train", "v3", "x")
    _names_repo_rev_path(err.value, str(project.path), "v3", "data/train")
    assert project.snapshot() == before
    assert (project.path / "data/train.dvc").read_bytes() == dvc_file
    assert not (tmp_path / "missing-remote").exists()


def test_publish_git_origin_unreachable(dvc_dataset, dvc_conn):
    project = dvc_dataset["project"]
    project.write_files("data/train", {"new.jsonl": "{}\n"}, clear=False)
    project.git("remote", "set-url", "origin", str(project.root / "gone.git"))
    before = project.snapshot()
    with pytest.raises(DvcRemoteError, match="git remote 'origin'") as err:
        DvcPublisher(DvcHook(dvc_conn)).publish("data/train", "v3", "x")
    _names_repo_rev_path(err.value, str(project.path), "v3", "data/train")
    assert project.snapshot() == before


def test_publish_push_failure_part_way_restores_repo(dvc_dataset, dvc_conn):
    """The git push is refused after dvc push: HEAD, tag and .dvc file are restored."""
    project = dvc_dataset["project"]
    project.write_files("data/train", {"new.jsonl": "{}\n"}, clear=False)
    hook_path = project.origin / "hooks" / "pre-receive"
    hook_path.write_text("#!/bin/sh\necho refusing >&2\nexit 1\n")
    hook_path.chmod(0o755)
    head, tags = project.head(), project.tags()
    origin = project.origin_refs()
    dvc_file = (project.path / "data/train.dvc").read_bytes()
    with pytest.raises(Exception, match="refusing"):
        DvcPublisher(DvcHook(dvc_conn)).publish("data/train", "v3", "x")
    assert project.head() == head
    assert project.tags() == tags
    assert project.origin_refs() == origin
    assert (project.path / "data/train.dvc").read_bytes() == dvc_file
    assert project.git("status", "--porcelain", "--untracked-files=no") == ""


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_pull_refuses_foreign_destination(dvc_dataset, dvc_conn, tmp_path, kind):
    from airflow_provider_llmops.exceptions import DvcDestinationError

    dest = tmp_path / "mine"
    if kind == "folder":
        (dest / "sub").mkdir(parents=True)
        (dest / "keep.txt").write_text("precious\n")
        (dest / "sub" / "also.txt").write_text("also precious\n")
    else:
        dest.write_text("precious\n")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    with pytest.raises(DvcDestinationError) as err:
        DvcPuller(DvcHook(dvc_conn)).pull("data/train", "v1", dest)
    assert str(dest) in str(err.value) and "new or empty folder" in str(err.value)
    _names_repo_rev_path(err.value, str(dvc_dataset["project"].path), "v1", "data/train")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    if kind == "folder":
        assert (dest / "keep.txt").read_text() == "precious\n"
        assert (dest / "sub" / "also.txt").read_text() == "also precious\n"
    else:
        assert dest.read_text() == "precious\n"


def test_pull_into_empty_folder_is_allowed(dvc_dataset, dvc_conn, tmp_path):
    dest = tmp_path / "empty"
    dest.mkdir()
    assert DvcPuller(DvcHook(dvc_conn)).pull("data/train", "v1", dest).transferred is True
    assert (dest / "train.jsonl").is_file()


def test_git_over_ssh_never_prompts(dvc_env, dvc_conn_factory, tmp_path, monkeypatch):
    """git runs ssh in batch mode (no password/host-key prompt), unless the user set their own."""
    from airflow_provider_llmops.exceptions import DvcError

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "ssh-args"
    fake = bin_dir / "ssh"
    fake.write_text(f'#!/bin/sh\necho "$0 $*" >> {seen}\nexit 255\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.delenv("GIT_SSH_COMMAND", raising=False)
    monkeypatch.delenv("GIT_SSH", raising=False)
    conn = dvc_conn_factory("dvc_ssh", "ssh://git@example.invalid/project.git")
    with pytest.raises(DvcError, match="Cannot clone"):
        DvcHook(conn).resolve_rev("main")
    assert "-o BatchMode=yes" in seen.read_text()

    seen.unlink()
    monkeypatch.setenv("GIT_SSH_COMMAND", f"{fake} -o User=mine")
    with pytest.raises(DvcError, match="Cannot clone"):
        DvcHook(conn).resolve_rev("main")
    assert "User=mine" in seen.read_text() and "BatchMode" not in seen.read_text()


def test_retry_refuses_a_non_fast_forward_branch_push(dvc_dataset, dvc_conn):
    project = dvc_dataset["project"]
    v2 = dvc_dataset["v2"]
    project.write_files("data/train", {"train.jsonl": '{"id": 8, "text": "v3", "label": "a"}\n'})
    with project.repo() as repo:
        repo.add(str(project.path / "data" / "train"))
    project.git("add", "data/train.dvc")
    project.git("commit", "--quiet", "-m", "v3")
    project.git("tag", "-a", "v3", "-m", "v3")  # then the worker died before pushing
    # Meanwhile someone else moved origin's main to a commit that is not ours.
    other = project.git("commit-tree", f"{v2}^{{tree}}", "-p", v2, "-m", "someone else's work")
    project.git("push", "-q", "--force", "origin", f"{other}:refs/heads/main")

    with pytest.raises(DvcRemoteError, match="fast-forward") as err:
        DvcPublisher(DvcHook(dvc_conn)).publish("data/train", "v3", "retry")
    assert "'main'" in str(err.value) and "'v3'" in str(err.value)
    origin = project.origin_refs()
    assert origin["refs/heads/main"] == other
    assert "refs/tags/v3" not in origin


def test_publish_without_git_identity_fails_before_any_change(
    dvc_dataset, dvc_conn_factory, tmp_path, monkeypatch
):
    from airflow_provider_llmops.exceptions import DvcError

    project = dvc_dataset["project"]
    project.git("config", "--unset", "user.name")
    project.git("config", "--unset", "user.email")
    home = tmp_path / "empty-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)
    project.write_files("data/train", {"train.jsonl": '{"id": 5, "text": "v3", "label": "a"}\n'})
    before = project.snapshot()
    remote_before = project.remote_objects()
    conn = dvc_conn_factory("dvc_noident", project.path)
    with pytest.raises(DvcError, match="No git identity") as err:
        DvcPublisher(DvcHook(conn)).publish("data/train", "v3")
    assert "git_user_name" in str(err.value)
    _names_repo_rev_path(err.value, str(project.path), "v3", "data/train")
    assert project.snapshot() == before
    assert project.remote_objects() == remote_before

    # The connection extras are enough.
    conn = dvc_conn_factory(
        "dvc_ident", project.path, git_user_name="Airflow Bot", git_user_email="bot@example.invalid"
    )
    result = DvcPublisher(DvcHook(conn)).publish("data/train", "v3")
    assert result.created is True
    assert project.git("log", "-1", "--format=%an <%ae> / %cn <%ce>") == (
        "Airflow Bot <bot@example.invalid> / Airflow Bot <bot@example.invalid>"
    )
