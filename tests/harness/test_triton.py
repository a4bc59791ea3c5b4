"""The Triton harness and TritonHook against a real tritonserver (no mocks)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from airflow_provider_llmops.exceptions import TritonInferenceError, TritonModelLoadError
from airflow_provider_llmops.hooks.triton import TritonHook
from dev.harness.common import HarnessError
from dev.harness.triton import TritonServer, write_python_model


def _client(server: TritonServer) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(server.http_url.removeprefix("http://"))


@pytest.mark.integration
def test_server_is_ready_in_explicit_mode_with_nothing_loaded(triton_server, triton_model_repo):
    client = _client(triton_server)
    assert client.is_server_live()
    assert client.is_server_ready()
    write_python_model(triton_model_repo, "h_idle")
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert "h_idle" in index
    assert index["h_idle"].get("state") != "READY"  # explicit mode: nothing loads by itself


@pytest.mark.integration
def test_raw_client_load_and_infer_doubles(triton_server, triton_model_repo):
    write_python_model(triton_model_repo, "h_raw_double")
    client = _client(triton_server)
    client.load_model("h_raw_double")
    assert client.is_model_ready("h_raw_double")
    x = np.array([1.0, 2.5, -3.0, 0.0], dtype=np.float32)
    inp = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("h_raw_double", [inp], outputs=[httpclient.InferRequestedOutput("OUTPUT0")])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * x)


@pytest.mark.integration
def test_hook_from_json_env_connection_loads_infers_unloads(triton_server, triton_model_repo, monkeypatch):
    conn = {"conn_type": "llmops_triton", "host": "127.0.0.1", "port": triton_server.http_port}
    monkeypatch.setenv("AIRFLOW_CONN_LLMOPS_TRITON_TEST", json.dumps(conn))
    write_python_model(triton_model_repo, "h_hook_triple", factor=3.0)
    hook = TritonHook(triton_conn_id="llmops_triton_test")

    assert hook.base_url == triton_server.http_url
    ok, message = hook.test_connection()
    assert ok, message
    assert "2.51" in message
    assert hook.is_server_ready()
    assert not hook.model_ready("h_hook_triple")

    hook.load_model("h_hook_triple")
    assert hook.model_ready("h_hook_triple")
    assert hook.model_ready("h_hook_triple", version="1")
    x = np.arange(6, dtype=np.float32)
    out = hook.infer("h_hook_triple", {"INPUT0": x}, ["OUTPUT0"])
    np.testing.assert_array_equal(out["OUTPUT0"], 3 * x)

    hook.unload_model("h_hook_triple")
    # Unloading is asynchronous on the server side; ready turns False within moments.
    for _ in range(50):
        if not hook.model_ready("h_hook_triple"):
            break
        time.sleep(0.1)
    assert not hook.model_ready("h_hook_triple")


@pytest.mark.integration
def test_hook_via_conn_fixture_double_and_config_override(triton_conn_id, triton_model_repo):
    write_python_model(triton_model_repo, "h_fixture_double")
    hook = TritonHook(triton_conn_id)
    assert hook.model_repository == str(triton_model_repo)
    assert hook.grpc_url is not None
    config = json.dumps(
        {
            "backend": "python",
            "max_batch_size": 0,
            "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [-1]}],
            "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [-1]}],
            "instance_group": [{"kind": "KIND_CPU", "count": 2}],
        }
    )
    hook.load_model("h_fixture_double", config=config)
    x = np.array([10.0, -0.5], dtype=np.float32)
    np.testing.assert_array_equal(
        hook.infer("h_fixture_double", {"INPUT0": x}, ["OUTPUT0"])["OUTPUT0"], 2 * x
    )


@pytest.mark.integration
def test_load_failure_carries_triton_error_text(triton_conn_id, triton_model_repo):
    write_python_model(triton_model_repo, "h_broken_init", fail_on_initialize="deliberate init failure 7731")
    hook = TritonHook(triton_conn_id)
    with pytest.raises(TritonModelLoadError) as info:
        hook.load_model("h_broken_init")
    message = str(info.value)
    assert "deliberate init failure 7731" in message
    assert "h_broken_init" in message
    assert "Next:" in message
    assert info.value.model_name == "h_broken_init"
    assert "deliberate init failure 7731" in info.value.server_message
    assert not hook.model_ready("h_broken_init")


@pytest.mark.integration
def test_load_failure_on_syntax_error_in_model_py(triton_conn_id, triton_model_repo):
    write_python_model(triton_model_repo, "h_syntax", model_source="def broken(:\n    pass\n")
    with pytest.raises(TritonModelLoadError, match="SyntaxError"):
        TritonHook(triton_conn_id).load_model("h_syntax")


@pytest.mark.integration
def test_load_of_missing_model_names_it(triton_conn_id, triton_model_repo):
    with pytest.raises(TritonModelLoadError, match="h_does_not_exist"):
        TritonHook(triton_conn_id).load_model("h_does_not_exist")


@pytest.mark.integration
def test_infer_with_wrong_input_name_raises_inference_error(triton_conn_id, triton_model_repo):
    write_python_model(triton_model_repo, "h_wrong_input")
    hook = TritonHook(triton_conn_id)
    hook.load_model("h_wrong_input")
    with pytest.raises(TritonInferenceError, match="h_wrong_input") as info:
        hook.infer("h_wrong_input", {"NOT_AN_INPUT": np.ones(2, np.float32)}, ["OUTPUT0"])
    assert "NOT_AN_INPUT" in info.value.server_message


@pytest.mark.integration
def test_port_already_taken_raises_harness_error_naming_port(tmp_path: Path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        server = TritonServer(tmp_path / "models", http_port=port)
        with pytest.raises(HarnessError, match=f"127.0.0.1:{port}"):
            server.start()
        assert server.process is None


@pytest.mark.integration
def test_failed_load_keeps_strict_server_unready_until_the_model_loads(triton_conn_id, triton_model_repo):
    """Triton behaviour the deploy operator must handle: unloading a failed model is not enough."""
    write_python_model(triton_model_repo, "h_fail_then_fix", fail_on_initialize="first version is broken")
    hook = TritonHook(triton_conn_id)
    assert hook.is_server_ready()
    with pytest.raises(TritonModelLoadError, match="first version is broken"):
        hook.load_model("h_fail_then_fix")
    assert not hook.is_server_ready()
    hook.unload_model("h_fail_then_fix")
    assert not hook.is_server_ready()
    ok, message = hook.test_connection()
    assert not ok
    assert "not ready" in message

    write_python_model(triton_model_repo, "h_fail_then_fix")  # the fix: a working model.py
    hook.load_model("h_fail_then_fix")
    assert hook.is_server_ready()
    assert hook.test_connection()[0]
