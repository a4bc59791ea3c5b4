"""Mapping builder, index names and the compatibility guard, without a server."""

from __future__ import annotations

import pytest

from airflow_provider_llmops.exceptions import ElasticsearchCompatibilityError
from airflow_provider_llmops.utils.es_index import (
    INDEX_TYPES,
    SIMILARITIES,
    VectorIndexSpec,
    build_mapping,
    check_compatible,
    index_name,
)


@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_mapping_has_dims_similarity_and_index_options(similarity, index_type):
    hnsw = index_type.endswith("hnsw")
    spec = VectorIndexSpec(
        dims=384,
        similarity=similarity,
        index_type=index_type,
        m=16 if hnsw else None,
        ef_construction=100 if hnsw else None,
        metadata_fields={"lang": "keyword", "year": "integer"},
    )
    mapping = build_mapping(spec, {"model_name": "m"})
    vector = mapping["properties"]["embedding"]
    assert vector == {
        "type": "dense_vector",
        "dims": 384,
        "index": True,
        "similarity": similarity,
        "index_options": {"type": index_type, **({"m": 16, "ef_construction": 100} if hnsw else {})},
    }
    assert mapping["properties"]["text"] == {"type": "text"}
    assert mapping["properties"]["lang"] == {"type": "keyword"} and mapping["properties"]["year"] == {
        "type": "integer"
    }
    assert mapping["_meta"] == {"llmops": {"model_name": "m"}}
    assert mapping["dynamic"] == "strict"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dims": 0}, "dims must be an integer"),
        ({"similarity": "euclid"}, "similarity must be one of"),
        ({"index_type": "ivf"}, "index_type must be one of"),
        ({"index_type": "flat", "m": 16}, "apply to HNSW index types only"),
        ({"m": 1}, "m must be in"),
        ({"ef_construction": 0}, "ef_construction must be in"),
        ({"index_type": "int4_hnsw", "dims": 383}, "even number of dims"),
        ({"index_type": "bbq_hnsw", "dims": 32}, "at least 64 dims"),
        ({"metadata_fields": {"text": "keyword"}}, "clashes"),
        ({"metadata_fields": {"lang": "nested"}}, "type must be one of"),
    ],
)
def test_bad_specs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VectorIndexSpec(**{"dims": 384, **kwargs})


def test_fingerprint_changes_with_the_shape_only():
    base = VectorIndexSpec(dims=384)
    assert base.fingerprint() == VectorIndexSpec(dims=384, replicas=2, refresh_interval="30s").fingerprint()
    assert base.fingerprint() != VectorIndexSpec(dims=384, index_type="int8_hnsw").fingerprint()


def test_index_names_come_from_the_keys_only():
    assert index_name("docs", "v2", "abc123") == "docs-v2-abc123"
    assert index_name("docs", "v2", "abc123") == index_name("docs", "v2", "abc123")
    assert index_name("Docs", "refs/tags/V2:rc#1", "Model Ver*") == "docs-refs_tags_v2_rc_1-model_ver"


def test_too_long_names_keep_distinct_keys_distinct():
    a = index_name("docs", "x" * 300, "m1")
    b = index_name("docs", "x" * 300, "m2")
    assert len(a.encode()) <= 255 and len(b.encode()) <= 255 and a != b


META = {"llmops": {"model_name": "mini", "model_version": "v1", "dims": 384, "similarity": "cosine"}}


def test_guard_accepts_the_same_model():
    check_compatible(META, index="i", model_name="mini", model_version="v1", dims=384, similarity="cosine")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"model_name": "other"}, "model_name: index has 'mini', encoder in use has 'other'"),
        ({"model_version": "v2"}, "model_version: index has 'v1', encoder in use has 'v2'"),
        ({"dims": 768}, "dims: index has 384, encoder in use has 768"),
        ({"similarity": "l2_norm"}, "similarity: index has 'cosine', encoder in use has 'l2_norm'"),
    ],
)
def test_guard_names_what_differs(kwargs, named):
    args = {"model_name": "mini", "model_version": "v1", "dims": 384, "similarity": "cosine", **kwargs}
    with pytest.raises(ElasticsearchCompatibilityError, match=named) as info:
        check_compatible(META, index="docs-v1", **args)
    assert "docs-v1" in str(info.value) and len(info.value.mismatches) == 1


def test_guard_refuses_an_index_of_unknown_origin():
    with pytest.raises(ElasticsearchCompatibilityError, match="no llmops _meta"):
        check_compatible({}, index="legacy", model_name="m", model_version="1", dims=3)
