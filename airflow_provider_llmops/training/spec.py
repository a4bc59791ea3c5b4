"""The typed training job spec: one document drives every launcher (local, one pod, an Indexed Job).

Stdlib only (PyYAML when a YAML file is read or written), so the Airflow side can build, validate
and hash a spec without the training stack. Example::

    spec = TrainingJobSpec(
        name="support-bot",
        task="causal_lm",
        model=ModelSpec(path="/models/base"),
        data=DataSpec(path="/data/train.jsonl"),
        output="s3://bucket/runs/support-bot",
        max_steps=200,
    )
    spec.validate()
    TrainingJobSpec.from_json(spec.to_json()) == spec  # True
    spec.spec_hash()  # '3f2a9c...' (16 hex digits)
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from airflow_provider_llmops.exceptions import TrainingSpecError

__all__ = [
    "DataSpec",
    "DeepSpeedSpec",
    "LoraSpec",
    "ModelSpec",
    "ResourcesSpec",
    "TrainingJobSpec",
]

TASKS = ("causal_lm", "embedding")
PRECISIONS = ("fp32", "bf16", "fp16")
OFFLOAD_DEVICES = ("none", "cpu", "nvme")
SCHEDULERS = ("WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "none")
_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")


def _check(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise TrainingSpecError(f"{where}: {message}", field=where)


def _positive_int(value: Any, where: str, *, minimum: int = 1) -> None:
    _check(
        isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
        where,
        f"must be an integer >= {minimum}, got {value!r}",
    )


@dataclass(frozen=True)
class LoraSpec:
    """Optional LoRA adapters (peft), merged into the base weights on export."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ()

    def validate(self) -> None:
        _positive_int(self.r, "model.lora.r")
        _positive_int(self.alpha, "model.lora.alpha")
        _check(0.0 <= self.dropout < 1.0, "model.lora.dropout", f"must be in [0, 1), got {self.dropout!r}")


@dataclass(frozen=True)
class ModelSpec:
    """The base model: a Hugging Face model folder (``config.json`` + weights) the trainer can read."""

    path: str
    name: str = ""
    lora: LoraSpec | None = None
    trust_remote_code: bool = False

    def validate(self) -> None:
        _check(
            isinstance(self.path, str) and bool(self.path.strip()), "model.path", "must be a non-empty path"
        )
        if self.lora is not None:
            self.lora.validate()


@dataclass(frozen=True)
class DataSpec:
    """Training rows in a JSONL file; which fields are read depends on the task.

    * ``causal_lm``: ``prompt`` + ``response`` (loss on the response tokens only), or ``text``
      alone (loss on every token) when ``text_field`` is present in the rows;
    * ``embedding``: ``query`` + ``positive`` pairs, other rows in the batch are the negatives.

    ``rev`` and ``md5`` come from the DVC pull (its XCom or Asset event) and land in the manifest.
    """

    path: str
    prompt_field: str = "prompt"
    response_field: str = "response"
    text_field: str = "text"
    query_field: str = "query"
    positive_field: str = "positive"
    max_length: int = 512
    rev: str = ""
    md5: str = ""

    def validate(self) -> None:
        _check(
            isinstance(self.path, str) and bool(self.path.strip()), "data.path", "must be a non-empty path"
        )
        _positive_int(self.max_length, "data.max_length", minimum=8)


