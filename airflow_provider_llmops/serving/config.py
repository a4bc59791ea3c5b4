"""Triton model configs without a server: typed signature, pbtxt + JSON rendering, offline validation.

The config is kept in Triton's own JSON form (the form ``POST /v2/repository/models/<m>/load``
takes as its override, and ``GET .../config`` returns). ``to_pbtxt`` renders the same dict as
protobuf text for ``config.pbtxt``; ``validate_config`` checks names, dtypes, dims, batching,
instance groups and version policy, and, given the model's real signature (read from the
exported graph), that every config tensor exists there with the same dtype and compatible dims.

Example::

    sig = Signature(inputs=(Tensor("TEXT", "TYPE_STRING", (1,)),), outputs=(Tensor("EMBEDDING", "TYPE_FP32", (384,)),))
    config = build_config(sig, backend="python", max_batch_size=32, preferred_batch_sizes=(8, 16))
    validate_config(config, "embedder", signature=sig)
    text = to_pbtxt(config, name="embedder", versions=[1, 2])
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_llmops.exceptions import TritonConfigError
from airflow_provider_llmops.serving.names import check_model_name

__all__ = [
    "DATA_TYPES",
    "Signature",
    "Tensor",
    "build_config",
    "config_json",
    "to_pbtxt",
    "validate_config",
    "with_version_policy",
]

DATA_TYPES = frozenset(
    {
        "TYPE_BOOL",
        "TYPE_UINT8",
        "TYPE_UINT16",
        "TYPE_UINT32",
        "TYPE_UINT64",
        "TYPE_INT8",
        "TYPE_INT16",
        "TYPE_INT32",
        "TYPE_INT64",
        "TYPE_FP16",
        "TYPE_FP32",
        "TYPE_FP64",
        "TYPE_STRING",
        "TYPE_BF16",
    }
)
INSTANCE_KINDS = frozenset({"KIND_AUTO", "KIND_CPU", "KIND_GPU", "KIND_MODEL"})
PLATFORMS = frozenset(
    {"onnxruntime_onnx", "ensemble", "tensorrt_plan", "pytorch_libtorch", "tensorflow_savedmodel"}
)
# ONNX TensorProto element types -> Triton data types.
ONNX_TO_TRITON = {
    1: "TYPE_FP32",
    2: "TYPE_UINT8",
    3: "TYPE_INT8",
    4: "TYPE_UINT16",
    5: "TYPE_INT16",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    8: "TYPE_STRING",
    9: "TYPE_BOOL",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
    12: "TYPE_UINT32",
    13: "TYPE_UINT64",
    16: "TYPE_BF16",
}
# Fields whose JSON object is a protobuf map (rendered as repeated key/value entries).
_MAP_FIELDS = frozenset({"parameters", "input_map", "output_map", "metric_tags"})
_ENUM = re.compile(r"^(TYPE|KIND)_[A-Z0-9]+$")


@dataclass(frozen=True)
class Tensor:
    """One input or output: name, Triton data type and dims (``-1`` for a variable axis).

    ``dims`` exclude the batch axis when the model batches (``max_batch_size > 0``).
    """

    name: str
    data_type: str
    dims: tuple[int, ...]
    optional: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "data_type": self.data_type, "dims": list(self.dims)}
        if self.optional:
            out["optional"] = True
        return out


@dataclass(frozen=True)
class Signature:
    """A model's real inputs and outputs, as the exported graph (or the python model) defines them.

    ``batched``: the first axis of every tensor is the batch axis and is left out of ``dims``.
    """

    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    batched: bool = True
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "batched": self.batched,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Signature:
        def tensors(items: Iterable[Mapping[str, Any]]) -> tuple[Tensor, ...]:
            return tuple(
                Tensor(t["name"], t["data_type"], tuple(int(d) for d in t["dims"]), bool(t.get("optional")))
                for t in items
            )

        return cls(tensors(data["inputs"]), tensors(data["outputs"]), bool(data.get("batched", True)))

    @classmethod
    def from_onnx(cls, model: Any, *, batched: bool = True) -> Signature:
        """The signature of an ``onnx.ModelProto``: names, element types, dims (symbolic -> -1)."""

        def tensors(values: Iterable[Any]) -> tuple[Tensor, ...]:
            out = []
            for value in values:
                tensor_type = value.type.tensor_type
                dtype = ONNX_TO_TRITON.get(tensor_type.elem_type)
                if dtype is None:
                    raise TritonConfigError(
                        f"ONNX tensor {value.name!r} has element type {tensor_type.elem_type}, which Triton "
                        "has no data type for."
                    )
                dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim)
                out.append(Tensor(value.name, dtype, dims[1:] if batched else dims))
            return tuple(out)

        initializers = {init.name for init in model.graph.initializer}
        inputs = [v for v in model.graph.input if v.name not in initializers]
        return cls(tensors(inputs), tensors(model.graph.output), batched)


def build_config(
    signature: Signature,
    *,
    backend: str | None = None,
    platform: str | None = None,
    max_batch_size: int = 0,
    preferred_batch_sizes: Sequence[int] = (),
    max_queue_delay_us: int = 0,
    instance_count: int = 1,
    instance_kind: str = "KIND_CPU",
    parameters: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A Triton JSON model config (no name, no version policy) for ``signature``.

    ``preferred_batch_sizes`` or ``max_queue_delay_us`` turn dynamic batching on; it needs
    ``max_batch_size > 0`` and a batched signature.
    """
    config: dict[str, Any] = {}
    if backend:
        config["backend"] = backend
    if platform:
        config["platform"] = platform
    config["max_batch_size"] = max_batch_size
    config["input"] = [t.to_json() for t in signature.inputs]
    config["output"] = [t.to_json() for t in signature.outputs]
    if max_batch_size > 0 and (preferred_batch_sizes or max_queue_delay_us):
        batching: dict[str, Any] = {}
        if preferred_batch_sizes:
            batching["preferred_batch_size"] = list(preferred_batch_sizes)
        if max_queue_delay_us:
            batching["max_queue_delay_microseconds"] = max_queue_delay_us
        config["dynamic_batching"] = batching
    if platform != "ensemble":
        config["instance_group"] = [{"kind": instance_kind, "count": instance_count}]
    if parameters:
        config["parameters"] = {k: {"string_value": str(v)} for k, v in parameters.items()}
    if extra:
        config.update(copy.deepcopy(dict(extra)))
    return config


