"""`TritonModelReadySensor`: wait until a Triton model (or one version of it) is ready."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_llmops.serving.names import check_model_name, check_version
from airflow_provider_llmops.utils.deferral import poke_then_defer
from airflow_provider_llmops.utils.templating import ValidateAfterRender, is_templated

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_CONN_ID = "llmops_triton_default"
# The framework's defer timeout is a backstop: the trigger's own (actionable) timeout fires first.


class TritonModelReadySensor(ValidateAfterRender, BaseSensorOperator):
    """Wait until ``model_name`` (``version``, or any version when empty) is ready on Triton.

    With ``deferrable=True`` the wait runs in the triggerer (async HTTP, no worker slot).

    Example::

        TritonModelReadySensor(task_id="wait_minilm", model_name="minilm", version="{{ ti.xcom_pull('deploy')['version'] }}",
                               deferrable=True, poke_interval=5, timeout=600)
    """

    template_fields: Sequence[str] = ("model_name", "version", "triton_conn_id")

    def __init__(
        self,
        *,
        model_name: str,
        version: str | int = "",
        triton_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = False,
        max_transient_errors: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.version = str(version or "")
        self.triton_conn_id = triton_conn_id
        self.deferrable = deferrable
        self.max_transient_errors = max_transient_errors
        if not is_templated(self.model_name):
            check_model_name(self.model_name)

    def _validate(self, *, rendered: bool) -> None:
        check_model_name(self.model_name)
        if self.version:
            self.version = str(check_version(self.version))

    def poke(self, context: Context) -> PokeReturnValue:
        from airflow_provider_llmops.hooks.triton import TritonHook

        hook = TritonHook(self.triton_conn_id)
        try:
            ready = hook.model_ready(self.model_name, self.version)
        finally:
            hook.close()
        return PokeReturnValue(is_done=ready, xcom_value={"model": self.model_name, "version": self.version})

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_llmops.triggers.triton import TritonModelReadyTrigger

        return poke_then_defer(
            self,
            context,
            lambda: TritonModelReadyTrigger(
                triton_conn_id=self.triton_conn_id,
                model_name=self.model_name,
                version=self.version,
                poke_interval=float(self.poke_interval),
                timeout=float(self.timeout),
                max_transient_errors=self.max_transient_errors,
            ),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        from airflow_provider_llmops.exceptions import TritonConnectionError

        what = f"model {self.model_name!r}" + (f" version {self.version}" if self.version else "")
        if not event:
            raise TritonConnectionError(f"Waiting for {what} ended without an event from the trigger.")
        if event.get("status") == "success":
            return {"model": event["model"], "version": event.get("version", "")}
        if event.get("status") == "timeout":
            from airflow.sdk.exceptions import AirflowSensorTimeout

            raise AirflowSensorTimeout(
                f"{what} was not ready within {event.get('timeout')}s. Check that it was loaded "
                "(explicit model control loads nothing by itself) and the tritonserver log."
            )
        raise TritonConnectionError(
            f"Waiting for {what} failed: {event.get('error_type')}: {event.get('error')}. Check that Triton "
            f"runs and that connection {self.triton_conn_id!r} points at its HTTP endpoint."
        )
