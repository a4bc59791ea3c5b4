"""Hook for an Elasticsearch cluster used as a vector store, on elasticsearch-py.

It reads Airflow's own ``elasticsearch`` connection type (apache-airflow-providers-elasticsearch),
so existing connections work, and builds its client through that provider's
``ElasticsearchPythonHook``. ``elasticsearch`` and the official provider's hook module are
imported inside the methods that need them, so importing this module stays light.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from airflow_provider_llmops.exceptions import ElasticsearchAliasError, ElasticsearchConnectionError
from airflow_provider_llmops.utils.redact import mask_secrets, redact

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

__all__ = ["ClusterCapabilities", "ElasticsearchEndpoint", "ElasticsearchVectorHook", "parse_endpoint"]

DEFAULT_PORT = 9200
DEFAULT_TIMEOUT = 60.0
# Extras of the official connection that configure elasticsearch-dbapi, not elasticsearch-py.
_DBAPI_ONLY = ("fetch_size", "field_multi_value_leniency")


@dataclass(frozen=True)
class ElasticsearchEndpoint:
    """Where the cluster listens and how to trust it, parsed from the connection (no secrets)."""

    hosts: tuple[str, ...]
    auth: str = "none"  # none | basic | api_key
    verify_certs: bool = True
    ca_certs: str | None = None


@dataclass(frozen=True)
class ClusterCapabilities:
    """What the cluster can do, detected once per hook (`ElasticsearchVectorHook.capabilities`)."""

    version: tuple[int, int, int]
    modules: frozenset[str]

    @property
    def rrf_retriever(self) -> bool:
        """Server-side reciprocal rank fusion (``retriever.rrf``): the rank-rrf module."""
        return "rank-rrf" in self.modules or "x-pack-rank-rrf" in self.modules

    @property
    def base64_vectors(self) -> bool:
        """dense_vector values may be sent as base64 of big-endian float32 (9.1 and later)."""
        return self.version >= (9, 1, 0)


def _version_tuple(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.split("-")[0].split(".")[:3] if p.isdigit()]
    major, minor, patch = [*parts, 0, 0, 0][:3]
    return major, minor, patch


def parse_endpoint(
    conn_id: str,
    host: str | None,
    port: int | None,
    schema: str | None,
    login: str | None,
    password: str | None,
    extra: Mapping[str, Any],
) -> tuple[ElasticsearchEndpoint, dict[str, Any]]:
    """(endpoint, elasticsearch-py client arguments) from the fields of an ``elasticsearch`` connection.

    Like the official ``ElasticsearchSQLHook``: ``host`` + ``port`` + ``schema`` (``http``
    default), ``login``/``password`` for basic auth; every other extra is passed on to
    ``elasticsearch.Elasticsearch`` (``api_key``, ``ca_certs``, ``verify_certs``,
    ``request_timeout``, ``http_compress``, ...). ``host`` may also be a comma-separated list of
    URLs (``https://es1:9200,https://es2:9200``).
    """
    if not host:
        raise ElasticsearchConnectionError(
            f"Connection {conn_id!r} has no host. Set host (and port) to the cluster's HTTP endpoint, "
            "e.g. host=es.internal, port=9200, schema=https."
        )
    scheme_default = (schema or "http").lower()
    hosts = []
    for raw in (h.strip() for h in host.split(",")):
        if not raw:
            continue
        parsed = urlsplit(raw if "://" in raw else f"{scheme_default}://{raw}")
        if parsed.scheme not in ("http", "https"):
            raise ElasticsearchConnectionError(
                f"Connection {conn_id!r}: scheme must be http or https, got {parsed.scheme!r}."
            )
        try:
            host_port = parsed.port
        except ValueError:
            raise ElasticsearchConnectionError(
                f"Connection {conn_id!r}: cannot read a port from host {parsed.hostname!r}."
            ) from None
        hosts.append(f"{parsed.scheme}://{parsed.hostname}:{host_port or port or DEFAULT_PORT}")
    args: dict[str, Any] = {k: v for k, v in extra.items() if k not in _DBAPI_ONLY and v is not None}
    auth = "none"
    if args.get("api_key"):
        auth = "api_key"
    elif login and password:
        args["basic_auth"] = (login, password)
        auth = "basic"
    if "http_compress" in args:
        args["http_compress"] = str(args["http_compress"]).lower() in ("1", "true", "yes")
    if "verify_certs" in args:
        args["verify_certs"] = str(args["verify_certs"]).lower() not in ("0", "false", "no")
    args.setdefault("request_timeout", DEFAULT_TIMEOUT)
    endpoint = ElasticsearchEndpoint(
        hosts=tuple(hosts),
        auth=auth,
        verify_certs=bool(args.get("verify_certs", True)),
        ca_certs=args.get("ca_certs"),
    )
    return endpoint, args


class ElasticsearchVectorHook(BaseHook):
    """Client of one Elasticsearch cluster: connection, readiness, capabilities, aliases and _meta.

    Connection: Airflow's ``elasticsearch`` type (host, port, schema, login/password; extras
    ``api_key``, ``ca_certs``, ``verify_certs``, ``request_timeout``, ...). Multi-step work (bulk load, gate, alias switch)
    lives in `airflow_provider_llmops.utils.es_index.EsIndexManager`.

    Example::

        hook = ElasticsearchVectorHook("elasticsearch_default")
        hook.wait_ready(timeout=60)
        hook.alias_indices("docs")           # ["docs-v2-abc123"]
        hook.rollback_alias("docs")          # back to the previous index
    """

    conn_name_attr = "elasticsearch_conn_id"
    default_conn_name = "elasticsearch_default"
    conn_type = "elasticsearch"
    hook_name = "Elasticsearch"
    test_connection_timeout = 10.0

    def __init__(self, elasticsearch_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self._endpoint: ElasticsearchEndpoint | None = None
        self._args: dict[str, Any] = {}
        self._secrets: list[str] = []
        self._client: Elasticsearch | None = None
        self._capabilities: ClusterCapabilities | None = None

    # -- connection -----------------------------------------------------------------------

    def _load_connection(self) -> None:
        conn = self.get_connection(self.elasticsearch_conn_id)
        self._endpoint, self._args = parse_endpoint(
            self.elasticsearch_conn_id,
            conn.host,
            conn.port,
            conn.schema,
            conn.login,
            conn.password,
            conn.extra_dejson or {},
        )
        api_key = self._args.get("api_key")
        self._secrets = mask_secrets(
            [conn.password, *(api_key if isinstance(api_key, (list, tuple)) else [api_key])]
        )

    @property
    def endpoint(self) -> ElasticsearchEndpoint:
        """The parsed connection (hosts, cluster name, auth kind; never secrets)."""
        if self._endpoint is None:
            self._load_connection()
        assert self._endpoint is not None
        return self._endpoint

    def get_conn(self) -> Elasticsearch:
        """The (cached) ``elasticsearch.Elasticsearch`` client, built by the official provider's hook."""
        if self._client is None:
            from airflow.providers.elasticsearch.hooks.elasticsearch import ElasticsearchPythonHook

            endpoint = self.endpoint
            conn = ElasticsearchPythonHook(list(endpoint.hosts), dict(self._args)).get_conn
            # A cached property in provider 6.x; a method in some other releases.
            self._client = conn() if callable(conn) else conn
        return self._client

    def redact(self, text: str) -> str:
        """`text` with this connection's password/API key and URL userinfo replaced by ``***``."""
        return redact(text, self._secrets)

    # -- single calls -----------------------------------------------------------------------

    def wait_ready(self, timeout: float = 60.0, status: str = "yellow") -> dict[str, Any]:
        """Wait until ``_cluster/health`` reports `status` (never ``GET /``); return the health body."""
        from elasticsearch import ApiError, TransportError

        deadline = time.monotonic() + timeout
        client = self.get_conn().options(request_timeout=max(5.0, min(timeout, 30.0)) + 5, max_retries=0)
        last = ""
        while True:
            left = deadline - time.monotonic()
            try:
                health = client.cluster.health(
                    wait_for_status=status, timeout=f"{max(1, int(min(left, 30)))}s"
                )
                if not health.get("timed_out"):
                    return dict(health.body)
                last = f"status {health.get('status')}"
            except (ApiError, TransportError) as err:
                last = self.redact(f"{type(err).__name__}: {err}")
            if time.monotonic() >= deadline:
                raise ElasticsearchConnectionError(
                    f"Elasticsearch at {', '.join(self.endpoint.hosts)} (connection "
                    f"{self.elasticsearch_conn_id!r}) is not {status} after {timeout:.0f}s: {last}. "
                    "Check host, port, scheme and credentials, and the cluster's health."
                )
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))

    def test_connection(self) -> tuple[bool, str]:
        """The connection form's *Test* button: is the cluster reachable and at least yellow?"""
        try:
            health = self.wait_ready(timeout=self.test_connection_timeout)
        except Exception as err:
            return False, self.redact(f"{type(err).__name__}: {err}")
        return True, f"Cluster {health.get('cluster_name')} is {health.get('status')}"

    def capabilities(self) -> ClusterCapabilities:
        """Version and modules of the node we talk to (cached): decides base64 vectors and RRF."""
        if self._capabilities is None:
            info = self.get_conn().nodes.info(node_id="_local", metric="plugins")
            node = next(iter(info["nodes"].values()))
            names = {m["name"] for m in node.get("modules", [])} | {
                p["name"] for p in node.get("plugins", [])
            }
            self._capabilities = ClusterCapabilities(_version_tuple(node["version"]), frozenset(names))
        return self._capabilities

    def alias_indices(self, alias: str) -> list[str]:
        """The indices `alias` points at (sorted; empty when the alias does not exist).

        Raises ElasticsearchAliasError when `alias` is the name of a concrete index.
        """
        client = self.get_conn()
        if client.indices.exists(index=alias) and not client.indices.exists_alias(name=alias):
            raise ElasticsearchAliasError(
                f"{alias!r} is a concrete index, not an alias, so readers cannot be switched atomically. "
                "Pick another alias name, or reindex that index and delete it first.",
                alias=alias,
            )
        if not client.indices.exists_alias(name=alias):
            return []
        return sorted(client.indices.get_alias(name=alias).body)

    def index_meta(self, index: str) -> dict[str, Any]:
        """The mapping ``_meta`` of `index` (empty when it has none)."""
        mapping = self.get_conn().indices.get_mapping(index=index)
        return dict(next(iter(mapping.body.values()))["mappings"].get("_meta", {}))

    def rollback_alias(self, alias: str, to_index: str | None = None) -> tuple[str, str]:
        """Point `alias` back at `to_index`, else the index it pointed at before; (old, new).

        See `EsIndexManager.rollback`.
        """
        from airflow_provider_llmops.utils.es_index import EsIndexManager

        return EsIndexManager(self.get_conn(), log=self.log).rollback(alias, to_index)
