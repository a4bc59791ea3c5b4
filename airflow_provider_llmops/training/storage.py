"""The output location of a run: a mounted path or an fsspec URI (``file://``, ``s3://``, ``gs://``).

Layout under the output root::

    checkpoints/step-00000040/        DeepSpeed checkpoint (complete once COMPLETE is there)
    checkpoints/step-00000040/COMPLETE  {"step": 40, "spec_hash": ...}, written last
    checkpoints/.partial/              where ranks write a checkpoint before it is moved in place
    model/                             the final Hugging Face model (safetensors)
    manifest.json                      written last of all: the run is finished
    loss.png

Only fsspec (already an Airflow dependency) is needed, so the operators use this module too to
read the manifest and refuse a conflicting output before launching. Example::

    store = OutputStore("s3://bucket/runs/bot")
    store.complete_steps()          # [40, 80]
    store.read_manifest()           # dict or None
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

from airflow_provider_llmops.exceptions import TrainingManifestError, TrainingOutputConflictError

__all__ = ["MANIFEST", "OutputStore", "check_output"]

MANIFEST = "manifest.json"
COMPLETE = "COMPLETE"
_STEP_DIR = re.compile(r"^step-(\d{8})$")


def step_tag(step: int) -> str:
    return f"step-{step:08d}"


class OutputStore:
    """Files of one run's output location, through fsspec (a local path needs no scheme)."""

    def __init__(self, uri: str, **storage_options: Any) -> None:
        import fsspec.core
        from fsspec.implementations.local import LocalFileSystem

        self.uri = uri.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.uri, **storage_options)
        self.root = self.root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)

    def path(self, rel: str = "") -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def uri_of(self, rel: str) -> str:
        return f"{self.uri}/{rel}"

    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self.path(rel)))

    def read_text(self, rel: str) -> str:
        with self.fs.open(self.path(rel), "r", encoding="utf-8") as fh:
            return str(fh.read())

    def write_text(self, rel: str, text: str) -> None:
        """Write a small file so that readers see the old content or the new one, never a part."""
        target = self.path(rel)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
            Path(tmp).write_text(text, encoding="utf-8")
            os.replace(tmp, target)
        else:
            with self.fs.open(target, "w", encoding="utf-8") as fh:
                fh.write(text)

    def put_dir(self, local_dir: str | Path, rel: str) -> None:
        self.fs.put(str(local_dir).rstrip("/") + "/", self.path(rel), recursive=True)

    def get_dir(self, rel: str, local_dir: str | Path) -> None:
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        self.fs.get(self.path(rel) + "/", str(local_dir).rstrip("/") + "/", recursive=True)

    def put_file(self, local_file: str | Path, rel: str) -> None:
        self.fs.put_file(str(local_file), self.path(rel))

    def remove(self, rel: str) -> None:
        if self.fs.exists(self.path(rel)):
            self.fs.rm(self.path(rel), recursive=True)

    # -- checkpoints ---------------------------------------------------------------------------

    def complete_steps(self) -> list[int]:
        """Steps of the checkpoints marked complete, oldest first; half-written ones are ignored."""
        base = self.path("checkpoints")
        if not self.fs.exists(base):
            return []
        steps = []
        for entry in self.fs.ls(base, detail=False):
            match = _STEP_DIR.match(str(entry).rstrip("/").rsplit("/", 1)[-1])
            if match and self.fs.exists(f"{str(entry).rstrip('/')}/{COMPLETE}"):
                steps.append(int(match.group(1)))
        return sorted(steps)

    def checkpoint_marker(self, step: int) -> dict[str, Any]:
        return json.loads(self.read_text(f"checkpoints/{step_tag(step)}/{COMPLETE}"))

    def mark_complete(self, step: int, info: dict[str, Any]) -> None:
        self.write_text(f"checkpoints/{step_tag(step)}/{COMPLETE}", json.dumps(info, sort_keys=True))

    def prune(self, keep: int) -> None:
        """Remove all but the newest `keep` complete checkpoints (newest last, so a crash keeps it)."""
        for step in self.complete_steps()[:-keep]:
            # The marker goes first: a half-removed checkpoint must never look complete.
            self.remove(f"checkpoints/{step_tag(step)}/{COMPLETE}")
            self.remove(f"checkpoints/{step_tag(step)}")

    # -- manifest ------------------------------------------------------------------------------

    def read_manifest(self) -> dict[str, Any] | None:
        if not self.exists(MANIFEST):
            return None
        try:
            data = json.loads(self.read_text(MANIFEST))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise TrainingManifestError(f"{self.uri_of(MANIFEST)} is not valid JSON: {err}") from err
        if not isinstance(data, dict):
            raise TrainingManifestError(f"{self.uri_of(MANIFEST)} must hold a JSON object")
        return data


def check_output(store: OutputStore, spec_hash: str) -> dict[str, Any] | None:
    """The finished manifest of this spec at `store` (None: nothing finished there yet).

    Raises `TrainingOutputConflictError` when the location holds a finished run, or checkpoints,
    of a different spec: training there would overwrite or mix two runs.
    """
    manifest = store.read_manifest()
    if manifest is not None:
        if manifest.get("spec_hash") != spec_hash:
            raise TrainingOutputConflictError(
                f"output {store.uri} already holds a finished run of another spec (spec hash "
                f"{manifest.get('spec_hash')!r}, this spec {spec_hash!r}); choose a new output location "
                "(e.g. one that includes the spec hash) or delete the old run"
            )
        return manifest
    steps = store.complete_steps()
    if steps:
        other = store.checkpoint_marker(steps[-1]).get("spec_hash")
        if other != spec_hash:
            raise TrainingOutputConflictError(
                f"output {store.uri} holds checkpoints of another spec (spec hash {other!r}, this spec "
                f"{spec_hash!r}); resuming would mix two runs: choose a new output location or delete them"
            )
    return None
