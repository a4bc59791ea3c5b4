"""The DeepSpeed training loop run by every rank: preflight, resume, train, checkpoint, export, manifest.

Run it through a launcher (torchrun, the deepspeed launcher, or the provider's operators)::

    torchrun --nproc_per_node 2 -m airflow_provider_llmops.training job.yaml

Preflight (spec, DeepSpeed config, model folder, dataset rows, output location) happens in every
rank before the process group forms, so a bad input fails in seconds with one clear error.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow_provider_llmops.exceptions import TrainingError, TrainingSpecError
from airflow_provider_llmops.training.data import Row, SampleOrder, collate_causal, read_rows, tokenize_causal
from airflow_provider_llmops.training.ds_config import build_ds_config
from airflow_provider_llmops.training.models import check_model_folder, in_batch_negatives_loss
from airflow_provider_llmops.training.spec import TrainingJobSpec
from airflow_provider_llmops.training.storage import MANIFEST, OutputStore, check_output, step_tag

__all__ = ["Preflight", "main", "preflight", "train"]

PREFIX = "[llmops-train]"
# Slows every optimizer step by this many seconds: lets fault-injection tests and demos kill a
# run between two checkpoints. Unset in real jobs.
THROTTLE_ENV = "LLMOPS_TRAIN_THROTTLE_S"


def say(message: str) -> None:
    print(f"{PREFIX} {message}", flush=True)


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


@dataclass
class Preflight:
    """What the checks found: rows, the resolved DeepSpeed config, the output store and world size."""

    spec: TrainingJobSpec
    rows: list[Row]
    ds_config: dict[str, Any]
    store: OutputStore
    world_size: int
    finished: dict[str, Any] | None


def preflight(spec: TrainingJobSpec, *, world_size: int | None = None) -> Preflight:
    """Every check that needs no process group; raises a `TrainingError` subclass on bad input.

    `world_size` defaults to the launcher's ``WORLD_SIZE``; it must match the spec's resources.
    """
    spec.validate()
    world = world_size if world_size is not None else int(os.environ.get("WORLD_SIZE", "1"))
    if world != spec.resources.world_size:
        raise TrainingSpecError(
            f"launched with {world} processes but the spec's resources ask for {spec.resources.world_size} "
            f"({spec.resources.nodes} node(s) x {spec.resources.procs_per_node} per node); launch with a "
            "matching --nproc_per_node/--nnodes or fix resources",
            field="resources",
        )
    ds_config = build_ds_config(spec, world_size=world)
    check_model_folder(spec.model.path, spec.task)
    if spec.model.lora is not None:
        try:
            import peft  # noqa: F401
        except ImportError as err:
            raise TrainingSpecError(
                "model.lora needs the peft package in the training image (pip install peft)",
                field="model.lora",
            ) from err
    rows = read_rows(spec.data, spec.task)
    store = OutputStore(spec.output)
    finished = check_output(store, spec.spec_hash())
    return Preflight(spec, rows, ds_config, store, world, finished)


@dataclass
class TrainState:
    """What a checkpoint carries besides weights, optimizer and LR schedule (DeepSpeed's client state)."""

    step: int = 0
    loss_curve: list[list[float]] = field(default_factory=list)
    samples: int = 0
    tokens: int = 0
    train_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "loss_curve": self.loss_curve,
            "samples": self.samples,
            "tokens": self.tokens,
            "train_seconds": self.train_seconds,
        }