def with_version_policy(config: Mapping[str, Any], name: str, versions: Sequence[int]) -> dict[str, Any]:
    """A copy of ``config`` named ``name`` that serves exactly ``versions`` (``version_policy.specific``)."""
    out = copy.deepcopy(dict(config))
    out["name"] = name
    out["version_policy"] = {"specific": {"versions": sorted({int(v) for v in versions})}}
    return out


def config_json(config: Mapping[str, Any], name: str, versions: Sequence[int] | None = None) -> str:
    """The JSON string the load API takes as its config override."""
    full = with_version_policy(config, name, versions) if versions else {**config, "name": name}
    return json.dumps(full, sort_keys=True)


def _scalar(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str) and key in ("data_type", "kind", "format") and _ENUM.match(value):
        return value
    return json.dumps(str(value))


def _render(key: str, value: Any, indent: str) -> list[str]:
    if key in _MAP_FIELDS and isinstance(value, Mapping):
        lines = []
        for map_key, map_value in value.items():
            lines.append(f"{indent}{key} {{")
            lines.append(f"{indent}  key: {json.dumps(str(map_key))}")
            lines += _render("value", map_value, indent + "  ")
            lines.append(f"{indent}}}")
        return lines
    if isinstance(value, Mapping):
        lines = [f"{indent}{key} {{"]
        for sub_key, sub_value in value.items():
            lines += _render(sub_key, sub_value, indent + "  ")
        return [*lines, f"{indent}}}"]
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, Mapping) for v in value):
            lines = []
            for item in value:
                lines += _render(key, item, indent)
            return lines
        return [f"{indent}{key}: [ {', '.join(_scalar(key, v) for v in value)} ]"]
    return [f"{indent}{key}: {_scalar(key, value)}"]


