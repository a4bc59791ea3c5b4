"""Triton deployment ratios against one real tritonserver (python backend, CPU), all in one run.

- ``triton_infer_c1``: 1-text requests at concurrency 1, TritonHook.infer vs raw tritonclient
  (target <= 1.1x);
- ``triton_deploy_ready``: TritonDeployManager.deploy (smoke test off; the smoke test's own time
  is printed apart) vs raw ``load_model`` + readiness poll of the same published version (<= 1.1x);
- ``triton_dynamic_batching``: time for 8 clients x 1-text requests with dynamic batching on vs
  off (target <= 0.5x, i.e. >= 2x throughput);
- ``triton_vs_st``: TritonEmbeddingClient.encode vs sentence-transformers' in-process encode
  (torch fp32) of the same texts (target <= 1.0x).

Times are medians of ``--repeats`` samples, baseline and candidate interleaved.

    python -m benchmarks.bench_triton --repeats 5 [--quick]
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.reporting import Result, Samples, suite_main

log = logging.getLogger("bench_triton")


def _texts(n: int) -> list[str]:
    words = "model serving triton deploy vector search index batch token embedding latency".split()
    return [" ".join(words[(i * 7 + j) % len(words)] for j in range(6 + i % 20)) for i in range(n)]


def _without_batching(package):
    configs = copy.deepcopy(package.configs)
    configs["main"].pop("dynamic_batching", None)
    return dataclasses.replace(package, configs=configs, content_hash=package.content_hash + "-nodyn")


def run_all(repeats: int = 5, quick: bool = False) -> dict[str, Result]:
    import tritonclient.http as httpclient
    from sentence_transformers import SentenceTransformer

    from airflow_provider_llmops.hooks.triton import TritonHook
    from airflow_provider_llmops.serving.config import with_version_policy
    from airflow_provider_llmops.serving.package import package_embedding
    from airflow_provider_llmops.serving.publish import ModelRepository
    from airflow_provider_llmops.utils.triton_deploy import TritonDeployManager
    from airflow_provider_llmops.utils.triton_embedding import TritonEmbeddingClient
    from dev.harness.triton import TritonServer, install_model_requirements, new_run_dir
    from tests.fixtures.triton import minilm_folder

    n_requests, n_texts = (20, 64) if quick else (100, 256)
    run_dir = new_run_dir("bench")
    repo_dir = run_dir / "models"
    with tempfile.TemporaryDirectory(prefix="bench-triton-") as tmp, TritonServer(repo_dir) as server:
        package = package_embedding(
            minilm_folder(),
            Path(tmp) / "pkg",
            max_batch_size=32,
            preferred_batch_sizes=(8,),
            max_queue_delay_us=5000,
        )
        install_model_requirements(Path(package.path) / "requirements.txt")
        os.environ["AIRFLOW_CONN_LLMOPS_TRITON_BENCH"] = json.dumps(
            {"conn_type": "llmops_triton", "host": "127.0.0.1", "port": server.http_port}
        )
        hook = TritonHook("llmops_triton_bench")
        repo = ModelRepository(repo_dir)
        manager = TritonDeployManager(hook, repo, log)
        manager.deploy(package, "bench_dyn")
        manager.deploy(_without_batching(package), "bench_nodyn", smoke_test=False)
        raw = httpclient.InferenceServerClient(server.http_url.removeprefix("http://"))
        one = np.array([[b"a single query text"]], dtype=object)

        def raw_infer() -> None:
            inp = httpclient.InferInput("TEXT", [1, 1], "BYTES")
            inp.set_data_from_numpy(one)
            raw.infer("bench_dyn", [inp], outputs=[httpclient.InferRequestedOutput("EMBEDDING")])

        def hook_infer() -> None:
            hook.infer("bench_dyn", {"TEXT": one}, ["EMBEDDING"])

        def timed(fn, times: int) -> float:
            start = time.perf_counter()
            for _ in range(times):
                fn()
            return time.perf_counter() - start

        def pair(samples: Samples, i: int, base, cand) -> None:
            """One sample of each, the order alternating so drift and warm-up hit both alike."""
            if i % 2:
                samples[1].append(cand())
                samples[0].append(base())
            else:
                samples[0].append(base())
                samples[1].append(cand())

        results: dict[str, Result] = {}
        timed(hook_infer, 5)
        infer: Samples = ([], [])
        for i in range(repeats):
            pair(infer, i, lambda: timed(raw_infer, n_requests), lambda: timed(hook_infer, n_requests))
        results["triton_infer_c1"] = Result(
            infer,
            1.1,
            f"{n_requests} x 1-text infer: TritonHook vs raw tritonclient",
        )

        deploy: Samples = ([], [])
        smoke: list[float] = []
        for i in range(repeats):
            base_name, cand_name = f"bench_raw_{i}", f"bench_op_{i}"
            published = repo.publish(package, base_name)
            repo.publish(package, cand_name)
            config = json.dumps(with_version_policy(published.configs["main"], base_name, [1]))

            def raw_deploy(name: str = base_name, config: str = config) -> float:
                start = time.perf_counter()
                raw.load_model(name, config=config)
                while not raw.is_model_ready(name, "1"):
                    time.sleep(0.05)
                elapsed = time.perf_counter() - start
                hook.unload_model(name)
                return elapsed

            def operator_deploy(name: str = cand_name) -> float:
                start = time.perf_counter()
                manager.deploy(package, name, smoke_test=False)
                elapsed = time.perf_counter() - start
                started = time.perf_counter()
                manager.smoke_test(name, 1)
                smoke.append(time.perf_counter() - started)
                hook.unload_model(name)
                return elapsed

            pair(deploy, i, raw_deploy, operator_deploy)
        print(f"# smoke test alone: median {sorted(smoke)[len(smoke) // 2]:.3f}s", flush=True)
        results["triton_deploy_ready"] = Result(
            deploy,
            1.1,
            "deploy (publish no-op + load + ready) vs raw load + poll",
        )

        def concurrent(model: str) -> float:
            per_client = max(1, n_requests // 2)

            def client() -> None:
                h = TritonHook("llmops_triton_bench")
                for _ in range(per_client):
                    h.infer(model, {"TEXT": one}, ["EMBEDDING"])
                h.close()

            threads = [threading.Thread(target=client) for _ in range(8)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return time.perf_counter() - start

        batching: Samples = ([], [])
        for i in range(repeats):
            pair(batching, i, lambda: concurrent("bench_nodyn"), lambda: concurrent("bench_dyn"))
        results["triton_dynamic_batching"] = Result(
            batching,
            0.5,
            "8 clients x 1-text requests: dynamic batching on vs off",
        )

        texts = _texts(n_texts)
        st = SentenceTransformer(str(minilm_folder()), device="cpu")
        encoder = TritonEmbeddingClient(hook, "bench_dyn", batch_size=32, concurrency=2)
        encoder.encode(texts[:8])
        st.encode(texts[:8])

        def st_encode() -> float:
            start = time.perf_counter()
            st.encode(texts, batch_size=32, normalize_embeddings=True)
            return time.perf_counter() - start

        def triton_encode() -> float:
            start = time.perf_counter()
            encoder.encode(texts)
            return time.perf_counter() - start

        versus: Samples = ([], [])
        for i in range(repeats):
            pair(versus, i, st_encode, triton_encode)
        results["triton_vs_st"] = Result(
            versus,
            1.0,
            f"encode {n_texts} texts: Triton (ONNX) vs in-process sentence-transformers",
        )
        raw.close()
        hook.close()
    return results


def main(argv: list[str] | None = None) -> int:
    return suite_main(run_all, __doc__, argv, repeats=5, quick_help="fewer requests and texts")


if __name__ == "__main__":
    sys.exit(main())