class _CausalTask:
    def __init__(self, spec: TrainingJobSpec) -> None:
        from transformers import AutoTokenizer

        self.spec = spec
        self.tokenizer = AutoTokenizer.from_pretrained(spec.model.path)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.tokenizer.eos_token_id or 0)

    def load_model(self) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(self.spec.model.path, dtype=torch.float32)
        return self._with_lora(model)

    def _with_lora(self, model: Any) -> Any:
        lora = self.spec.model.lora
        if lora is None:
            return model
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules) or None,  # None: peft's default for the architecture
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, config)

    def prepare(self, rows: list[Row]) -> tuple[dict[str, Any], int]:
        """Tokenized, padded CPU tensors of one micro-batch and its token count."""
        examples = [tokenize_causal(r, self.tokenizer, self.spec.data.max_length) for r in rows]
        batch = collate_causal(examples, self.pad_id)
        return batch, int(batch["attention_mask"].sum())

    def loss(self, engine: Any, batch: dict[str, Any]) -> Any:
        return engine(**batch).loss

    def export(self, state_dict: dict[str, Any], out: Path) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM

        if self.spec.model.lora:
            # The frozen base weights may be left out of a ZeRO checkpoint: they come from the base
            # model, unchanged; every trained (adapter) weight must come from the state dict.
            model = self._with_lora(AutoModelForCausalLM.from_pretrained(self.spec.model.path))
            missing, unexpected = model.load_state_dict(state_dict, strict=False)
            untied_missing = {k for k in missing if "lora_" in k}
        else:
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(self.spec.model.path))
            missing, unexpected = model.load_state_dict(state_dict, strict=False)
            untied_missing = set(missing) - set(_tied_keys(model))
        if unexpected or untied_missing:
            raise TrainingError(
                f"exported weights do not fit the model: missing {sorted(untied_missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}"
            )
        if self.spec.model.lora:
            model = model.merge_and_unload()  # plain weights: any HF loader reads the export
        model.tie_weights()  # lm_head shares wte (GPT-2 style): one tensor, saved once
        model.save_pretrained(out)
        self.tokenizer.save_pretrained(out)


def _tied_keys(model: Any) -> list[str]:
    tied = getattr(model, "_tied_weights_keys", None) or []
    return list(tied.keys()) if isinstance(tied, dict) else list(tied)


class _EmbeddingTask:
    def __init__(self, spec: TrainingJobSpec) -> None:
        self.spec = spec

    def load_model(self) -> Any:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(self.spec.model.path, device="cpu")
        model.max_seq_length = min(
            model.max_seq_length or self.spec.data.max_length, self.spec.data.max_length
        )
        self.model = model
        return model

    def prepare(self, rows: list[Row]) -> tuple[dict[str, Any], int]:
        """Queries then passages, tokenized as one batch (one forward pass), and the token count."""
        texts = [r.a for r in rows] + [str(r.b) for r in rows]
        # sentence-transformers >= 6 renamed tokenize() to preprocess(); both exist for a while.
        tokenize = getattr(self.model, "preprocess", None) or self.model.tokenize
        feats = tokenize(texts)
        return dict(feats), int(feats["attention_mask"].sum())

    def loss(self, engine: Any, batch: dict[str, Any]) -> Any:
        emb = engine(batch)["sentence_embedding"]
        n = emb.shape[0] // 2
        return in_batch_negatives_loss(emb[:n].float(), emb[n:].float(), self.spec.scale)

    def export(self, state_dict: dict[str, Any], out: Path) -> None:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(self.spec.model.path, device="cpu")
        model.load_state_dict(state_dict)
        model.max_seq_length = self.model.max_seq_length
        model.save(str(out), safe_serialization=True)


def _single_process_env() -> None:
    """`python -m airflow_provider_llmops.training spec.json` without a launcher: a world of one."""
    if "RANK" in os.environ:
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    defaults = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
    for key, value in {**defaults, "MASTER_PORT": str(port)}.items():
        os.environ.setdefault(key, value)


class _Progress:
    """Rank 0's progress line at most every `interval` seconds: step/total, loss, throughput, ETA."""

    def __init__(self, total: int, start: int, interval: float) -> None:
        self.total, self.start, self.interval = total, start, interval
        self.t0 = time.monotonic()
        self.last = -math.inf

    def update(self, step: int, loss: float, samples: int, tokens: int) -> None:
        now = time.monotonic()
        if now - self.last < self.interval and step not in (self.start + 1, self.total):
            return
        self.last = now
        elapsed = max(now - self.t0, 1e-9)
        done = step - self.start
        eta = (self.total - step) * elapsed / max(done, 1)
        say(
            f"step {step}/{self.total} ({100 * step / self.total:.0f}%), loss {loss:.4f}, "
            f"{samples / elapsed:.1f} samples/s, {tokens / elapsed:.0f} tokens/s, ETA {eta:.0f}s"
        )


