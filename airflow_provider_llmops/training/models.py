"""Model folder checks (before any process group starts) and the task's loss functions.

`check_model_folder` reads only ``config.json`` and the tokenizer files, so a wrong folder fails
in a second with an error that names it, not after loading gigabytes of weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_provider_llmops.exceptions import TrainingModelError

__all__ = ["check_model_folder", "is_causal_lm_config"]

_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "tokenizer.model", "vocab.json")


def is_causal_lm_config(config: dict[str, Any]) -> bool:
    """True when the HF config describes a decoder-only causal LM (GPT-2, Llama, ...)."""
    archs = config.get("architectures") or []
    if archs:
        return any(str(a).endswith(_CAUSAL_SUFFIXES) for a in archs)
    if config.get("is_encoder_decoder"):
        return False
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return config.get("model_type") in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and bool(
        config.get("is_decoder", True)
    )


def check_model_folder(path: str, task: str) -> dict[str, Any]:
    """The folder's ``config.json``; `TrainingModelError` when it is missing or unfit for `task`."""
    folder = Path(path)
    if not folder.is_dir():
        raise TrainingModelError(f"model folder {path!r} does not exist (model.path)", path=path)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise TrainingModelError(
            f"model folder {path!r} has no config.json: it is not a Hugging Face model folder", path=path
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise TrainingModelError(f"{config_file}: not valid JSON ({err.msg})", path=path) from err
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise TrainingModelError(
            f"model folder {path!r} has no tokenizer (none of {', '.join(_TOKENIZER_FILES)}); "
            "save the tokenizer next to the model",
            path=path,
        )
    causal = is_causal_lm_config(config)
    kind = f"{config.get('model_type', '?')} ({', '.join(config.get('architectures') or []) or 'no architectures'})"
    if task == "causal_lm" and not causal:
        raise TrainingModelError(
            f"model folder {path!r} is not a causal LM ({kind}); task 'causal_lm' needs a decoder "
            "model such as GPT-2 or Llama, or use task 'embedding' for an encoder",
            path=path,
        )
    if task == "embedding" and causal:
        raise TrainingModelError(
            f"model folder {path!r} is a causal LM ({kind}), not an encoder; task 'embedding' needs a "
            "sentence-transformers or encoder model (BERT, MiniLM, ...)",
            path=path,
        )
    return config


def in_batch_negatives_loss(queries: Any, passages: Any, scale: float) -> Any:
    """MultipleNegativesRanking loss: each query's positive is its passage, the batch's others negatives."""
    import torch
    import torch.nn.functional as F

    scores = F.normalize(queries, dim=-1) @ F.normalize(passages, dim=-1).T * scale
    return F.cross_entropy(scores, torch.arange(scores.shape[0], device=scores.device))
