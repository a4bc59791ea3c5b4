"""Hook for a Triton Inference Server over its HTTP/REST (KServe v2) API.

``tritonclient`` and ``numpy`` are imported inside the methods that use them, so that
importing this module (DAG parsing, the scheduler) stays light.
"""

from __future__ import annotations

import json
import threading
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
    tls_ca_file: str | None = None
    tls_verify: bool = True
    tls_cert_file: str | None = None
    tls_key_file: str | None = None

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


def _bool(value: Any, field: str, conn_id: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise TritonConnectionError(f"Connection {conn_id!r}: {field} must be true or false, got {value!r}.")


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
        tls_ca_file=extra.get("tls_ca_file") or None,
        tls_verify=_bool(extra.get("tls_verify", True), "extra tls_verify", conn_id),
        tls_cert_file=extra.get("tls_cert_file") or None,
        tls_key_file=extra.get("tls_key_file") or None,
    )


def connection_settings(
    conn_id: str, conn: Any, timeout: float | None = None
) -> tuple[TritonEndpoint, dict[str, str], float]:
    """(endpoint, request headers, timeout) from an Airflow connection; shared by hook and trigger.

    The headers carry the token (never logged): extra ``headers`` plus ``password`` as
    ``Authorization: Bearer <password>`` or as the value of the header named by ``auth_header``.
    """
    extra = conn.extra_dejson or {}
    endpoint = parse_endpoint(conn_id, conn.host, conn.port, conn.schema, extra)
    extra_headers = extra.get("headers") or {}
    if not isinstance(extra_headers, Mapping):
        raise TritonConnectionError(
            f"Connection {conn_id!r}: extra headers must be an object of header: value."
        )
    headers: dict[str, str] = {str(k): str(v) for k, v in extra_headers.items()}
    if conn.password:
        header = extra.get("auth_header")
        if header:
            headers[str(header)] = conn.password
        else:
            headers["Authorization"] = f"Bearer {conn.password}"
    raw_timeout = timeout if timeout is not None else extra.get("timeout", DEFAULT_TIMEOUT)
    try:
        resolved = float(raw_timeout)
    except (TypeError, ValueError):
        raise TritonConnectionError(
            f"Connection {conn_id!r}: extra timeout must be a number of seconds, got {raw_timeout!r}."
        ) from None
    return endpoint, headers, resolved