def train(pf: Preflight) -> dict[str, Any]:
    """Train to ``max_steps`` (resuming from the newest complete checkpoint); returns the manifest."""
    spec, store = pf.spec, pf.store
    wall0 = time.monotonic()
    deepspeed, dist = _init_distributed(on_cpu=spec.resources.gpus_per_node == 0)
    import torch

    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if spec.resources.gpus_per_node:
        torch.cuda.set_device(local_rank)
    torch.manual_seed(spec.seed)
    task: Any = _CausalTask(spec) if spec.task == "causal_lm" else _EmbeddingTask(spec)
    model = task.load_model()
    engine, *_ = deepspeed.initialize(
        model=model, model_parameters=[p for p in model.parameters() if p.requires_grad], config=pf.ds_config
    )
    work = Path(tempfile.mkdtemp(prefix="llmops-train-"))
    state, resumed_from = _resume(engine, pf, work, local_rank, dist)
    ctx = _Ranks(rank=rank, world=world, local_rank=local_rank, dist=dist, work=work)
    run_samples, run_tokens = _train_steps(engine, task, pf, state, ctx)
    run_seconds = time.monotonic() - wall0
    fp32 = _fp32_state_dict(engine, store, state.step, work, rank, dist)
    manifest: dict[str, Any] = {}
    if rank == 0:
        manifest = _finish(
            spec, pf, task, fp32, state, resumed_from, run_samples, run_tokens, run_seconds, work
        )
    dist.barrier()
    shutil.rmtree(work, ignore_errors=True)
    dist.destroy_process_group()
    return manifest


class _Inline:
    """An executor that runs each call at once, in the caller's thread."""

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args))
        return future

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass
class _Ranks:
    """Where this process sits in the job, and the process group it talks through."""

    rank: int
    world: int
    local_rank: int
    dist: Any
    work: Path


def _init_distributed(*, on_cpu: bool) -> tuple[Any, Any]:
    """(deepspeed, torch.distributed) with the process group formed: gloo on CPU, NCCL on GPUs."""
    if on_cpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed
    import torch.distributed as dist

    if on_cpu and os.environ.get("LLMOPS_DS_SHM_COMM") != "1":
        # DeepSpeed JIT-compiles a shared-memory all-reduce op for CPU runs (~90 s on first use
        # per machine); gloo is as fast for the small CPU jobs this launcher is for.
        from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder

        deepspeed.ops.__compatible_ops__[ShareMemCommBuilder.NAME] = False
    timeout = timedelta(seconds=int(os.environ.get("LLMOPS_DIST_TIMEOUT_S", "1800")))
    deepspeed.init_distributed(dist_backend="gloo" if on_cpu else "nccl", timeout=timeout)
    return deepspeed, dist


def _resume(engine: Any, pf: Preflight, work: Path, local_rank: int, dist: Any) -> tuple[TrainState, int]:
    """(state, step resumed from): the newest complete checkpoint's, or a fresh start (0)."""
    spec, store = pf.spec, pf.store
    rank = dist.get_rank()
    steps = store.complete_steps()
    if not steps:
        if rank == 0:
            say(
                f"starting {spec.task} run {spec.name} (spec {spec.spec_hash()}), {dist.get_world_size()} "
                f"process(es), {len(pf.rows)} rows"
            )
        return TrainState(), 0
    resumed_from = steps[-1]
    load_dir = _checkpoint_dir_for_load(store, resumed_from, work, local_rank, dist)
    _, client = engine.load_checkpoint(
        load_dir, tag=step_tag(resumed_from), load_optimizer_states=True, load_lr_scheduler_states=True
    )
    state = TrainState(**client["llmops"])
    if rank == 0:
        say(f"resuming from checkpoint {step_tag(resumed_from)} (step {state.step}/{spec.max_steps})")
    return state, resumed_from


