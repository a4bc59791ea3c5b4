"""Elasticsearch kNN benchmarks, each a ratio against a baseline measured in the same run, same server.

    python -m benchmarks.bench_es [--quick] [--repeats N]   # or: python -m benchmarks.run --suite es

- ``es_ingest``: docs/s of the operator's bulk path (load settings, base64 vectors, byte-sized
  concurrent requests, final refresh) vs a plain ``elasticsearch.helpers.bulk`` loop with
  default settings, on the same precomputed vectors. Goal >= 1.5x.
- ``es_recall_<type>``: recall@10 of kNN vs exact neighbours on the test corpus (the standard
  library's docstrings, real MiniLM embeddings) for hnsw (goal >= 0.95), int8_hnsw and bbq_hnsw.
- ``es_encode``: texts/s of the local encoder path vs raw ``SentenceTransformer.encode`` on the
  same texts (goal >= 0.95x), and ``es_encode_flops``: the encoder's achieved FLOP/s vs a numpy
  float32 matrix-multiply probe in the same run (report only).

The server is the harness's (a fresh single node), or ``LLMOPS_ES_URL`` when set.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

from benchmarks.reporting import Result, suite_main

INGEST_TARGET = 1.5
RECALL_TARGET = 0.95
ENCODE_TARGET = 0.95


@contextlib.contextmanager
def _server() -> Iterator[str]:
    if os.environ.get("LLMOPS_ES_URL"):
        yield os.environ["LLMOPS_ES_URL"]
        return
    from dev.harness.elasticsearch import ElasticsearchServer

    server = ElasticsearchServer(name=f"bench-{os.getpid()}", fresh=True)
    server.start()
    try:
        yield server.url
    finally:
        server.stop(remove_run_dir=True)


def _vectors(n: int, dims: int = 384) -> Any:
    import numpy as np

    rng = np.random.default_rng(42)
    vectors = rng.normal(size=(n, dims)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _texts(n: int) -> list[str]:
    return [f"document {i} about topic {i % 97} with some words to index for BM25" for i in range(n)]


def bench_ingest(client: Any, n: int, repeats: int) -> tuple[list[float], list[float]]:
    """(baseline docs/s, candidate docs/s) per repeat, interleaved."""
    from elasticsearch.helpers import bulk

    from airflow_provider_llmops.utils.es_bulk import BulkIngester, encode_vectors
    from airflow_provider_llmops.utils.es_index import EsIndexManager, VectorIndexSpec, build_mapping

    vectors, texts = _vectors(n), _texts(n)
    spec = VectorIndexSpec(dims=vectors.shape[1], replicas=0)
    manager = EsIndexManager(client)
    base, cand = [], []
    for r in range(repeats):
        index = f"bench-plain-{r}"
        client.options(ignore_status=404).indices.delete(index=index)
        client.indices.create(
            index=index, mappings=build_mapping(spec, {}), settings={"number_of_replicas": 0}
        )
        start = time.perf_counter()
        actions = (
            {"_index": index, "_id": f"d{i}", "text": texts[i], "embedding": vectors[i].tolist()}
            for i in range(n)
        )
        ok, errors = bulk(client, actions)
        client.indices.refresh(index=index)
        base.append(n / (time.perf_counter() - start))
        assert ok == n and not errors, errors
        client.indices.delete(index=index)

        index = f"bench-llmops-{r}"
        client.options(ignore_status=404).indices.delete(index=index)
        manager.create_index(index, spec, {})  # outside the timing, as the baseline's
        start = time.perf_counter()
        with manager.load_settings(index, spec):
            packed = encode_vectors(vectors)
            docs = ((f"d{i}", {"text": texts[i], "embedding": packed[i]}) for i in range(n))
            BulkIngester(client, index).ingest(docs, total=n)
        client.indices.refresh(index=index)
        cand.append(n / (time.perf_counter() - start))
        assert manager.count(index) == n
        client.indices.delete(index=index)
    return base, cand


def bench_recall(client: Any, encoder: Any, texts: list[str], index_type: str) -> float:
    """recall@10 of `index_type` vs exact neighbours, the queries being a sample of the corpus."""
    import numpy as np

    from airflow_provider_llmops.utils.es_bulk import BulkIngester, encode_vectors
    from airflow_provider_llmops.utils.es_eval import ExactNeighbours, recall_at_k
    from airflow_provider_llmops.utils.es_index import EsIndexManager, VectorIndexSpec
    from airflow_provider_llmops.utils.es_search import knn_search

    vectors = encoder.encode(texts)
    ids = [f"c{i}" for i in range(len(texts))]
    rng = np.random.default_rng(7)
    sample = rng.choice(len(texts), size=min(50, len(texts)), replace=False)
    # Held-out style queries: the sample's texts, slightly perturbed so no query is its own document.
    queries = encoder.encode([texts[i][: max(20, len(texts[i]) // 2)] for i in sample])
    exact = ExactNeighbours(queries, k=10, similarity="cosine")
    exact.add(ids, vectors)
    index = f"bench-recall-{index_type.replace('_', '-')}"
    client.options(ignore_status=404).indices.delete(index=index)
    spec = VectorIndexSpec(dims=encoder.dims, index_type=index_type, replicas=0)
    manager = EsIndexManager(client)
    manager.create_index(index, spec, {})
    with manager.load_settings(index, spec):
        packed = encode_vectors(vectors)
        BulkIngester(client, index).ingest(
            (ids[i], {"text": texts[i], "embedding": packed[i]}) for i in range(len(ids))
        )
    client.indices.refresh(index=index)
    client.indices.forcemerge(index=index, max_num_segments=1)
    recalls = [
        recall_at_k(
            [h.id for h in knn_search(client, index, q, k=10, num_candidates=100, source=False)], want, 10
        )
        for q, want in zip(queries, exact.ids(), strict=True)
    ]
    client.indices.delete(index=index)
    return statistics.mean(recalls)


def _forward_flops(encoder: Any, texts: list[str]) -> float:
    """FLOPs of one forward pass over `texts`: 2 x weights x tokens plus attention (4 x seq^2 x hidden per layer)."""
    model = encoder.model
    tokenizer = model.tokenizer
    config = model[0].auto_model.config
    lengths = [
        len(ids)
        for ids in tokenizer(texts, truncation=True, max_length=encoder.max_seq_length or 512)["input_ids"]
    ]
    embedding_params = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    dense_params = encoder.count_parameters() - embedding_params
    attention = sum(4 * config.num_hidden_layers * length * length * config.hidden_size for length in lengths)
    return 2.0 * dense_params * sum(lengths) + attention


def _matmul_flops(seconds: float = 2.0) -> float:
    import numpy as np

    n = 1024
    a, b = np.ones((n, n), np.float32), np.ones((n, n), np.float32)
    a @ b  # warm-up
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        runs += 1
    return 2.0 * n**3 * runs / (time.perf_counter() - start)


def bench_encode(
    encoder: Any, texts: list[str], repeats: int
) -> tuple[tuple[list[float], list[float]], float]:
    """((raw texts/s, encoder texts/s), achieved FLOP/s of the encoder path)."""
    model = encoder.model
    encoder.encode(texts[:32])  # warm-up
    base, cand, seconds = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        model.encode(texts, batch_size=encoder.batch_size, normalize_embeddings=True, show_progress_bar=False)
        base.append(len(texts) / (time.perf_counter() - start))
        start = time.perf_counter()
        encoder.encode(texts)
        elapsed = time.perf_counter() - start
        seconds.append(elapsed)
        cand.append(len(texts) / elapsed)
    return (base, cand), _forward_flops(encoder, texts) / statistics.median(seconds)


def run_all(repeats: int = 3, quick: bool = False) -> dict[str, Result]:
    from elasticsearch import Elasticsearch

    from airflow_provider_llmops.utils.embedding import SentenceTransformerEncoder
    from tests.fixtures.es_knn import stdlib_corpus

    encoder = SentenceTransformerEncoder("all-MiniLM-L6-v2", device="cpu")
    corpus = [d["text"] for d in stdlib_corpus()]
    texts = corpus[:64] if quick else corpus
    results: dict[str, Result] = {}
    with _server() as url:
        client = Elasticsearch(url, request_timeout=300)
        results["es_ingest"] = Result(
            bench_ingest(client, 3000 if quick else 20000, repeats),
            INGEST_TARGET,
            "docs/s: operator bulk path vs helpers.bulk defaults (same vectors)",
            higher_is_better=True,
        )
        for index_type in ("hnsw", "int8_hnsw", "bbq_hnsw"):
            recall = bench_recall(client, encoder, texts, index_type)
            results[f"es_recall_{index_type}"] = Result(
                ([1.0], [recall]),
                RECALL_TARGET if index_type == "hnsw" else None,
                f"recall@10 of {index_type} vs exact neighbours ({len(texts)} docs)",
                higher_is_better=True,
            )
        client.close()
    samples, flops = bench_encode(encoder, texts, repeats)
    results["es_encode"] = Result(
        samples,
        ENCODE_TARGET,
        "texts/s: local encoder vs raw SentenceTransformer.encode",
        higher_is_better=True,
    )
    probe = _matmul_flops()
    results["es_encode_flops"] = Result(
        ([probe], [flops]),
        None,
        f"achieved FLOP/s of the encoder ({flops / 1e9:.2f} GFLOP/s) vs numpy matmul probe ({probe / 1e9:.2f} GFLOP/s)",
        higher_is_better=True,
    )
    return results


def main(argv: list[str] | None = None) -> int:
    return suite_main(
        run_all,
        __doc__,
        argv,
        repeats=3,
        quick_help="3,000 docs and 64 texts instead of 20,000 and the corpus",
    )


if __name__ == "__main__":
    sys.exit(main())
