"""Package a Hugging Face model for Triton: ONNX export, served model, config, goldens, requirements.

A package is a folder::

    package.json          kind, platform, the configs (Triton JSON), signature, source lineage, content hash
    requirements.txt      what the python-backend model imports (install into Triton's model Python)
    goldens.json          golden inputs + outputs recorded here, for the deploy's smoke test
    models/<part>/        the files of one version of each Triton model ("main" is the served one)

Two kinds:

- ``embedding`` (a sentence-transformers folder, or any encoder): the transformer, its pooling
  (mean or CLS, from ``1_Pooling/config.json``) and L2 normalisation (when ``modules.json`` has
  ``Normalize``) are exported into one ONNX graph with dynamic batch and sequence axes. With
  ``platform="python"`` (the default; any Triton with the python backend) the served model
  tokenizes and runs that graph with onnxruntime: ``TEXT`` (TYPE_STRING) in, ``EMBEDDING`` FP32
  out. With ``platform="onnxruntime"`` the package is an ensemble for a full Triton: a python
  tokenizer step (``<model>_tokenize``) feeding the graph as ``<model>_onnx`` (platform
  ``onnxruntime_onnx``), same inputs and outputs.
- ``causal_lm``: a python-backend text generator over the exported LM (``PROMPT``, optional
  ``MAX_NEW_TOKENS`` and ``TEMPERATURE`` in, ``TEXT`` out).

Every config is generated from the exported graph's real signature and validated offline.

Example::

    pkg = package_model("/runs/ft/manifest.json", "/tmp/pkg", max_batch_size=32)
    pkg.content_hash, pkg.signature.outputs[0].dims  # ('3f9c...', (384,))
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from airflow_provider_llmops.exceptions import TritonConfigError, TritonPackagingError
from airflow_provider_llmops.serving.config import Signature, Tensor, build_config, validate_config
from airflow_provider_llmops.serving.manifest import ModelSource, read_source

__all__ = [
    "DEFAULT_GOLDEN_PROMPTS",
    "DEFAULT_GOLDEN_TEXTS",
    "ModelPackage",
    "package_causal_lm",
    "package_embedding",
    "package_model",
]

FORMAT = 1
TEMPLATES = Path(__file__).with_name("templates")
DEFAULT_GOLDEN_TEXTS = (
    "Triton serves the model this run trained.",
    "A short query",
    "Zero-downtime deploys keep the previous version serving until the new one passes its smoke test.",
    "Ünïcödé text, emoji 🚀 and numbers 12345.",
)
DEFAULT_GOLDEN_PROMPTS = ("The model", "Hello")
# The 2.51 python-backend stub reads numpy 2 arrays wrongly; newer Tritons accept either.
DEFAULT_NUMPY_REQUIREMENT = "numpy>=1.21,<2"


@dataclass(frozen=True)
class ModelPackage:
    """A packaged model on disk (see the module docstring); read one back with :meth:`load`."""

    path: str
    kind: str
    platform: str
    configs: dict[str, dict[str, Any]]
    signature: Signature
    source: ModelSource
    requirements: tuple[str, ...]
    content_hash: str

    @property
    def parts(self) -> list[str]:
        """The Triton models of this package, dependencies first, ``main`` (the served one) last."""
        return sorted(self.configs, key=lambda p: (p == "main", p))

    def files_dir(self, part: str = "main") -> Path:
        return Path(self.path) / "models" / part

    @staticmethod
    def model_name(model: str, part: str) -> str:
        """The Triton model name of ``part`` when the package is published as ``model``."""
        return model if part == "main" else f"{model}_{part}"

    def goldens(self) -> dict[str, Any]:
        return json.loads((Path(self.path) / "goldens.json").read_text())

    @classmethod
    def load(cls, path: str | Path) -> ModelPackage:
        """Read the package written by :func:`package_model` at ``path``."""
        root = Path(path)
        try:
            meta = json.loads((root / "package.json").read_text())
        except (OSError, ValueError) as err:
            raise TritonPackagingError(f"{root} is not a model package (package.json: {err}).") from err
        if meta.get("format") != FORMAT:
            raise TritonPackagingError(f"{root}: package format {meta.get('format')!r}, expected {FORMAT}.")
        return cls(
            path=str(root),
            kind=meta["kind"],
            platform=meta["platform"],
            configs=meta["configs"],
            signature=Signature.from_json(meta["signature"]),
            source=ModelSource(**meta["source"]),
            requirements=tuple(meta["requirements"]),
            content_hash=meta["content_hash"],
        )


def _pin(dist: str) -> str:
    try:
        return f"{dist}=={metadata.version(dist)}"
    except metadata.PackageNotFoundError:
        return dist


def _template(name: str) -> Any:
    """Import a python-backend template as a plain module (its helpers need no Triton)."""
    spec = importlib.util.spec_from_file_location(f"_llmops_template_{name}", TEMPLATES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hash_tree(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _fresh_dir(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not (out / "package.json").is_file():
            raise TritonPackagingError(
                f"Package folder {out} exists and holds other files; give an empty or new folder."
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _tokenizer_json(folder: Path, dest: Path) -> None:
    if (folder / "tokenizer.json").is_file():
        shutil.copyfile(folder / "tokenizer.json", dest)
        return
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise TritonPackagingError(
            f"{folder} has no tokenizer.json and its tokenizer has no fast version; the served model "
            "tokenizes with the `tokenizers` library, which needs tokenizer.json."
        )
    backend.save(str(dest))


def _pad_token(folder: Path) -> tuple[int, str]:
    tokenizer = (
        json.loads((folder / "tokenizer.json").read_text()) if (folder / "tokenizer.json").is_file() else {}
    )
    padding = tokenizer.get("padding") or {}
    if padding:
        return int(padding.get("pad_id", 0)), str(padding.get("pad_token", "[PAD]"))
    try:
        special = json.loads((folder / "special_tokens_map.json").read_text())
        pad = special.get("pad_token")
        pad_token = pad.get("content") if isinstance(pad, Mapping) else pad
    except (OSError, ValueError):
        pad_token = None
    vocab = (tokenizer.get("model") or {}).get("vocab") or {}
    if isinstance(pad_token, str) and isinstance(vocab, Mapping) and pad_token in vocab:
        return int(vocab[pad_token]), pad_token
    return 0, str(pad_token or "[PAD]")


def _sentence_settings(folder: Path) -> tuple[str, bool, int | None]:
    """(pooling, normalize, max_seq_length) from a sentence-transformers folder; defaults for others."""
    pooling, normalize, max_len = "mean", False, None
    try:
        modules = json.loads((folder / "modules.json").read_text())
    except (OSError, ValueError):
        modules = []
    for module in modules:
        kind = str(module.get("type", ""))
        if kind.endswith("Normalize"):
            normalize = True
        if kind.endswith("Pooling"):
            try:
                cfg = json.loads((folder / module.get("path", "") / "config.json").read_text())
            except (OSError, ValueError):
                cfg = {}
            if cfg.get("pooling_mode_cls_token"):
                pooling = "cls"
            elif cfg.get("pooling_mode_max_tokens"):
                pooling = "max"
    try:
        max_len = json.loads((folder / "sentence_bert_config.json").read_text()).get("max_seq_length")
    except (OSError, ValueError):
        pass
    return pooling, normalize, max_len


def _export_encoder(folder: Path, dest: Path, pooling: str, normalize: bool, opset: int) -> Any:
    import onnx
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(folder)).eval()
    names = ["input_ids", "attention_mask"]
    if getattr(model.config, "type_vocab_size", 0):
        names.append("token_type_ids")

    class Pooled(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *tensors: Any) -> Any:
            kwargs = dict(zip(names, tensors, strict=True))
            hidden = self.inner(**kwargs).last_hidden_state
            mask = kwargs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            if pooling == "cls":
                pooled = hidden[:, 0]
            elif pooling == "max":
                pooled = (hidden + (mask - 1.0) * 1e9).max(dim=1).values
            else:
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1) if normalize else pooled

    example = tuple(torch.ones((2, 8), dtype=torch.long) for _ in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["embedding"] = {0: "batch"}
    # The tracer warns about Python branches on shapes; the graph is checked against the goldens.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(model).eval(),
            example,
            str(dest),
            input_names=names,
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    graph = onnx.load(str(dest))
    # The exporter leaves the pooled width symbolic; it is the model's hidden size.
    graph.graph.output[0].type.tensor_type.shape.dim[1].dim_value = int(model.config.hidden_size)
    onnx.checker.check_model(graph)
    onnx.save(graph, str(dest))
    return graph


def _write_common(
    out: Path,
    *,
    kind: str,
    platform: str,
    configs: dict[str, dict[str, Any]],
    signature: Signature,
    source: ModelSource,
    requirements: Sequence[str],
    goldens: Mapping[str, Any],
) -> ModelPackage:
    (out / "goldens.json").write_text(json.dumps(goldens, indent=1, sort_keys=True))
    (out / "requirements.txt").write_text(
        "# Python packages the python-backend model imports; install them into the Python that\n"
        "# Triton's python backend runs (see the README, 'Model environment').\n"
        + "\n".join(requirements)
        + "\n"
    )
    content = hashlib.sha256()
    for part in sorted(configs):
        content.update(part.encode() + b"\0" + json.dumps(configs[part], sort_keys=True).encode())
        content.update(_hash_tree(out / "models" / part).encode())
    content.update((out / "goldens.json").read_bytes())
    content.update((out / "requirements.txt").read_bytes())
    package = ModelPackage(
        path=str(out),
        kind=kind,
        platform=platform,
        configs=configs,
        signature=signature,
        source=source,
        requirements=tuple(requirements),
        content_hash=content.hexdigest(),
    )
    meta = {
        "format": FORMAT,
        "kind": kind,
        "platform": platform,
        "configs": configs,
        "signature": signature.to_json(),
        "source": source.to_json(),
        "requirements": list(requirements),
        "content_hash": package.content_hash,
    }
    (out / "package.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    return package


def _check_batching(max_batch_size: int, preferred: Sequence[int], instance_count: int) -> None:
    if max_batch_size < 1:
        raise TritonConfigError(f"max_batch_size must be >= 1 for these models, got {max_batch_size!r}.")
    bad = [p for p in preferred if p < 1 or p > max_batch_size]
    if bad:
        raise TritonConfigError(
            f"preferred_batch_sizes {bad} must be in 1..max_batch_size ({max_batch_size})."
        )
    if instance_count < 1:
        raise TritonConfigError(f"instance_count must be >= 1, got {instance_count!r}.")


def package_embedding(
    source: str | Path | Mapping[str, Any] | ModelSource,
    out_dir: str | Path,
    *,
    platform: str = "python",
    max_batch_size: int = 32,
    preferred_batch_sizes: Sequence[int] = (8, 16, 32),
    max_queue_delay_us: int = 2000,
    dynamic_batching: bool = True,
    instance_count: int = 1,
    intra_op_threads: int = 0,
    max_length: int | None = None,
    golden_texts: Sequence[str] = DEFAULT_GOLDEN_TEXTS,
    atol: float = 1e-4,
    opset: int = 17,
    numpy_requirement: str = DEFAULT_NUMPY_REQUIREMENT,
) -> ModelPackage:
    """Package an embedding model (see the module docstring); returns the package written to ``out_dir``.

    Example::

        pkg = package_embedding("/models/all-MiniLM-L6-v2", "/tmp/minilm-pkg", instance_count=2)
    """
    if platform not in ("python", "onnxruntime"):
        raise TritonConfigError(f"platform must be 'python' or 'onnxruntime', got {platform!r}.")
    _check_batching(max_batch_size, preferred_batch_sizes if dynamic_batching else (), instance_count)
    src = source if isinstance(source, ModelSource) else read_source(source)
    folder = Path(src.model_path)
    out = _fresh_dir(out_dir)
    main = out / "models" / "main"
    main.mkdir(parents=True)
    pooling, normalize, st_max_len = _sentence_settings(folder)
    try:
        graph = _export_encoder(folder, main / "model.onnx", pooling, normalize, opset)
    except TritonPackagingError:
        raise
    except Exception as err:
        raise TritonPackagingError(f"Exporting {folder} to ONNX failed: {type(err).__name__}: {err}") from err
    graph_sig = Signature.from_onnx(graph)
    dims = graph_sig.outputs[0].dims
    if len(dims) != 1 or dims[0] < 1:
        raise TritonPackagingError(
            f"The exported graph's output has dims {list(dims)}; expected [hidden_size]."
        )
    _tokenizer_json(folder, main / "tokenizer.json")
    pad_id, pad_token = _pad_token(folder)
    settings = {
        "dims": dims[0],
        "max_length": int(max_length or st_max_len or 512),
        "pad_id": pad_id,
        "pad_token": pad_token,
        "pooling": pooling,
        "normalize": normalize,
        "graph_inputs": [t.name for t in graph_sig.inputs],
        "chunk": max_batch_size,
    }
    (main / "serving.json").write_text(json.dumps(settings, indent=1, sort_keys=True))
    encoder = _template("embedding_model").Encoder(str(main))
    vectors = encoder.encode(list(golden_texts))
    shutil.copyfile(TEMPLATES / "embedding_model.py", main / "model.py")
    served = Signature(
        inputs=(Tensor("TEXT", "TYPE_STRING", (1,)),),
        outputs=(Tensor("EMBEDDING", "TYPE_FP32", dims),),
    )
    batching = {
        "preferred_batch_sizes": preferred_batch_sizes if dynamic_batching else (),
        "max_queue_delay_us": max_queue_delay_us if dynamic_batching else 0,
    }
    # Read back by TritonEmbeddingClient (normalized) and shown by GET .../config.
    params = {"intra_op_threads": str(intra_op_threads), "llmops_normalized": str(normalize).lower()}
    configs: dict[str, dict[str, Any]] = {}
    if platform == "python":
        configs["main"] = build_config(
            served,
            backend="python",
            max_batch_size=max_batch_size,
            instance_count=instance_count,
            parameters=params,
            **batching,  # type: ignore[arg-type]
        )
        validate_config(configs["main"], "main", signature=served)
    else:
        configs = _ensemble_parts(
            out, main, graph_sig, served, max_batch_size, instance_count, batching, params
        )
    requirements = [numpy_requirement, _pin("onnxruntime"), _pin("tokenizers")]
    goldens = {
        "inputs": [
            {"name": "TEXT", "datatype": "BYTES", "shape": [len(golden_texts), 1], "data": list(golden_texts)}
        ],
        "outputs": [
            {
                "name": "EMBEDDING",
                "datatype": "FP32",
                "shape": list(vectors.shape),
                "data": [float(v) for v in vectors.reshape(-1)],
            }
        ],
        "atol": atol,
    }
    return _write_common(
        out,
        kind="embedding",
        platform=platform,
        configs=configs,
        signature=served,
        source=src,
        requirements=requirements,
        goldens=goldens,
    )


def _ensemble_parts(
    out: Path,
    main: Path,
    graph_sig: Signature,
    served: Signature,
    max_batch_size: int,
    instance_count: int,
    batching: Mapping[str, Any],
    params: Mapping[str, str],
) -> dict[str, dict[str, Any]]:
    """Tokenizer (python) -> graph (onnxruntime_onnx) -> ``main`` ensemble, for a full Triton."""
    onnx_dir, tok_dir = out / "models" / "onnx", out / "models" / "tokenize"
    onnx_dir.mkdir(parents=True)
    tok_dir.mkdir(parents=True)
    (main / "model.onnx").rename(onnx_dir / "model.onnx")
    shutil.copyfile(main / "tokenizer.json", tok_dir / "tokenizer.json")
    shutil.copyfile(main / "serving.json", tok_dir / "serving.json")
    shutil.copyfile(TEMPLATES / "tokenizer_model.py", tok_dir / "model.py")
    for path in main.iterdir():
        path.unlink()
    (main / ".ensemble").write_text("versions of an ensemble hold no files\n")
    onnx_config = build_config(
        graph_sig,
        platform="onnxruntime_onnx",
        max_batch_size=max_batch_size,
        instance_count=instance_count,
        **batching,  # type: ignore[arg-type]
    )
    validate_config(onnx_config, "onnx", signature=graph_sig)
    token_sig = Signature(
        inputs=served.inputs, outputs=tuple(Tensor(t.name, "TYPE_INT64", (-1,)) for t in graph_sig.inputs)
    )
    tok_config = build_config(
        token_sig,
        backend="python",
        max_batch_size=max_batch_size,
        instance_count=instance_count,
        parameters=params,
    )
    validate_config(tok_config, "tokenize", signature=token_sig)
    steps = [
        {
            "model_name": "{model}_tokenize",
            "model_version": -1,
            "input_map": {"TEXT": "TEXT"},
            "output_map": {t.name: t.name for t in graph_sig.inputs},
        },
        {
            "model_name": "{model}_onnx",
            "model_version": -1,
            "input_map": {t.name: t.name for t in graph_sig.inputs},
            "output_map": {graph_sig.outputs[0].name: "EMBEDDING"},
        },
    ]
    ensemble = build_config(
        served,
        platform="ensemble",
        max_batch_size=max_batch_size,
        extra={"ensemble_scheduling": {"step": steps}},
    )
    validate_config(ensemble, "main", signature=served, known_models={"{model}_tokenize", "{model}_onnx"})
    return {"main": ensemble, "onnx": onnx_config, "tokenize": tok_config}


def _export_causal_lm(folder: Path, dest: Path, opset: int) -> tuple[Any, Any]:
    import onnx
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    config = model.config
    positions = (
        getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None) or 1024
    )

    class Logits(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any) -> Any:
            return self.inner(input_ids=input_ids, use_cache=False).logits

    # The dynamo exporter: the TorchScript one bakes the traced length into the causal mask.
    from torch.export import Dim

    shapes = {"input_ids": {0: Dim("batch"), 1: Dim("sequence", min=1, max=int(positions))}}
    with torch.no_grad():
        torch.onnx.export(
            Logits(model).eval(),
            (torch.ones((2, 8), dtype=torch.long),),
            str(dest),
            input_names=["input_ids"],
            output_names=["logits"],
            dynamic_shapes=shapes,
            opset_version=max(opset, 18),
            dynamo=True,
        )
    graph = onnx.load(str(dest))
    onnx.checker.check_model(graph)
    return graph, model.config


def package_causal_lm(
    source: str | Path | Mapping[str, Any] | ModelSource,
    out_dir: str | Path,
    *,
    max_batch_size: int = 8,
    instance_count: int = 1,
    intra_op_threads: int = 0,
    default_max_new_tokens: int = 32,
    golden_prompts: Sequence[str] = DEFAULT_GOLDEN_PROMPTS,
    golden_max_new_tokens: int = 8,
    opset: int = 17,
    numpy_requirement: str = DEFAULT_NUMPY_REQUIREMENT,
) -> ModelPackage:
    """Package a causal LM as a python-backend text generator (greedy goldens for the smoke test).

    Example::

        pkg = package_causal_lm("/runs/tiny-lm/manifest.json", "/tmp/lm-pkg", default_max_new_tokens=16)
    """
    _check_batching(max_batch_size, (), instance_count)
    src = source if isinstance(source, ModelSource) else read_source(source)
    folder = Path(src.model_path)
    out = _fresh_dir(out_dir)
    main = out / "models" / "main"
    main.mkdir(parents=True)
    try:
        graph, config = _export_causal_lm(folder, main / "model.onnx", opset)
    except Exception as err:
        raise TritonPackagingError(f"Exporting {folder} to ONNX failed: {type(err).__name__}: {err}") from err
    _tokenizer_json(folder, main / "tokenizer.json")
    graph_sig = Signature.from_onnx(graph)
    if [t.name for t in graph_sig.inputs] != ["input_ids"]:
        raise TritonPackagingError(
            f"The exported LM takes {[t.name for t in graph_sig.inputs]}; expected input_ids."
        )
    positions = (
        getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None) or 1024
    )
    settings = {
        "max_positions": int(positions),
        "eos_token_id": getattr(config, "eos_token_id", None),
        "bos_id": int(getattr(config, "bos_token_id", None) or 0),
        "default_max_new_tokens": default_max_new_tokens,
    }
    (main / "serving.json").write_text(json.dumps(settings, indent=1, sort_keys=True))
    generator = _template("generate_model").Generator(str(main))
    texts = [generator.generate(p, golden_max_new_tokens, 0.0) for p in golden_prompts]
    shutil.copyfile(TEMPLATES / "generate_model.py", main / "model.py")
    served = Signature(
        inputs=(
            Tensor("PROMPT", "TYPE_STRING", (1,)),
            Tensor("MAX_NEW_TOKENS", "TYPE_INT32", (1,), optional=True),
            Tensor("TEMPERATURE", "TYPE_FP32", (1,), optional=True),
        ),
        outputs=(Tensor("TEXT", "TYPE_STRING", (1,)),),
    )
    configs = {
        "main": build_config(
            served,
            backend="python",
            max_batch_size=max_batch_size,
            instance_count=instance_count,
            parameters={"intra_op_threads": str(intra_op_threads)},
        )
    }
    validate_config(configs["main"], "main", signature=served)
    n = len(golden_prompts)
    goldens = {
        "inputs": [
            {"name": "PROMPT", "datatype": "BYTES", "shape": [n, 1], "data": list(golden_prompts)},
            {
                "name": "MAX_NEW_TOKENS",
                "datatype": "INT32",
                "shape": [n, 1],
                "data": [golden_max_new_tokens] * n,
            },
            {"name": "TEMPERATURE", "datatype": "FP32", "shape": [n, 1], "data": [0.0] * n},
        ],
        "outputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [n, 1], "data": texts}],
        "atol": 0.0,
    }
    return _write_common(
        out,
        kind="causal_lm",
        platform="python",
        configs=configs,
        signature=served,
        source=src,
        requirements=[numpy_requirement, _pin("onnxruntime"), _pin("tokenizers")],
        goldens=goldens,
    )


def package_model(
    source: str | Path | Mapping[str, Any], out_dir: str | Path, *, kind: str = "auto", **options: Any
) -> ModelPackage:
    """Package ``source`` as ``kind`` (``auto``: the manifest's ``task``, else guessed from the folder)."""
    src = read_source(source)
    chosen = src.task if kind == "auto" else kind
    if chosen in ("embedding", "sentence-embedding", "feature-extraction"):
        return package_embedding(src, out_dir, **options)
    if chosen in ("causal_lm", "causal-lm", "text-generation"):
        return package_causal_lm(src, out_dir, **options)
    raise TritonPackagingError(
        f"Cannot tell how to package {src.model_path} (task {chosen!r}); pass kind='embedding' or 'causal_lm'."
    )
