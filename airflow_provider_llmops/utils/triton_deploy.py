"""Zero-downtime deploy and rollback of Triton model versions (EXPLICIT model-control mode).

Deploy: publish -> load the new version next to the served one (one load call with a version
policy holding both: Triton keeps the loaded version serving while the new one loads) -> wait
for that version's readiness -> smoke test it, pinned to its version, against the goldens
recorded at packaging -> keep the newest ``retention`` versions loaded (the new one, the
highest, is what unversioned requests get) -> rewrite ``config.pbtxt`` with that policy.

On any failure the load is undone with the previous version policy (the failed version is
unloaded, the previous version never stopped serving) and the task fails with Triton's error.
Rerunning the same deploy finds the same content already published and served: a no-op.

Triton answers unversioned requests with the highest READY version, so the new version takes
traffic from the moment it is ready; the smoke test follows within milliseconds, and a failure
rolls back at once. Clients that must never see an untested version pin ``model_version``.

Example::

    manager = TritonDeployManager(TritonHook("llmops_triton_default"), ModelRepository("/models"), log)
    record = manager.deploy(ModelPackage.load("/tmp/pkg"), "minilm", retention=2)
    manager.rollback("minilm")  # the previous version serves again
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.exceptions import (
    TritonConnectionError,
    TritonDeployError,
    TritonModelLoadError,
    TritonSmokeTestError,
    TritonVersionError,
)
from airflow_provider_llmops.serving.config import validate_config, with_version_policy
from airflow_provider_llmops.serving.names import check_model_name, check_version
from airflow_provider_llmops.serving.publish import resolve_config
from airflow_provider_llmops.utils.records import Record

if TYPE_CHECKING:
    from airflow_provider_llmops.hooks.triton import TritonHook
    from airflow_provider_llmops.serving.package import ModelPackage
    from airflow_provider_llmops.serving.publish import ModelRepository

__all__ = ["TritonDeployManager", "TritonModelVersion", "compare_goldens"]


@dataclass(frozen=True)
class TritonModelVersion(Record):
    """What a deploy or rollback left serving; the XCom value and the ``triton://`` Asset event extra."""

    ASSET_EXCLUDE = ("loaded_versions", "changed")

    server: str
    model: str
    version: int
    previous_version: int = 0
    loaded_versions: tuple[int, ...] = field(default=())
    repository_uri: str = ""
    content_hash: str = ""
    source_uri: str = ""
    spec_hash: str = ""
    dataset_rev: str = ""
    dataset_md5: str = ""
    kind: str = ""
    changed: bool = True

    @property
    def asset_uri(self) -> str:
        return f"triton://{self.server}/{self.model}"


def _golden_arrays(goldens: Mapping[str, Any]) -> dict[str, Any]:
    import numpy as np

    arrays = {}
    for item in goldens["inputs"]:
        if item["datatype"] == "BYTES":
            data = np.array([str(v).encode("utf-8") for v in item["data"]], dtype=object)
        else:
            from tritonclient.utils import triton_to_np_dtype

            data = np.asarray(item["data"], dtype=triton_to_np_dtype(item["datatype"]))
        arrays[item["name"]] = data.reshape(item["shape"])
    return arrays


def compare_goldens(
    goldens: Mapping[str, Any], outputs: Mapping[str, Any], atol: float | None = None
) -> list[str]:
    """Differences between ``outputs`` and the golden outputs (empty when they match within ``atol``)."""
    import numpy as np

    tolerance = float(goldens.get("atol", 0.0) if atol is None else atol)
    problems = []
    for item in goldens["outputs"]:
        name, want_shape = item["name"], list(item["shape"])
        got = outputs.get(name)
        if got is None:
            problems.append(f"output {name!r} missing")
            continue
        if list(got.shape) != want_shape:
            problems.append(f"output {name!r}: shape {list(got.shape)}, golden {want_shape}")
            continue
        if item["datatype"] == "BYTES":
            texts = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in got.reshape(-1)]
            for i, (have, want) in enumerate(zip(texts, item["data"], strict=True)):
                if have != want:
                    problems.append(f"output {name!r} row {i}: {have!r}, golden {want!r}")
            continue
        want = np.asarray(item["data"], dtype=np.float64).reshape(want_shape)
        diff = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
        if not diff <= tolerance:
            problems.append(f"output {name!r}: max abs difference {diff:.3g} > tolerance {tolerance:g}")
    return problems


