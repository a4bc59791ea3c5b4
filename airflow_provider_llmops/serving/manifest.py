"""Where a model to package comes from: a training ``manifest.json`` or a bare Hugging Face folder.

Fields read from a manifest (everything else is ignored):

- the model folder: ``model_path`` (a local path), else ``model_uri``, else ``<output_uri>/model``;
  a relative path is taken relative to the manifest's folder, and a ``file://`` URI is made local;
- ``spec_hash``; ``dataset_rev`` or ``dataset.rev``; ``dataset_md5`` or ``dataset.md5``;
- ``base_model``, ``name`` and ``task`` (``embedding``/``causal_lm``; else guessed from the folder).

Example::

    source = read_source("/runs/minilm-ft/manifest.json")
    source.model_path, source.spec_hash, source.dataset_rev
    read_source("/models/all-MiniLM-L6-v2")  # a Hugging Face folder, no manifest
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_llmops.exceptions import TritonPackagingError

__all__ = ["ModelSource", "read_source"]

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ModelSource:
    """A local Hugging Face model folder plus the lineage the deploy's Asset event carries."""

    model_path: str
    source_uri: str
    spec_hash: str = ""
    dataset_rev: str = ""
    dataset_md5: str = ""
    base_model: str = ""
    name: str = ""
    task: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _local(uri: str, base: Path) -> Path:
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(parts.path)
    if parts.scheme and len(parts.scheme) > 1:
        raise TritonPackagingError(
            f"The manifest's model is at {uri!r}, which is not a local path. Packaging reads a local "
            "folder: copy the model down first (e.g. with fsspec) and pass manifest={'model_path': ...}."
        )
    path = Path(uri)
    return path if path.is_absolute() else (base / path)


def _guess_task(folder: Path) -> str:
    if (folder / "modules.json").is_file() or (folder / "sentence_bert_config.json").is_file():
        return "embedding"
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return ""
    architectures = " ".join(config.get("architectures") or [])
    return "causal_lm" if "CausalLM" in architectures or "LMHead" in architectures else "embedding"


def read_source(source: str | Path | Mapping[str, Any]) -> ModelSource:
    """A :class:`ModelSource` from a manifest dict, a ``manifest.json`` path, or a model folder.

    A folder holding ``manifest.json`` is read as that manifest.
    """
    base = Path.cwd()
    manifest: Mapping[str, Any] | None
    if isinstance(source, Mapping):
        manifest = source
    else:
        path = Path(source)
        if path.is_dir() and (path / MANIFEST).is_file():
            path = path / MANIFEST
        if path.is_file() and path.suffix == ".json":
            try:
                manifest = json.loads(path.read_text())
            except ValueError as err:
                raise TritonPackagingError(f"{path} is not valid JSON: {err}") from err
            base = path.parent
        elif path.is_dir():
            manifest = None
        else:
            raise TritonPackagingError(
                f"Model source {str(path)!r} is neither a Hugging Face model folder nor a manifest.json."
            )
    if manifest is None:
        folder = Path(source).resolve()  # type: ignore[arg-type]
        return ModelSource(str(folder), folder.as_uri(), task=_guess_task(folder), name=folder.name)
    model = manifest.get("model_path") or manifest.get("model_uri")
    if not model and manifest.get("output_uri"):
        model = str(manifest["output_uri"]).rstrip("/") + "/model"
    if not model:
        raise TritonPackagingError(
            "The manifest names no model: it needs model_path, model_uri or output_uri "
            f"(it has {sorted(manifest)})."
        )
    folder = _local(str(model), base).resolve()
    if not (folder / "config.json").is_file():
        raise TritonPackagingError(
            f"The manifest's model folder {str(folder)!r} has no config.json: it is not a Hugging Face model "
            "folder (or the training run did not finish)."
        )
    raw_dataset = manifest.get("dataset")
    dataset: Mapping[str, Any] = raw_dataset if isinstance(raw_dataset, Mapping) else {}
    return ModelSource(
        model_path=str(folder),
        source_uri=str(manifest.get("model_uri") or manifest.get("output_uri") or folder.as_uri()),
        spec_hash=str(manifest.get("spec_hash") or ""),
        dataset_rev=str(manifest.get("dataset_rev") or dataset.get("rev") or ""),
        dataset_md5=str(manifest.get("dataset_md5") or dataset.get("md5") or ""),
        base_model=str(manifest.get("base_model") or ""),
        name=str(manifest.get("name") or ""),
        task=str(manifest.get("task") or _guess_task(folder)),
    )
