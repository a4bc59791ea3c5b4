"""Quality gate of a new kNN index: recall against exact neighbours, and recall/MRR/nDCG against judgments.

Exact neighbours are computed client-side while the vectors stream past on their way to the
index (`ExactNeighbours`: memory O(queries x k), not O(corpus)), so the gate needs no second
pass and no scripting on the server.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_llmops.utils.records import Record

if TYPE_CHECKING:
    import numpy as np
    from elasticsearch import Elasticsearch

__all__ = [
    "Evaluation",
    "ExactNeighbours",
    "GateSpec",
    "Judgment",
    "exact_retrieval_metrics",
    "gate",
    "mrr",
    "ndcg_at_k",
    "recall_at_k",
]


def _scores(similarity: str, queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Higher is nearer, with the same ordering Elasticsearch uses for that similarity."""
    import numpy as np

    if similarity == "cosine":
        q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return q @ v.T
    if similarity == "l2_norm":
        return -(
            (queries**2).sum(axis=1, keepdims=True)
            - 2 * queries @ vectors.T
            + (vectors**2).sum(axis=1)[None, :]
        )
    return queries @ vectors.T  # dot_product, max_inner_product


class ExactNeighbours:
    """Streaming exact top-k of a few query vectors over all vectors added.

    Example::

        exact = ExactNeighbours(query_vectors, k=10, similarity="cosine")
        for ids, vectors in batches:
            exact.add(ids, vectors)
        exact.ids()  # one list of the k nearest ids per query, nearest first
    """

    def __init__(self, queries: np.ndarray, k: int, similarity: str) -> None:
        import numpy as np

        self.queries = np.asarray(queries, dtype=np.float32)
        self.k = k
        self.similarity = similarity
        self._best_scores = np.full((len(self.queries), 0), -np.inf, dtype=np.float32)
        self._best_ids = np.empty((len(self.queries), 0), dtype=object)

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        import numpy as np

        if not len(self.queries) or not len(ids):
            return
        scores = np.concatenate([self._best_scores, _scores(self.similarity, self.queries, vectors)], axis=1)
        all_ids = np.concatenate(
            [self._best_ids, np.tile(np.asarray(ids, dtype=object), (len(self.queries), 1))], axis=1
        )
        keep = min(self.k, scores.shape[1])
        top = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
        self._best_scores = np.take_along_axis(scores, top, axis=1)
        self._best_ids = np.take_along_axis(all_ids, top, axis=1)

    def ids(self) -> list[list[str]]:
        import numpy as np

        # Ties broken by id, so the expected list is deterministic.
        result = []
        for scores, ids in zip(self._best_scores, self._best_ids, strict=True):
            order = sorted(range(len(ids)), key=lambda i: (-float(scores[i]), str(ids[i])))
            result.append([str(ids[i]) for i in order])
        del np
        return result


def recall_at_k(retrieved: Sequence[str], relevant: Sequence[str] | set[str], k: int) -> float:
    """Share of the relevant items (at most k of them) found in the top k retrieved."""
    wanted = set(relevant)
    if not wanted:
        return 1.0
    return len(set(retrieved[:k]) & wanted) / min(len(wanted), k)


def mrr(retrieved: Sequence[str], relevant: Sequence[str] | set[str]) -> float:
    """1 / rank of the first relevant item (0 when none is retrieved)."""
    wanted = set(relevant)
    return next((1.0 / rank for rank, item in enumerate(retrieved, start=1) if item in wanted), 0.0)


def ndcg_at_k(retrieved: Sequence[str], relevance: Mapping[str, float], k: int) -> float:
    """Normalised discounted cumulative gain at k with graded relevance (gain 2^rel - 1)."""
    dcg = sum(
        (2 ** relevance.get(item, 0.0) - 1) / math.log2(rank + 1)
        for rank, item in enumerate(retrieved[:k], start=1)
    )
    ideal = sorted(relevance.values(), reverse=True)[:k]
    idcg = sum((2**rel - 1) / math.log2(rank + 1) for rank, rel in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


@dataclass(frozen=True)
class Judgment:
    """A query with its relevant document ids (graded: id -> relevance, 1 for plainly relevant)."""

    query: str
    relevant: Mapping[str, float]


@dataclass(frozen=True)
class Evaluation(Record):
    """What the gate measured on one index.

    `recall` is recall@k of kNN against exact neighbours over `queries` sample queries; the
    judged metrics (None without judgments) are document-level over `judged_queries`.
    """

    index: str
    k: int
    queries: int
    recall: float
    judged_queries: int = 0
    judged_recall: float | None = None
    mrr: float | None = None
    ndcg: float | None = None


@dataclass(frozen=True)
class GateSpec:
    """When a new index may replace the one behind the alias.

    It passes when `recall` >= `min_recall`, `ndcg` >= `min_ndcg` (when judged), and neither
    is worse than the current index's by more than `tolerance`.

    Example::

        GateSpec(k=10, sample_size=50, min_recall=0.9, min_ndcg=0.5, tolerance=0.02)
    """

    k: int = 10
    sample_size: int = 50
    num_candidates: int | None = None
    min_recall: float = 0.9
    min_ndcg: float | None = None
    tolerance: float = 0.02
    compared: ClassVar[tuple[str, ...]] = ("recall", "judged_recall", "mrr", "ndcg")

    def __post_init__(self) -> None:
        if self.k < 1 or self.sample_size < 1:
            raise ValueError(f"gate k and sample_size must be >= 1, got {self.k}, {self.sample_size}")
        if not 0 <= self.min_recall <= 1 or not 0 <= self.tolerance <= 1:
            raise ValueError("gate min_recall and tolerance must be between 0 and 1")
        if self.min_ndcg is not None and not 0 <= self.min_ndcg <= 1:
            raise ValueError("gate min_ndcg must be between 0 and 1")


@dataclass(frozen=True)
class GateResult(Record):
    passed: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)


