"""config.pbtxt generation and offline validation, without a server."""

from __future__ import annotations

import pytest

from airflow_provider_llmops.exceptions import TritonConfigError, TritonModelNameError, TritonVersionError
from airflow_provider_llmops.serving.config import (
    Signature,
    Tensor,
    build_config,
    config_json,
    to_pbtxt,
    validate_config,
)
from airflow_provider_llmops.serving.names import check_model_name, check_version

SIG = Signature(
    inputs=(Tensor("TEXT", "TYPE_STRING", (1,)),),
    outputs=(Tensor("EMBEDDING", "TYPE_FP32", (384,)),),
)


def _config(**kw):
    return build_config(SIG, backend="python", max_batch_size=32, preferred_batch_sizes=(8, 16), **kw)


def test_generated_config_is_valid_and_parses_as_triton_model_config():
    config = _config(instance_count=2, max_queue_delay_us=500, parameters={"intra_op_threads": "1"})
    validate_config(config, "emb", signature=SIG)
    text = to_pbtxt(config, name="emb", versions=[2, 1])
    assert 'name: "emb"' in text and "data_type: TYPE_STRING" in text
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    from google.protobuf import text_format

    parsed = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert parsed.name == "emb" and parsed.backend == "python" and parsed.max_batch_size == 32
    assert list(parsed.version_policy.specific.versions) == [1, 2]
    assert list(parsed.dynamic_batching.preferred_batch_size) == [8, 16]
    assert parsed.dynamic_batching.max_queue_delay_microseconds == 500
    assert parsed.instance_group[0].count == 2
    assert parsed.parameters["intra_op_threads"].string_value == "1"
    assert list(parsed.output[0].dims) == [384]
    assert '"versions": [1, 2]' in config_json(config, "emb", [1, 2])


def test_config_naming_an_input_the_model_lacks_is_rejected():
    config = _config()
    config["input"][0]["name"] = "IDS"
    with pytest.raises(TritonConfigError) as info:
        validate_config(config, "emb", signature=SIG)
    text = str(info.value)
    assert "input 'IDS' is not an input of the model" in text
    assert "the model needs ['TEXT']" in text


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: c["output"][0].update(data_type="TYPE_FP16"),
            "data_type TYPE_FP16 but the model has TYPE_FP32",
        ),
        (lambda c: c["output"][0].update(dims=[768]), "dims [768] but the model has [384]"),
        (lambda c: c["input"][0].update(data_type="TYPE_TEXT"), "is not one of Triton's TYPE_* values"),
        (lambda c: c.update(max_batch_size=0), "dynamic_batching needs max_batch_size > 0"),
        (lambda c: c["dynamic_batching"].update(preferred_batch_size=[64]), "must be in 1..max_batch_size"),
        (lambda c: c["instance_group"][0].update(count=0), "count must be an integer >= 1"),
        (lambda c: c["instance_group"][0].update(kind="KIND_TPU"), "kind 'KIND_TPU'"),
        (lambda c: c.update(platform="onnxruntime_onnx"), "exactly one of backend"),
        (lambda c: c.update(version_policy={"specific": {"versions": [0]}}), "positive integers"),
        (lambda c: c["output"][0].update(dims=[0]), "dims must be positive or -1"),
    ],
)
def test_each_config_problem_is_named(change, expected):
    config = _config()
    change(config)
    with pytest.raises(TritonConfigError, match=None) as info:
        validate_config(config, "emb", signature=SIG)
    assert expected in str(info.value)


def test_ensemble_steps_must_map_existing_tensors():
    steps = [{"model_name": "emb_tokenize", "input_map": {"TEXT": "NOPE"}, "output_map": {"ids": "ids"}}]
    config = build_config(
        SIG, platform="ensemble", max_batch_size=8, extra={"ensemble_scheduling": {"step": steps}}
    )
    with pytest.raises(TritonConfigError) as info:
        validate_config(config, "emb", known_models={"emb_tokenize"})
    assert "input tensor 'NOPE'" in str(info.value)
    assert "ensemble output 'EMBEDDING' is produced by no step" in str(info.value)


@pytest.mark.parametrize("name", ["../x", "a/b", "..", "a\\b", "", " x", "a..b"])
def test_model_names_with_separators_or_dotdot_are_refused(name):
    with pytest.raises(TritonModelNameError):
        check_model_name(name)


@pytest.mark.parametrize("name", ["minilm", "emb_v2", "m-1.onnx"])
def test_plain_model_names_pass(name):
    assert check_model_name(name) == name


@pytest.mark.parametrize("version", [0, -1, "0", "abc", 1.5, True, None, "-3"])
def test_non_positive_or_non_integer_versions_are_refused(version):
    with pytest.raises(TritonVersionError, match="positive integer"):
        check_version(version)


def test_versions_as_strings_are_accepted():
    assert check_version("3") == 3 and check_version(7) == 7
