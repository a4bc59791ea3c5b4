"""Deploy and roll back Triton models: thin operators over `TritonDeployManager`.

Both emit the Asset ``triton://<server>/<model>`` (``<server>``: ``server_name``, default the
connection id); its event extra carries the served version, the source model URI, the
manifest's spec hash and dataset rev. With a templated ``model_name`` they declare the
AssetAlias ``triton:<dag_id>:<task_id>`` and attach the concrete Asset when they run.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_llmops.assets.events import emit_event
from airflow_provider_llmops.assets.triton import triton_alias, triton_asset
from airflow_provider_llmops.exceptions import TritonConfigError, TritonPublishError, TritonVersionError
from airflow_provider_llmops.serving.names import check_model_name, check_version
from airflow_provider_llmops.utils.templating import ValidateAfterRender, is_templated

if TYPE_CHECKING:
    from airflow.sdk import Asset, AssetAlias, Context

    from airflow_provider_llmops.hooks.triton import TritonHook
    from airflow_provider_llmops.utils.triton_deploy import TritonDeployManager, TritonModelVersion

DEFAULT_CONN_ID = "llmops_triton_default"


class TritonBaseOperator(ValidateAfterRender, BaseOperator):
    """Shared arguments, hook, manager, validation and Asset emission of the Triton operators."""

    template_fields: Sequence[str] = ("model_name", "repository", "triton_conn_id")

    def __init__(
        self,
        *,
        model_name: str,
        triton_conn_id: str = DEFAULT_CONN_ID,
        repository: str | None = None,
        server_name: str | None = None,
        ready_timeout: float = 300.0,
        emit_asset: bool = True,
        **kwargs: Any,
    ) -> None:
        self.asset: Asset | None = None
        self.asset_alias: AssetAlias | None = None
        server = server_name or triton_conn_id
        if emit_asset and not is_templated(model_name, server):
            check_model_name(model_name)
            self.asset = triton_asset(server, model_name)
            kwargs["outlets"] = [*(kwargs.pop("outlets", None) or []), self.asset]
        super().__init__(**kwargs)
        self.model_name = model_name
        self.triton_conn_id = triton_conn_id
        self.repository = repository
        self.server_name = server_name
        self.ready_timeout = ready_timeout
        if emit_asset and self.asset is None:
            self.asset_alias = triton_alias(self.dag_id, self.task_id)
            self.outlets.append(self.asset_alias)

    def _validate(self, *, rendered: bool) -> None:
        self.validate()

    def validate(self) -> None:
        """The one validation pass on rendered values, before any side effect."""
        check_model_name(self.model_name)

    @cached_property
    def hook(self) -> TritonHook:
        from airflow_provider_llmops.hooks.triton import TritonHook

        return TritonHook(self.triton_conn_id)

    @cached_property
    def manager(self) -> TritonDeployManager:
        from airflow_provider_llmops.serving.publish import ModelRepository
        from airflow_provider_llmops.utils.triton_deploy import TritonDeployManager

        repository = self.repository or self.hook.model_repository
        if not repository:
            raise TritonPublishError(
                f"No model repository: pass repository=... or set extra model_repository on connection "
                f"{self.triton_conn_id!r} (the folder or s3:// / gs:// URI the server loads models from)."
            )
        return TritonDeployManager(
            self.hook, ModelRepository(repository), self.log, ready_timeout=self.ready_timeout
        )

    def _emit(self, context: Context, record: TritonModelVersion) -> None:
        emit_event(
            context,
            record.asset_extra(),
            asset=self.asset,
            alias=self.asset_alias,
            resolve=lambda: triton_asset(self.server_name or self.triton_conn_id, record.model),
        )

    def on_kill(self) -> None:
        if "manager" in self.__dict__:
            self.manager.undo_pending()


class TritonDeployOperator(TritonBaseOperator):
    """Package (optional), publish, load next to the served version, smoke-test, serve; roll back on failure.

    Give either ``source`` (a training ``manifest.json`` path or dict, or a Hugging Face model
    folder; packaged here, which needs the ``[serving]`` extra) or ``package_path`` (a folder
    written by ``airflow_provider_llmops.serving.package.package_model``). Returns the
    :class:`TritonModelVersion` as a dict. Rerunning the same deploy is a no-op.

    Example::

        TritonDeployOperator(
            task_id="deploy_embedder",
            model_name="minilm",
            source="{{ ti.xcom_pull('train')['manifest_uri'] }}",
            package_options={"max_batch_size": 32, "instance_count": 2},
            retention=2,
        )

    :param kind: ``auto`` (from the manifest's task / the folder), ``embedding`` or ``causal_lm``.
    :param version: the version to publish (default: the next free one, or the newest when it
        already holds this content).
    :param retention: how many versions stay loaded (the new one included) for instant rollback.
    :param atol: smoke-test tolerance (default: the one recorded in the package).
    """

    template_fields: Sequence[str] = (
        *TritonBaseOperator.template_fields,
        "source",
        "package_path",
        "version",
    )

    def __init__(
        self,
        *,
        source: str | Mapping[str, Any] | None = None,
        package_path: str | None = None,
        kind: str = "auto",
        package_options: Mapping[str, Any] | None = None,
        version: int | str | None = None,
        retention: int = 2,
        atol: float | None = None,
        smoke_test: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.package_path = package_path
        self.kind = kind
        self.package_options = dict(package_options or {})
        self.version = version
        self.retention = retention
        self.atol = atol
        self.smoke_test = smoke_test
        if (source is None) == (package_path is None):
            raise TritonConfigError("Give exactly one of source (manifest or model folder) and package_path.")
        if retention < 1:
            raise TritonVersionError(f"retention must be >= 1, got {retention!r}.")

    def validate(self) -> None:
        super().validate()
        if self.version not in (None, ""):
            self.version = check_version(self.version)
        else:
            self.version = None

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_llmops.serving.package import ModelPackage, package_model

        self.validate()
        workdir = None
        try:
            if self.package_path:
                package = ModelPackage.load(self.package_path)
            else:
                assert self.source is not None
                workdir = Path(tempfile.mkdtemp(prefix=f"triton-pkg-{self.model_name}-"))
                self.log.info("Packaging %s as %s into %s", self.source, self.kind, workdir)
                package = package_model(
                    self.source, workdir / "package", kind=self.kind, **self.package_options
                )
            self.log.info(
                "Package %s: %s/%s, content %s",
                package.path,
                package.kind,
                package.platform,
                package.content_hash[:12],
            )
            record = self.manager.deploy(
                package,
                self.model_name,
                version=self.version,  # type: ignore[arg-type]
                retention=self.retention,
                atol=self.atol,
                smoke_test=self.smoke_test,
            )
        finally:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            self.hook.close()
        self._emit(context, record)
        return record.to_xcom()


class TritonRollbackOperator(TritonBaseOperator):
    """Serve an older published version again (default: the newest one below the served version).

    The target is loaded next to the served version and smoke-tested against its own goldens
    before it takes over; on failure the served version keeps serving.

    Example::

        TritonRollbackOperator(task_id="rollback_embedder", model_name="minilm")          # previous version
        TritonRollbackOperator(task_id="pin_v3", model_name="minilm", to_version=3)
    """

    template_fields: Sequence[str] = (*TritonBaseOperator.template_fields, "to_version")

    def __init__(
        self, *, to_version: int | str | None = None, atol: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.to_version = to_version
        self.atol = atol

    def validate(self) -> None:
        super().validate()
        self.to_version = (
            check_version(self.to_version, "to_version") if self.to_version not in (None, "") else None
        )

    def execute(self, context: Context) -> dict[str, Any]:
        self.validate()
        try:
            record = self.manager.rollback(self.model_name, self.to_version, atol=self.atol)  # type: ignore[arg-type]
        finally:
            self.hook.close()
        self._emit(context, record)
        return record.to_xcom()
