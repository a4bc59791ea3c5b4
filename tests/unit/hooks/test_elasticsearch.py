"""ElasticsearchVectorHook without a server: the official connection type's fields, capabilities."""

from __future__ import annotations

import json

import pytest

from airflow_provider_llmops.exceptions import ElasticsearchConnectionError
from airflow_provider_llmops.hooks.elasticsearch import (
    ClusterCapabilities,
    ElasticsearchVectorHook,
    parse_endpoint,
)

CONN_ID = "es_unit"
SECRET = "es-pw-Zq81x"


def test_hook_uses_the_official_connection_type():
    assert ElasticsearchVectorHook.conn_type == "elasticsearch"
    assert ElasticsearchVectorHook.default_conn_name == "elasticsearch_default"


@pytest.mark.parametrize(
    ("host", "port", "schema", "expected"),
    [
        ("es.internal", 9200, None, ("http://es.internal:9200",)),
        ("es.internal", None, "https", ("https://es.internal:9200",)),
        ("https://es.internal:9243", None, None, ("https://es.internal:9243",)),
        ("es1:9201,es2", 9200, "http", ("http://es1:9201", "http://es2:9200")),
    ],
)
def test_hosts(host, port, schema, expected):
    endpoint, _ = parse_endpoint(CONN_ID, host, port, schema, None, None, {})
    assert endpoint.hosts == expected


def test_basic_auth_api_key_and_extras():
    endpoint, args = parse_endpoint(
        CONN_ID,
        "es",
        9200,
        "https",
        "elastic",
        SECRET,
        {"ca_certs": "/ca.pem", "verify_certs": "false", "fetch_size": 5},
    )
    assert endpoint.auth == "basic" and args["basic_auth"] == ("elastic", SECRET)
    assert args["ca_certs"] == "/ca.pem" and args["verify_certs"] is False and "fetch_size" not in args
    assert SECRET not in repr(endpoint)
    endpoint, args = parse_endpoint(CONN_ID, "es", 9200, "https", None, None, {"api_key": "k-123"})
    assert endpoint.auth == "api_key" and args["api_key"] == "k-123" and "basic_auth" not in args


def test_missing_host_and_bad_scheme_are_refused():
    with pytest.raises(ElasticsearchConnectionError, match="has no host"):
        parse_endpoint(CONN_ID, None, None, None, None, None, {})
    with pytest.raises(ElasticsearchConnectionError, match="scheme must be http or https"):
        parse_endpoint(CONN_ID, "ftp://es", None, None, None, None, {})


def test_capabilities():
    plain = ClusterCapabilities((9, 5, 4), frozenset({"x-pack-core"}))
    assert not plain.rrf_retriever and plain.base64_vectors
    full = ClusterCapabilities((9, 0, 0), frozenset({"rank-rrf"}))
    assert full.rrf_retriever and not full.base64_vectors


def test_unreachable_cluster_names_host_without_the_password(monkeypatch):
    from dev.harness.common import free_port

    port = free_port()
    conn = {
        "conn_type": "elasticsearch",
        "host": "127.0.0.1",
        "port": port,
        "login": "elastic",
        "password": SECRET,
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    hook = ElasticsearchVectorHook(CONN_ID)
    with pytest.raises(
        ElasticsearchConnectionError, match=rf"127\.0\.0\.1:{port}.*is not yellow after 1s"
    ) as info:
        hook.wait_ready(timeout=1)
    assert SECRET not in str(info.value)
    hook.test_connection_timeout = 1
    ok, message = hook.test_connection()
    assert not ok and SECRET not in message
