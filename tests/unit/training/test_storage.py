from __future__ import annotations

import json

import pytest

from airflow_provider_llmops.exceptions import TrainingManifestError, TrainingOutputConflictError
from airflow_provider_llmops.training.storage import OutputStore, check_output, step_tag


def _ckpt(store, step, spec_hash, complete=True):
    folder = store.path(f"checkpoints/{step_tag(step)}")
    store.fs.makedirs(folder, exist_ok=True)
    store.fs.pipe_file(f"{folder}/mp_rank_00_model_states.pt", b"x")
    if complete:
        store.mark_complete(step, {"step": step, "spec_hash": spec_hash})


@pytest.fixture(params=["path", "file-uri", "memory"])
def store(request, tmp_path):
    if request.param == "path":
        return OutputStore(str(tmp_path / "out"))
    if request.param == "file-uri":
        return OutputStore(f"file://{tmp_path}/out")
    return OutputStore(f"memory://llmops-test-{tmp_path.name}/out")


def test_half_written_checkpoint_is_never_taken(store):
    _ckpt(store, 10, "h")
    _ckpt(store, 20, "h", complete=False)
    assert store.complete_steps() == [10]


def test_prune_keeps_the_newest(store):
    for step in (10, 20, 30):
        _ckpt(store, step, "h")
    store.prune(2)
    assert store.complete_steps() == [20, 30]
    assert not store.exists(f"checkpoints/{step_tag(10)}")


def test_finished_run_of_another_spec_refused(store):
    store.write_text("manifest.json", json.dumps({"spec_hash": "other", "status": "finished"}))
    with pytest.raises(TrainingOutputConflictError, match="another spec"):
        check_output(store, "mine")


def test_checkpoints_of_another_spec_refused(store):
    _ckpt(store, 10, "other")
    with pytest.raises(TrainingOutputConflictError, match="checkpoints of another spec"):
        check_output(store, "mine")


def test_same_spec_finished_returns_manifest(store):
    store.write_text("manifest.json", json.dumps({"spec_hash": "mine", "steps": 5}))
    assert check_output(store, "mine")["steps"] == 5


def test_empty_output_is_fine(store):
    assert check_output(store, "mine") is None


def test_broken_manifest(store):
    store.write_text("manifest.json", "{")
    with pytest.raises(TrainingManifestError, match="not valid JSON"):
        store.read_manifest()