class TritonHook(BaseHook):
    """Talk to a Triton Inference Server: health, model load/unload, inference.

    Connection (type ``llmops_triton``): ``host``, ``port`` (HTTP, default 8000), ``schema``
    (``http``/``https``); optional ``password`` sent as a bearer token (or as the value of the
    header named by extra ``auth_header``, for Triton's ``--http-restricted-api``). Extras:
    ``grpc_port``, ``model_repository`` (the directory the server loads models from),
    ``timeout`` (seconds), ``headers`` (a dict of extra request headers), and for ``https``:
    ``tls_ca_file`` (CA bundle), ``tls_verify`` (default true), ``tls_cert_file`` /
    ``tls_key_file`` (client certificate). gRPC (``protocol="grpc"``, needs the ``[grpc]``
    extra) uses the same TLS files and headers.

    Each thread gets its own client (tritonclient's HTTP client is not thread-safe).

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
        self._local = threading.local()
        self._clients: list[Any] = []
        self._clients_lock = threading.Lock()

    # -- connection ---------------------------------------------------------------------

    def _load_connection(self) -> None:
        conn = self.get_connection(self.triton_conn_id)
        self._endpoint, self._headers, self._resolved_timeout = connection_settings(
            self.triton_conn_id, conn, self._timeout
        )

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
        """Return this thread's (cached) ``tritonclient.http.InferenceServerClient`` for the connection.

        Example::

            client = TritonHook().get_conn()
            client.is_server_live()
        """
        client = getattr(self._local, "http", None)
        if client is None:
            import tritonclient.http as httpclient

            endpoint = self.endpoint
            tls: dict[str, Any] = {}
            if endpoint.scheme == "https":
                options: dict[str, Any] = {}
                if endpoint.tls_ca_file:
                    options["ca_certs"] = endpoint.tls_ca_file
                if endpoint.tls_cert_file and endpoint.tls_key_file:
                    options["certfile"] = endpoint.tls_cert_file
                    options["keyfile"] = endpoint.tls_key_file
                tls = {"ssl": True, "ssl_options": options or None}
                if not endpoint.tls_verify:
                    tls.update(insecure=True, ssl_context_factory=_unverified_context)
            client = httpclient.InferenceServerClient(
                url=endpoint.client_url,
                connection_timeout=self._resolved_timeout,
                network_timeout=self._resolved_timeout,
                **tls,
            )
            self._local.http = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def get_grpc_conn(self) -> Any:
        """This thread's ``tritonclient.grpc.InferenceServerClient`` (needs extra ``grpc_port``).

        :raises TritonConnectionError: no grpc_port in the connection, or tritonclient[grpc] missing.
        """
        client = getattr(self._local, "grpc", None)
        if client is None:
            endpoint = self.endpoint
            if not endpoint.grpc_url:
                raise TritonConnectionError(
                    f"Connection {self.triton_conn_id!r} has no grpc_port extra; set it to use protocol='grpc'."
                )
            try:
                import tritonclient.grpc as grpcclient
            except ImportError as err:
                raise TritonConnectionError(
                    "protocol='grpc' needs tritonclient's gRPC client: "
                    "pip install 'airflow-provider-llmops[grpc]'."
                ) from err
            client = grpcclient.InferenceServerClient(
                url=endpoint.grpc_url,
                ssl=endpoint.scheme == "https",
                root_certificates=endpoint.tls_ca_file,
                private_key=endpoint.tls_key_file,
                certificate_chain=endpoint.tls_cert_file,
            )
            self._local.grpc = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        """Close every client this hook opened (in any thread)."""
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except Exception:  # noqa: S110 - closing is best effort
                pass
        self._local = threading.local()

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

    def load_model(self, name: str, config: str | Mapping[str, Any] | None = None) -> None:
        """Load (or reload) model ``name`` from the server's model repository.

        ``config`` optionally overrides ``config.pbtxt`` with a model config in **JSON** (a
        string or a dict; Triton's load API does not take pbtxt). Blocks until Triton has
        loaded the model. With a ``version_policy`` in the override, versions already loaded
        that stay in the policy keep serving while the new ones load.

        Example::

            hook.load_model("double")
            hook.load_model("double", config='{"backend": "python", "max_batch_size": 8}')

        :raises TritonModelLoadError: Triton refused; the message holds Triton's error text.
        """
        from tritonclient.utils import InferenceServerException

        if config is not None and not isinstance(config, str):
            config = json.dumps(config, sort_keys=True)
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

    def model_states(self, name: str) -> dict[int, dict[str, Any]]:
        """``{version: {"state": ..., "reason": ...}}`` of model ``name`` from the repository index."""
        states: dict[int, dict[str, Any]] = {}
        for entry in self.repository_index():
            version = str(entry.get("version") or "")
            if entry.get("name") == name and version.isdigit():
                states[int(version)] = {"state": entry.get("state", ""), "reason": entry.get("reason", "")}
        return states

    def loaded_versions(self, name: str) -> list[int]:
        """The versions of ``name`` that are READY now, ascending."""
        return sorted(v for v, s in self.model_states(name).items() if s["state"] == "READY")

    def _read(self, doing: str, name: str, func: Callable[..., T]) -> T:
        from tritonclient.utils import InferenceServerException

        try:
            return self._call(doing, func)
        except InferenceServerException as err:
            server_message = _server_text(err)
            raise TritonInferenceError(
                f"Triton at {self.base_url} failed {doing}: {server_message}\n"
                f"Next: check that model {name!r} is loaded (repository_index()).",
                model_name=name,
                server_message=server_message,
            ) from err

    def model_metadata(self, name: str, version: str | int = "") -> dict[str, Any]:
        """``GET /v2/models/<name>[/versions/<v>]``: versions, platform, inputs and outputs."""
        return self._read(
            f"reading the metadata of {name!r}",
            name,
            lambda c, **kw: c.get_model_metadata(name, model_version=str(version), **kw),
        )

    def model_config(self, name: str, version: str | int = "") -> dict[str, Any]:
        """The config the server uses for ``name`` (Triton JSON form), including its version policy."""
        return self._read(
            f"reading the config of {name!r}",
            name,
            lambda c, **kw: c.get_model_config(name, model_version=str(version), **kw),
        )

    def model_statistics(self, name: str = "", version: str | int = "") -> list[dict[str, Any]]:
        """Inference statistics (counts, queue/compute times) per model version; all models when empty."""
        stats = self._read(
            f"reading the statistics of {name or 'all models'!r}",
            name,
            lambda c, **kw: c.get_inference_statistics(model_name=name, model_version=str(version), **kw),
        )
        return list((stats or {}).get("model_stats", []))

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
        model_version: str | int = "",
        *,
        protocol: str = "http",
    ) -> dict[str, np.ndarray]:
        """Run one inference request; return the requested outputs as numpy arrays.

        ``protocol``: ``"http"`` (default) or ``"grpc"`` (needs the connection's ``grpc_port``
        and the ``[grpc]`` extra).

        Each input's Triton datatype comes from its numpy dtype (``float32`` -> ``FP32``,
        ``object``/``bytes`` -> ``BYTES``); the shape is sent as is (add the batch dim yourself).

        Example::

            out = hook.infer("double", {"INPUT0": np.array([1, 2], np.float32)}, ["OUTPUT0"])
            out["OUTPUT0"]  # array([2., 4.], dtype=float32)

        :raises TritonInferenceError: Triton rejected the request; the message holds its error text.
        """
        import numpy as np
        from tritonclient.utils import InferenceServerException, np_to_triton_dtype

        if protocol == "grpc":
            self.get_grpc_conn()  # a clear error when the port or the [grpc] extra is missing
            import tritonclient.grpc as module

            client_of: Callable[[], Any] = self.get_grpc_conn
        elif protocol == "http":
            import tritonclient.http as module  # type: ignore[no-redef]

            client_of = self.get_conn
        else:
            raise TritonConnectionError(f"protocol must be 'http' or 'grpc', got {protocol!r}.")
        binary = {"binary_data": True} if protocol == "http" else {}
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
            infer_input = module.InferInput(input_name, list(array.shape), datatype)
            infer_input.set_data_from_numpy(array, **binary)
            request_inputs.append(infer_input)
        requested = [module.InferRequestedOutput(out, **binary) for out in outputs]
        headers = self._request_headers
        try:
            with self._reachable(f"running inference on {model_name!r}"):
                result = client_of().infer(
                    model_name,
                    request_inputs,
                    model_version=str(model_version),
                    outputs=requested,
                    headers=headers,
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

    def infer_batched(
        self,
        model_name: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str],
        *,
        batch_size: int,
        model_version: str | int = "",
        protocol: str = "http",
    ) -> dict[str, np.ndarray]:
        """:meth:`infer` in requests of at most ``batch_size`` rows (axis 0), outputs concatenated.

        Example::

            out = hook.infer_batched("embedder", {"TEXT": texts}, ["EMBEDDING"], batch_size=32)
        """
        import numpy as np

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        arrays = {k: np.asarray(v) for k, v in inputs.items()}
        rows = {len(a) for a in arrays.values()}
        if len(rows) != 1:
            raise TritonInferenceError(
                f"Inputs for {model_name!r} have different numbers of rows: {_describe(arrays)}.",
                model_name=model_name,
            )
        total = rows.pop()
        parts: dict[str, list[np.ndarray]] = {out: [] for out in outputs}
        for start in range(0, total, batch_size):
            chunk = {k: a[start : start + batch_size] for k, a in arrays.items()}
            result = self.infer(model_name, chunk, outputs, model_version=model_version, protocol=protocol)
            for out in outputs:
                parts[out].append(result[out])
        return {out: np.concatenate(p) if p else np.zeros((0,)) for out, p in parts.items()}


def _unverified_context(*_args: Any, **_kwargs: Any) -> Any:
    """TLS without certificate checks (connection extra ``tls_verify: false``), for test servers."""
    import gevent.ssl

    context = gevent.ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = gevent.ssl.CERT_NONE
    return context


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
