"""Training rows: checked up front (file and line of each bad row), tokenized, served in a resumable order.

The order is a pure function of (seed, global sample index): sample ``i`` is row
``permutation(seed + epoch)[i % n]`` with ``epoch = i // n``. A resumed run at step ``s`` therefore
reads exactly the rows the interrupted run would have read next. Example::

    rows = read_rows(spec.data, spec.task)      # TrainingDataError on a bad row
    order = SampleOrder(len(rows), seed=42)
    order.indices(start=0, count=8)             # the first 8 row numbers
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.exceptions import TrainingDataError

if TYPE_CHECKING:
    from airflow_provider_llmops.training.spec import DataSpec

__all__ = ["Row", "SampleOrder", "collate_causal", "read_rows", "tokenize_causal"]

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Row:
    """One training example: (prompt, response) or (text,) for causal LM, (query, positive) for embedding."""

    a: str
    b: str | None = None


def _field(row: dict[str, Any], name: str, path: str, line: int) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        got = "missing" if name not in row else f"{type(value).__name__} {str(value)[:40]!r}"
        raise TrainingDataError(
            f"{path}:{line}: field {name!r} must be a non-empty string ({got}); fields present: "
            f"{sorted(row)}",
            path=path,
            line=line,
        )
    return value


def read_rows(data: DataSpec, task: str) -> list[Row]:
    """Every row of the JSONL file, validated for `task`; raises `TrainingDataError` naming file:line."""
    path = Path(data.path)
    if not path.is_file():
        hint = " (it is a directory: point data.path at the .jsonl file)" if path.is_dir() else ""
        raise TrainingDataError(f"dataset file {data.path!r} does not exist{hint}", path=data.path)
    rows: list[Row] = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise TrainingDataError(
                    f"{data.path}:{line_no}: not valid JSON ({err.msg})", path=data.path, line=line_no
                ) from err
            if not isinstance(obj, dict):
                raise TrainingDataError(
                    f"{data.path}:{line_no}: each line must be a JSON object, got {type(obj).__name__}",
                    path=data.path,
                    line=line_no,
                )
            if task == "embedding":
                rows.append(
                    Row(
                        _field(obj, data.query_field, data.path, line_no),
                        _field(obj, data.positive_field, data.path, line_no),
                    )
                )
            elif data.prompt_field in obj or data.text_field not in obj:
                prompt = _field(obj, data.prompt_field, data.path, line_no)
                rows.append(Row(prompt, _field(obj, data.response_field, data.path, line_no)))
            else:
                rows.append(Row(_field(obj, data.text_field, data.path, line_no)))
    if not rows:
        raise TrainingDataError(f"dataset file {data.path!r} has no rows", path=data.path)
    return rows


class SampleOrder:
    """Deterministic, epoch-wise shuffled order of row numbers addressed by global sample index."""

    def __init__(self, n_rows: int, *, seed: int) -> None:
        self.n_rows = n_rows
        self.seed = seed
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            perm = list(range(self.n_rows))
            random.Random(self.seed * 1_000_003 + epoch).shuffle(perm)  # noqa: S311 - data order, not security
            self._perms = {epoch: perm}  # only the current epoch is needed at a time
        return self._perms[epoch]

    def indices(self, start: int, count: int) -> list[int]:
        return [self._perm(i // self.n_rows)[i % self.n_rows] for i in range(start, start + count)]


def tokenize_causal(row: Row, tokenizer: Any, max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels): labels are IGNORE_INDEX on the prompt, so only the response is learnt."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if row.b is None:
        ids = tokenizer(row.a, add_special_tokens=True)["input_ids"] + eos
        ids = ids[:max_length]
        return ids, list(ids)
    prompt = tokenizer(row.a, add_special_tokens=True)["input_ids"]
    response = tokenizer(row.b, add_special_tokens=False)["input_ids"] + eos
    # Keep at least half the window for the response: a long prompt is cut from its start.
    response = response[: max(1, max_length - min(len(prompt), max_length // 2))]
    prompt = prompt[-(max_length - len(response)) :] if max_length > len(response) else []
    return prompt + response, [IGNORE_INDEX] * len(prompt) + response


def collate_causal(examples: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors: input_ids, attention_mask, labels (padding ignored by the loss)."""
    import torch

    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(examples):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
