"""DvcHook against a real git + DVC project with a local-folder remote (no mocks)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_provider_llmops.hooks.dvc import DvcHook
from airflow_provider_llmops.utils.dvc_publish import DvcPublisher
from airflow_provider_llmops.utils.dvc_pull import DvcPuller
from tests.fixtures.dvc import V1_FILES, V2_FILES

pytestmark = pytest.mark.integration


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_resolve_revs_and_path_info(dvc_dataset, dvc_conn):
    hook = DvcHook(dvc_conn)
    assert hook.resolve_rev("v1") == dvc_dataset["v1"]
    assert hook.resolve_rev("main") == dvc_dataset["v2"]
    assert hook.resolve_rev(dvc_dataset["v1"][:10]) == dvc_dataset["v1"]
    info = hook.version("data/train", "v1")
    assert info.md5 == dvc_dataset["md5_v1"]
    assert info.nfiles == 2
    assert info.size == sum(len(v) for v in V1_FILES.values())
    assert info.sha == dvc_dataset["v1"]


def test_pull_at_rev_then_second_pull_transfers_nothing(dvc_dataset, dvc_conn, tmp_path):
    project = dvc_dataset["project"]
    # An empty local cache: the data must come from the DVC remote folder.
    for p in project.cache_dir().rglob("*"):
        if p.is_file():
            p.chmod(0o644)
    import shutil

    shutil.rmtree(project.cache_dir())
    hook = DvcHook(dvc_conn)
    dest = tmp_path / "out" / "train"
    first = DvcPuller(hook).pull("data/train", "v1", dest)
    assert first.transferred is True
    assert first.md5 == dvc_dataset["md5_v1"]
    assert _files(dest) == V1_FILES
    marker = json.loads((dest.parent / ".train.dvc-pull.json").read_text())
    assert marker["sha"] == dvc_dataset["v1"] and marker["md5"] == dvc_dataset["md5_v1"]

    mtimes = {p: p.stat().st_mtime_ns for p in dest.rglob("*")}
    second = DvcPuller(hook).pull("data/train", "v1", dest)
    assert second.transferred is False
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*")} == mtimes

    third = DvcPuller(hook).pull("data/train", "v2", dest)
    assert third.transferred is True
    assert _files(dest) == V2_FILES


def test_pull_repairs_locally_modified_destination(dvc_dataset, dvc_conn, tmp_path):
    hook = DvcHook(dvc_conn)
    dest = tmp_path / "train"
    DvcPuller(hook).pull("data/train", "v1", dest)
    (dest / "train.jsonl").write_text("tampered\n")
    assert DvcPuller(hook).pull("data/train", "v1", dest).transferred is True
    assert _files(dest) == V1_FILES


def test_pull_through_clone_of_git_url(dvc_dataset, dvc_conn_factory, tmp_path):
    project = dvc_dataset["project"]
    conn = dvc_conn_factory("dvc_origin", f"file://{project.origin}")
    hook = DvcHook(conn)
    result = DvcPuller(hook).pull("data/train", "v2", tmp_path / "train")
    assert result.sha == dvc_dataset["v2"]
    assert _files(tmp_path / "train") == V2_FILES


def test_backfill_dates_resolve_to_the_revs_each_date_saw(dvc_dataset, dvc_conn):
    hook = DvcHook(dvc_conn)
    init = dvc_dataset["project"].git("rev-list", "--max-parents=0", "HEAD")
    cases = {
        datetime(2024, 1, 1, 12, tzinfo=timezone.utc): init,
        datetime(2024, 1, 2, 11, 59, tzinfo=timezone.utc): init,
        datetime(2024, 1, 2, 12, tzinfo=timezone.utc): dvc_dataset["v1"],
        datetime(2024, 1, 4, tzinfo=timezone.utc): dvc_dataset["v1"],
        datetime(2024, 1, 5, 12, 0, 1, tzinfo=timezone.utc): dvc_dataset["v2"],
        datetime(2025, 6, 1, tzinfo=timezone.utc): dvc_dataset["v2"],
    }
    for when, sha in cases.items():
        assert hook.resolve_rev_at(when, "main") == sha, when


def test_changed_files_and_previous_rev(dvc_dataset, dvc_conn):
    hook = DvcHook(dvc_conn)
    assert DvcPuller(hook).changed_files("data/train", "v1", "v2") == {
        "added": ["extra.jsonl"],
        "removed": ["meta/info.json"],
        "modified": ["train.jsonl"],
    }
    assert hook.previous_rev("data/train", "v2") == dvc_dataset["v1"]
    assert hook.previous_rev("data/train", "v1") is None


def test_add_and_publish_new_version(dvc_dataset, dvc_conn):
    project = dvc_dataset["project"]
    before_remote = project.remote_objects()
    project.write_files("data/train", {"train.jsonl": '{"id": 5, "text": "v3", "label": "a"}\n'})
    result = DvcPublisher(DvcHook(dvc_conn)).publish("data/train", "v3", "Dataset v3")
    assert result.created is True
    tags = project.tags()
    assert tags["v3"] == project.head() == result.sha
    assert project.git("log", "-1", "--format=%s") == "Dataset v3"
    origin = project.origin_refs()
    assert origin["refs/heads/main"] == result.sha
    assert "refs/tags/v3" in origin
    new_objects = project.remote_objects() - before_remote
    md5 = result.md5
    assert f"files/md5/{md5[:2]}/{md5[2:]}" in new_objects
    assert len(new_objects) == 2  # the .dir listing and the one new file
    assert project.git("status", "--porcelain") == ""


def test_add_and_publish_same_tag_same_data_is_noop(dvc_dataset, dvc_conn):
    project = dvc_dataset["project"]
    before = project.snapshot()
    result = DvcPublisher(DvcHook(dvc_conn)).publish("data/train", "v2", "again")
    assert result.created is False
    assert result.sha == dvc_dataset["v2"]
    assert project.snapshot() == before


def test_push_reports_objects(dvc_dataset, dvc_conn):
    project = dvc_dataset["project"]
    import shutil

    shutil.rmtree(project.remote)
    project.remote.mkdir()
    result = DvcPublisher(DvcHook(dvc_conn)).push("data/train")
    assert result.pushed == 3  # v2's .dir and two files (cache has v1 too, not pushed)
    assert len(project.remote_objects()) == 3


def _crash_after_local_tag(project, files: dict[str, str], tag: str) -> None:
    """What add_and_publish does before its pushes: dvc add, commit, tag; then the worker 'dies'."""
    project.write_files("data/train", files)
    with project.repo() as repo:
        repo.add(str(project.path / "data" / "train"))
    project.git("add", "data/train.dvc")
    project.git("commit", "--quiet", "-m", f"Update data/train ({tag})")
    project.git("tag", "-a", tag, "-m", f"Update data/train ({tag})")


def test_retry_after_crash_between_tag_and_push_publishes(dvc_dataset, dvc_conn):
    project = dvc_dataset["project"]
    _crash_after_local_tag(project, {"train.jsonl": '{"id": 7, "text": "v3", "label": "a"}\n'}, "v3")
    md5 = project.md5_of("data/train", "v3")
    dir_object = f"files/md5/{md5[:2]}/{md5[2:]}"
    assert dir_object not in project.remote_objects()
    assert "refs/tags/v3" not in project.origin_refs()

    result = DvcPublisher(DvcHook(dvc_conn)).publish("data/train", "v3", "retry")
    assert result.created is False  # the tag was there: nothing new committed ...
    assert result.sha == project.head() == project.tags()["v3"]
    assert dir_object in project.remote_objects()  # ... but the data reached the DVC remote
    with project.repo() as repo:
        assert not repo.status(
            targets=[str(project.path / "data" / "train")], cloud=True
        )  # every object is there
    origin = project.origin_refs()
    assert origin["refs/heads/main"] == project.head()  # and the branch and tag reached origin
    assert "refs/tags/v3" in origin
    # A third run finds everything in place and changes nothing.
    before = project.snapshot()
    assert DvcPublisher(DvcHook(dvc_conn)).publish("data/train", "v3", "again").created is False
    assert project.snapshot() == before


def test_pull_needs_a_destination(dvc_dataset, dvc_conn):
    with pytest.raises(TypeError):
        DvcPuller(DvcHook(dvc_conn)).pull("data/train", "v1")  # type: ignore[call-arg]


def test_pull_refuses_the_current_directory(dvc_dataset, dvc_conn, tmp_path, monkeypatch):
    from airflow_provider_llmops.exceptions import DvcError

    cwd = tmp_path / "cwd"
    (cwd / "sub").mkdir(parents=True)
    (cwd / "keep.txt").write_text("precious\n")
    monkeypatch.chdir(cwd / "sub")
    for dest in (".", "..", str(dvc_dataset["project"].path)):
        with pytest.raises(DvcError, match="Refusing to materialise"):
            DvcPuller(DvcHook(dvc_conn)).pull("data/train", "v1", dest)
    assert (cwd / "keep.txt").read_text() == "precious\n"
    assert (cwd / "sub").is_dir()


def test_pull_repairs_same_size_edit(dvc_dataset, dvc_conn, tmp_path):
    import os

    hook = DvcHook(dvc_conn)
    dest = tmp_path / "train"
    DvcPuller(hook).pull("data/train", "v1", dest)
    target = dest / "train.jsonl"
    original = target.read_text()
    edited = original.replace("hello", "HELLO")
    assert len(edited) == len(original)
    st = target.stat()
    target.write_text(edited)
    # An edit a moment later: same size, newer mtime (set explicitly for coarse clocks).
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert DvcPuller(hook).pull("data/train", "v1", dest).transferred is True
    assert _files(dest) == V1_FILES
    assert DvcPuller(hook).pull("data/train", "v1", dest).transferred is False


def test_publish_logs_add_and_push_progress(dvc_dataset, dvc_conn, capfd, caplog):
    import re

    project = dvc_dataset["project"]
    project.write_files("data/train", {"train.jsonl": "x" * 300_000, "b.jsonl": "y" * 200_000})
    capfd.readouterr()
    DvcPublisher(DvcHook(dvc_conn, progress_interval=0.05)).publish("data/train", "v3", "progress")
    captured = capfd.readouterr()
    text = captured.out + captured.err + caplog.text
    add = re.findall(r"dvc add data/train: [^\n]*", text)
    push = re.findall(r"dvc push data/train: \d+/[^\n]*", text)
    assert add and push, text
    assert "2/2 files, 0.5/0.5 MB" in add[-1] and "done" in add[-1], add
    assert "2/2 files, 0.5/0.5 MB" in push[-1] and "done" in push[-1], push
    assert all("MB/s" in line and ("ETA" in line or "done" in line) for line in add + push)


def test_concurrent_pulls_to_one_destination(dvc_dataset, dvc_conn, tmp_path):
    import threading

    dest = tmp_path / "shared" / "train"
    hooks = [DvcHook(dvc_conn), DvcHook(dvc_conn)]
    for hook in hooks:
        hook.settings  # noqa: B018 - read the connection before the threads start
    results: list = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(hooks))

    def pull(hook: DvcHook) -> None:
        try:
            start.wait()
            results.append(DvcPuller(hook).pull("data/train", "v1", dest))
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=pull, args=(h,)) for h in hooks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(results) == 2
    assert sorted(r.transferred for r in results) == [False, True]  # the second waited, then reused
    assert _files(dest) == V1_FILES
    assert sorted(p.name for p in dest.parent.iterdir()) == [
        ".train.dvc-pull.json",
        ".train.dvc-pull.lock",
        "train",
    ]


def test_pull_lock_times_out_with_clear_error(dvc_dataset, dvc_conn, tmp_path):
    import fcntl

    from airflow_provider_llmops.exceptions import DvcLockTimeoutError

    dest = tmp_path / "train"
    with open(tmp_path / ".train.dvc-pull.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another run holds the destination
        with pytest.raises(DvcLockTimeoutError, match="another run holds") as err:
            DvcPuller(DvcHook(dvc_conn, lock_timeout=0.5)).pull("data/train", "v1", dest)
    assert str(dest) in str(err.value)
    assert not dest.exists()


def test_publish_waits_for_the_working_copy_lock(dvc_dataset, dvc_conn):
    import fcntl

    from airflow_provider_llmops.exceptions import DvcLockTimeoutError

    project = dvc_dataset["project"]
    project.write_files("data/train", {"train.jsonl": '{"id": 9, "text": "v3", "label": "a"}\n'})
    before = project.head()
    lock = project.path / ".dvc" / "tmp" / "llmops-publish.lock"
    lock.parent.mkdir(exist_ok=True)
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(DvcLockTimeoutError, match="working copy"):
            DvcPublisher(DvcHook(dvc_conn, lock_timeout=0.5)).publish("data/train", "v3")
    assert project.head() == before and "v3" not in project.tags()
    assert DvcPublisher(DvcHook(dvc_conn)).publish("data/train", "v3").created is True


def test_url_repo_holds_the_clone_lock_while_dvc_reads_the_checkout(dvc_dataset, dvc_conn_factory, tmp_path):
    import fcntl

    from airflow_provider_llmops.exceptions import DvcLockTimeoutError

    conn = dvc_conn_factory("dvc_origin", f"file://{dvc_dataset['project'].origin}")
    hook = DvcHook(conn)
    with hook.open_repo():  # clones; the lock is held (re-entrantly) until the block ends
        lock = hook._clone_path().parent / f".{hook._clone_path().name}.lock"
        with open(lock, "a") as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        hook.resolve_rev("v1")  # same thread: no self-deadlock
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another task is fetching/checking out the clone
        with pytest.raises(DvcLockTimeoutError, match="cached clone"):
            DvcPuller(DvcHook(conn, lock_timeout=0.5)).pull("data/train", "v2", tmp_path / "train")
    DvcPuller(DvcHook(conn)).pull("data/train", "v2", tmp_path / "train")
    assert _files(tmp_path / "train") == V2_FILES


def test_pull_outputs_written_by_dvc2_md5_dos2unix(dvc_dataset, dvc_conn, tmp_path):
    """Pre-DVC-3 .dvc and dvc.lock outputs (no `hash` field) hash text with CRLF as LF."""
    import hashlib

    import yaml

    project = dvc_dataset["project"]
    content = b"id,text\r\n1,hello\r\n2,world\r\n"
    md5 = hashlib.md5(content.replace(b"\r\n", b"\n")).hexdigest()
    assert md5 != hashlib.md5(content).hexdigest()
    # DVC 2 layout: objects straight under the remote root (and the cache root).
    obj = project.remote / md5[:2] / md5[2:]
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_bytes(content)
    out = {"md5": md5, "size": len(content)}
    (project.path / "data" / "old.csv.dvc").write_text(yaml.safe_dump({"outs": [{**out, "path": "old.csv"}]}))
    lock = {"schema": "2.0", "stages": {"prep": {"cmd": "true", "outs": [{**out, "path": "data/lock.csv"}]}}}
    (project.path / "dvc.lock").write_text(yaml.safe_dump(lock))
    project.git("add", "data/old.csv.dvc", "dvc.lock")
    project.git("commit", "--quiet", "-m", "DVC 2 era outputs")

    hook = DvcHook(dvc_conn)
    for rel in ("data/old.csv", "data/lock.csv"):
        dest = tmp_path / rel.replace("/", "_")
        result = DvcPuller(hook).pull(rel, "main", dest)
        assert result.hash == "md5-dos2unix" and result.md5 == md5
        assert dest.read_bytes() == content  # CRLF kept: only the hash normalises it
        with project.repo() as repo:
            cached = Path(repo.cache.legacy.oid_to_path(md5))
        assert cached.read_bytes() == content  # the good object was not deleted as "corrupted"
        assert DvcPuller(hook).pull(rel, "main", dest).transferred is False


def test_retry_pushes_the_tagged_commit_not_later_head_commits(dvc_dataset, dvc_conn):
    project = dvc_dataset["project"]
    _crash_after_local_tag(project, {"train.jsonl": '{"id": 8, "text": "v3", "label": "a"}\n'}, "v3")
    tag_sha = project.tags()["v3"]
    (project.path / "NOTES.md").write_text("unrelated work in progress\n")
    project.git("add", "NOTES.md")
    project.git("commit", "--quiet", "-m", "unrelated local commit")
    assert project.head() != tag_sha

    result = DvcPublisher(DvcHook(dvc_conn)).publish("data/train", "v3", "retry")
    assert result.created is False and result.sha == tag_sha
    origin = project.origin_refs()
    assert origin["refs/heads/main"] == tag_sha  # the tag's commit, a fast-forward ...
    assert project.head() not in origin.values()  # ... and not the unrelated HEAD commit
