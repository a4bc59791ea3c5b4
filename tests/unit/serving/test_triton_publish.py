"""The repository publisher and manifest reading, on local folders and fsspec's memory store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_llmops.exceptions import TritonPackagingError, TritonPublishError, TritonVersionError
from airflow_provider_llmops.serving.config import Signature, Tensor, build_config
from airflow_provider_llmops.serving.manifest import ModelSource, read_source
from airflow_provider_llmops.serving.package import ModelPackage, _write_common
from airflow_provider_llmops.serving.publish import MARKER, ModelRepository

SIG = Signature(
    inputs=(Tensor("INPUT0", "TYPE_FP32", (4,)),), outputs=(Tensor("OUTPUT0", "TYPE_FP32", (4,)),)
)


def _package(root: Path, payload: str = "v1") -> ModelPackage:
    root.mkdir(parents=True)
    files = root / "models" / "main"
    files.mkdir(parents=True)
    (files / "model.py").write_text(f"# {payload}\n")
    config = build_config(SIG, backend="python", max_batch_size=8)
    goldens = {"inputs": [], "outputs": [], "atol": 0.0}
    source = ModelSource("/m", "s3://bucket/run/model", spec_hash="spec1", dataset_rev="rev1")
    return _write_common(
        root,
        kind="embedding",
        platform="python",
        configs={"main": config},
        signature=SIG,
        source=source,
        requirements=["numpy<2"],
        goldens=goldens,
    )


def test_publish_versions_atomically_and_never_overwrites(tmp_path):
    repo = ModelRepository(tmp_path / "models")
    first = repo.publish(_package(tmp_path / "p1"), "m")
    assert (first.version, first.created) == (1, True)
    version_dir = tmp_path / "models" / "m" / "1"
    assert (version_dir / "model.py").read_text() == "# v1\n"
    assert json.loads((version_dir / MARKER).read_text())["content_hash"] == first.content_hash
    assert (version_dir / ".llmops" / "goldens.json").is_file()
    assert "versions: [ 1 ]" in (tmp_path / "models" / "m" / "config.pbtxt").read_text()
    assert not [p for p in (tmp_path / "models" / "m").iterdir() if p.name.startswith(".llmops-staging")]

    again = repo.publish(ModelPackage.load(tmp_path / "p1"), "m")
    assert (again.version, again.created) == (1, False)

    second = repo.publish(_package(tmp_path / "p2", "v2"), "m")
    assert (second.version, second.created) == (2, True)
    assert repo.versions("m") == [1, 2]
    with pytest.raises(TritonPublishError, match="never overwritten"):
        repo.publish(_package(tmp_path / "p3", "v3"), "m", version=1)
    assert (version_dir / "model.py").read_text() == "# v1\n"
    assert repo.config("m", 2)["backend"] == "python"
    assert repo.version_info("m", 2)["source"]["dataset_rev"] == "rev1"


def test_a_version_folder_not_written_by_the_publisher_is_left_alone(tmp_path):
    (tmp_path / "models" / "m" / "1").mkdir(parents=True)
    (tmp_path / "models" / "m" / "1" / "model.py").write_text("foreign")
    repo = ModelRepository(tmp_path / "models")
    with pytest.raises(TritonPublishError, match="not completely written"):
        repo.publish(_package(tmp_path / "p"), "m", version=1)
    assert repo.publish(ModelPackage.load(tmp_path / "p"), "m").version == 2
    assert (tmp_path / "models" / "m" / "1" / "model.py").read_text() == "foreign"


@pytest.mark.parametrize("version", [0, -2, "x"])
def test_publish_refuses_non_positive_versions(tmp_path, version):
    with pytest.raises(TritonVersionError):
        ModelRepository(tmp_path / "models").publish(_package(tmp_path / "p"), "m", version=version)
    assert not (tmp_path / "models" / "m").exists()


def test_publish_to_an_object_store_writes_the_marker_last(tmp_path):
    import fsspec

    repo = ModelRepository("memory://llmops-test/models")
    result = repo.publish(_package(tmp_path / "p"), "m")
    fs = fsspec.filesystem("memory")
    assert fs.isfile("/llmops-test/models/m/1/model.py")
    assert repo.versions("m") == [1]
    fs.rm("/llmops-test/models/m/1/" + MARKER)  # an interrupted upload: not a version
    assert repo.versions("m") == [] and repo.versions("m", complete_only=False) == [1]
    assert result.uri == "memory://llmops-test/models/m/1"
    fs.rm("/llmops-test", recursive=True)


def test_manifest_fields_are_read(tmp_path):
    model = tmp_path / "run" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    manifest = {
        "model_uri": "model",
        "output_uri": "s3://b/run",
        "spec_hash": "abc",
        "dataset": {"rev": "r1", "md5": "m1"},
        "base_model": "gpt2",
        "name": "ft",
    }
    (tmp_path / "run" / "manifest.json").write_text(json.dumps(manifest))
    source = read_source(tmp_path / "run")
    assert source.model_path == str(model.resolve())
    assert (source.spec_hash, source.dataset_rev, source.dataset_md5, source.task) == (
        "abc",
        "r1",
        "m1",
        "causal_lm",
    )
    assert read_source({"model_path": str(model), "dataset_rev": "r2"}).dataset_rev == "r2"
    with pytest.raises(TritonPackagingError, match="names no model"):
        read_source({"spec_hash": "x"})
    with pytest.raises(TritonPackagingError, match="not a local path"):
        read_source({"model_uri": "s3://bucket/model"})
