"""What every text encoder offers: the local sentence-transformers one and Triton's client alike.

Indexing and evaluation only see this protocol, so the same operator embeds in-process on a
laptop or through a Triton-served model in production.

Example::

    def embed_all(encoder: Encoder, texts: list[str]) -> "numpy.ndarray":
        assert encoder.dims == 384
        return encoder.encode(texts)  # shape (len(texts), 384), float32
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy

__all__ = ["Encoder"]


@runtime_checkable
class Encoder(Protocol):
    """A text encoder: name and version (for index names and the compatibility guard), dims, encode()."""

    model_name: str
    model_version: str
    dims: int
    normalized: bool

    def encode(self, texts: Sequence[str]) -> numpy.ndarray:
        """Vectors of `texts`, shape (len(texts), dims), float32 (L2-normalised when `normalized`)."""
        ...