def to_pbtxt(config: Mapping[str, Any], *, name: str, versions: Sequence[int] | None = None) -> str:
    """``config.pbtxt`` text for the JSON config (named ``name``; ``versions`` set the version policy)."""
    full = with_version_policy(config, name, versions) if versions else {**config, "name": name}
    ordered = {"name": full.pop("name"), **full}
    lines: list[str] = []
    for key, value in ordered.items():
        lines += _render(key, value, "")
    return "\n".join(lines) + "\n"


def _check_tensors(kind: str, items: Any, batched: bool, problems: list[str]) -> dict[str, Mapping[str, Any]]:
    if not isinstance(items, list) or not items:
        problems.append(f"{kind}: at least one tensor is needed")
        return {}
    seen: dict[str, Mapping[str, Any]] = {}
    for i, tensor in enumerate(items):
        where = f"{kind}[{i}]"
        name = tensor.get("name") if isinstance(tensor, Mapping) else None
        if not isinstance(name, str) or not name:
            problems.append(f"{where}: name is missing")
            continue
        where = f"{kind} {name!r}"
        if name in seen:
            problems.append(f"{where}: duplicate name")
        seen[name] = tensor
        if tensor.get("data_type") not in DATA_TYPES:
            problems.append(
                f"{where}: data_type {tensor.get('data_type')!r} is not one of Triton's TYPE_* values"
            )
        dims = tensor.get("dims")
        if not isinstance(dims, list) or any(not isinstance(d, int) or isinstance(d, bool) for d in dims):
            problems.append(f"{where}: dims must be a list of integers, got {dims!r}")
        elif any(d == 0 or d < -1 for d in dims):
            problems.append(f"{where}: dims must be positive or -1 (variable), got {dims}")
        elif not dims and not batched:
            problems.append(f"{where}: dims must not be empty for a model without batching (use [1])")
    return seen


def _dims_compatible(config_dims: Sequence[int], real_dims: Sequence[int]) -> bool:
    if len(config_dims) != len(real_dims):
        return False
    return all(
        c == r or r == -1 or (c == -1 and r == -1) for c, r in zip(config_dims, real_dims, strict=True)
    )


def validate_config(
    config: Mapping[str, Any],
    name: str,
    *,
    signature: Signature | None = None,
    known_models: Iterable[str] = (),
) -> None:
    """Raise :class:`TritonConfigError` listing every problem of ``config`` (served as ``name``).

    With ``signature``, every config input/output must exist in it with the same data type and
    compatible dims, and every required signature input must be in the config. For an ensemble,
    each step must name a model in ``known_models`` (when given) and map existing tensors.
    """
    check_model_name(name)
    problems: list[str] = []
    platform = config.get("platform")
    mbs = _check_basics(config, problems)
    inputs = _check_tensors("input", config.get("input"), mbs > 0, problems)
    outputs = _check_tensors("output", config.get("output"), mbs > 0, problems)
    _check_batching(config.get("dynamic_batching"), mbs, problems)
    _check_instances(config.get("instance_group", []), platform, problems)
    _check_version_policy(config.get("version_policy"), problems)
    if platform == "ensemble":
        _check_ensemble(config, inputs, outputs, set(known_models), problems)
    if signature is not None:
        _check_signature(signature, mbs, inputs, outputs, problems)
    if problems:
        raise TritonConfigError(
            f"Model config for {name!r} is invalid:\n  - "
            + "\n  - ".join(problems)
            + "\nNext: fix the packaging options (or the config you passed); nothing was published or loaded."
        )


def _check_basics(config: Mapping[str, Any], problems: list[str]) -> int:
    """Backend or platform, and max_batch_size (returned; 0 when invalid)."""
    backend, platform = config.get("backend"), config.get("platform")
    if bool(backend) == bool(platform):
        problems.append(
            "exactly one of backend (e.g. 'python') and platform (e.g. 'onnxruntime_onnx') is needed"
        )
    if platform and platform not in PLATFORMS:
        problems.append(f"platform {platform!r} is not one of {sorted(PLATFORMS)}")
    mbs = config.get("max_batch_size", 0)
    if not isinstance(mbs, int) or isinstance(mbs, bool) or mbs < 0:
        problems.append(f"max_batch_size must be an integer >= 0, got {mbs!r}")
        return 0
    return mbs