@dataclass(frozen=True)
class DeepSpeedSpec:
    """DeepSpeed settings; `config` (a user DeepSpeed JSON, dict or path) overrides the generated one.

    ``train_batch_size`` is optional: when given it must equal micro x accumulation x world size.
    """

    zero_stage: int = 0
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    offload_optimizer: Literal["none", "cpu", "nvme"] = "none"
    offload_param: Literal["none", "cpu", "nvme"] = "none"
    micro_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    train_batch_size: int | None = None
    gradient_clipping: float = 1.0
    lr: float = 5e-5
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    scheduler: Literal["WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "none"] = "WarmupDecayLR"
    # torch's AdamW instead of DeepSpeed's fused/CPU Adam: no op compilation (CPU, CI, small jobs).
    torch_adam: bool = True
    config: dict[str, Any] | str | None = None

    def validate(self) -> None:
        _check(
            self.zero_stage in (0, 1, 2, 3), "deepspeed.zero_stage", f"must be 0-3, got {self.zero_stage!r}"
        )
        _check(self.precision in PRECISIONS, "deepspeed.precision", f"must be one of {PRECISIONS}")
        _check(
            self.offload_optimizer in OFFLOAD_DEVICES,
            "deepspeed.offload_optimizer",
            f"must be one of {OFFLOAD_DEVICES}",
        )
        _check(
            self.offload_param in OFFLOAD_DEVICES,
            "deepspeed.offload_param",
            f"must be one of {OFFLOAD_DEVICES}",
        )
        _check(self.scheduler in SCHEDULERS, "deepspeed.scheduler", f"must be one of {SCHEDULERS}")
        _positive_int(self.micro_batch_size, "deepspeed.micro_batch_size")
        _positive_int(self.gradient_accumulation_steps, "deepspeed.gradient_accumulation_steps")
        if self.train_batch_size is not None:
            _positive_int(self.train_batch_size, "deepspeed.train_batch_size")
        _positive_int(self.warmup_steps, "deepspeed.warmup_steps", minimum=0)
        _check(self.lr > 0, "deepspeed.lr", f"must be > 0, got {self.lr!r}")
        _check(self.gradient_clipping >= 0, "deepspeed.gradient_clipping", "must be >= 0")
        _check(
            self.config is None or isinstance(self.config, (dict, str)),
            "deepspeed.config",
            "must be a DeepSpeed config dict or the path of a DeepSpeed JSON file",
        )


@dataclass(frozen=True)
class ResourcesSpec:
    """Where the job runs: ``nodes`` x ``gpus_per_node`` (0: CPU processes, ``cpu_procs`` of them)."""

    nodes: int = 1
    gpus_per_node: int = 0
    cpu_procs: int = 1
    cpu: str = ""
    memory: str = ""
    # /dev/shm (a memory-backed emptyDir in a pod); empty: 1Gi per GPU, at least 1Gi.
    shm_size: str = ""

    def validate(self) -> None:
        _positive_int(self.nodes, "resources.nodes")
        _positive_int(self.gpus_per_node, "resources.gpus_per_node", minimum=0)
        _positive_int(self.cpu_procs, "resources.cpu_procs")

    @property
    def procs_per_node(self) -> int:
        return self.gpus_per_node or self.cpu_procs

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node


@dataclass(frozen=True)
class TrainingJobSpec:
    """A fine-tuning job: task, model, data, DeepSpeed settings, resources and output location.

    `output` is a mounted path or an fsspec URI (``file://``, ``s3://``, ``gs://``); checkpoints,
    the final model (``model/``), ``manifest.json`` and ``loss.png`` go there.
    """

    name: str
    task: Literal["causal_lm", "embedding"]
    model: ModelSpec
    data: DataSpec
    output: str
    deepspeed: DeepSpeedSpec = field(default_factory=DeepSpeedSpec)
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    max_steps: int = 100
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    seed: int = 42
    # Embedding task: similarity scale (1 / temperature) of the in-batch-negatives loss.
    scale: float = 20.0
    log_every_s: float = 10.0

    # Fields that do not change what is trained: left out of the spec hash, so moving a run to
    # another output location or logging more often still resumes it.
    HASH_EXCLUDE: ClassVar[tuple[str, ...]] = ("output", "log_every_s", "keep_checkpoints")

    def validate(self) -> TrainingJobSpec:
        """Raise `TrainingSpecError` naming the first bad field; returns self for chaining."""
        _check(
            isinstance(self.name, str) and bool(_NAME.match(self.name)),
            "name",
            f"must be a lowercase DNS-1123 style name (a-z, 0-9, '.', '_', '-'), got {self.name!r}",
        )
        _check(self.task in TASKS, "task", f"must be one of {TASKS}, got {self.task!r}")
        _check(isinstance(self.output, str) and bool(self.output.strip()), "output", "must be a path or URI")
        self.model.validate()
        self.data.validate()
        self.deepspeed.validate()
        self.resources.validate()
        _positive_int(self.max_steps, "max_steps")
        _positive_int(self.checkpoint_every, "checkpoint_every")
        _positive_int(self.keep_checkpoints, "keep_checkpoints")
        _check(self.scale > 0, "scale", f"must be > 0, got {self.scale!r}")
        if self.model.lora is not None and self.task != "causal_lm":
            raise TrainingSpecError(
                "model.lora: LoRA is supported for task 'causal_lm' only", field="model.lora"
            )
        if self.model.lora is not None and self.deepspeed.zero_stage == 3:
            raise TrainingSpecError(
                "model.lora: LoRA with ZeRO-3 is not supported by this trainer; use zero_stage <= 2",
                field="model.lora",
            )
        return self

    # -- serialisation ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = _plain(self)
        return plain

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingJobSpec:
        """Build from a plain dict (a parsed JSON/YAML document); unknown keys are an error."""
        if not isinstance(data, dict):
            raise TrainingSpecError(f"a job spec must be a mapping, got {type(data).__name__}", field="")
        return _build(cls, data, "")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainingJobSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise TrainingSpecError(f"job spec is not valid JSON: {err}", field="") from err
        return cls.from_dict(data)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=True)

    @classmethod
    def from_yaml(cls, text: str) -> TrainingJobSpec:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise TrainingSpecError(f"job spec is not valid YAML: {err}", field="") from err
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> TrainingJobSpec:
        """Read a ``.json``, ``.yaml`` or ``.yml`` spec file."""
        p = Path(path)
        if not p.is_file():
            raise TrainingSpecError(f"job spec file {str(p)!r} does not exist", field="")
        text = p.read_text(encoding="utf-8")
        return cls.from_yaml(text) if p.suffix.lower() in (".yaml", ".yml") else cls.from_json(text)

    def spec_hash(self) -> str:
        """16 hex digits identifying what is trained (everything but `HASH_EXCLUDE`)."""
        data = {k: v for k, v in self.to_dict().items() if k not in self.HASH_EXCLUDE}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> TrainingJobSpec:
        return dataclasses.replace(self, **changes)


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _plain(value: Any) -> Any:
    """JSON-ready copy of a spec: dataclasses become dicts, tuples lists (`dataclasses.asdict`
    deep-copies every leaf, several times slower, and operators call this at DAG parse time)."""
    cls: type = type(value)
    if hasattr(cls, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in _field_names(cls)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    # Resolving the string annotations is the slow part of building a spec (about 0.3 ms per class),
    # and operators rebuild their spec at DAG parse time: once per class is enough.
    import typing

    return typing.get_type_hints(cls)


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}{unknown[0]}"
        raise TrainingSpecError(f"{where}: unknown field (known: {', '.join(sorted(fields))})", field=where)
    missing = [
        n
        for n, f in fields.items()
        if n not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise TrainingSpecError(
            f"{prefix}{missing[0]}: required field is missing", field=f"{prefix}{missing[0]}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, f"{prefix}{name}")
    return cls(**kwargs)


def _convert(hint: Any, value: Any, where: str) -> Any:
    import types
    import typing

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        for arg in args:
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                return _build(arg, value, f"{where}.")  # type: ignore[arg-type]
        return _convert(args[0], value, where) if len(args) == 1 else value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise TrainingSpecError(f"{where}: must be a mapping, got {type(value).__name__}", field=where)
        return _build(hint, value, f"{where}.")  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TrainingSpecError(f"{where}: must be a list, got {type(value).__name__}", field=where)
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
