"""Demo datasets from real offline text: the docstrings of the running Python's standard library.

The source files are read with ``ast`` (nothing is imported), one *entry* per API object: a
module, a public top-level function or class, and (dataset version 2) a public method of a public
class. An entry's first sentence is its *query* ("Return the number of items in the deque.") and
the rest of its docstring, titled with the object's dotted name, is its *passage*. From them:

- ``corpus/corpus.jsonl``: the passages to index, ``{"id", "text", "module"}``;
- ``train/pairs.jsonl``: (query, passage) training pairs, ``{"query", "positive", "id"}``, from
  the *training* modules only;
- ``eval/judgments.jsonl``: held-out queries with their relevant passage,
  ``{"query", "relevant": {id: 1}}``, from the *evaluation* modules, disjoint from the training
  modules (a top-level package is wholly on one side, chosen by a hash of its name).

Output is deterministic: the same Python and params give the same bytes (sorted walks, hashes
for every sample, no clocks). The text is the Python standard library's, under the PSF License
Agreement (https://docs.python.org/3/license.html).

``python -m dev.stdlib_docs --params params.yaml --out data/llmops`` is the ``llmops_datasets``
stage of dvc.yaml; tests/fixtures/es_knn.py builds its smaller corpus with `docstrings` and `module_source`.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import sys
import sysconfig
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_PARAMS",
    "Entry",
    "build_datasets",
    "docstrings",
    "iter_stdlib_modules",
    "module_entries",
    "module_source",
    "stdlib_entries",
    "write_datasets",
]

# Folders of the standard library that are not API documentation (tests, demos, tooling, vendored code).
_SKIP_DIRS = {
    "test",
    "tests",
    "idle_test",
    "idlelib",
    "turtledemo",
    "lib2to3",
    "ensurepip",
    "site-packages",
    "dist-packages",
    "__pycache__",
    "__phello__",
    "pydoc_data",
    "config-3",
}

DEFAULT_PARAMS: dict[str, Any] = {
    "version": 2,  # 1: modules, functions and classes; 2 adds the methods of public classes
    "max_passage_chars": 400,  # passages are cut at a word boundary below this
    "max_passages": 0,  # 0: every passage; else the corpus is cut (held-out and training passages stay)
    "train_pairs": 1440,
    "eval_queries": 300,
    "eval_percent": 12,  # share of top-level modules held out for evaluation
}

_WS = re.compile(r"\s+")
# The first sentence: up to the first full stop followed by whitespace (not "e.g." or "i.e.").
_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)[.!?](?=\s|$)")


@dataclass(frozen=True)
class Entry:
    """One documented API object: its dotted name, top-level module, first sentence and the rest."""

    id: str
    module: str
    query: str
    rest: str

    def passage(self, max_chars: int) -> str:
        text = self.rest
        if len(text) > max_chars:
            text = text[:max_chars].rsplit(" ", 1)[0]
        return f"{self.id}: {text}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def split_docstring(doc: str) -> tuple[str, str] | None:
    """(first sentence, rest) of a docstring, whitespace collapsed; None when either is unusable."""
    paragraphs = [p for p in re.split(r"\n\s*\n", doc.strip()) if p.strip()]
    if not paragraphs:
        return None
    first = _WS.sub(" ", paragraphs[0]).strip()
    match = _SENTENCE_END.search(first)
    if match:
        query, tail = first[: match.end()], first[match.end() :].strip()
    else:
        query, tail = first, ""
    rest = _WS.sub(" ", " ".join([tail, *paragraphs[1:]])).strip()
    words = len(query.split())
    if not 4 <= words <= 40 or len(rest) < 60 or ">>>" in query:
        return None
    return query, rest


def iter_stdlib_modules(root: Path | None = None) -> Iterator[tuple[str, Path]]:
    """(dotted module name, source file) of the standard library, sorted, without tests and tooling."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in _SKIP_DIRS or part.startswith(("config-", "plat-")) for part in rel.parts[:-1]):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not parts or any(not p.isidentifier() or p.startswith("_") for p in parts):
            continue
        yield ".".join(parts), path


