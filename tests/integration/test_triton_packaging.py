"""Packaging options and the deploy operator inside a real DAG run (dag.test(), real tritonserver)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_provider_llmops.serving.config import to_pbtxt, validate_config
from airflow_provider_llmops.serving.package import package_embedding
from airflow_provider_llmops.serving.publish import ModelRepository
from tests.fixtures.airflow import asset_events, run_dag

pytestmark = pytest.mark.integration


def test_onnxruntime_platform_writes_a_validated_ensemble(tiny_encoder_run, tmp_path):
    package = package_embedding(
        tiny_encoder_run / "manifest.json",
        tmp_path / "pkg",
        platform="onnxruntime",
        max_batch_size=16,
        preferred_batch_sizes=(4, 8),
        instance_count=2,
    )
    assert package.parts == ["onnx", "tokenize", "main"]
    onnx_config = package.configs["onnx"]
    assert onnx_config["platform"] == "onnxruntime_onnx"
    assert [t["name"] for t in onnx_config["input"]] == ["input_ids", "attention_mask", "token_type_ids"]
    assert onnx_config["output"][0]["dims"] == [32]  # the exported graph's real width
    assert onnx_config["dynamic_batching"]["preferred_batch_size"] == [4, 8]
    assert package.source.spec_hash == "spec-tiny-enc" and package.source.dataset_rev == "rev-enc-7"
    published = ModelRepository(tmp_path / "repo").publish(package, "tiny")
    names = {"tiny", "tiny_onnx", "tiny_tokenize"}
    assert {p.name for p in (tmp_path / "repo").iterdir()} == names
    steps = published.configs["main"]["ensemble_scheduling"]["step"]
    assert [s["model_name"] for s in steps] == ["tiny_tokenize", "tiny_onnx"]
    validate_config(published.configs["main"], "tiny", signature=package.signature, known_models=names)
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    from google.protobuf import text_format

    for name in names:
        text = (tmp_path / "repo" / name / "config.pbtxt").read_text()
        assert text_format.Parse(text, model_config_pb2.ModelConfig()).name == name
        assert (tmp_path / "repo" / name / "1").is_dir()
    assert (tmp_path / "repo" / "tiny_onnx" / "1" / "model.onnx").is_file()
    assert to_pbtxt(published.configs["main"], name="tiny").count("step {") == 2


def test_deploy_operator_packages_a_manifest_in_a_dag_and_emits_the_asset(
    airflow_db, triton_conn_id, triton_model_repo, tiny_encoder_run, minilm_package
):
    """minilm_package: its requirements (the same pins) are what the packaged model's venv needs."""
    from airflow.sdk import DAG

    from airflow_provider_llmops.hooks.triton import TritonHook
    from airflow_provider_llmops.operators.triton import TritonDeployOperator
    from airflow_provider_llmops.sensors.triton import TritonModelReadySensor

    with DAG(
        "triton_deploy_dag",
        schedule=None,
        start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
        params={"model": "p_tiny"},
    ) as dag:
        deploy = TritonDeployOperator(
            task_id="deploy",
            model_name="{{ params.model }}",
            source=str(tiny_encoder_run / "manifest.json"),
            package_options={"max_batch_size": 8, "preferred_batch_sizes": [4]},
            triton_conn_id=triton_conn_id,
            server_name="test-triton",
        )
        wait = TritonModelReadySensor(
            task_id="wait",
            model_name="{{ params.model }}",
            triton_conn_id=triton_conn_id,
            poke_interval=0.2,
            timeout=30,
        )
        deploy >> wait
    uri = "triton://test-triton/p_tiny"
    dr = run_dag(dag)
    assert dr.state == "success", [(ti.task_id, ti.state) for ti in dr.get_task_instances()]
    events = asset_events(uri)
    assert len(events) == 1
    extra = events[0]["extra"]
    assert extra["model"] == "p_tiny" and extra["version"] == 1
    assert extra["spec_hash"] == "spec-tiny-enc" and extra["dataset_rev"] == "rev-enc-7"
    assert extra["source_uri"] == str(tiny_encoder_run / "model")
    assert "loaded_versions" not in extra
    assert TritonHook(triton_conn_id).loaded_versions("p_tiny") == [1]
