"""Run a job spec as local torchrun processes on the worker host (CPU with gloo, or its GPUs).

The manager behind `DeepSpeedLocalTrainingOperator`: it writes the spec, starts torchrun in its
own process group, streams every line into the task log, kills the whole group on `kill()` or
timeout, and reads the manifest from the output location. A retry runs the same spec against
the same output, so the trainer resumes from the newest complete checkpoint. Example::

    launcher = LocalTrainingLauncher(spec, work_dir="/tmp/llmops", log=log)
    manifest = launcher.run(timeout=3600)
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.exceptions import TrainingLaunchError, TrainingManifestError, TrainingSpecError

if TYPE_CHECKING:
    from airflow_provider_llmops.training.spec import TrainingJobSpec

__all__ = ["LocalTrainingLauncher", "local_gpu_count"]

TAIL_LINES = 40


def local_gpu_count() -> int:
    """GPUs on this host per ``nvidia-smi -L`` (0 without the tool): no CUDA import in the worker."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


class LocalTrainingLauncher:
    """torchrun on this host for one job spec; `kill()` is safe from another thread (on_kill).

    :param spec: the validated job spec; ``resources.nodes`` must be 1.
    :param work_dir: where the spec file goes (``<work_dir>/<name>-<spec-hash>.json``).
    :param log: the task's logger; each trainer line is logged as it arrives.
    :param python: the interpreter that has the ``[train]`` extra (default: this one).
    :param env: extra environment for the trainer (merged over the worker's).
    :param kill_grace_s: seconds between SIGTERM and SIGKILL of the process group.
    """

    def __init__(
        self,
        spec: TrainingJobSpec,
        *,
        work_dir: str | Path,
        log: Any,
        python: str | None = None,
        env: dict[str, str] | None = None,
        kill_grace_s: float = 10.0,
    ) -> None:
        self.spec = spec
        self.work_dir = Path(work_dir)
        self.log = log
        self.python = python or sys.executable
        self.extra_env = dict(env or {})
        self.kill_grace_s = kill_grace_s
        self.proc: subprocess.Popen[str] | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        # The ranks' own lines (their traceback): torchrun's traceback follows and would hide it.
        self.rank_tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._killed = threading.Event()

    def check(self) -> None:
        """The launcher's own checks (before any process starts): one node, enough local GPUs."""
        res = self.spec.resources
        if res.nodes != 1:
            raise TrainingSpecError(
                f"resources.nodes is {res.nodes}: the local launcher runs one node; use "
                "DeepSpeedMultiNodeTrainingOperator for several",
                field="resources.nodes",
            )
        if res.gpus_per_node:
            have = local_gpu_count()
            if have < res.gpus_per_node:
                raise TrainingSpecError(
                    f"resources.gpus_per_node is {res.gpus_per_node} but this host has {have} GPU(s); "
                    "lower it, or set 0 to train on CPU processes (resources.cpu_procs)",
                    field="resources.gpus_per_node",
                )

    def argv(self, spec_file: Path) -> list[str]:
        res = self.spec.resources
        if res.procs_per_node == 1:
            # One process needs no agent: the trainer forms a world of one itself, and torchrun
            # would add its own torch import (seconds) in front of the trainer's.
            return [self.python, "-m", "airflow_provider_llmops.training", str(spec_file)]
        return [
            self.python,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nnodes",
            "1",
            "--nproc_per_node",
            str(res.procs_per_node),
            "-m",
            "airflow_provider_llmops.training",
            str(spec_file),
        ]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if not self.spec.resources.gpus_per_node:
            env.setdefault("DS_ACCELERATOR", "cpu")
            # One BLAS thread per rank: N ranks on N cores, not N x N threads fighting.
            env.setdefault("OMP_NUM_THREADS", "1")
            env["CUDA_VISIBLE_DEVICES"] = ""
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env

    def write_spec(self) -> Path:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        path = self.work_dir / f"{self.spec.name}-{self.spec.spec_hash()}.json"
        path.write_text(self.spec.to_json(), encoding="utf-8")
        return path

    def run(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Train (or resume) to completion; the manifest dict. `TrainingLaunchError` on failure."""
        self.check()
        spec_file = self.write_spec()
        argv = self.argv(spec_file)
        self.log.info("Starting local training: %s", " ".join(argv))
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=self.environment(),
            start_new_session=True,  # its own process group: kill() reaches torchrun's children too
        )
        reader = threading.Thread(target=self._stream, args=(self.proc,), daemon=True)
        reader.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while self.proc.poll() is None:
                if deadline is not None and time.monotonic() > deadline:
                    self.kill()
                    raise TrainingLaunchError(
                        f"local training of {self.spec.name} timed out after {timeout:.0f}s; the processes "
                        f"were killed. A retry resumes from the last complete checkpoint.{self._tail()}"
                    )
                time.sleep(0.2)
        except BaseException:
            # AirflowTaskTimeout, KeyboardInterrupt, ...: never leave trainers behind.
            self.kill()
            raise
        finally:
            reader.join(timeout=5)
        if self._killed.is_set():
            raise TrainingLaunchError(f"local training of {self.spec.name} was killed{self._tail()}")
        if self.proc.returncode != 0:
            raise TrainingLaunchError(
                f"local training of {self.spec.name} failed with exit code {self.proc.returncode}{self._tail()}"
            )
        return self.read_manifest()

    def read_manifest(self) -> dict[str, Any]:
        from airflow_provider_llmops.training.storage import OutputStore

        manifest = OutputStore(self.spec.output).read_manifest()
        if manifest is None:
            raise TrainingManifestError(f"training exited 0 but {self.spec.output}/manifest.json is missing")
        return manifest

    def kill(self) -> None:
        """SIGTERM the process group, then SIGKILL after `kill_grace_s`; a no-op once it exited."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        self._killed.set()
        self.log.warning("Killing local training process group %s", proc.pid)
        for sig, wait in ((signal.SIGTERM, self.kill_grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # torchrun's workers may outlive it for a moment; the group id is still theirs.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _stream(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line:
                self.tail.append(line)
                if line.startswith(("[rank", "[llmops-train] error")):
                    self.rank_tail.append(line)
                self.log.info("%s", line)

    def _tail(self) -> str:
        lines = self.rank_tail or self.tail
        return ("\nLast trainer output:\n" + "\n".join(lines)) if lines else ""