def _train_steps(engine: Any, task: Any, pf: Preflight, state: TrainState, ctx: _Ranks) -> tuple[int, int]:
    """Optimizer steps from ``state.step`` to ``max_steps``, checkpointing; (samples, tokens) of this run."""
    import torch

    spec, store = pf.spec, pf.store
    rank, world, local_rank, dist, work = ctx.rank, ctx.world, ctx.local_rank, ctx.dist, ctx.work
    micro = pf.ds_config["train_micro_batch_size_per_gpu"]
    accum = pf.ds_config["gradient_accumulation_steps"]
    global_batch = micro * accum * world
    order = SampleOrder(len(pf.rows), seed=spec.seed)
    throttle = float(os.environ.get(THROTTLE_ENV, "0") or 0)
    progress = _Progress(spec.max_steps, state.step, spec.log_every_s)
    run_samples = run_tokens = 0
    t_train = time.monotonic()
    on_gpu = spec.resources.gpus_per_node > 0
    # On GPUs the next micro-batch is tokenized in a thread while the current one trains; CPU
    # ranks already use every core, where that thread would only compete with the math.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmops-batches") if on_gpu else _Inline()
    with executor as pool:

        def prefetch(step: int, m: int) -> Future[tuple[dict[str, Any], int]] | None:
            if step >= spec.max_steps:
                return None
            start = step * global_batch + (m * world + rank) * micro
            return pool.submit(task.prepare, [pf.rows[i] for i in order.indices(start, micro)])

        pending = prefetch(state.step, 0)
        while pending is not None:
            step_loss = torch.zeros((), dtype=torch.float64, device=engine.device)
            step_tokens = 0
            for m in range(accum):
                assert pending is not None  # only the step after the last one is never prefetched
                cpu_batch, n_tokens = pending.result()
                pending = prefetch(state.step, m + 1) if m + 1 < accum else prefetch(state.step + 1, 0)
                batch = {
                    k: v.to(engine.device, non_blocking=True) if hasattr(v, "to") else v
                    for k, v in cpu_batch.items()
                }
                loss = task.loss(engine, batch)
                engine.backward(loss)
                engine.step()
                step_loss += loss.detach().double()
                step_tokens += n_tokens
            totals = torch.stack(
                [
                    step_loss / accum,
                    torch.tensor(float(step_tokens), dtype=torch.float64, device=engine.device),
                ]
            )
            dist.all_reduce(totals)
            mean_loss = float(totals[0]) / world
            state.step += 1
            state.loss_curve.append([state.step, round(mean_loss, 6)])
            state.samples += global_batch
            state.tokens += int(totals[1])
            run_samples += global_batch
            run_tokens += int(totals[1])
            if rank == 0:
                progress.update(state.step, mean_loss, run_samples, run_tokens)
            if throttle:
                time.sleep(throttle)
            if state.step % spec.checkpoint_every == 0 or state.step == spec.max_steps:
                state.train_seconds += time.monotonic() - t_train
                t_train = time.monotonic()
                _save_checkpoint(engine, store, state, spec, work, rank, local_rank, dist)
    return run_samples, run_tokens


def _checkpoint_dir_for_load(store: OutputStore, step: int, work: Path, local_rank: int, dist: Any) -> str:
    if store.is_local:
        return store.path("checkpoints")
    local = work / "resume"
    if local_rank == 0:
        store.get_dir(f"checkpoints/{step_tag(step)}", local / step_tag(step))
    dist.barrier()
    return str(local)


def _save_checkpoint(
    engine: Any,
    store: OutputStore,
    state: TrainState,
    spec: TrainingJobSpec,
    work: Path,
    rank: int,
    local_rank: int,
    dist: Any,
) -> None:
    """Write aside (``.partial``), move into place, then mark complete: a killed save is never resumed."""
    tag = step_tag(state.step)
    stage = Path(store.path("checkpoints/.partial")) if store.is_local else work / "partial"
    if rank == 0 or (not store.is_local and local_rank == 0):
        shutil.rmtree(stage / tag, ignore_errors=True)
    dist.barrier()
    engine.save_checkpoint(str(stage), tag=tag, client_state={"llmops": state.to_dict()})
    dist.barrier()
    if store.is_local:
        if rank == 0:
            final = Path(store.path(f"checkpoints/{tag}"))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(stage / tag, final)
    elif local_rank == 0:
        store.put_dir(stage / tag, f"checkpoints/{tag}")
    dist.barrier()
    if rank == 0:
        store.mark_complete(state.step, {"step": state.step, "spec_hash": spec.spec_hash()})
        store.prune(spec.keep_checkpoints)
        say(f"checkpoint {tag} complete at {store.uri_of(f'checkpoints/{tag}')}")
    dist.barrier()


def _fp32_state_dict(
    engine: Any, store: OutputStore, step: int, work: Path, rank: int, dist: Any
) -> dict[str, Any]:
    """The full fp32 weights on rank 0 ({} elsewhere), gathered from the final checkpoint.

    ZeRO 1-3 hold the fp32 master weights in partitions: DeepSpeed's zero_to_fp32 reassembles
    them from the checkpoint (then `save_pretrained` writes safetensors, tied weights included;
    zero_to_fp32's own safetensors writer refuses tied tensors). Stage 0 holds them whole.
    """
    dist.barrier()
    if rank != 0:
        return {}
    if engine.zero_optimization_stage() == 0:
        return {k: v.detach().float().cpu().clone() for k, v in engine.module.state_dict().items()}
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    tag = step_tag(step)
    if store.is_local:
        ckpt = store.path("checkpoints")
    else:
        ckpt = str(work / "export")
        store.get_dir(f"checkpoints/{tag}", Path(ckpt) / tag)
    return dict(get_fp32_state_dict_from_zero_checkpoint(ckpt, tag=tag))


