"""TritonHook TLS/headers from the connection and the embedding client's error policy, without a server."""

from __future__ import annotations

import json

import pytest

from airflow_provider_llmops.exceptions import TritonConnectionError, TritonInferenceError
from airflow_provider_llmops.hooks.triton import TritonHook, parse_endpoint
from airflow_provider_llmops.utils.embedding import Encoder
from airflow_provider_llmops.utils.triton_embedding import TritonEmbeddingClient, is_transient

CONN_ID = "llmops_triton_tls_unit"
TOKEN = "tls-t0ken-secret-value"


def _set_conn(monkeypatch, **fields):
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "llmops_triton", **fields})
    )


def test_tls_extras_are_parsed():
    endpoint = parse_endpoint(
        "c",
        "triton",
        8443,
        "https",
        {
            "tls_ca_file": "/ca.pem",
            "tls_verify": "false",
            "tls_cert_file": "/c.pem",
            "tls_key_file": "/k.pem",
        },
    )
    assert (endpoint.tls_ca_file, endpoint.tls_verify, endpoint.tls_cert_file) == ("/ca.pem", False, "/c.pem")
    assert parse_endpoint("c", "triton", None, None, {}).tls_verify is True
    with pytest.raises(TritonConnectionError, match="tls_verify must be true or false"):
        parse_endpoint("c", "triton", None, None, {"tls_verify": "maybe"})


def test_https_clients_and_headers_come_from_the_connection(monkeypatch):
    _set_conn(
        monkeypatch,
        host="triton.example",
        port=8443,
        schema="https",
        password=TOKEN,
        extra={"tls_verify": False, "headers": {"X-Team": "search"}, "grpc_port": 8001},
    )
    hook = TritonHook(CONN_ID)
    client = hook.get_conn()
    assert hook.get_conn() is client  # cached per thread
    assert hook._request_headers == {"X-Team": "search", "Authorization": f"Bearer {TOKEN}"}
    assert TOKEN not in repr(hook.endpoint)
    hook.close()


def test_grpc_without_port_is_a_clear_error(monkeypatch):
    _set_conn(monkeypatch, host="triton", port=8000)
    with pytest.raises(TritonConnectionError, match="no grpc_port"):
        TritonHook(CONN_ID).get_grpc_conn()


def test_bad_headers_extra_is_refused(monkeypatch):
    _set_conn(monkeypatch, host="triton", extra={"headers": ["not", "a", "dict"]})
    with pytest.raises(TritonConnectionError, match="headers must be an object"):
        _ = TritonHook(CONN_ID).endpoint


def test_transient_errors_are_told_apart():
    assert is_transient(TritonConnectionError("down"))
    assert is_transient(TritonInferenceError("x", model_name="m", server_message="[503] Service Unavailable"))
    assert not is_transient(
        TritonInferenceError("x", model_name="m", server_message="unexpected input 'IDS'")
    )
    assert not is_transient(ValueError("bad"))


def test_embedding_client_satisfies_the_encoder_protocol_and_checks_arguments():
    client = TritonEmbeddingClient(TritonHook(CONN_ID), "m")
    # Resolving dims/version asks the server, so check the protocol's members on the class.
    members = ("model_name", "model_version", "dims", "normalized", "encode")
    assert all(hasattr(TritonEmbeddingClient, m) or m == "model_name" for m in members)
    assert client.model_name == "m" and {"encode"} <= set(dir(Encoder))
    with pytest.raises(ValueError):
        TritonEmbeddingClient(TritonHook(CONN_ID), "m", concurrency=0)
    with pytest.raises(TypeError):
        client.encode("one string")  # type: ignore[arg-type]