def gate(evaluation: Evaluation, spec: GateSpec, previous: Mapping[str, Any] | None) -> GateResult:
    """Decide whether `evaluation` may go live; `previous` is the current index's evaluation (XCom form)."""
    reasons = []
    if evaluation.recall < spec.min_recall:
        reasons.append(f"recall@{spec.k} {evaluation.recall:.3f} < min_recall {spec.min_recall}")
    if spec.min_ndcg is not None:
        if evaluation.ndcg is None:
            reasons.append("min_ndcg is set but no judgments were given")
        elif evaluation.ndcg < spec.min_ndcg:
            reasons.append(f"nDCG@{spec.k} {evaluation.ndcg:.3f} < min_ndcg {spec.min_ndcg}")
    if previous:
        for name in spec.compared:
            new, old = getattr(evaluation, name), previous.get(name)
            if isinstance(new, (int, float)) and isinstance(old, (int, float)) and new < old - spec.tolerance:
                reasons.append(
                    f"{name} {new:.3f} is worse than the current index's {old:.3f} "
                    f"by more than the tolerance {spec.tolerance}"
                )
    return GateResult(not reasons, tuple(reasons))


def _doc_ranking(hits: Sequence[Mapping[str, Any]], k: int) -> list[str]:
    """Chunk hits collapsed to document ids, in order of first appearance, top k."""
    seen: list[str] = []
    for hit in hits:
        doc = hit.get("_source", {}).get("doc_id", hit["_id"])
        if doc not in seen:
            seen.append(doc)
    return seen[:k]


def evaluate_index(
    client: Elasticsearch,
    index: str,
    *,
    spec: GateSpec,
    vector_field: str,
    query_vectors: np.ndarray,
    exact_ids: Sequence[Sequence[str]],
    judgments: Sequence[Judgment] = (),
    judgment_vectors: np.ndarray | None = None,
) -> Evaluation:
    """Run the sample and judged queries against `index` and measure them."""
    from airflow_provider_llmops.utils.es_search import knn_search

    k = spec.k
    recalls = []
    for vector, expected in zip(query_vectors, exact_ids, strict=True):
        hits = knn_search(
            client,
            index,
            vector,
            k=k,
            num_candidates=spec.num_candidates,
            vector_field=vector_field,
            source=False,
        )
        recalls.append(recall_at_k([h.id for h in hits], expected, k))
    judged_recall = judged_mrr = judged_ndcg = None
    if judgments:
        assert judgment_vectors is not None
        r_sum = m_sum = n_sum = 0.0
        for judgment, vector in zip(judgments, judgment_vectors, strict=True):
            # Several chunks of one document may rank high: fetch more chunks than k documents.
            hits = client.search(
                index=index,
                knn={
                    "field": vector_field,
                    "query_vector": [float(x) for x in vector],
                    "k": 4 * k,
                    "num_candidates": max(spec.num_candidates or 0, 8 * k, 100),
                },
                size=4 * k,
                source={"includes": ["doc_id"]},
            )["hits"]["hits"]
            ranking = _doc_ranking(hits, k)
            relevant = {d for d, rel in judgment.relevant.items() if rel > 0}
            r_sum += recall_at_k(ranking, relevant, k)
            m_sum += mrr(ranking, relevant)
            n_sum += ndcg_at_k(ranking, judgment.relevant, k)
        n = len(judgments)
        judged_recall, judged_mrr, judged_ndcg = r_sum / n, m_sum / n, n_sum / n
    return Evaluation(
        index=index,
        k=k,
        queries=len(recalls),
        recall=round(sum(recalls) / len(recalls), 4) if recalls else 1.0,
        judged_queries=len(judgments),
        judged_recall=None if judged_recall is None else round(judged_recall, 4),
        mrr=None if judged_mrr is None else round(judged_mrr, 4),
        ndcg=None if judged_ndcg is None else round(judged_ndcg, 4),
    )


def exact_retrieval_metrics(
    corpus_ids: Sequence[str],
    corpus_vectors: np.ndarray,
    judgments: Sequence[Judgment],
    query_vectors: np.ndarray,
    *,
    k: int = 10,
    similarity: str = "cosine",
) -> dict[str, float | int]:
    """recall@k, MRR and nDCG@k of exact search over `corpus_vectors` for judged queries.

    The same document-level measures as `evaluate_index`, without an index: e.g. to score a base
    model against the fine-tuned one on held-out queries. Example::

        exact_retrieval_metrics(ids, encoder.encode(texts), judgments, encoder.encode(queries), k=10)
        # {"queries": 300, "recall": 0.71, "mrr": 0.52, "ndcg": 0.57, "k": 10}
    """
    import numpy as np

    if not judgments:
        raise ValueError("exact_retrieval_metrics needs at least one judgment")
    scores = _scores(
        similarity, np.asarray(query_vectors, np.float32), np.asarray(corpus_vectors, np.float32)
    )
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    r_sum = m_sum = n_sum = 0.0
    for judgment, row in zip(judgments, top, strict=True):
        ranking = [corpus_ids[i] for i in row]
        relevant = {d for d, rel in judgment.relevant.items() if rel > 0}
        r_sum += recall_at_k(ranking, relevant, k)
        m_sum += mrr(ranking, relevant)
        n_sum += ndcg_at_k(ranking, judgment.relevant, k)
    n = len(judgments)
    return {
        "queries": n,
        "k": k,
        "recall": round(r_sum / n, 4),
        "mrr": round(m_sum / n, 4),
        "ndcg": round(n_sum / n, 4),
    }
