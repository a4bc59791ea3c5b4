"""The demo datasets builder (dev/stdlib_docs.py): splitting, the disjoint held-out set, determinism."""

from __future__ import annotations

import json

from dev.stdlib_docs import build_datasets, split_docstring, stdlib_entries, write_datasets


def test_first_sentence_is_the_query_and_the_rest_the_passage():
    doc = """Return the number of items, e.g. for sizing.

    The count includes hidden items and is computed on every call, so cache it yourself."""
    query, rest = split_docstring(doc)
    assert query == "Return the number of items, e.g. for sizing."
    assert rest.startswith("The count includes hidden items") and "\n" not in rest


def test_too_short_docstrings_give_no_entry():
    assert split_docstring("Return x.") is None
    assert split_docstring("Return the value of x for y. Short.") is None


def test_held_out_queries_come_from_modules_without_training_pairs():
    entries = stdlib_entries(version=1)
    data = build_datasets(entries, {"train_pairs": 200, "eval_queries": 40, "max_passages": 400})
    module_of = {e.id: e.module for e in entries}
    train_modules = {module_of[p["id"]] for p in data["pairs"]}
    eval_modules = {j["module"] for j in data["judgments"]}
    assert len(data["pairs"]) == 200 and len(data["judgments"]) == 40 and len(data["corpus"]) == 400
    assert eval_modules and not train_modules & eval_modules
    corpus_ids = {d["id"] for d in data["corpus"]}
    assert all(set(j["relevant"]) <= corpus_ids for j in data["judgments"])
    assert all(p["id"] in corpus_ids for p in data["pairs"])


def test_the_same_params_write_the_same_bytes(tmp_path):
    params = {"version": 1, "train_pairs": 50, "eval_queries": 10, "max_passages": 120}
    write_datasets(tmp_path / "a", params)
    write_datasets(tmp_path / "b", params)
    for name in ("corpus/corpus.jsonl", "train/pairs.jsonl", "eval/judgments.jsonl", "README.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    info = json.loads((tmp_path / "a" / "README.json").read_text())
    assert info["counts"] == {"corpus": 120, "pairs": 50, "judgments": 10}
    assert "PSF" in info["source"]
