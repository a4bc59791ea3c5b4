"""Text chunking by characters and by tokens: sizes, overlaps, determinism, bad settings."""

from __future__ import annotations

import itertools

import pytest

from airflow_provider_llmops.utils.chunking import ChunkingSpec, chunk_text, word_spans

TEXT = " ".join(f"word{i}" for i in range(200))


def test_char_chunks_respect_size_and_overlap_and_cover_the_text():
    spec = ChunkingSpec(size=100, overlap=20)
    chunks = chunk_text(TEXT, spec)
    assert len(chunks) > 1
    assert all(len(c.text) <= 100 for c in chunks)
    assert [c.number for c in chunks] == list(range(len(chunks)))
    for a, b in itertools.pairwise(chunks):
        assert b.start < a.end  # overlapping
        assert b.start > a.start  # moving forward
    assert chunks[0].start == 0 and chunks[-1].end == len(TEXT)
    # Words are not cut at the chunk ends.
    words = set(TEXT.split())
    assert all(set(c.text.split()) <= words for c in chunks)


def test_chunks_are_deterministic_and_map_back_to_the_text():
    spec = ChunkingSpec(size=64, overlap=8)
    first, second = chunk_text(TEXT, spec), chunk_text(TEXT, spec)
    assert first == second
    assert all(TEXT[c.start : c.end] == c.text for c in first)


def test_token_chunks_count_tokens():
    spec = ChunkingSpec(size=10, overlap=3, unit="tokens")
    chunks = chunk_text(TEXT, spec)
    assert all(len(word_spans(c.text)) <= 10 for c in chunks)
    assert chunks[1].text.split()[:3] == chunks[0].text.split()[-3:]
    assert chunks[-1].text.endswith("word199")


def test_token_chunks_with_a_custom_tokenizer():
    def two_char_tokens(text):
        return [(i, min(i + 2, len(text))) for i in range(0, len(text), 2)]

    chunks = chunk_text(
        "abcdefghij", ChunkingSpec(size=2, overlap=1, unit="tokens"), token_spans=two_char_tokens
    )
    assert [c.text for c in chunks] == ["abcd", "cdef", "efgh", "ghij"]


def test_short_and_blank_text():
    assert [c.text for c in chunk_text("  hello  ", ChunkingSpec(size=100, overlap=10))] == ["hello"]
    assert chunk_text("   \n ", ChunkingSpec()) == []


def test_a_word_longer_than_the_size_is_split():
    chunks = chunk_text("x" * 250, ChunkingSpec(size=100, overlap=10))
    assert all(len(c.text) <= 100 for c in chunks) and chunks[-1].end == 250


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, "size must be >= 1"),
        ({"size": 10, "overlap": 10}, "overlap must be >= 0 and < size"),
        ({"overlap": -1}, "overlap must be >= 0"),
        ({"unit": "words"}, "unit must be 'chars' or 'tokens'"),
    ],
)
def test_bad_specs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ChunkingSpec(**kwargs)


def test_spec_key_is_recorded_form():
    assert ChunkingSpec(200, 40, "tokens").key() == "tokens:200:40"