def _finish(
    spec: TrainingJobSpec,
    pf: Preflight,
    task: Any,
    fp32: dict[str, Any],
    state: TrainState,
    resumed_from: int,
    run_samples: int,
    run_tokens: int,
    run_seconds: float,
    work: Path,
) -> dict[str, Any]:
    """Rank 0: save the model, the loss PNG, then manifest.json (last: it marks the run finished)."""
    import deepspeed
    import torch
    import transformers

    store = pf.store
    out = Path(store.path("model.partial")) if store.is_local else work / "model"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    task.export(fp32, out)
    if store.is_local:
        shutil.rmtree(store.path("model"), ignore_errors=True)
        os.replace(out, store.path("model"))
    else:
        store.put_dir(out, "model")
    png = work / "loss.png"
    _plot_loss(state.loss_curve, png, spec.name)
    store.put_file(png, "loss.png")
    seconds = max(state.train_seconds, 1e-9)
    manifest = {
        "name": spec.name,
        "task": spec.task,
        "status": "finished",
        "spec_hash": spec.spec_hash(),
        "spec": spec.to_dict(),
        "base_model": spec.model.path,
        "dataset": {"path": spec.data.path, "rev": spec.data.rev, "md5": spec.data.md5, "rows": len(pf.rows)},
        "deepspeed_config": pf.ds_config,
        "world_size": pf.world_size,
        "steps": state.step,
        "resumed_from_step": resumed_from,
        "loss_curve": state.loss_curve,
        "first_loss": state.loss_curve[0][1] if state.loss_curve else None,
        "final_loss": state.loss_curve[-1][1] if state.loss_curve else None,
        "samples": state.samples,
        "tokens": state.tokens,
        "samples_per_s": round(state.samples / seconds, 3),
        "tokens_per_s": round(state.tokens / seconds, 3),
        "train_seconds": round(state.train_seconds, 3),
        "wall_time_s": round(run_seconds, 3),
        "run_samples": run_samples,
        "run_tokens": run_tokens,
        "model_uri": store.uri_of("model"),
        "loss_plot_uri": store.uri_of("loss.png"),
        "output_uri": store.uri,
        "versions": {
            "torch": torch.__version__,
            "deepspeed": deepspeed.__version__,
            "transformers": transformers.__version__,
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    store.write_text(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
    say(
        f"finished {spec.name}: {state.step} steps, final loss {manifest['final_loss']}, model at {manifest['model_uri']}"
    )
    say(f"manifest {store.uri_of(MANIFEST)}")
    return manifest


def _plot_loss(curve: list[list[float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([s for s, _ in curve], [v for _, v in curve], linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"{title}: training loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _load_spec(arg: str) -> TrainingJobSpec:
    """A spec file, or ``env:NAME``: the JSON in an environment variable (how a pod receives it)."""
    if arg.startswith("env:"):
        name = arg[4:]
        text = os.environ.get(name)
        if not text:
            raise TrainingSpecError(
                f"environment variable {name!r} holding the job spec is not set", field=""
            )
        return TrainingJobSpec.from_json(text)
    return TrainingJobSpec.load(arg)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m airflow_provider_llmops.training <spec.json|yaml> [--check]``; exit 2 on bad input."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m airflow_provider_llmops.training")
    parser.add_argument("spec", help="job spec file (.json, .yaml or .yml), or env:NAME for JSON in $NAME")
    parser.add_argument(
        "--check", action="store_true", help="run the preflight checks, print the DeepSpeed config"
    )
    args = parser.parse_args(argv)
    try:
        spec = _load_spec(args.spec)
        if not args.check:
            _single_process_env()
        pf = preflight(spec, world_size=spec.resources.world_size if args.check else None)
    except TrainingError as err:
        print(f"{PREFIX} error: {err}", file=sys.stderr, flush=True)
        return 2
    if args.check:
        print(json.dumps(pf.ds_config, indent=2, sort_keys=True))
        return 0
    if pf.finished is not None:
        if _rank() == 0:
            say(
                f"output {pf.store.uri} already holds this finished run (spec {spec.spec_hash()}); nothing to do"
            )
        return 0
    train(pf)
    return 0