def module_source(module: str, root: Path | None = None) -> Path | None:
    """The source file of a standard-library module (``json`` -> ``.../json/__init__.py``), or None."""
    base = Path(root or sysconfig.get_paths()["stdlib"]) / Path(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def docstrings(path: Path, module: str, *, methods: bool = True) -> list[tuple[str, str]]:
    """(dotted name, docstring) of a file's module, public top-level functions and classes, and
    (with `methods`) public methods of those classes, in source order. Read with ast, never imported."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return []
    found: list[tuple[str, str]] = []
    doc = ast.get_docstring(tree)
    if doc:
        found.append((module, doc))
    public = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for node in tree.body:
        if not isinstance(node, public) or node.name.startswith("_"):
            continue
        doc = ast.get_docstring(node)
        if doc:
            found.append((f"{module}.{node.name}", doc))
        if methods and isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, public[:2]) and not item.name.startswith("_"):
                    doc = ast.get_docstring(item)
                    if doc:
                        found.append((f"{module}.{node.name}.{item.name}", doc))
    return found


def module_entries(path: Path, module: str, *, methods: bool = True) -> list[Entry]:
    """The usable entries (first sentence + rest) of one source file, in source order."""
    top = module.split(".")[0]
    entries = []
    for name, text in docstrings(path, module, methods=methods):
        split = split_docstring(text)
        if split:
            entries.append(Entry(id=name, module=top, query=split[0], rest=split[1]))
    return entries


def stdlib_entries(version: int = 2, root: Path | None = None) -> list[Entry]:
    """Every usable entry of the standard library, deduplicated by passage and by query text."""
    entries: list[Entry] = []
    seen_rest: set[str] = set()
    seen_query: set[str] = set()
    for module, path in iter_stdlib_modules(root):
        for entry in module_entries(path, module, methods=version >= 2):
            rest_key, query_key = entry.rest.lower(), entry.query.lower()
            # Copied docstrings (overrides, aliases) would make one query's answer ambiguous.
            if rest_key in seen_rest or query_key in seen_query:
                continue
            seen_rest.add(rest_key)
            seen_query.add(query_key)
            entries.append(entry)
    return entries


def _by_hash(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: _digest(e.id))


def build_datasets(entries: list[Entry], params: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The three datasets from `entries` (see the module docstring): corpus, train pairs, eval judgments."""
    p = {**DEFAULT_PARAMS, **params}
    max_chars = int(p["max_passage_chars"])
    held_out = {
        m
        for m in {e.module for e in entries}
        if int(_digest(f"module:{m}"), 16) % 100 < int(p["eval_percent"])
    }
    eval_entries = _by_hash(e for e in entries if e.module in held_out)[: int(p["eval_queries"])]
    train_entries = _by_hash(e for e in entries if e.module not in held_out)[: int(p["train_pairs"])]
    chosen = {e.id for e in eval_entries} | {e.id for e in train_entries}
    corpus = [e for e in entries if e.id in chosen]
    limit = int(p["max_passages"]) or len(entries)
    for entry in _by_hash(e for e in entries if e.id not in chosen):
        if len(corpus) >= limit:
            break
        corpus.append(entry)
    corpus.sort(key=lambda e: e.id)
    return {
        "corpus": [{"id": e.id, "module": e.module, "text": e.passage(max_chars)} for e in corpus],
        "pairs": [{"id": e.id, "query": e.query, "positive": e.passage(max_chars)} for e in train_entries],
        "judgments": [{"query": e.query, "relevant": {e.id: 1}, "module": e.module} for e in eval_entries],
    }


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows))


def write_datasets(out: Path, params: Mapping[str, Any], root: Path | None = None) -> dict[str, int]:
    """Write corpus/, train/ and eval/ under `out`; return the row counts."""
    p = {**DEFAULT_PARAMS, **params}
    data = build_datasets(stdlib_entries(int(p["version"]), root), p)
    out = Path(out)
    _write_jsonl(out / "corpus" / "corpus.jsonl", data["corpus"])
    _write_jsonl(out / "train" / "pairs.jsonl", data["pairs"])
    _write_jsonl(out / "eval" / "judgments.jsonl", data["judgments"])
    counts = {name: len(rows) for name, rows in data.items()}
    eval_modules = sorted({j["module"] for j in data["judgments"]})
    info = {
        "source": "docstrings of the Python standard library (PSF License)",
        "python": sys.version.split()[0],
        "params": {k: p[k] for k in sorted(DEFAULT_PARAMS)},
        "counts": counts,
        "eval_modules": eval_modules,
    }
    (out / "README.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return counts


def main(argv: list[str] | None = None) -> int:
    import yaml

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=Path("data/llmops"))
    args = parser.parse_args(argv)
    params = (yaml.safe_load(args.params.read_text()) or {}).get("llmops_data", {})
    counts = write_datasets(args.out, params)
    print(f"wrote {args.out}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
