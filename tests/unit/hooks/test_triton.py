"""TritonHook without a server: connection parsing, unreachable servers, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from airflow_provider_llmops.exceptions import (
    LlmopsError,
    TritonConnectionError,
    TritonInferenceError,
    TritonModelLoadError,
)
from airflow_provider_llmops.hooks.triton import TritonEndpoint, TritonHook, parse_endpoint
from dev.harness.common import free_port
from dev.harness.triton import write_python_model

CONN_ID = "llmops_triton_unit"
SECRET = "s3cr3t-t0ken-value"


def _set_conn(monkeypatch: pytest.MonkeyPatch, **fields) -> None:
    conn = {"conn_type": "llmops_triton", **fields}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))


def test_hook_metadata():
    assert TritonHook.conn_type == "llmops_triton"
    assert TritonHook.conn_name_attr == "triton_conn_id"
    assert TritonHook.default_conn_name == "llmops_triton_default"
    assert TritonHook.hook_name == "Triton Inference Server"
    assert issubclass(TritonModelLoadError, LlmopsError)
    assert issubclass(TritonConnectionError, LlmopsError)


@pytest.mark.parametrize(
    ("host", "port", "schema", "expected"),
    [
        ("triton", None, None, "http://triton:8000"),
        ("triton", 9000, "", "http://triton:9000"),
        ("triton", 8443, "https", "https://triton:8443"),
        ("https://triton.example:8443", None, None, "https://triton.example:8443"),
        ("http://triton:8000", 9001, None, "http://triton:9001"),
        ("triton:7000", None, None, "http://triton:7000"),
        ("TRITON", None, "HTTP", "http://triton:8000"),
    ],
)
def test_parse_endpoint_urls(host, port, schema, expected):
    endpoint = parse_endpoint("c", host, port, schema, {})
    assert endpoint.base_url == expected
    assert endpoint.client_url == expected.split("://", 1)[1]
    assert endpoint.grpc_url is None


def test_parse_endpoint_extras():
    endpoint = parse_endpoint(
        "c", "triton", 8000, "http", {"grpc_port": "8001", "model_repository": "/models"}
    )
    assert endpoint == TritonEndpoint("http", "triton", 8000, grpc_port=8001, model_repository="/models")
    assert endpoint.grpc_url == "triton:8001"


def test_parse_endpoint_rejects_grpc_schema():
    with pytest.raises(TritonConnectionError, match=r"schema must be 'http' or 'https', got 'grpc'"):
        parse_endpoint("c", "triton", 8001, "grpc", {})


def test_parse_endpoint_rejects_missing_host():
    with pytest.raises(TritonConnectionError, match="has no host"):
        parse_endpoint("c", None, 8000, None, {})


def test_parse_endpoint_rejects_bad_grpc_port():
    with pytest.raises(TritonConnectionError, match="grpc_port must be a port number"):
        parse_endpoint("c", "triton", 8000, None, {"grpc_port": "eight"})


def test_hook_reads_json_env_connection(monkeypatch):
    _set_conn(
        monkeypatch,
        host="10.0.0.7",
        port=8010,
        schema="http",
        extra={"grpc_port": 8011, "model_repository": "/srv/models", "timeout": 5},
    )
    hook = TritonHook(triton_conn_id=CONN_ID)
    assert hook.base_url == "http://10.0.0.7:8010"
    assert hook.grpc_url == "10.0.0.7:8011"
    assert hook.model_repository == "/srv/models"


def test_password_becomes_a_header_and_never_a_message(monkeypatch):
    port = free_port()
    _set_conn(monkeypatch, host="127.0.0.1", port=port, password=SECRET, extra={"auth_header": "admin-key"})
    hook = TritonHook(triton_conn_id=CONN_ID, timeout=2)
    assert hook._request_headers == {"admin-key": SECRET}
    ok, message = hook.test_connection()
    assert not ok
    assert SECRET not in message
    with pytest.raises(TritonConnectionError) as info:
        hook.load_model("m")
    assert SECRET not in str(info.value)


def test_password_defaults_to_bearer_header(monkeypatch):
    _set_conn(monkeypatch, host="127.0.0.1", port=free_port(), password=SECRET)
    assert TritonHook(triton_conn_id=CONN_ID)._request_headers == {"Authorization": f"Bearer {SECRET}"}


def test_test_connection_against_closed_port_is_false_with_clear_message(monkeypatch):
    port = free_port()
    _set_conn(monkeypatch, host="127.0.0.1", port=port)
    ok, message = TritonHook(triton_conn_id=CONN_ID, timeout=2).test_connection()
    assert ok is False
    assert f"http://127.0.0.1:{port}" in message
    assert "Cannot reach Triton" in message
    assert CONN_ID in message


def test_test_connection_with_bad_schema_is_false(monkeypatch):
    _set_conn(monkeypatch, host="127.0.0.1", port=free_port(), schema="grpc")
    ok, message = TritonHook(triton_conn_id=CONN_ID).test_connection()
    assert ok is False
    assert "schema must be 'http' or 'https'" in message


def test_load_model_against_closed_port_raises_connection_error(monkeypatch):
    _set_conn(monkeypatch, host="127.0.0.1", port=free_port())
    with pytest.raises(TritonConnectionError, match="while loading model 'embedder'"):
        TritonHook(triton_conn_id=CONN_ID, timeout=2).load_model("embedder")


def test_infer_rejects_dtype_without_triton_type_before_sending(monkeypatch):
    _set_conn(monkeypatch, host="127.0.0.1", port=free_port())
    hook = TritonHook(triton_conn_id=CONN_ID, timeout=2)
    with pytest.raises(TritonInferenceError, match="complex64"):
        hook.infer("m", {"INPUT0": np.zeros(2, dtype=np.complex64)}, ["OUTPUT0"])


def test_bad_timeout_extra_is_rejected(monkeypatch):
    _set_conn(monkeypatch, host="127.0.0.1", port=8000, extra={"timeout": "soon"})
    with pytest.raises(TritonConnectionError, match="timeout must be a number"):
        TritonHook(triton_conn_id=CONN_ID).get_conn()


def test_write_python_model_layout(tmp_path):
    model_dir = write_python_model(tmp_path, "double", factor=2.0)
    config = (model_dir / "config.pbtxt").read_text()
    assert 'name: "double"' in config
    assert "KIND_CPU" in config
    source = (model_dir / "1" / "model.py").read_text()
    compile(source, "model.py", "exec")
    broken = write_python_model(tmp_path, "broken", fail_on_initialize="boom 42")
    assert "raise RuntimeError('boom 42')" in (broken / "1" / "model.py").read_text()
