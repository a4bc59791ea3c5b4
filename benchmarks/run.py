"""Ratio benchmarks: each metric is a candidate measured against a baseline in the same run.

    python -m benchmarks.run                 # parse-time and import-time ratios
    python -m benchmarks.run --repeats 9     # more repeats on a noisy machine
    python -m benchmarks.run --suite dvc     # also the DVC add+push / pull ratios
    python -m benchmarks.run --suite train   # also trainer vs plain DeepSpeed, launcher overhead

Every sample runs in a fresh interpreter, so module import costs are counted the way a
DAG processor or a worker pays them. Baseline and candidate samples are interleaved so
that background load hits both alike. Prints median ratio with the min-max of each side.
These are not tests: nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

Samples = tuple[list[float], list[float]]

REPO_ROOT = Path(__file__).resolve().parents[1]

_TIMER = textwrap.dedent(
    """
    import time, sys
    t0 = time.perf_counter()
    {body}
    sys.stdout.write(repr(time.perf_counter() - t0))
    """
)


def _time_in_fresh_interpreter(body: str, setup: str = "") -> float:
    code = setup + "\n" + _TIMER.format(body=textwrap.indent(textwrap.dedent(body), "").strip())
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT, timeout=600
    )
    return float(out.stdout.strip().splitlines()[-1])


def measure(baseline: Callable[[], float], candidate: Callable[[], float], repeats: int) -> Samples:
    base: list[float] = []
    cand: list[float] = []
    for _ in range(repeats):
        base.append(baseline())
        cand.append(candidate())
    return base, cand


def _write_dag(folder: Path, name: str, operator_import: str, make_task: str, tasks: int = 20) -> Path:
    body = [
        "from __future__ import annotations",
        "import pendulum",
        "from airflow.sdk import DAG",
        operator_import,
        "",
        f"with DAG(dag_id={name!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1), tags=['bench']):",
        "    prev = None",
        f"    for i in range({tasks}):",
        f"        t = {make_task}",
        "        if prev is not None:",
        "            prev >> t",
        "        prev = t",
    ]
    path = folder / f"{name}.py"
    path.write_text("\n".join(body) + "\n")
    return path


def bench_dag_parse(repeats: int) -> Samples:
    """Parse a DAG of the provider's operators vs the same DAG built from EmptyOperator."""
    tmp = Path(tempfile.mkdtemp(prefix="llmops-bench-"))
    empty = _write_dag(
        tmp,
        "bench_empty",
        "from airflow.providers.standard.operators.empty import EmptyOperator",
        "EmptyOperator(task_id=f'step_{i}')",
    )
    provider = _write_dag(
        tmp,
        "bench_provider",
        "from airflow_provider_llmops.operators.deepspeed import DeepSpeedTrainingOperator\n"
        "from airflow_provider_llmops.operators.dvc import DvcPullOperator\n"
        "from airflow_provider_llmops.sensors.dvc import DvcUpdateSensor\n"
        "SPEC = {'name': 'bot', 'task': 'causal_lm', 'model': {'path': '/models/base'}, "
        "'data': {'path': '/data/train.jsonl'}, 'output': 's3://runs/bot', 'resources': {'gpus_per_node': 8}}",
        "DvcUpdateSensor(task_id=f'step_{i}', path='data/train.jsonl') if i == 0 else "
        "DeepSpeedTrainingOperator(task_id=f'step_{i}', spec=SPEC, image='trainer:1') if i % 4 == 0 else "
        "DvcPullOperator(task_id=f'step_{i}', path='data/train.jsonl', local_path='/tmp/data')",
    )

    def parse(path: Path) -> Callable[[], float]:
        # As in Airflow's DAG processor: the parent has Airflow loaded and pre-imports the
        # `airflow.*` modules the file names (parsing_pre_import_modules) before it forks the
        # parser. Modules outside `airflow.*`, like this provider's, load in every parse.
        setup = (
            "import importlib, airflow.sdk\n"
            "from airflow.dag_processing.dagbag import DagBag\n"
            "from airflow.utils.file import iter_airflow_imports\n"
            f"for m in iter_airflow_imports({str(path)!r}): importlib.import_module(m)"
        )
        body = f"bag = DagBag(dag_folder={str(path)!r}); assert not bag.import_errors"
        return lambda: _time_in_fresh_interpreter(body, setup)

    return measure(parse(empty), parse(provider), repeats)


def bench_operator_import(repeats: int) -> Samples:
    """Import the provider's operator modules (with airflow.sdk) vs `import airflow.sdk` alone."""
    from tests.unit.provider_modules import provider_modules

    modules = [m for m in provider_modules() if m.split(".")[1] in ("operators", "sensors")]
    baseline = "import airflow.sdk"
    candidate = "import airflow.sdk\n" + "\n".join(f"import {m}" for m in modules)
    return measure(
        lambda: _time_in_fresh_interpreter(baseline),
        lambda: _time_in_fresh_interpreter(candidate),
        repeats,
    )


METRICS: dict[str, tuple[Callable[[int], Samples], float, str]] = {
    "dag_parse": (bench_dag_parse, 1.2, "DAG parse: provider operators vs EmptyOperator"),
    "operator_import": (bench_operator_import, 1.15, "import: provider operators vs `import airflow.sdk`"),
}


def report(name: str, title: str, samples: Samples, target: float) -> str:
    base, cand = samples
    ratio = statistics.median(cand) / statistics.median(base)
    verdict = "within target" if ratio <= target else "ABOVE target"
    delta_ms = (statistics.median(cand) - statistics.median(base)) * 1000
    return (
        f"{name:<22} ratio {ratio:5.2f}x (target <= {target}x, {verdict}, {delta_ms:+.1f} ms)  "
        f"baseline median {statistics.median(base):.3f}s [{min(base):.3f}-{max(base):.3f}]  "
        f"candidate median {statistics.median(cand):.3f}s [{min(cand):.3f}-{max(cand):.3f}]  "
        f"n={len(base)}  # {title}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--suite", action="append", default=[], choices=["dvc", "train"], help="extra suites")
    parser.add_argument("--quick", action="store_true", help="small data for the extra suites")
    args = parser.parse_args(argv)

    for name, (bench, target, title) in METRICS.items():
        print(report(name, title, bench(args.repeats), target), flush=True)
    if "dvc" in args.suite:
        from benchmarks.bench_dvc import run_all

        for name, (samples, target, title) in run_all(repeats=args.repeats, quick=args.quick).items():
            print(report(name, title, samples, target), flush=True)
    if "train" in args.suite:
        from benchmarks.bench_train import run_all as run_train

        for name, (samples, target, title) in run_train(repeats=args.repeats, quick=args.quick).items():
            print(report(name, title, samples, target), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