class TritonDeployManager:
    """Deploy, smoke-test and roll back versions of one Triton model (see the module docstring)."""

    def __init__(
        self,
        hook: TritonHook,
        repository: ModelRepository,
        log: Any,
        *,
        ready_timeout: float = 300.0,
        poll_interval: float = 0.2,
    ) -> None:
        self.hook = hook
        self.repository = repository
        self.log = log
        self.ready_timeout = ready_timeout
        self.poll_interval = poll_interval
        # Set before any wait, so on_kill can undo a half-done deploy.
        self.pending: tuple[str, list[int]] | None = None

    @property
    def server(self) -> str:
        endpoint = self.hook.endpoint
        return f"{endpoint.host}:{endpoint.port}"

    # -- steps ----------------------------------------------------------------------------------

    def _check_server(self) -> None:
        if not self.hook._call("checking liveness", lambda c, **kw: c.is_server_live(**kw)):
            raise TritonConnectionError(
                f"Triton at {self.hook.base_url} answers but is not live; nothing was published or loaded."
            )

    def _load(self, model: str, config: Mapping[str, Any], versions: Sequence[int]) -> None:
        self.log.info("Loading %s with versions %s", model, sorted(set(versions)))
        self.hook.load_model(model, config=with_version_policy(config, model, versions))

    def _wait_ready(self, model: str, version: int) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while not self.hook.model_ready(model, str(version)):
            if time.monotonic() >= deadline:
                states = self.hook.model_states(model).get(version, {})
                raise TritonModelLoadError(
                    f"Version {version} of {model!r} was not ready after {self.ready_timeout:.0f}s "
                    f"(state {states.get('state')!r}: {states.get('reason') or 'no reason given'}).",
                    model_name=model,
                    server_message=str(states.get("reason") or ""),
                )
            time.sleep(self.poll_interval)

    def smoke_test(self, model: str, version: int, atol: float | None = None) -> None:
        """Run the goldens recorded with ``model/version`` against that (pinned) version.

        :raises TritonSmokeTestError: outputs differ beyond the tolerance.
        """
        goldens = self.repository.goldens(model, version)
        inputs = _golden_arrays(goldens)
        names = [o["name"] for o in goldens["outputs"]]
        outputs = self.hook.infer(model, inputs, names, model_version=str(version))
        problems = compare_goldens(goldens, outputs, atol)
        if problems:
            raise TritonSmokeTestError(
                f"Smoke test of {model!r} version {version} failed: " + "; ".join(problems[:5]),
                model_name=model,
                version=version,
            )
        rows = len(next(iter(inputs.values()))) if inputs else 0
        self.log.info("Smoke test of %s v%d passed (%d golden rows)", model, version, rows)

    def _restore(self, model: str, previous: Sequence[int], previous_config: Mapping[str, Any] | None) -> str:
        """Put the previous policy back (unloads the failed version); return a sentence for the error."""
        try:
            if previous and previous_config is not None:
                self._load(model, previous_config, previous)
                return f"version {max(previous)} kept serving (loaded: {sorted(previous)})"
            self.hook.unload_model(model)
            return "no version was serving before; the model was unloaded"
        except Exception as err:
            return f"restoring the previous versions {sorted(previous)} ALSO failed: {err}"

    # -- deploy / rollback ------------------------------------------------------------------------

    def deploy(
        self,
        package: ModelPackage,
        model: str,
        *,
        version: int | None = None,
        retention: int = 2,
        atol: float | None = None,
        smoke_test: bool = True,
    ) -> TritonModelVersion:
        """Publish ``package`` as ``model`` and make it the served version (see the module docstring)."""
        check_model_name(model)
        if version is not None:
            version = check_version(version)
        if retention < 1:
            raise TritonVersionError(f"retention must be >= 1 (versions kept loaded), got {retention!r}.")
        if package.platform != "python" or len(package.parts) != 1:
            raise TritonDeployError(
                f"Deploying packages with platform {package.platform!r} ({package.parts}) is not supported by "
                "this manager yet; publish them with ModelRepository.publish and load the ensemble yourself.",
                model_name=model,
            )
        self._check_server()
        previous = self.hook.loaded_versions(model)
        served = max(previous) if previous else 0
        if version is not None and served and version < served:
            raise TritonVersionError(
                f"Version {version} is older than the served version {served} of {model!r}; "
                "use TritonRollbackOperator (or TritonDeployManager.rollback) to serve an older version."
            )
        previous_config = self.repository.config(model, served) if served else None
        config = resolve_config(package.configs["main"], model)
        validate_config(config, model, signature=package.signature)
        if previous_config is not None:
            self._check_compatible(model, previous_config, config, served, version or served + 1)
        published = self.repository.publish(package, model, version)
        new = published.version
        record = self._record(model, new, served, previous, published.content_hash, package)
        if not published.created and new == served:
            self.log.info(
                "%s v%d is already published with this content and serving: nothing to do", model, new
            )
            return record
        self.log.info(
            "Deploying %s v%d (%s) next to %s",
            model,
            new,
            "new" if published.created else "already published",
            f"v{served}" if served else "no served version",
        )
        self.pending = (model, previous)
        try:
            self._load(model, config, [*previous, new])
            self._wait_ready(model, new)
            if smoke_test:
                self.smoke_test(model, new, atol)
        except Exception as err:
            kept = self._restore(model, previous, previous_config)
            server_message = getattr(err, "server_message", "") or str(err)
            raise TritonDeployError(
                f"Deploying {model!r} version {new} to Triton at {self.hook.base_url} failed; {kept}.\n"
                f"Triton/smoke test said: {server_message}\n"
                f"Next: fix the model (its files are in {published.uri}) and deploy again as a new version. "
                "A strict-readiness server reports not ready after a failed load until the model is fully "
                "reloaded; readiness probes should use /v2/models/<model>/ready.",
                model_name=model,
                version=new,
                server_message=server_message,
            ) from err
        keep = sorted({*previous, new})[-retention:]
        if keep != sorted({*previous, new}):
            self._load(model, config, keep)
        self.repository.write_config(model, config, keep)
        self.pending = None
        self.log.info("%s v%d serves; loaded versions %s", model, new, keep)
        return TritonModelVersion(**{**record.to_xcom(), "loaded_versions": tuple(keep)})

    def rollback(
        self, model: str, to_version: int | None = None, *, atol: float | None = None
    ) -> TritonModelVersion:
        """Serve ``to_version`` (default: the newest published version below the served one) again."""
        check_model_name(model)
        self._check_server()
        previous = self.hook.loaded_versions(model)
        served = max(previous) if previous else 0
        if to_version is None:
            older = [v for v in self.repository.versions(model) if not served or v < served]
            if not older:
                raise TritonVersionError(
                    f"No published version of {model!r} older than the served version {served or '(none)'} "
                    f"in {self.repository.uri}; nothing to roll back to."
                )
            target = older[-1]
        else:
            target = check_version(to_version, "to_version")
        config = self.repository.config(model, target)
        previous_config = self.repository.config(model, served) if served else None
        self.pending = (model, previous)
        try:
            self._load(model, config, [*previous, target])
            self._wait_ready(model, target)
            self.smoke_test(model, target, atol)
            self._load(model, config, [target])
        except Exception as err:
            kept = self._restore(model, previous, previous_config)
            raise TritonDeployError(
                f"Rolling {model!r} back to version {target} failed; {kept}.\nTriton said: "
                f"{getattr(err, 'server_message', '') or err}",
                model_name=model,
                version=target,
                server_message=getattr(err, "server_message", "") or str(err),
            ) from err
        self.repository.write_config(model, config, [target])
        self.pending = None
        info = self.repository.version_info(model, target) or {}
        source = info.get("source", {})
        self.log.info("%s rolled back from v%s to v%d", model, served or "-", target)
        return TritonModelVersion(
            server=self.server,
            model=model,
            version=target,
            previous_version=served,
            loaded_versions=(target,),
            repository_uri=self.repository.uri_of(model, target),
            content_hash=str(info.get("content_hash", "")),
            source_uri=str(source.get("source_uri", "")),
            spec_hash=str(source.get("spec_hash", "")),
            dataset_rev=str(source.get("dataset_rev", "")),
            dataset_md5=str(source.get("dataset_md5", "")),
            kind=str(info.get("kind", "")),
        )

    def undo_pending(self) -> None:
        """Put back the versions that served before an interrupted deploy (for ``on_kill``)."""
        if self.pending is None:
            return
        model, previous = self.pending
        served = max(previous) if previous else 0
        config = self.repository.config(model, served) if served else None
        self.log.warning("Deploy of %s interrupted: %s", model, self._restore(model, previous, config))
        self.pending = None

    def _check_compatible(
        self, model: str, old: Mapping[str, Any], new: Mapping[str, Any], served: int, version: int
    ) -> None:
        def io(config: Mapping[str, Any]) -> Any:
            return [
                (t["name"], t["data_type"], list(t["dims"])) for t in [*config["input"], *config["output"]]
            ]

        if io(old) != io(new):
            raise TritonDeployError(
                f"Version {version} of {model!r} has inputs/outputs {io(new)}, but the served version {served} has "
                f"{io(old)}. Versions of one model share one config; deploy it under a new model name instead.",
                model_name=model,
                version=version,
            )

    def _record(
        self,
        model: str,
        version: int,
        served: int,
        previous: Sequence[int],
        content_hash: str,
        package: ModelPackage,
    ) -> TritonModelVersion:
        source = package.source
        return TritonModelVersion(
            server=self.server,
            model=model,
            version=version,
            previous_version=served if served != version else 0,
            loaded_versions=tuple(sorted(previous)),
            repository_uri=self.repository.uri_of(model, version),
            content_hash=content_hash,
            source_uri=source.source_uri,
            spec_hash=source.spec_hash,
            dataset_rev=source.dataset_rev,
            dataset_md5=source.dataset_md5,
            kind=package.kind,
            changed=not (served == version),
        )
