"""Bulk request building and vector packing, without a server."""

from __future__ import annotations

import base64
import json

import numpy as np

from airflow_provider_llmops.utils.es_bulk import BulkIngester, encode_vector, encode_vectors


def test_vectors_pack_as_big_endian_float32_base64():
    vectors = np.array([[1.0, -2.5, 3.25], [0.0, 0.5, 1e-3]], np.float32)
    packed = encode_vectors(vectors)
    for row, text in zip(vectors, packed, strict=True):
        assert np.array_equal(np.frombuffer(base64.b64decode(text), dtype=">f4"), row)
    assert encode_vector(vectors[0]) == packed[0]
    assert encode_vectors(vectors, base64_packed=False)[0] == [1.0, -2.5, 3.25]


def test_the_elasticsearch_helper_packs_the_same_way():
    from elasticsearch.helpers import pack_dense_vector

    vector = np.array([0.1, 0.2, 0.3], np.float32)
    assert encode_vector(vector) == pack_dense_vector(vector)


class _NoClient:
    def options(self, **kwargs):
        return self


def test_batches_are_sized_by_bytes_and_documents():
    ingester = BulkIngester(_NoClient(), "idx", max_bytes=2048, max_docs=5)
    docs = [(f"d{i}", {"text": "x" * 300}) for i in range(12)]
    batches = list(ingester._batches(docs))
    assert [len(b) for b in batches] == [5, 5, 2]  # the document cap
    big = [(f"d{i}", {"text": "x" * 900}) for i in range(5)]
    batches = list(ingester._batches(big))
    assert all(sum(len(line) for _, line in b) <= 2048 for b in batches) and len(batches) == 3
    assert sum(len(b) for b in batches) == 5


def test_each_line_pair_is_an_index_op_with_the_id():
    line = BulkIngester._line('doc "1"', {"a": 1})
    action, source = line.decode().splitlines()
    assert json.loads(action) == {"index": {"_id": 'doc "1"'}} and json.loads(source) == {"a": 1}
    assert BulkIngester._line("x", b'{"b":2}').endswith(b'{"b":2}\n')
