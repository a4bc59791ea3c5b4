"""TritonEmbeddingClient against the real server: retries through a fault-injecting proxy, clear errors."""

from __future__ import annotations

import http.client
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from airflow_provider_llmops.exceptions import TritonEmbeddingError
from airflow_provider_llmops.hooks.triton import TritonHook
from airflow_provider_llmops.serving.publish import ModelRepository
from airflow_provider_llmops.utils.triton_deploy import TritonDeployManager
from airflow_provider_llmops.utils.triton_embedding import TritonEmbeddingClient
from dev.harness.triton import write_python_model

pytestmark = pytest.mark.integration
log = logging.getLogger("test_triton_embedding")


class FaultProxy:
    """A real HTTP proxy on 127.0.0.1 that answers 503 to the first ``fail_infer`` inference requests."""

    def __init__(self, upstream_port: int, fail_infer: int) -> None:
        self.failures_left = fail_infer
        self.infer_requests = 0
        lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/infer"):
                    with lock:
                        proxy.infer_requests += 1
                        fail = proxy.failures_left > 0
                        proxy.failures_left -= int(fail)
                    if fail:
                        payload = b'{"error":"injected: server overloaded (503)"}'
                        self.send_response(503)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            do_GET = do_POST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_transient_503s_are_retried_and_vectors_keep_their_order(
    triton_conn_id, triton_server, triton_model_repo, minilm_package, monkeypatch
):
    TritonDeployManager(TritonHook(triton_conn_id), ModelRepository(triton_model_repo), log).deploy(
        minilm_package, "e_retry"
    )
    texts = [f"text number {i}" for i in range(10)]
    direct = TritonEmbeddingClient(TritonHook(triton_conn_id), "e_retry", batch_size=10).encode(texts)
    with FaultProxy(triton_server.http_port, fail_infer=3) as proxy:
        monkeypatch.setenv(
            "AIRFLOW_CONN_LLMOPS_TRITON_FAULTY",
            json.dumps({"conn_type": "llmops_triton", "host": "127.0.0.1", "port": proxy.port}),
        )
        client = TritonEmbeddingClient(
            TritonHook("llmops_triton_faulty"), "e_retry", batch_size=3, concurrency=2, base_delay=0.01
        )
        vectors = client.encode(texts)
    assert proxy.infer_requests == 4 + 3  # 4 batches, 3 of the requests failed once
    np.testing.assert_allclose(vectors, direct, atol=1e-6)


def test_persistent_failures_give_up_after_the_attempts(
    triton_conn_id, triton_server, triton_model_repo, minilm_package, monkeypatch
):
    from airflow_provider_llmops.exceptions import TritonInferenceError

    TritonDeployManager(TritonHook(triton_conn_id), ModelRepository(triton_model_repo), log).deploy(
        minilm_package, "e_giveup"
    )
    with FaultProxy(triton_server.http_port, fail_infer=100) as proxy:
        monkeypatch.setenv(
            "AIRFLOW_CONN_LLMOPS_TRITON_FAULTY",
            json.dumps({"conn_type": "llmops_triton", "host": "127.0.0.1", "port": proxy.port}),
        )
        client = TritonEmbeddingClient(
            TritonHook("llmops_triton_faulty"), "e_giveup", attempts=3, base_delay=0.01
        )
        with pytest.raises(TritonInferenceError, match="overloaded"):
            client.encode(["a", "b"])
    assert proxy.infer_requests == 3


def test_a_model_that_is_not_an_embedding_model_is_refused_clearly(triton_conn_id, triton_model_repo):
    write_python_model(triton_model_repo, "e_double")
    hook = TritonHook(triton_conn_id)
    hook.load_model("e_double")
    with pytest.raises(TritonEmbeddingError, match="needs a BYTES input 'TEXT'"):
        TritonEmbeddingClient(hook, "e_double").encode(["x"])


WRONG_SHAPE_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            n = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().shape[0]
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("EMBEDDING", np.zeros((n, 3), np.float32))]))
        return out
"""


def test_a_wrong_output_shape_is_named(triton_conn_id, triton_model_repo):
    model_dir = triton_model_repo / "e_wrong_shape"
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "1" / "model.py").write_text(WRONG_SHAPE_MODEL)
    (model_dir / "config.pbtxt").write_text(
        'name: "e_wrong_shape"\nbackend: "python"\nmax_batch_size: 8\n'
        'input [ { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] } ]\n'
        'output [ { name: "EMBEDDING" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
        "instance_group [ { kind: KIND_CPU count: 1 } ]\n"
    )
    hook = TritonHook(triton_conn_id)
    hook.load_model("e_wrong_shape")
    client = TritonEmbeddingClient(hook, "e_wrong_shape")
    assert client.dims == 4
    with pytest.raises(TritonEmbeddingError, match=r"shape \[2, 3\].*expected \[2, 4\] float32"):
        client.encode(["a", "b"])


def _write_embedding_model(repo, name: str, dims: int, max_batch_size: int) -> None:
    model_dir = repo / name
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "1" / "model.py").write_text(WRONG_SHAPE_MODEL.replace("(n, 3)", f"(n, {dims})"))
    (model_dir / "config.pbtxt").write_text(
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: {max_batch_size}\n'
        'input [ { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] } ]\n'
        f'output [ {{ name: "EMBEDDING" data_type: TYPE_FP32 dims: [ {dims} ] }} ]\n'
        "instance_group [ { kind: KIND_CPU count: 1 } ]\n"
    )


def test_requests_are_capped_at_the_models_max_batch_size(triton_conn_id, triton_model_repo):
    """batch_size=256 against a model packaged with max_batch_size 8: the server would refuse 256."""
    _write_embedding_model(triton_model_repo, "e_small_batch", dims=4, max_batch_size=8)
    hook = TritonHook(triton_conn_id)
    hook.load_model("e_small_batch")
    client = TritonEmbeddingClient(hook, "e_small_batch", batch_size=256, concurrency=2)
    assert client.request_size == 8
    vectors = client.encode([f"text {i}" for i in range(20)])
    assert vectors.shape == (20, 4) and vectors.dtype == np.float32