def _check_batching(batching: Mapping[str, Any] | None, mbs: int, problems: list[str]) -> None:
    if batching is None:
        return
    if mbs <= 0:
        problems.append("dynamic_batching needs max_batch_size > 0")
    for size in batching.get("preferred_batch_size", []):
        if not isinstance(size, int) or size < 1 or (mbs > 0 and size > mbs):
            problems.append(
                f"dynamic_batching.preferred_batch_size {size!r} must be in 1..max_batch_size ({mbs})"
            )
    delay = batching.get("max_queue_delay_microseconds", 0)
    if not isinstance(delay, int) or delay < 0:
        problems.append(f"dynamic_batching.max_queue_delay_microseconds must be >= 0, got {delay!r}")


def _check_instances(groups: list[Mapping[str, Any]], platform: str | None, problems: list[str]) -> None:
    if platform == "ensemble" and groups:
        problems.append("an ensemble has no instance_group (its steps' models do)")
    for i, group in enumerate(groups):
        count = group.get("count", 1)
        if not isinstance(count, int) or count < 1:
            problems.append(f"instance_group[{i}].count must be an integer >= 1, got {count!r}")
        if group.get("kind", "KIND_AUTO") not in INSTANCE_KINDS:
            problems.append(
                f"instance_group[{i}].kind {group.get('kind')!r} is not one of {sorted(INSTANCE_KINDS)}"
            )


def _check_version_policy(policy: Any, problems: list[str]) -> None:
    if policy is None:
        return
    versions = policy.get("specific", {}).get("versions") if isinstance(policy, Mapping) else None
    if versions is not None and (
        not versions or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in versions)
    ):
        problems.append(f"version_policy.specific.versions must be positive integers, got {versions!r}")


def _check_signature(
    signature: Signature, mbs: int, inputs: Mapping[str, Any], outputs: Mapping[str, Any], problems: list[str]
) -> None:
    """Every declared tensor exists in the exported graph with its dtype and dims; required inputs declared."""
    if signature.batched != (mbs > 0):
        problems.append(
            f"max_batch_size {mbs} does not fit the model: its signature is "
            f"{'batched (first axis)' if signature.batched else 'not batched'}"
        )
    for kind, declared, real in (("input", inputs, signature.inputs), ("output", outputs, signature.outputs)):
        real_by_name = {t.name: t for t in real}
        for tensor_name, tensor in declared.items():
            model_tensor = real_by_name.get(tensor_name)
            if model_tensor is None:
                problems.append(
                    f"{kind} {tensor_name!r} is not an {kind} of the model (it has {sorted(real_by_name)})"
                )
                continue
            if tensor.get("data_type") != model_tensor.data_type:
                problems.append(
                    f"{kind} {tensor_name!r}: data_type {tensor.get('data_type')} but the model has "
                    f"{model_tensor.data_type}"
                )
            dims = tensor.get("dims")
            if isinstance(dims, list) and not _dims_compatible(dims, model_tensor.dims):
                problems.append(
                    f"{kind} {tensor_name!r}: dims {dims} but the model has {list(model_tensor.dims)}"
                )
        if kind == "input":
            missing = [t.name for t in real if not t.optional and t.name not in declared]
            if missing:
                problems.append(f"input: the model needs {missing}, which the config does not declare")


def _check_ensemble(
    config: Mapping[str, Any],
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    known_models: set[str],
    problems: list[str],
) -> None:
    steps = config.get("ensemble_scheduling", {}).get("step", [])
    if not steps:
        problems.append("an ensemble needs ensemble_scheduling.step entries")
        return
    available = set(inputs)
    produced: set[str] = set()
    for i, step in enumerate(steps):
        model = step.get("model_name", "")
        if known_models and model not in known_models:
            problems.append(
                f"ensemble step {i}: model {model!r} is not part of the package ({sorted(known_models)})"
            )
        for tensor in step.get("input_map", {}).values():
            if tensor not in available:
                problems.append(f"ensemble step {i}: input tensor {tensor!r} is produced by no earlier step")
        for tensor in step.get("output_map", {}).values():
            available.add(tensor)
            produced.add(tensor)
    for name in outputs:
        if name not in produced:
            problems.append(f"ensemble output {name!r} is produced by no step")
