"""Hook for a Triton Inference Server over its HTTP/REST (KServe v2) API.

``tritonclient`` and ``numpy`` are imported inside the methods that use them, so that
importing this module (DAG parsing, the scheduler) stays light.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from airflow_provider_llmops.exceptions import (
    TritonConnectionError,
    TritonInferenceError,
    TritonModelLoadError,
)

if TYPE_CHECKING:
    import numpy as np
    from tritonclient.http import InferenceServerClient

T = TypeVar("T")

DEFAULT_HTTP_PORT = 8000
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class TritonEndpoint:
    """Where a Triton server listens, as parsed from an Airflow connection (no secrets)."""

    scheme: str
    host: str
    port: int
    grpc_port: int | None = None
    model_repository: str | None = None

    @property
    def base_url(self) -> str:
        """``http(s)://host:port``, for messages and plain HTTP calls."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def client_url(self) -> str:
        """``host:port``: the form ``tritonclient.http.InferenceServerClient`` expects."""
        return f"{self.host}:{self.port}"

    @property
    def grpc_url(self) -> str | None:
        """``host:grpc_port`` for ``tritonclient.grpc``, or None when the connection has no grpc_port."""
        return f"{self.host}:{self.grpc_port}" if self.grpc_port else None


def _int_or_none(value: Any, field: str, conn_id: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TritonConnectionError(
            f"Connection {conn_id!r}: {field} must be a port number, got {value!r}."
        ) from None


def parse_endpoint(
    conn_id: str,
    host: str | None,
    port: int | None,
    schema: str | None,
    extra: Mapping[str, Any],
) -> TritonEndpoint:
    """Turn connection fields into a :class:`TritonEndpoint`.

    ``host`` may carry a scheme and port (``https://triton:8443``); explicit ``port`` and
    ``schema`` fields win. ``schema`` is ``http`` (default) or ``https``.
    """
    if not host:
        raise TritonConnectionError(
            f"Connection {conn_id!r} has no host. Set host (and port) to the Triton HTTP endpoint, "
            "e.g. host=triton.example.internal, port=8000."
        )
    raw = host.strip()
    parsed = urlsplit(raw if "://" in raw else f"//{raw}")
    scheme = (schema or parsed.scheme or "http").lower()
    if scheme not in ("http", "https"):
        raise TritonConnectionError(
            f"Connection {conn_id!r}: schema must be 'http' or 'https', got {scheme!r}. "
            "The schema field is the URL scheme of Triton's HTTP endpoint (use grpc_port in extras for gRPC)."
        )
    try:
        host_port = parsed.port
    except ValueError:
        host_port = None
    resolved_port = _int_or_none(port, "port", conn_id) or host_port or DEFAULT_HTTP_PORT
    return TritonEndpoint(
        scheme=scheme,
        host=parsed.hostname or raw,
        port=resolved_port,
        grpc_port=_int_or_none(extra.get("grpc_port"), "extra grpc_port", conn_id),
        model_repository=extra.get("model_repository") or None,
    )


class TritonHook(BaseHook):
    """Talk to a Triton Inference Server: health, model load/unload, inference.

    Connection (type ``llmops_triton``): ``host``, ``port`` (HTTP, default 8000), ``schema``
    (``http``/``https``); optional ``password`` sent as a bearer token (or as the value of the
    header named by extra ``auth_header``, for Triton's ``--http-restricted-api``). Extras:
    ``grpc_port``, ``model_repository`` (the directory the server loads models from),
    ``timeout`` (seconds).

    Example::

        hook = TritonHook("llmops_triton_default")
        hook.load_model("embedder")
        out = hook.infer("embedder", {"INPUT0": np.ones(4, np.float32)}, ["OUTPUT0"])
        out["OUTPUT0"]  # numpy array
    """

    conn_name_attr = "triton_conn_id"
    default_conn_name = "llmops_triton_default"
    conn_type = "llmops_triton"
    hook_name = "Triton Inference Server"

    def __init__(
        self,
        triton_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.triton_conn_id = triton_conn_id
        self._timeout = timeout
        self._endpoint: TritonEndpoint | None = None
        self._headers: dict[str, str] | None = None
        self._resolved_timeout: float = DEFAULT_TIMEOUT
        self._client: InferenceServerClient | None = None

    # -- connection ---------------------------------------------------------------------

    def _load_connection(self) -> None:
        conn = self.get_connection(self.triton_conn_id)
        extra = conn.extra_dejson or {}
        self._endpoint = parse_endpoint(self.triton_conn_id, conn.host, conn.port, conn.schema, extra)
        headers: dict[str, str] = {}
        if conn.password:
            header = extra.get("auth_header")
            if header:
                headers[str(header)] = conn.password
            else:
                headers["Authorization"] = f"Bearer {conn.password}"
        self._headers = headers
        timeout = self._timeout if self._timeout is not None else extra.get("timeout", DEFAULT_TIMEOUT)
        try:
            self._resolved_timeout = float(timeout)
        except (TypeError, ValueError):
            raise TritonConnectionError(
                f"Connection {self.triton_conn_id!r}: extra timeout must be a number of seconds, "
                f"got {timeout!r}."
            ) from None

    @property
    def endpoint(self) -> TritonEndpoint:
        """The parsed connection: URLs, gRPC port and model repository (never secrets)."""
        if self._endpoint is None:
            self._load_connection()
        assert self._endpoint is not None
        return self._endpoint

    @property
    def base_url(self) -> str:
        return self.endpoint.base_url

    @property
    def grpc_url(self) -> str | None:
        return self.endpoint.grpc_url

    @property
    def model_repository(self) -> str | None:
        return self.endpoint.model_repository

    @property
    def _request_headers(self) -> dict[str, str] | None:
        if self._headers is None:
            self._load_connection()
        return self._headers or None

    def get_conn(self) -> InferenceServerClient:
        """Return a (cached) ``tritonclient.http.InferenceServerClient`` for this connection.

        Example::

            client = TritonHook().get_conn()
            client.is_server_live()
        """
        if self._client is None:
            import tritonclient.http as httpclient

            endpoint = self.endpoint
            self._client = httpclient.InferenceServerClient(
                url=endpoint.client_url,
                ssl=endpoint.scheme == "https",
                connection_timeout=self._resolved_timeout,
                network_timeout=self._resolved_timeout,
            )
        return self._client

    def close(self) -> None:
        """Close the cached client, if any."""
        if self._client is not None:
            self._client.close()
            self._client = None

    @contextmanager
    def _reachable(self, doing: str) -> Iterator[None]:
        """Turn socket-level failures into a :class:`TritonConnectionError` with a hint."""
        try:
            yield
        except OSError as err:
            raise TritonConnectionError(
                f"Cannot reach Triton at {self.base_url} (connection {self.triton_conn_id!r}) while "
                f"{doing}: {err}. Check that the server runs and that the connection's host, port and "
                "schema point at its HTTP endpoint."
            ) from err

    def _call(self, doing: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        client = self.get_conn()
        headers = self._request_headers
        with self._reachable(doing):
            return func(client, *args, headers=headers, **kwargs)

    # -- health -------------------------------------------------------------------------

    def is_server_ready(self) -> bool:
        """True when ``GET /v2/health/ready`` succeeds (all models that should load are loaded)."""
        return bool(self._call("checking readiness", lambda c, **kw: c.is_server_ready(**kw)))

    def test_connection(self) -> tuple[bool, str]:
        """Check the server from the Airflow UI/CLI; return ``(ok, message)``, never raise."""
        try:
            if not self._call("checking liveness", lambda c, **kw: c.is_server_live(**kw)):
                return False, f"Triton at {self.base_url} answers but is not live; see the server log."
            if not self.is_server_ready():
                return False, (
                    f"Triton at {self.base_url} is live but not ready: a model is (un)loading, or one "
                    "failed to load (with strict readiness, the default, a failed model keeps the server "
                    "unready until it loads successfully). See repository_index() and the server log."
                )
            meta = self._call("reading server metadata", lambda c, **kw: c.get_server_metadata(**kw))
            version = meta.get("version", "unknown version") if isinstance(meta, dict) else "unknown version"
            return True, f"Triton {version} at {self.base_url} is live and ready."
        except Exception as err:
            return False, f"Triton connection {self.triton_conn_id!r} failed: {err}"

    # -- model control (the server must run with --model-control-mode=explicit) ----------

    def load_model(self, name: str, config: str | None = None) -> None:
        """Load (or reload) model ``name`` from the server's model repository.

        ``config`` optionally overrides ``config.pbtxt`` with a model config in **JSON**
        (Triton's load API does not take pbtxt). Blocks until Triton has loaded the model.

        Example::

            hook.load_model("double")
            hook.load_model("double", config='{"backend": "python", "max_batch_size": 8}')

        :raises TritonModelLoadError: Triton refused; the message holds Triton's error text.
        """
        from tritonclient.utils import InferenceServerException

        try:
            self._call(f"loading model {name!r}", lambda c, **kw: c.load_model(name, config=config, **kw))
        except InferenceServerException as err:
            raise self._load_error(name, "load", err) from err

    def unload_model(
        self, name: str, unload_dependents: bool = False, wait: bool = True, timeout: float = 60.0
    ) -> None:
        """Unload model ``name`` (all versions). Unloading a model that is not loaded is a no-op.

        Triton answers at once and unloads in the background (state ``UNLOADING``, during which
        a strict-readiness server reports not ready); with ``wait`` this returns when it is done.

        Example::

            hook.unload_model("double")

        :raises TritonModelLoadError: Triton refused, or the model was still unloading after ``timeout``.
        """
        from tritonclient.utils import InferenceServerException

        try:
            self._call(
                f"unloading model {name!r}",
                lambda c, **kw: c.unload_model(name, unload_dependents=unload_dependents, **kw),
            )
        except InferenceServerException as err:
            raise self._load_error(name, "unload", err) from err
        if not wait:
            return
        deadline = time.monotonic() + timeout
        while True:
            states = {m.get("state") for m in self.repository_index() if m.get("name") == name}
            if not states & {"READY", "LOADING", "UNLOADING"}:
                return
            if time.monotonic() >= deadline:
                raise TritonModelLoadError(
                    f"Triton at {self.base_url} was still unloading model {name!r} after {timeout:.0f}s "
                    f"(states: {sorted(str(s) for s in states)}). Next: check for in-flight requests or a "
                    "stuck model in the tritonserver log, then retry or restart the server.",
                    model_name=name,
                )
            time.sleep(0.2)

    def model_ready(self, name: str, version: str = "") -> bool:
        """True when model ``name`` (``version``, or the server's default policy if empty) is ready."""
        return bool(
            self._call(
                f"checking model {name!r}",
                lambda c, **kw: c.is_model_ready(name, model_version=version, **kw),
            )
        )

    def repository_index(self) -> list[dict[str, Any]]:
        """The server's model repository index: ``[{"name", "version", "state", "reason"}, ...]``."""
        index = self._call("reading the repository index", lambda c, **kw: c.get_model_repository_index(**kw))
        return list(index or [])

    def _load_error(self, name: str, action: str, err: Exception) -> TritonModelLoadError:
        server_message = _server_text(err)
        where = (
            f"in the model repository {self.model_repository}"
            if self.model_repository
            else "in the server's --model-repository"
        )
        return TritonModelLoadError(
            f"Triton at {self.base_url} could not {action} model {name!r}: {server_message}\n"
            f"Next: check {name}/config.pbtxt and {name}/<version>/ {where} (for the python backend, "
            f"model.py and its imports), read the tritonserver log, fix the model and {action} it again. "
            "Until it loads, a server with strict readiness (the default) reports not ready.",
            model_name=name,
            server_message=server_message,
        )

    # -- inference ----------------------------------------------------------------------

    def infer(
        self,
        model_name: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str],
        model_version: str = "",
    ) -> dict[str, np.ndarray]:
        """Run one inference request; return the requested outputs as numpy arrays.

        Each input's Triton datatype comes from its numpy dtype (``float32`` -> ``FP32``,
        ``object``/``bytes`` -> ``BYTES``); the shape is sent as is (add the batch dim yourself).

        Example::

            out = hook.infer("double", {"INPUT0": np.array([1, 2], np.float32)}, ["OUTPUT0"])
            out["OUTPUT0"]  # array([2., 4.], dtype=float32)

        :raises TritonInferenceError: Triton rejected the request; the message holds its error text.
        """
        import numpy as np
        import tritonclient.http as httpclient
        from tritonclient.utils import InferenceServerException, np_to_triton_dtype

        request_inputs = []
        for input_name, value in inputs.items():
            array = np.asarray(value)
            datatype = np_to_triton_dtype(array.dtype)
            if datatype is None:
                raise TritonInferenceError(
                    f"Input {input_name!r} for model {model_name!r} has numpy dtype {array.dtype}, which "
                    "has no Triton datatype; cast it (e.g. to float32, int64 or bytes).",
                    model_name=model_name,
                )
            infer_input = httpclient.InferInput(input_name, list(array.shape), datatype)
            infer_input.set_data_from_numpy(array, binary_data=True)
            request_inputs.append(infer_input)
        requested = [httpclient.InferRequestedOutput(out, binary_data=True) for out in outputs]
        try:
            result = self._call(
                f"running inference on {model_name!r}",
                lambda c, **kw: c.infer(
                    model_name, request_inputs, model_version=model_version, outputs=requested, **kw
                ),
            )
        except InferenceServerException as err:
            server_message = _server_text(err)
            raise TritonInferenceError(
                f"Triton at {self.base_url} rejected inference on model {model_name!r}: {server_message}\n"
                f"Next: check that the model is loaded (model_ready) and that input names, dtypes and "
                f"shapes match its config (sent: {_describe(inputs)}).",
                model_name=model_name,
                server_message=server_message,
            ) from err
        arrays: dict[str, np.ndarray] = {}
        for out in outputs:
            array = result.as_numpy(out)
            if array is None:
                raise TritonInferenceError(
                    f"Model {model_name!r} returned no output {out!r}; check the output names in its config.",
                    model_name=model_name,
                )
            arrays[out] = array
        return arrays


def _server_text(err: Exception) -> str:
    message = getattr(err, "message", None)
    text = message() if callable(message) else None
    return str(text or err).strip()


def _describe(inputs: Mapping[str, Any]) -> str:
    parts = []
    for name, value in inputs.items():
        parts.append(
            f"{name} {getattr(value, 'dtype', type(value).__name__)}{list(getattr(value, 'shape', []))}"
        )
    return ", ".join(parts)
