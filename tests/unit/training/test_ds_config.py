from __future__ import annotations

import dataclasses
import json

import pytest

from airflow_provider_llmops.exceptions import TrainingConfigError
from airflow_provider_llmops.training.ds_config import build_ds_config, validate_ds_config


def _ds(spec, **changes):
    return spec.replace(deepspeed=dataclasses.replace(spec.deepspeed, **changes))


def test_generated_config(spec):
    cfg = build_ds_config(_ds(spec, precision="bf16", warmup_steps=3), world_size=2)
    assert cfg["train_batch_size"] == 4 * 2 * 2
    assert cfg["zero_optimization"] == {"stage": 2}
    assert cfg["bf16"] == {"enabled": True}
    assert cfg["optimizer"]["params"]["torch_adam"] is True
    assert cfg["scheduler"]["type"] == "WarmupDecayLR"
    assert cfg["scheduler"]["params"]["total_num_steps"] == 20
    assert cfg["scheduler"]["params"]["warmup_num_steps"] == 3


def test_offload_settings_reach_the_config(spec):
    cfg = build_ds_config(_ds(spec, zero_stage=3, offload_optimizer="cpu", offload_param="cpu"), world_size=2)
    assert cfg["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert cfg["zero_optimization"]["offload_param"]["device"] == "cpu"


def test_world_size_defaults_to_resources(spec):
    assert build_ds_config(spec)["train_batch_size"] == 4 * 2 * 2


def test_fp16_and_bf16_together_refused():
    with pytest.raises(TrainingConfigError, match="fp16 and bf16 are both enabled"):
        validate_ds_config(
            {
                "fp16": {"enabled": True},
                "bf16": {"enabled": True},
                "train_micro_batch_size_per_gpu": 1,
                "gradient_accumulation_steps": 1,
            },
            world_size=1,
        )


def test_fp16_on_cpu_refused(spec):
    with pytest.raises(TrainingConfigError, match="fp16 needs GPUs"):
        build_ds_config(_ds(spec, precision="fp16"), world_size=2)


def test_offload_param_without_zero3_refused(spec):
    with pytest.raises(TrainingConfigError, match="needs ZeRO stage 3") as err:
        build_ds_config(_ds(spec, zero_stage=2, offload_param="cpu"), world_size=2)
    assert err.value.field == "deepspeed.zero_optimization.offload_param"


def test_offload_optimizer_with_stage0_refused(spec):
    with pytest.raises(TrainingConfigError, match="needs ZeRO stage 1, 2 or 3"):
        build_ds_config(_ds(spec, zero_stage=0, offload_optimizer="cpu"), world_size=2)


def test_nvme_offload_needs_a_path(spec):
    with pytest.raises(TrainingConfigError, match="nvme_path"):
        build_ds_config(_ds(spec, zero_stage=3, offload_param="nvme"), world_size=2)


def test_train_batch_size_mismatch_refused(spec):
    with pytest.raises(
        TrainingConfigError, match=r"not micro batch 4 x gradient accumulation 2 x world size 2 = 16"
    ):
        build_ds_config(_ds(spec, train_batch_size=32), world_size=2)


def test_train_batch_size_matching_accepted(spec):
    assert build_ds_config(_ds(spec, train_batch_size=16), world_size=2)["train_batch_size"] == 16


def test_user_config_dict_auto_values_filled(spec):
    user = {
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "train_batch_size": "auto",
        "zero_optimization": {"stage": 1},
    }
    cfg = build_ds_config(_ds(spec, config=user), world_size=2)
    assert (
        cfg["train_micro_batch_size_per_gpu"],
        cfg["gradient_accumulation_steps"],
        cfg["train_batch_size"],
    ) == (4, 2, 16)
    assert cfg["zero_optimization"] == {"stage": 1}
    assert user["train_batch_size"] == "auto"  # the caller's dict is not changed


def test_user_config_file_validated(spec, tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(
        json.dumps(
            {"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1, "train_batch_size": 5}
        )
    )
    with pytest.raises(TrainingConfigError, match="train_batch_size"):
        build_ds_config(_ds(spec, config=str(path)), world_size=2)


def test_user_config_file_missing(spec, tmp_path):
    with pytest.raises(TrainingConfigError, match="does not exist"):
        build_ds_config(_ds(spec, config=str(tmp_path / "none.json")), world_size=2)


def test_user_config_file_not_json(spec, tmp_path):
    path = tmp_path / "ds.json"
    path.write_text("{oops")
    with pytest.raises(TrainingConfigError, match="not valid JSON"):
        build_ds_config(_ds(spec, config=str(path)), world_size=2)


def test_bad_zero_stage_in_user_config(spec):
    with pytest.raises(TrainingConfigError, match="must be 0, 1, 2 or 3"):
        build_ds_config(_ds(spec, config={"zero_optimization": {"stage": 5}}), world_size=2)
