from __future__ import annotations

import pytest

from airflow_provider_llmops.training.spec import (
    DataSpec,
    DeepSpeedSpec,
    ModelSpec,
    ResourcesSpec,
    TrainingJobSpec,
)


@pytest.fixture
def spec(tmp_path) -> TrainingJobSpec:
    return TrainingJobSpec(
        name="tiny",
        task="causal_lm",
        model=ModelSpec(path=str(tmp_path / "model")),
        data=DataSpec(path=str(tmp_path / "rows.jsonl"), max_length=32),
        output=str(tmp_path / "out"),
        deepspeed=DeepSpeedSpec(zero_stage=2, micro_batch_size=4, gradient_accumulation_steps=2),
        resources=ResourcesSpec(cpu_procs=2),
        max_steps=20,
        checkpoint_every=10,
    )
