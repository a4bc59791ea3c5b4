"""The DeepSpeed config of a job: generated from the spec, or the user's own DeepSpeed JSON, validated.

Stdlib only, so the operators validate it before any pod or process starts. Example::

    cfg = build_ds_config(spec, world_size=2)
    cfg["train_batch_size"]  # micro x accumulation x world size
    validate_ds_config({"fp16": {"enabled": True}, "bf16": {"enabled": True}}, world_size=1)
    # TrainingConfigError: fp16 and bf16 are both enabled ...
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.exceptions import TrainingConfigError

if TYPE_CHECKING:
    from airflow_provider_llmops.training.spec import TrainingJobSpec

__all__ = ["build_ds_config", "load_user_config", "validate_ds_config"]


def _err(where: str, message: str) -> TrainingConfigError:
    return TrainingConfigError(f"DeepSpeed config {where}: {message}", field=f"deepspeed.{where}")


def load_user_config(config: dict[str, Any] | str) -> dict[str, Any]:
    """A user DeepSpeed config: a dict, or the path of a JSON file."""
    if isinstance(config, dict):
        return copy.deepcopy(config)
    path = Path(config)
    if not path.is_file():
        raise TrainingConfigError(
            f"DeepSpeed config file {config!r} does not exist; pass a dict or an existing JSON path",
            field="deepspeed.config",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise TrainingConfigError(
            f"DeepSpeed config file {config!r} is not valid JSON: {err}", field="deepspeed.config"
        ) from err
    if not isinstance(data, dict):
        raise TrainingConfigError(
            f"DeepSpeed config file {config!r} must hold a JSON object", field="deepspeed.config"
        )
    return data


def _offload(device: str) -> dict[str, Any]:
    out: dict[str, Any] = {"device": device}
    if device == "cpu":
        out["pin_memory"] = True
    return out


def _generated(spec: TrainingJobSpec) -> dict[str, Any]:
    ds = spec.deepspeed
    zero: dict[str, Any] = {"stage": ds.zero_stage}
    if ds.offload_optimizer != "none":
        zero["offload_optimizer"] = _offload(ds.offload_optimizer)
    if ds.offload_param != "none":
        zero["offload_param"] = _offload(ds.offload_param)
    if ds.zero_stage == 3:
        # The export gathers the full weights from the checkpoint, not from a 16-bit copy.
        zero["stage3_gather_16bit_weights_on_model_save"] = False
    cfg: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": ds.micro_batch_size,
        "gradient_accumulation_steps": ds.gradient_accumulation_steps,
        "gradient_clipping": ds.gradient_clipping,
        "zero_optimization": zero,
        "optimizer": {
            "type": "AdamW",
            "params": {"lr": ds.lr, "betas": list(ds.betas), "eps": 1e-8, "weight_decay": ds.weight_decay},
        },
        "steps_per_print": 10**9,  # the trainer logs progress itself
        "wall_clock_breakdown": False,
    }
    if ds.torch_adam:
        cfg["optimizer"]["params"]["torch_adam"] = True
    if ds.precision == "bf16":
        cfg["bf16"] = {"enabled": True}
    elif ds.precision == "fp16":
        cfg["fp16"] = {"enabled": True, "initial_scale_power": 16}
    if ds.train_batch_size is not None:
        cfg["train_batch_size"] = ds.train_batch_size
    # DeepSpeed's schedulers refuse 0 warm-up steps; one step is no warm-up in effect.
    warmup = max(1, ds.warmup_steps)
    if ds.scheduler == "WarmupCosineLR":
        params: dict[str, Any] = {"total_num_steps": spec.max_steps, "warmup_num_steps": warmup}
    else:
        params = {"warmup_min_lr": 0.0, "warmup_max_lr": ds.lr, "warmup_num_steps": warmup}
        if ds.scheduler == "WarmupDecayLR":
            params["total_num_steps"] = spec.max_steps
    if ds.scheduler != "none":
        cfg["scheduler"] = {"type": ds.scheduler, "params": params}
    return cfg


def build_ds_config(spec: TrainingJobSpec, *, world_size: int | None = None) -> dict[str, Any]:
    """The resolved DeepSpeed config for `spec` at `world_size` (default: the spec's resources).

    A user config (``deepspeed.config``) is taken as is; the batch keys it leaves out, or sets to
    ``"auto"``, are filled from the spec. Either way the result is validated.
    """
    world = world_size if world_size is not None else spec.resources.world_size
    if spec.deepspeed.config is None:
        cfg = _generated(spec)
    else:
        cfg = load_user_config(spec.deepspeed.config)
        for key, value in (
            ("train_micro_batch_size_per_gpu", spec.deepspeed.micro_batch_size),
            ("gradient_accumulation_steps", spec.deepspeed.gradient_accumulation_steps),
        ):
            if cfg.get(key, "auto") == "auto":
                cfg[key] = value
        if cfg.get("train_batch_size") == "auto":
            del cfg["train_batch_size"]
        if cfg.get("gradient_clipping") == "auto":
            cfg["gradient_clipping"] = spec.deepspeed.gradient_clipping
    if "train_batch_size" not in cfg:
        cfg["train_batch_size"] = (
            cfg["train_micro_batch_size_per_gpu"] * cfg["gradient_accumulation_steps"] * world
        )
    validate_ds_config(cfg, world_size=world, on_gpu=spec.resources.gpus_per_node > 0)
    return cfg


def _enabled(cfg: dict[str, Any], key: str) -> bool:
    section = cfg.get(key)
    return isinstance(section, dict) and bool(section.get("enabled", False))


def _device(section: Any) -> str:
    if not isinstance(section, dict):
        return "none"
    return str(section.get("device", "none") or "none").lower()


def validate_ds_config(cfg: dict[str, Any], *, world_size: int, on_gpu: bool = True) -> None:
    """Raise `TrainingConfigError` for a combination DeepSpeed cannot run; the message says the fix."""
    if not isinstance(cfg, dict):
        raise _err("", f"must be a JSON object, got {type(cfg).__name__}")
    _check_precision(cfg, on_gpu)
    _check_zero(cfg)
    _check_batch(cfg, world_size)
    clip = cfg.get("gradient_clipping", 0.0)
    if not isinstance(clip, (int, float)) or clip < 0:
        raise _err("gradient_clipping", f"must be a number >= 0, got {clip!r}")


def _check_precision(cfg: dict[str, Any], on_gpu: bool) -> None:
    if _enabled(cfg, "fp16") and _enabled(cfg, "bf16"):
        raise _err("fp16/bf16", "fp16 and bf16 are both enabled; enable at most one of them")
    if not on_gpu and _enabled(cfg, "fp16"):
        raise _err(
            "fp16", "fp16 needs GPUs (DeepSpeed's CPU accelerator has no fp16 loss scaling); use bf16 or fp32"
        )


def _check_zero(cfg: dict[str, Any]) -> None:
    zero = cfg.get("zero_optimization") or {}
    if not isinstance(zero, dict):
        raise _err("zero_optimization", "must be an object")
    stage = zero.get("stage", 0)
    if stage not in (0, 1, 2, 3):
        raise _err("zero_optimization.stage", f"must be 0, 1, 2 or 3, got {stage!r}")
    param_dev = _device(zero.get("offload_param"))
    if param_dev != "none" and stage != 3:
        raise _err(
            "zero_optimization.offload_param",
            f"parameter offload ({param_dev}) needs ZeRO stage 3, the config has stage {stage}; "
            "set zero_stage=3 or drop offload_param",
        )
    opt_dev = _device(zero.get("offload_optimizer"))
    if opt_dev != "none" and stage == 0:
        raise _err(
            "zero_optimization.offload_optimizer",
            f"optimizer offload ({opt_dev}) needs ZeRO stage 1, 2 or 3, the config has stage 0",
        )
    for key in ("offload_param", "offload_optimizer"):
        if _device(zero.get(key)) == "nvme" and not zero[key].get("nvme_path"):
            raise _err(f"zero_optimization.{key}", "NVMe offload needs an nvme_path (a local NVMe mount)")


def _check_batch(cfg: dict[str, Any], world_size: int) -> None:
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps"):
        value = cfg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise _err(key, f"must be an integer >= 1, got {value!r}")
    micro, accum = cfg["train_micro_batch_size_per_gpu"], cfg["gradient_accumulation_steps"]
    total = cfg.get("train_batch_size", micro * accum * world_size)
    if total != micro * accum * world_size:
        raise _err(
            "train_batch_size",
            f"{total!r} is not micro batch {micro} x gradient accumulation {accum} x world size "
            f"{world_size} = {micro * accum * world_size}; fix one of them or leave train_batch_size out",
        )
