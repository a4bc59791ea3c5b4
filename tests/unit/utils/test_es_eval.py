"""Gate metrics: exact neighbours (streaming), recall, MRR, nDCG, RRF fusion and the gate's verdict."""

from __future__ import annotations

import numpy as np
import pytest

from airflow_provider_llmops.utils.es_eval import (
    Evaluation,
    ExactNeighbours,
    GateSpec,
    gate,
    mrr,
    ndcg_at_k,
    recall_at_k,
)
from airflow_provider_llmops.utils.es_search import rrf_fuse


@pytest.mark.parametrize("similarity", ["cosine", "dot_product", "l2_norm", "max_inner_product"])
def test_streaming_exact_neighbours_match_brute_force(similarity):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    queries = rng.normal(size=(7, 16)).astype(np.float32)
    ids = [f"d{i}" for i in range(500)]
    exact = ExactNeighbours(queries, k=10, similarity=similarity)
    for start in range(0, 500, 64):
        exact.add(ids[start : start + 64], vectors[start : start + 64])
    if similarity == "cosine":
        qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        vn = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        scores = qn @ vn.T
    elif similarity == "l2_norm":
        scores = -np.linalg.norm(queries[:, None, :] - vectors[None, :, :], axis=2)
    else:
        scores = queries @ vectors.T
    expected = [[ids[i] for i in np.argsort(-row)[:10]] for row in scores]
    assert exact.ids() == expected


def test_fewer_vectors_than_k():
    exact = ExactNeighbours(np.ones((1, 2), np.float32), k=5, similarity="dot_product")
    exact.add(["a", "b"], np.array([[1, 0], [2, 2]], np.float32))
    assert exact.ids() == [["b", "a"]]


def test_recall_mrr_ndcg():
    assert recall_at_k(["a", "b", "c"], {"a", "c", "x"}, k=3) == pytest.approx(2 / 3)
    assert recall_at_k(["a"], set(), k=3) == 1.0
    assert mrr(["x", "y", "a"], {"a"}) == pytest.approx(1 / 3)
    assert mrr(["x"], {"a"}) == 0.0
    assert ndcg_at_k(["a", "b"], {"a": 2, "b": 1}, k=2) == pytest.approx(1.0)
    assert ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, k=2) < 1.0
    assert ndcg_at_k(["x"], {"a": 1}, k=1) == 0.0


def test_rrf_fuses_by_reciprocal_rank_with_stable_ties():
    fused = rrf_fuse([["a", "b", "c"], ["b", "d"]], k=3, rank_constant=60)
    assert [d for d, _ in fused] == ["b", "a", "d"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert rrf_fuse([["x"], ["y"]], k=2)[0][0] == "x"  # tie: by id


def _eval(recall=0.95, ndcg=None):
    return Evaluation(index="i", k=10, queries=5, recall=recall, ndcg=ndcg, judged_queries=1 if ndcg else 0)


def test_gate_passes_and_fails_on_the_absolute_threshold():
    spec = GateSpec(min_recall=0.9)
    assert gate(_eval(0.95), spec, None).passed
    verdict = gate(_eval(0.85), spec, None)
    assert not verdict.passed and "recall@10 0.850 < min_recall 0.9" in verdict.reasons[0]


def test_gate_compares_with_the_current_index_within_tolerance():
    spec = GateSpec(min_recall=0.5, tolerance=0.02)
    assert gate(_eval(0.95, ndcg=0.70), spec, {"recall": 0.96, "ndcg": 0.71}).passed
    verdict = gate(_eval(0.95, ndcg=0.60), spec, {"recall": 0.96, "ndcg": 0.71})
    assert not verdict.passed and "ndcg 0.600 is worse than the current index's 0.710" in verdict.reasons[0]


def test_gate_needs_judgments_for_min_ndcg():
    verdict = gate(_eval(0.99), GateSpec(min_ndcg=0.5), None)
    assert not verdict.passed and "no judgments" in verdict.reasons[0]


@pytest.mark.parametrize(
    "kwargs", [{"k": 0}, {"sample_size": 0}, {"min_recall": 1.5}, {"tolerance": -0.1}, {"min_ndcg": 2.0}]
)
def test_bad_gate_specs_are_refused(kwargs):
    with pytest.raises(ValueError, match="gate"):
        GateSpec(**kwargs)


def test_evaluation_is_a_record():
    ev = _eval(0.9, ndcg=0.5)
    assert Evaluation.from_xcom(ev.to_xcom()) == ev
