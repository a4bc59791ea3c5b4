"""Split document text into overlapping chunks, by characters or by tokens.

Chunks are deterministic: the same text and settings always give the same chunks, so chunk
numbers are stable idempotency keys (the indexer derives document ids from them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

__all__ = ["Chunk", "ChunkingSpec", "chunk_text", "word_spans"]

Unit = Literal["chars", "tokens"]
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of words and punctuation marks: the default tokens of token-based chunking."""
    return [m.span() for m in _WORD.finditer(text)]


@dataclass(frozen=True)
class ChunkingSpec:
    """How to chunk: `size` and `overlap` in `unit` (``chars`` or ``tokens``).

    Example::

        ChunkingSpec(size=200, overlap=40, unit="tokens")
    """

    size: int = 1000
    overlap: int = 100
    unit: Unit = "chars"

    def __post_init__(self) -> None:
        if self.unit not in ("chars", "tokens"):
            raise ValueError(f"chunk unit must be 'chars' or 'tokens', got {self.unit!r}")
        if self.size < 1:
            raise ValueError(f"chunk size must be >= 1, got {self.size}")
        if not 0 <= self.overlap < self.size:
            raise ValueError(f"chunk overlap must be >= 0 and < size ({self.size}), got {self.overlap}")

    def key(self) -> str:
        """A short stable description, recorded in the index _meta."""
        return f"{self.unit}:{self.size}:{self.overlap}"


@dataclass(frozen=True)
class Chunk:
    """One piece of a document: its number within the document and its character span."""

    number: int
    text: str
    start: int
    end: int


def chunk_text(
    text: str,
    spec: ChunkingSpec,
    *,
    token_spans: Callable[[str], list[tuple[int, int]]] | None = None,
) -> list[Chunk]:
    """Split `text` into chunks of at most ``spec.size`` units, consecutive ones overlapping by ``spec.overlap``.

    Character chunks end at the last whitespace inside the window when there is one, so words
    are not cut. Token chunks use `token_spans` (e.g. the model tokenizer's offsets,
    `SentenceTransformerEncoder.token_spans()`), else `word_spans`. Blank text gives no chunks.

    Example::

        [c.text for c in chunk_text("a b c d e", ChunkingSpec(size=3, overlap=1))]  # ['a b', 'b c', ...]
    """
    if not text.strip():
        return []
    windows = _char_windows(text, spec) if spec.unit == "chars" else _token_windows(text, spec, token_spans)
    chunks: list[Chunk] = []
    for start, end in windows:
        piece = text[start:end]
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            chunks.append(Chunk(len(chunks), stripped, start + lead, start + lead + len(stripped)))
    return chunks


def _char_windows(text: str, spec: ChunkingSpec) -> Iterator[tuple[int, int]]:
    start, n = 0, len(text)
    while start < n:
        end = min(start + spec.size, n)
        if end < n:
            cut = max(text.rfind(" ", start + 1, end + 1), text.rfind("\n", start + 1, end + 1))
            # Only back off to whitespace when it keeps the step forward larger than the overlap.
            if cut - start > spec.overlap:
                end = cut
        yield start, end
        if end >= n:
            return
        start = max(end - spec.overlap, start + 1)
        if not text[start - 1].isspace():
            # The overlap starts mid-word: begin at the next word instead, when there is one.
            gap = next((i for i in range(start, end) if text[i].isspace()), None)
            if gap is not None:
                start = gap
        while start < end and text[start].isspace():
            start += 1


def _token_windows(
    text: str, spec: ChunkingSpec, token_spans: Callable[[str], list[tuple[int, int]]] | None
) -> Iterator[tuple[int, int]]:
    spans = (token_spans or word_spans)(text)
    if not spans:
        yield 0, len(text)
        return
    step = spec.size - spec.overlap
    for first in range(0, len(spans), step):
        last = min(first + spec.size, len(spans)) - 1
        yield spans[first][0], spans[last][1]
        if last == len(spans) - 1:
            return
