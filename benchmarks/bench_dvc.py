"""DvcHook add+push and pull against the raw `dvc`/`git` CLIs on the same data (local remote).

Data: one large random file (200 MB; --quick: 5 MB) and a few thousand small files (3000;
--quick: 200). Each sample uses a fresh project and remote, and runs in a fresh interpreter,
so import costs are paid the way a worker pays them. Target: candidate/baseline <= 1.1.

    python -m benchmarks.bench_dvc --repeats 3 [--quick]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.reporting import REPO_ROOT, Result, Samples, suite_main
from dev.harness.dvc import dvc_env, make_dvc_project

TARGET = 1.1


def _make_data(root: Path, quick: bool) -> Path:
    src = root / "source"
    (src / "small").mkdir(parents=True)
    big_mb, nsmall = (5, 200) if quick else (200, 3000)
    with open(src / "big.bin", "wb") as fh:
        for _ in range(big_mb):
            fh.write(os.urandom(1024 * 1024))
    for i in range(nsmall):
        (src / "small" / f"{i:05d}.jsonl").write_bytes(os.urandom(512).hex().encode() + b"\n")
    return src


def _timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, timeout=1800)
    return time.perf_counter() - t0


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _timed_in_worker(code: str, cwd: Path, env: dict[str, str]) -> float:
    """Time `code` in a fresh interpreter that has already imported the Task SDK, as a worker has."""
    script = (
        "import time, sys\nimport airflow.sdk  # noqa: F401 - a worker has this loaded\n"
        f"t0 = time.perf_counter()\n{code}\nsys.stdout.write('\\nELAPSED=%r' % (time.perf_counter() - t0))\n"
    )
    out = subprocess.run(
        _py(script), cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=1800
    )
    return float(out.stdout.rsplit("ELAPSED=", 1)[1])


def _dvc() -> str:
    exe = Path(sys.executable).with_name("dvc")
    return str(exe) if exe.exists() else "dvc"


def _fresh_project(root: Path, src: Path, name: str):
    proj = make_dvc_project(root / name)
    shutil.copytree(src, proj.path / "data" / "ds")
    return proj


def bench_add_push(src: Path, work: Path, repeats: int) -> Samples:
    base, cand = [], []
    for i in range(repeats):
        # Baseline: what a user types.
        proj = _fresh_project(work, src, f"b{i}")
        env = {**proj.env, "PYTHONPATH": str(REPO_ROOT)}
        script = (
            f"import subprocess as s\n"
            f"r=lambda *a: s.run(list(a), check=True, capture_output=True)\n"
            f"r({_dvc()!r}, 'add', 'data/ds'); r('git', 'add', 'data/ds.dvc', 'data/.gitignore')\n"
            f"r('git', 'commit', '-q', '-m', 'v1'); r('git', 'tag', '-a', 'v1', '-m', 'v1')\n"
            f"r({_dvc()!r}, 'push', 'data/ds'); r('git', 'push', '-q', '--atomic', 'origin', 'main', 'v1')\n"
        )
        base.append(_timed(_py(script), proj.path, env))
        # Candidate: the hook (as DvcAddOperator runs it).
        proj = _fresh_project(work, src, f"c{i}")
        code = (
            "from airflow_provider_llmops.hooks.dvc import DvcHook\n"
            "from airflow_provider_llmops.utils.dvc_publish import DvcPublisher\n"
            f"DvcPublisher(DvcHook(None, repo={str(proj.path)!r})).publish('data/ds', 'v1', 'v1')\n"
        )
        cand.append(_timed_in_worker(code, proj.path, env))
        assert len(proj.remote_objects()) == len(base_remote(work / f"b{i}")), "different pushes"
    return base, cand


def base_remote(root: Path) -> set[str]:
    remote = root / "remote"
    return {str(p.relative_to(remote)) for p in remote.rglob("*") if p.is_file()}


def bench_pull(src: Path, work: Path, repeats: int) -> Samples:
    proj = _fresh_project(work, src, "pull-src")
    proj.publish("data/ds", tag="v1")
    base, cand = [], []
    for i in range(repeats):
        env = {**dvc_env(proj.site_cache), "PYTHONPATH": str(REPO_ROOT)}
        clone = work / f"pull-b{i}"
        script = (
            "import subprocess as s\n"
            f"s.run(['git', 'clone', '-q', {str(proj.origin)!r}, {str(clone)!r}], check=True)\n"
            f"s.run([{_dvc()!r}, 'pull', 'data/ds'], cwd={str(clone)!r}, check=True, capture_output=True)\n"
        )
        base.append(_timed(_py(script), work, env))
        dest = work / f"pull-c{i}" / "ds"
        code = (
            "from airflow_provider_llmops.hooks.dvc import DvcHook\n"
            "from airflow_provider_llmops.utils.dvc_pull import DvcPuller\n"
            f"DvcPuller(DvcHook(None, repo={str(proj.origin)!r}, clone_dir={str(work / f'clones{i}')!r}))"
            f".pull('data/ds', 'v1', {str(dest)!r})\n"
        )
        cand.append(_timed_in_worker(code, work, env))
        assert (dest / "big.bin").stat().st_size == (clone / "data" / "ds" / "big.bin").stat().st_size
    return base, cand


def run_all(repeats: int = 3, quick: bool = False) -> dict[str, Result]:
    """The suite's metrics for benchmarks/run.py."""
    with tempfile.TemporaryDirectory(prefix="bench-dvc-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("DVC_NO_ANALYTICS", "1")
        src = _make_data(work, quick)
        return {
            "dvc_add_push": Result(
                bench_add_push(src, work, repeats),
                TARGET,
                "DvcPublisher.publish vs dvc add+git commit/tag+dvc push+git push",
            ),
            "dvc_pull": Result(
                bench_pull(src, work, repeats), TARGET, "DvcPuller.pull vs git clone+dvc pull"
            ),
        }


def main(argv: list[str] | None = None) -> int:
    return suite_main(
        run_all, __doc__, argv, repeats=3, quick_help="5 MB + 200 files instead of 200 MB + 3000"
    )


if __name__ == "__main__":
    sys.exit(main())
