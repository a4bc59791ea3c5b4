"""The Encoder protocol, the shape check and model versions, without loading a model."""

from __future__ import annotations

import numpy as np
import pytest

from airflow_provider_llmops.exceptions import EmbeddingError
from airflow_provider_llmops.utils.embedding import (
    MINILM_MODEL_NAME,
    Encoder,
    check_vectors,
    model_dir_version,
    packaged_model_path,
)


class Fixed:
    model_name, model_version, dims, normalized = "fixed", "1", 3, True

    def encode(self, texts):
        return np.ones((len(texts), 3), np.float64)


def test_any_object_with_the_attributes_is_an_encoder():
    assert isinstance(Fixed(), Encoder)
    assert not isinstance(object(), Encoder)


def test_check_vectors_casts_to_float32():
    out = check_vectors(Fixed(), Fixed().encode(["a", "b"]), 2)
    assert out.dtype == np.float32 and out.shape == (2, 3) and out.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("shape", [(2, 4), (3, 3), (6,)])
def test_wrong_shapes_are_refused_naming_the_model(shape):
    with pytest.raises(EmbeddingError, match=r"Encoder 'fixed' \(version 1\) returned vectors of shape"):
        check_vectors(Fixed(), np.zeros(shape), 2)


def test_nan_vectors_are_refused():
    with pytest.raises(EmbeddingError, match="NaN"):
        check_vectors(Fixed(), np.full((1, 3), np.nan), 1)


def test_model_version_is_a_content_hash(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"weights-1")
    (tmp_path / "README.md").write_text("docs do not count")
    first = model_dir_version(tmp_path)
    (tmp_path / "README.md").write_text("changed docs")
    assert model_dir_version(tmp_path) == first and len(first) == 12
    (tmp_path / "model.safetensors").write_bytes(b"weights-2")
    assert model_dir_version(tmp_path) != first


def test_minilm_ships_in_a_package():
    path = packaged_model_path(MINILM_MODEL_NAME)
    assert path is not None and (path / "model.safetensors").is_file()
    assert packaged_model_path("all-MiniLM-L6-v2") == path
    assert packaged_model_path("no/such-model") is None
