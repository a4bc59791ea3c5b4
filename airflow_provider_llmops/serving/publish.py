"""Publish a :class:`ModelPackage` into a Triton model repository: ``<repository>/<model>/<version>/``.

Rules:

- versions are positive integers; without one, the next free version is used, unless the
  newest published version already holds this exact content (same content hash): then that
  version is returned and nothing is written (a rerun is a no-op);
- an existing version is never overwritten: same content hash -> no-op, other content -> error;
- writes are atomic. On a local or shared filesystem the version is written into a hidden
  staging folder inside the model folder, then renamed into place (Triton ignores folders that
  are not integers). On an object store (``s3://``, ``gs://``, any fsspec URI) the files are
  uploaded first and ``.llmops-version.json`` last: a version without that marker is incomplete
  and is never loaded by the deploy manager;
- each version holds ``.llmops-version.json`` (content hash, source lineage) and ``.llmops/``
  (``package.json``, ``goldens.json``, ``requirements.txt``) next to the model files;
- ``config.pbtxt`` (one per model, shared by its versions) is rewritten atomically, with the
  version policy the caller asks for.

Example::

    repo = ModelRepository("/srv/triton/models")            # or "s3://bucket/models"
    result = repo.publish(package, "minilm")               # PublishedVersion(model="minilm", version=3, ...)
    repo.versions("minilm")                                 # [1, 2, 3]
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_llmops.exceptions import TritonPublishError, TritonVersionError
from airflow_provider_llmops.serving.config import to_pbtxt, validate_config
from airflow_provider_llmops.serving.names import check_model_name, check_version
from airflow_provider_llmops.serving.package import ModelPackage

__all__ = ["MARKER", "ModelRepository", "PublishedVersion", "resolve_config"]

MARKER = ".llmops-version.json"
META_DIR = ".llmops"


@dataclass(frozen=True)
class PublishedVersion:
    """One version in the repository: where, which content, and whether this call wrote it."""

    model: str
    version: int
    uri: str
    content_hash: str
    created: bool
    configs: dict[str, dict[str, Any]]


def resolve_config(config: dict[str, Any], model: str) -> dict[str, Any]:
    """Replace the ``{model}`` placeholder of ensemble steps by the published model name."""
    text = json.dumps(config).replace("{model}", model)
    return json.loads(text)


class ModelRepository:
    """A Triton model repository: a local/shared folder or an fsspec URI (see the module docstring)."""

    def __init__(self, uri: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None) -> None:
        self.uri = str(uri)
        parts = urlsplit(self.uri)
        self.local = not parts.scheme or parts.scheme == "file" or len(parts.scheme) == 1
        self._root = Path(parts.path if parts.scheme == "file" else self.uri) if self.local else None
        self._storage_options = storage_options or {}
        self._fs: Any = None

    # -- storage primitives -----------------------------------------------------------------

    @property
    def fs(self) -> Any:
        if self._fs is None:
            import fsspec

            self._fs = fsspec.core.url_to_fs(self.uri, **self._storage_options)[0]
        return self._fs

    def _join(self, *parts: str) -> str:
        return "/".join([self.uri.rstrip("/"), *parts])

    def _read_text(self, *parts: str) -> str | None:
        if self._root is not None:
            path = self._root.joinpath(*parts)
            return path.read_text() if path.is_file() else None
        target = self._join(*parts)
        return self.fs.cat_file(target).decode() if self.fs.isfile(target) else None

    def _write_text(self, text: str, *parts: str) -> None:
        if self._root is not None:
            path = self._root.joinpath(*parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            tmp.write_text(text)
            os.replace(tmp, path)
            return
        self.fs.pipe_file(self._join(*parts), text.encode())

    def _children(self, *parts: str) -> list[str]:
        if self._root is not None:
            path = self._root.joinpath(*parts)
            return sorted(p.name for p in path.iterdir()) if path.is_dir() else []
        target = self._join(*parts)
        if not self.fs.isdir(target):
            return []
        return sorted(str(p).rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(target, detail=False))

    # -- reading ----------------------------------------------------------------------------

    def versions(self, model: str, *, complete_only: bool = True) -> list[int]:
        """The integer versions of ``model`` (only those with a marker, unless ``complete_only=False``)."""
        check_model_name(model)
        found = [int(n) for n in self._children(model) if n.isdigit() and int(n) > 0]
        if complete_only:
            found = [v for v in found if self.version_info(model, v) is not None]
        return sorted(found)

    def version_info(self, model: str, version: int) -> dict[str, Any] | None:
        """The marker of ``model/version`` (content hash, lineage), or None when absent/incomplete."""
        text = self._read_text(check_model_name(model), str(check_version(version)), MARKER)
        return json.loads(text) if text else None

    def goldens(self, model: str, version: int) -> dict[str, Any]:
        text = self._read_text(check_model_name(model), str(check_version(version)), META_DIR, "goldens.json")
        if text is None:
            raise TritonVersionError(f"{self._join(model, str(version))} has no {META_DIR}/goldens.json.")
        return json.loads(text)

    def config(self, model: str, version: int) -> dict[str, Any]:
        """The Triton JSON config recorded with ``model/version``."""
        info = self.version_info(model, version)
        if info is None:
            raise TritonVersionError(
                f"Version {version} of {model!r} is not published (complete) in {self.uri}; "
                f"published: {self.versions(model)}."
            )
        return dict(info["config"])

    def uri_of(self, model: str, version: int | None = None) -> str:
        return self._join(model, str(version)) if version else self._join(model)

    # -- writing ----------------------------------------------------------------------------

    def write_config(self, model: str, config: dict[str, Any], versions: Sequence[int]) -> None:
        """Atomically (re)write ``<model>/config.pbtxt`` serving exactly ``versions``."""
        self._write_text(
            to_pbtxt(config, name=check_model_name(model), versions=versions), model, "config.pbtxt"
        )

    def publish(
        self,
        package: ModelPackage,
        model: str,
        version: int | None = None,
        *,
        config_versions: Sequence[int] | None = None,
    ) -> PublishedVersion:
        """Write ``package`` as ``model/version`` (every part of it) and return what is there now.

        ``config_versions``: the version policy written into each ``config.pbtxt`` when it is
        created (default: the published version only). An existing ``config.pbtxt`` is left as
        is: the deploy manager rewrites it once the new version serves.

        :raises TritonPublishError: the version exists with other content, or writing failed.
        """
        check_model_name(model)
        names = {part: package.model_name(model, part) for part in package.parts}
        for name in names.values():
            check_model_name(name)
        configs = {part: resolve_config(package.configs[part], model) for part in package.parts}
        for part, config in configs.items():
            validate_config(
                config,
                names[part],
                signature=package.signature if part == "main" else None,
                known_models=names.values(),
            )
        if version is None:
            existing = self.versions(model)
            if existing:
                newest = self.version_info(model, existing[-1]) or {}
                if newest.get("content_hash") == package.content_hash:
                    return self._existing(model, existing[-1], newest, configs)
            version = max([0, *self.versions(model, complete_only=False)]) + 1
        version = check_version(version)
        info = self.version_info(model, version)
        if info is not None:
            if info.get("content_hash") == package.content_hash:
                return self._existing(model, version, info, configs)
            raise TritonPublishError(
                f"Version {version} of {model!r} in {self.uri} already holds other content "
                f"(content hash {str(info.get('content_hash'))[:12]}, this package {package.content_hash[:12]}); "
                "a published version is never overwritten. Next: publish as a new version (leave version unset)."
            )
        if str(version) in self._children(model):
            raise TritonPublishError(
                f"{self._join(model, str(version))} exists but was not completely written by this provider "
                f"(no {MARKER}). Next: inspect and delete it, or publish as another version."
            )
        for part in package.parts:
            marker = {
                "model": names[part],
                "version": version,
                "content_hash": package.content_hash,
                "part": part,
                "kind": package.kind,
                "platform": package.platform,
                "config": configs[part],
                "source": package.source.to_json(),
            }
            try:
                self._write_version(package, part, names[part], version, marker)
            except OSError as err:
                raise TritonPublishError(
                    f"Writing {self._join(names[part], str(version))} failed: {err}. Nothing half-written is "
                    "visible as a version; fix the storage problem and publish again."
                ) from err
            if self._read_text(names[part], "config.pbtxt") is None:
                self.write_config(names[part], configs[part], config_versions or [version])
        return PublishedVersion(
            model, version, self.uri_of(model, version), package.content_hash, True, configs
        )

    def _existing(
        self, model: str, version: int, info: dict[str, Any], configs: dict[str, dict[str, Any]]
    ) -> PublishedVersion:
        return PublishedVersion(
            model, version, self.uri_of(model, version), info["content_hash"], False, configs
        )

    def _write_version(self, package: ModelPackage, part: str, name: str, version: int, marker: dict) -> None:
        files = package.files_dir(part)
        meta_files = {
            "package.json": Path(package.path) / "package.json",
            "goldens.json": Path(package.path) / "goldens.json",
            "requirements.txt": Path(package.path) / "requirements.txt",
        }
        marker_text = json.dumps(marker, indent=1, sort_keys=True)
        if self._root is not None:
            model_dir = self._root / name
            model_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".llmops-staging-{version}-", dir=model_dir))
            try:
                shutil.copytree(files, staging, dirs_exist_ok=True)
                (staging / META_DIR).mkdir(exist_ok=True)
                for target, src in meta_files.items():
                    shutil.copyfile(src, staging / META_DIR / target)
                (staging / MARKER).write_text(marker_text)
                staging.chmod(0o755)
                # rename() of a directory onto a missing name is atomic on POSIX.
                os.rename(staging, model_dir / str(version))
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return
        target = self._join(name, str(version))
        for path in sorted(p for p in files.rglob("*") if p.is_file()):
            self.fs.put_file(str(path), f"{target}/{path.relative_to(files).as_posix()}")
        for rel, src in meta_files.items():
            self.fs.put_file(str(src), f"{target}/{META_DIR}/{rel}")
        self.fs.pipe_file(f"{target}/{MARKER}", marker_text.encode())  # last: marks the version complete
