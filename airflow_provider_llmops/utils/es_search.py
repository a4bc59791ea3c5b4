"""Search helpers for applications and for the quality gate: kNN with filters, hybrid BM25 + kNN with RRF.

Hybrid search fuses a BM25 ranking and a kNN ranking with reciprocal rank fusion. Clusters
with the rank-rrf module fuse server-side (``retriever.rrf``); others (e.g. a basic-license or
minimal distribution) get the same fusion client-side from two plain searches. The choice is
made by capability detection (`ElasticsearchVectorHook.capabilities`), or forced with
``server_side=True/False``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.utils.es_index import check_encoder

if TYPE_CHECKING:
    import numpy as np
    from elasticsearch import Elasticsearch

    from airflow_provider_llmops.utils.embedding import Encoder

__all__ = ["Hit", "VectorSearcher", "hybrid_search", "knn_search", "rrf_fuse"]

RRF_RANK_CONSTANT = 60


@dataclass(frozen=True)
class Hit:
    """One search result: the chunk id, its score (similarity or fused RRF score) and its source."""

    id: str
    score: float
    source: Mapping[str, Any]


def _vector(query_vector: np.ndarray | Sequence[float]) -> list[float]:
    return [float(x) for x in (query_vector.tolist() if hasattr(query_vector, "tolist") else query_vector)]


def _knn_clause(
    vector_field: str,
    query_vector: np.ndarray | Sequence[float],
    k: int,
    num_candidates: int | None,
    filter: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
) -> dict[str, Any]:
    clause: dict[str, Any] = {
        "field": vector_field,
        "query_vector": _vector(query_vector),
        "k": k,
        "num_candidates": num_candidates or max(100, 2 * k),
    }
    if filter:
        clause["filter"] = filter
    return clause


def _hits(resp: Any) -> list[Hit]:
    return [Hit(h["_id"], float(h.get("_score") or 0.0), h.get("_source", {})) for h in resp["hits"]["hits"]]


def knn_search(
    client: Elasticsearch,
    index: str,
    query_vector: np.ndarray | Sequence[float],
    *,
    k: int = 10,
    num_candidates: int | None = None,
    filter: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    vector_field: str = "embedding",
    source: bool | Mapping[str, Any] = True,
) -> list[Hit]:
    """Top-`k` approximate nearest neighbours of `query_vector`, optionally pre-filtered.

    `filter` is query DSL (e.g. ``{"term": {"lang": "en"}}``) applied *during* the graph search,
    so `k` results come back when that many documents match.

    Example::

        hits = knn_search(client, "docs", encoder.encode(["refund policy"])[0], k=5,
                          filter={"term": {"lang": "en"}})
    """
    resp = client.search(
        index=index,
        knn=_knn_clause(vector_field, query_vector, k, num_candidates, filter),
        size=k,
        source=source,
    )
    return _hits(resp)


def rrf_fuse(
    rankings: Sequence[Sequence[str]], *, k: int = 10, rank_constant: int = RRF_RANK_CONSTANT
) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: score(d) = sum over rankings of 1 / (rank_constant + rank(d)), rank from 1.

    Ties are broken by id, so the result is deterministic.
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (rank_constant + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]


def hybrid_search(
    client: Elasticsearch,
    index: str,
    text: str,
    query_vector: np.ndarray | Sequence[float],
    *,
    server_side: bool,
    k: int = 10,
    window: int | None = None,
    num_candidates: int | None = None,
    filter: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    text_field: str = "text",
    vector_field: str = "embedding",
    rank_constant: int = RRF_RANK_CONSTANT,
) -> list[Hit]:
    """BM25 on `text_field` and kNN on `vector_field`, fused with RRF; top `k`.

    `window` is how many results of each ranking take part in the fusion (default ``max(k, 50)``).
    ``server_side=True`` sends one ``retriever.rrf`` request; ``False`` runs the two searches and
    fuses here with the same formula (`rrf_fuse`).
    """
    window = window or max(k, 50)
    match: dict[str, Any] = {"match": {text_field: text}}
    lexical: dict[str, Any] = {"bool": {"must": [match], "filter": filter}} if filter else match
    knn = _knn_clause(vector_field, query_vector, window, num_candidates, filter)
    if server_side:
        resp = client.search(
            index=index,
            retriever={
                "rrf": {
                    "retrievers": [{"standard": {"query": lexical}}, {"knn": knn}],
                    "rank_window_size": window,
                    "rank_constant": rank_constant,
                }
            },
            size=k,
        )
        return _hits(resp)
    bm25 = client.search(index=index, query=lexical, size=window)
    dense = client.search(index=index, knn=knn, size=window)
    sources = {h.id: h.source for h in _hits(bm25) + _hits(dense)}
    fused = rrf_fuse(
        [[h.id for h in _hits(bm25)], [h.id for h in _hits(dense)]], k=k, rank_constant=rank_constant
    )
    return [Hit(doc_id, score, sources[doc_id]) for doc_id, score in fused]


class VectorSearcher:
    """Searches an alias or index after checking that its vectors come from `encoder` (the guard).

    `server_side_rrf` None: decide by the cluster's capabilities (`hook.capabilities()`).

    Example::

        searcher = VectorSearcher(hook, "docs", encoder)
        searcher.knn("how do I reset my password", k=5)
        searcher.hybrid("reset password", k=5, filter={"term": {"lang": "en"}})
    """

    def __init__(
        self,
        hook: Any,
        index: str,
        encoder: Encoder,
        *,
        server_side_rrf: bool | None = None,
    ) -> None:
        from airflow_provider_llmops.utils.es_index import EsIndexManager

        self.client = hook.get_conn()
        self.index = index
        self.encoder = encoder
        manager = EsIndexManager(self.client, log=getattr(hook, "log", None))
        concrete = manager.alias_target(index) if self.client.indices.exists_alias(name=index) else index
        assert concrete is not None
        self.meta = manager.meta(concrete)
        check_encoder({"llmops": self.meta} if self.meta else {}, concrete, encoder)
        self.vector_field = self.meta.get("vector_field", "embedding")
        self.text_field = self.meta.get("text_field", "text")
        self.server_side_rrf = (
            hook.capabilities().rrf_retriever if server_side_rrf is None else server_side_rrf
        )

    def knn(self, text: str, *, k: int = 10, **kwargs: Any) -> list[Hit]:
        vector = self.encoder.encode([text])[0]
        return knn_search(self.client, self.index, vector, k=k, vector_field=self.vector_field, **kwargs)

    def hybrid(self, text: str, *, k: int = 10, **kwargs: Any) -> list[Hit]:
        vector = self.encoder.encode([text])[0]
        return hybrid_search(
            self.client,
            self.index,
            text,
            vector,
            server_side=self.server_side_rrf,
            k=k,
            text_field=self.text_field,
            vector_field=self.vector_field,
            **kwargs,
        )
