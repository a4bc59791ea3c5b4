"""Deploying packaged models to the real tritonserver (python backend, CPU, EXPLICIT mode); no mocks.

One MiniLM package (session fixture) serves every test; variants (another version, a broken
model, wrong goldens, a wrong config) are copies of it with one thing changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from airflow_provider_llmops.exceptions import (
    TritonConfigError,
    TritonConnectionError,
    TritonDeployError,
    TritonModelNameError,
)
from airflow_provider_llmops.hooks.triton import TritonHook
from airflow_provider_llmops.serving.package import ModelPackage
from airflow_provider_llmops.serving.publish import ModelRepository
from airflow_provider_llmops.utils.triton_deploy import TritonDeployManager
from airflow_provider_llmops.utils.triton_embedding import TritonEmbeddingClient
from tests.fixtures.triton import minilm_folder

pytestmark = pytest.mark.integration
log = logging.getLogger("test_triton_deploy")

TEXTS = ["A cat sits on the mat.", "Triton serves embeddings.", "Ein kurzer deutscher Satz.", "x"]


def variant(
    package: ModelPackage,
    dest: Path,
    tag: str,
    *,
    model_py: str | None = None,
    goldens_shift: float = 0.0,
    rename_input: str | None = None,
) -> ModelPackage:
    """A copy of ``package`` with one change and its own content hash (model.onnx hard-linked)."""
    shutil.copytree(package.path, dest, copy_function=os.link)
    meta = json.loads((dest / "package.json").read_text())
    if model_py is not None:
        (dest / "models/main/model.py").unlink()
        (dest / "models/main/model.py").write_text(model_py)
    if goldens_shift:
        goldens = json.loads((dest / "goldens.json").read_text())
        goldens["outputs"][0]["data"] = [v + goldens_shift for v in goldens["outputs"][0]["data"]]
        (dest / "goldens.json").unlink()
        (dest / "goldens.json").write_text(json.dumps(goldens))
    if rename_input:
        meta["configs"]["main"]["input"][0]["name"] = rename_input
    meta["content_hash"] = hashlib.sha256(f"{meta['content_hash']}:{tag}".encode()).hexdigest()
    (dest / "package.json").unlink()
    (dest / "package.json").write_text(json.dumps(meta))
    return ModelPackage.load(dest)


def _manager(conn_id: str, repo: Path) -> TritonDeployManager:
    return TritonDeployManager(TritonHook(conn_id), ModelRepository(repo), log)


def _vectors(hook: TritonHook, model: str, texts=TEXTS, version: str = "") -> np.ndarray:
    array = np.array([t.encode() for t in texts], dtype=object).reshape(-1, 1)
    return hook.infer(model, {"TEXT": array}, ["EMBEDDING"], model_version=version)["EMBEDDING"]


def test_deploy_minilm_matches_sentence_transformers_and_rerun_is_noop(
    triton_conn_id, triton_model_repo, minilm_package
):
    from sentence_transformers import SentenceTransformer

    from airflow_provider_llmops.operators.triton import TritonDeployOperator

    op = TritonDeployOperator(
        task_id="deploy",
        model_name="d_minilm",
        package_path=minilm_package.path,
        triton_conn_id=triton_conn_id,
    )
    first = op.execute({})
    assert first["version"] == 1 and first["changed"] is True
    assert first["model"] == "d_minilm" and first["kind"] == "embedding"
    assert first["source_uri"].startswith("file://")
    assert op.asset is not None and op.asset.uri == f"triton://{triton_conn_id}/d_minilm"

    hook = TritonHook(triton_conn_id)
    served = _vectors(hook, "d_minilm")
    expected = SentenceTransformer(str(minilm_folder()), device="cpu").encode(
        TEXTS, normalize_embeddings=True
    )
    assert served.shape == (4, 384) and served.dtype == np.float32
    np.testing.assert_allclose(served, expected, atol=2e-5)
    array = np.array([t.encode() for t in TEXTS], dtype=object).reshape(-1, 1)
    over_grpc = hook.infer("d_minilm", {"TEXT": array}, ["EMBEDDING"], protocol="grpc")["EMBEDDING"]
    np.testing.assert_allclose(over_grpc, served, atol=1e-6)
    batched = hook.infer_batched("d_minilm", {"TEXT": array}, ["EMBEDDING"], batch_size=3)["EMBEDDING"]
    np.testing.assert_allclose(batched, served, atol=1e-5)
    assert hook.model_metadata("d_minilm", 1)["outputs"][0]["shape"] == [-1, 384]
    assert hook.model_config("d_minilm")["version_policy"] == {"specific": {"versions": [1]}}
    stats = hook.model_statistics("d_minilm", 1)
    assert stats[0]["inference_stats"]["success"]["count"] >= 3

    again = TritonDeployOperator(
        task_id="deploy",
        model_name="d_minilm",
        package_path=minilm_package.path,
        triton_conn_id=triton_conn_id,
    ).execute({})
    assert again["version"] == 1 and again["changed"] is False
    assert ModelRepository(triton_model_repo).versions("d_minilm") == [1]

    encoder = TritonEmbeddingClient(hook, "d_minilm", batch_size=3, concurrency=2)
    assert (encoder.dims, encoder.model_version, encoder.normalized) == (384, "1", True)
    np.testing.assert_allclose(encoder.encode(TEXTS * 3), np.vstack([expected] * 3), atol=2e-5)
    config = (triton_model_repo / "d_minilm" / "config.pbtxt").read_text()
    assert "versions: [ 1 ]" in config and 'name: "d_minilm"' in config


def test_v2_during_traffic_zero_failures_then_broken_v3_and_bad_smoke_roll_back(
    triton_conn_id, triton_model_repo, minilm_package, tmp_path
):
    manager = _manager(triton_conn_id, triton_model_repo)
    assert manager.deploy(minilm_package, "d_switch").version == 1

    counts = {"ok": 0, "failed": 0}
    errors: list[str] = []
    stop = threading.Event()

    def traffic():
        client = TritonHook(triton_conn_id)
        while not stop.is_set():
            try:
                _vectors(client, "d_switch", TEXTS[:2])
                counts["ok"] += 1
            except Exception as err:
                counts["failed"] += 1
                errors.append(str(err))
        client.close()

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        v2 = manager.deploy(variant(minilm_package, tmp_path / "v2", "v2"), "d_switch")
        # A broken v3 (fails in initialize) while traffic continues: v2 keeps serving.
        broken = variant(
            minilm_package,
            tmp_path / "v3",
            "v3",
            model_py="class TritonPythonModel:\n    def initialize(self, args):\n"
            "        raise RuntimeError('v3 is broken 5521')\n",
        )
        with pytest.raises(TritonDeployError) as failed:
            manager.deploy(broken, "d_switch")
    finally:
        stop.set()
        thread.join()
    assert v2.version == 2 and v2.previous_version == 1 and v2.loaded_versions == (1, 2)
    assert counts["failed"] == 0, errors[:3]
    assert counts["ok"] > 0
    message = str(failed.value)
    assert "v3 is broken 5521" in message and "version 2 kept serving" in message
    assert failed.value.version == 3
    hook = TritonHook(triton_conn_id)
    assert hook.loaded_versions("d_switch") == [1, 2]
    assert hook.model_ready("d_switch", "2") and not hook.model_ready("d_switch", "3")
    assert _vectors(hook, "d_switch").shape == (4, 384)

    # Smoke test mismatch on v4: unloaded again, v2 still serves.
    with pytest.raises(TritonDeployError, match="Smoke test of 'd_switch' version 4 failed") as smoke:
        manager.deploy(variant(minilm_package, tmp_path / "v4", "v4", goldens_shift=0.5), "d_switch")
    assert "max abs difference" in str(smoke.value)
    assert hook.loaded_versions("d_switch") == [1, 2]

    # Rollback operator: v1 serves again, v2 is unloaded.
    from airflow_provider_llmops.operators.triton import TritonRollbackOperator

    back = TritonRollbackOperator(task_id="rb", model_name="d_switch", triton_conn_id=triton_conn_id).execute(
        {}
    )
    assert back["version"] == 1 and back["previous_version"] == 2
    assert hook.loaded_versions("d_switch") == [1]


def test_config_naming_missing_input_fails_before_publishing(
    triton_conn_id, triton_model_repo, minilm_package, tmp_path
):
    manager = _manager(triton_conn_id, triton_model_repo)
    manager.deploy(minilm_package, "d_cfg")
    bad = variant(minilm_package, tmp_path / "bad", "bad-config", rename_input="TEXTS")
    with pytest.raises(TritonConfigError) as info:
        manager.deploy(bad, "d_cfg")
    assert "'TEXTS' is not an input of the model" in str(info.value) or "TEXTS" in str(info.value)
    assert "needs ['TEXT']" in str(info.value)
    assert ModelRepository(triton_model_repo).versions("d_cfg") == [1]
    assert TritonHook(triton_conn_id).loaded_versions("d_cfg") == [1]


def test_first_deploy_that_fails_to_load_leaves_nothing_loaded(
    triton_conn_id, triton_model_repo, minilm_package, tmp_path
):
    broken = variant(minilm_package, tmp_path / "b", "b", model_py="import no_such_module_8812\n")
    with pytest.raises(TritonDeployError, match="no_such_module_8812") as info:
        _manager(triton_conn_id, triton_model_repo).deploy(broken, "d_first_broken")
    assert "no version was serving before" in str(info.value)
    assert TritonHook(triton_conn_id).loaded_versions("d_first_broken") == []


def test_bad_model_names_are_refused_before_anything_is_written(
    triton_conn_id, triton_model_repo, minilm_package
):
    manager = _manager(triton_conn_id, triton_model_repo)
    before = sorted(p.name for p in triton_model_repo.iterdir())
    for name in ("../escape", "a/b", "..", "x\\y"):
        with pytest.raises(TritonModelNameError):
            manager.deploy(minilm_package, name)
    assert sorted(p.name for p in triton_model_repo.iterdir()) == before
    assert not (triton_model_repo.parent / "escape").exists()


@pytest.mark.parametrize("version", [0, -1, "0", "abc"])
def test_non_positive_versions_are_refused_before_anything_is_written(
    triton_conn_id, triton_model_repo, minilm_package, version
):
    from airflow_provider_llmops.exceptions import TritonVersionError

    with pytest.raises(TritonVersionError, match="positive integer"):
        _manager(triton_conn_id, triton_model_repo).deploy(minilm_package, "d_badversion", version=version)
    assert not (triton_model_repo / "d_badversion").exists()


def test_server_down_fails_clearly_and_publishes_nothing(minilm_package, tmp_path, monkeypatch):
    from dev.harness.common import free_port

    port = free_port()
    monkeypatch.setenv(
        "AIRFLOW_CONN_LLMOPS_TRITON_DOWN",
        json.dumps({"conn_type": "llmops_triton", "host": "127.0.0.1", "port": port}),
    )
    repo = tmp_path / "models"
    repo.mkdir()
    with pytest.raises(TritonConnectionError, match=f"127.0.0.1:{port}"):
        _manager("llmops_triton_down", repo).deploy(minilm_package, "d_down")
    assert list(repo.iterdir()) == []


def test_causal_lm_package_generates_its_golden_text(triton_conn_id, triton_model_repo, tiny_lm_package):
    record = _manager(triton_conn_id, triton_model_repo).deploy(tiny_lm_package, "d_tiny_lm")
    assert (
        record.kind == "causal_lm" and record.spec_hash == "spec-tiny-lm" and record.dataset_rev == "rev-lm"
    )
    goldens = tiny_lm_package.goldens()
    hook = TritonHook(triton_conn_id)
    prompts = np.array([[b"The model"], [b"Hello"]], dtype=object)
    out = hook.infer(
        "d_tiny_lm",
        {
            "PROMPT": prompts,
            "MAX_NEW_TOKENS": np.array([[6], [6]], np.int32),
            "TEMPERATURE": np.zeros((2, 1), np.float32),
        },
        ["TEXT"],
    )["TEXT"]
    assert [t.decode() for t in out.reshape(-1)] == goldens["outputs"][0]["data"]
    sampled = hook.infer(
        "d_tiny_lm", {"PROMPT": prompts[:1], "TEMPERATURE": np.ones((1, 1), np.float32)}, ["TEXT"]
    )
    assert sampled["TEXT"].shape == (1, 1)


def test_sensor_defers_and_trigger_reports_ready(triton_conn_id, triton_model_repo, minilm_package):
    import asyncio

    from airflow.sdk.exceptions import TaskDeferred

    from airflow_provider_llmops.sensors.triton import TritonModelReadySensor
    from airflow_provider_llmops.triggers.triton import TritonModelReadyTrigger

    sensor = TritonModelReadySensor(
        task_id="wait",
        model_name="d_sensor",
        version="1",
        deferrable=True,
        triton_conn_id=triton_conn_id,
        poke_interval=0.2,
        timeout=60,
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, TritonModelReadyTrigger)
    assert trigger.serialize()[1]["model_name"] == "d_sensor"

    async def first_event():
        async for event in trigger.run():
            return event.payload

    async def deploy_then_wait():
        waiter = asyncio.ensure_future(first_event())
        await asyncio.sleep(0.5)
        assert not waiter.done()
        await asyncio.to_thread(
            _manager(triton_conn_id, triton_model_repo).deploy, minilm_package, "d_sensor"
        )
        return await asyncio.wait_for(waiter, timeout=60)

    event = asyncio.run(deploy_then_wait())
    assert event["status"] == "success" and event["version"] == "1"
    assert sensor.execute_complete({}, event) == {"model": "d_sensor", "version": "1"}

    timeout = TritonModelReadyTrigger(triton_conn_id, "d_never_loaded", poke_interval=0.1, timeout=0.5)

    async def one():
        async for event in timeout.run():
            return event.payload

    assert asyncio.run(one())["status"] == "timeout"
