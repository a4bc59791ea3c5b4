"""Deferrable wait until a Triton model (version) is ready (see `TritonModelReadySensor`).

All I/O is asynchronous: the connection through ``BaseHook.aget_connection`` and the
readiness probe (``GET /v2/models/<model>[/versions/<v>]/ready``) through ``httpx.AsyncClient``.
The deadline uses ``time.monotonic()``. Events: ``{"status": "success", "model", "version"}``,
``{"status": "timeout", ...}`` or ``{"status": "error", "error", "error_type", ...}``.
Transient failures (server unreachable, 5xx) are retried at the next poll, up to
``max_transient_errors`` in a row.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

DEFAULT_MAX_TRANSIENT_ERRORS = 3


class TritonModelReadyTrigger(BaseTrigger):
    """Poll a model's readiness without blocking the triggerer.

    Example::

        TritonModelReadyTrigger("llmops_triton_default", "minilm", version="3", poke_interval=5, timeout=600)
    """

    def __init__(
        self,
        triton_conn_id: str,
        model_name: str,
        version: str = "",
        poke_interval: float = 5.0,
        timeout: float = 600.0,
        max_transient_errors: int = DEFAULT_MAX_TRANSIENT_ERRORS,
    ) -> None:
        super().__init__()
        self.triton_conn_id = triton_conn_id
        self.model_name = model_name
        self.version = str(version or "")
        self.poke_interval = float(poke_interval)
        self.timeout = float(timeout)
        self.max_transient_errors = int(max_transient_errors)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "triton_conn_id": self.triton_conn_id,
            "model_name": self.model_name,
            "version": self.version,
            "poke_interval": self.poke_interval,
            "timeout": self.timeout,
        }
        if self.max_transient_errors != DEFAULT_MAX_TRANSIENT_ERRORS:
            kwargs["max_transient_errors"] = self.max_transient_errors
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    def _event(self, status: str, **fields: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, "model": self.model_name, "version": self.version, **fields})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import httpx

        from airflow_provider_llmops.hooks.triton import TritonHook, connection_settings

        deadline = time.monotonic() + self.timeout
        try:
            conn = await TritonHook.aget_connection(self.triton_conn_id)
            endpoint, headers, request_timeout = connection_settings(self.triton_conn_id, conn)
        except Exception as err:
            yield self._event("error", error=str(err), error_type=type(err).__name__)
            return
        path = (
            f"/v2/models/{self.model_name}" + (f"/versions/{self.version}" if self.version else "") + "/ready"
        )
        verify: Any = False
        if endpoint.tls_verify:
            import ssl

            verify = ssl.create_default_context(cafile=endpoint.tls_ca_file)
            if endpoint.tls_cert_file and endpoint.tls_key_file:
                verify.load_cert_chain(endpoint.tls_cert_file, endpoint.tls_key_file)
        failures = 0
        async with httpx.AsyncClient(
            base_url=endpoint.base_url, headers=headers, timeout=request_timeout, verify=verify
        ) as client:
            while True:
                try:
                    response = await client.get(path)
                    if response.status_code >= 500:
                        raise httpx.HTTPStatusError(
                            f"HTTP {response.status_code}", request=response.request, response=response
                        )
                    failures = 0
                    if response.status_code == 200:
                        self.log.info(
                            "%s%s is ready", self.model_name, f" v{self.version}" if self.version else ""
                        )
                        yield self._event("success")
                        return
                except httpx.HTTPError as err:
                    failures += 1
                    self.log.warning(
                        "Readiness poll %d of %s failed (%s: %s)",
                        failures,
                        endpoint.base_url,
                        type(err).__name__,
                        err,
                    )
                    if failures >= self.max_transient_errors:
                        yield self._event(
                            "error", error=str(err), error_type=type(err).__name__, failed_polls=failures
                        )
                        return
                if time.monotonic() + self.poke_interval > deadline:
                    yield self._event("timeout", timeout=self.timeout)
                    return
                await asyncio.sleep(self.poke_interval)
