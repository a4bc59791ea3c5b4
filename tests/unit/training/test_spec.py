from __future__ import annotations

import dataclasses
import json

import pytest

from airflow_provider_llmops.exceptions import TrainingSpecError
from airflow_provider_llmops.training.spec import (
    DeepSpeedSpec,
    LoraSpec,
    ModelSpec,
    ResourcesSpec,
    TrainingJobSpec,
)


def test_json_round_trip(spec):
    assert TrainingJobSpec.from_json(spec.to_json()) == spec


def test_yaml_round_trip_with_nested_optionals(spec):
    spec = spec.replace(
        model=ModelSpec(path="/m", lora=LoraSpec(r=4, target_modules=("c_attn",))),
        deepspeed=DeepSpeedSpec(
            config={"zero_optimization": {"stage": 1}}, train_batch_size=16, betas=(0.8, 0.9)
        ),
    )
    again = TrainingJobSpec.from_yaml(spec.to_yaml())
    assert again == spec
    assert again.model.lora.target_modules == ("c_attn",)


def test_load_json_and_yaml_files(spec, tmp_path):
    (tmp_path / "a.json").write_text(spec.to_json())
    (tmp_path / "a.yaml").write_text(spec.to_yaml())
    assert TrainingJobSpec.load(tmp_path / "a.json") == TrainingJobSpec.load(tmp_path / "a.yaml") == spec


def test_missing_spec_file(tmp_path):
    with pytest.raises(TrainingSpecError, match="does not exist"):
        TrainingJobSpec.load(tmp_path / "nope.json")


def test_unknown_field_named(spec):
    data = spec.to_dict()
    data["deepspeed"]["zero_stag"] = 2
    with pytest.raises(TrainingSpecError, match=r"deepspeed\.zero_stag: unknown field") as err:
        TrainingJobSpec.from_dict(data)
    assert err.value.field == "deepspeed.zero_stag"


def test_required_field_missing(spec):
    data = spec.to_dict()
    del data["model"]
    with pytest.raises(TrainingSpecError, match="model: required field is missing"):
        TrainingJobSpec.from_dict(data)


def test_invalid_json_text():
    with pytest.raises(TrainingSpecError, match="not valid JSON"):
        TrainingJobSpec.from_json("{nope")


def test_spec_hash_ignores_output_and_logging_but_not_training_fields(spec):
    h = spec.spec_hash()
    assert len(h) == 16
    assert spec.replace(output="s3://elsewhere", log_every_s=1.0).spec_hash() == h
    assert spec.replace(max_steps=21).spec_hash() != h
    assert spec.replace(deepspeed=dataclasses.replace(spec.deepspeed, lr=1e-3)).spec_hash() != h


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"name": "Bad Name"}, "name"),
        ({"task": "seq2seq"}, "task"),
        ({"max_steps": 0}, "max_steps"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"output": ""}, "output"),
        ({"scale": 0.0}, "scale"),
        ({"resources": ResourcesSpec(nodes=0)}, "resources.nodes"),
        ({"deepspeed": DeepSpeedSpec(zero_stage=4)}, "deepspeed.zero_stage"),
        ({"deepspeed": DeepSpeedSpec(precision="fp8")}, "deepspeed.precision"),
        ({"deepspeed": DeepSpeedSpec(micro_batch_size=0)}, "deepspeed.micro_batch_size"),
        ({"deepspeed": DeepSpeedSpec(lr=0.0)}, "deepspeed.lr"),
        ({"model": ModelSpec(path="")}, "model.path"),
        ({"model": ModelSpec(path="/m", lora=LoraSpec(r=0))}, "model.lora.r"),
    ],
)
def test_each_bad_field_is_named(spec, changes, where):
    with pytest.raises(TrainingSpecError) as err:
        spec.replace(**changes).validate()
    assert err.value.field == where
    assert where in str(err.value)


def test_lora_with_zero3_refused(spec):
    bad = spec.replace(model=ModelSpec(path="/m", lora=LoraSpec()), deepspeed=DeepSpeedSpec(zero_stage=3))
    with pytest.raises(TrainingSpecError, match="LoRA with ZeRO-3"):
        bad.validate()


def test_world_size_from_resources():
    assert ResourcesSpec(nodes=2, gpus_per_node=8).world_size == 16
    assert ResourcesSpec(cpu_procs=2).world_size == 2


def test_to_dict_is_json_safe(spec):
    json.dumps(spec.to_dict())


def test_lora_for_embedding_refused(spec):
    bad = spec.replace(task="embedding", model=ModelSpec(path="/m", lora=LoraSpec()))
    with pytest.raises(TrainingSpecError, match="causal_lm' only"):
        bad.validate()
