"""What every benchmark suite shares: timing in a fresh interpreter, interleaved samples, one report line.

A suite module (``bench_<name>.py``) exposes ``run_all(repeats, quick) -> {metric: Result}``;
`benchmarks.run` lists the suites and prints each result with `report`.

Example::

    base, cand = measure(lambda: time_in_fresh_interpreter("import json"),
                         lambda: time_in_fresh_interpreter("import airflow.sdk"), repeats=5)
    print(report("import", "airflow.sdk vs json", (base, cand), target=2.0))
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "REPO_ROOT",
    "Result",
    "Samples",
    "measure",
    "print_results",
    "report",
    "suite_main",
    "time_in_fresh_interpreter",
]

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


class Result(NamedTuple):
    """Samples of one metric, the ratio it should stay under (None: report only), and what it compares."""

    samples: Samples
    target: float | None
    title: str
    higher_is_better: bool = False


def time_in_fresh_interpreter(body: str, setup: str = "") -> float:
    """Seconds `body` takes in a new interpreter after `setup` (import costs counted as a worker pays them)."""
    code = setup + "\n" + _TIMER.format(body=textwrap.dedent(body).strip())
    # Deployed modules load from cached bytecode; some machines turn the cache off for every process.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        timeout=600,
        env=env,
    )
    return float(out.stdout.strip().splitlines()[-1])


def measure(baseline: Callable[[], float], candidate: Callable[[], float], repeats: int) -> Samples:
    """Interleaved samples, so background load hits both sides alike."""
    base: list[float] = []
    cand: list[float] = []
    for _ in range(repeats):
        base.append(baseline())
        cand.append(candidate())
    return base, cand


def report(
    name: str, title: str, samples: Samples, target: float | None, higher_is_better: bool = False
) -> str:
    """One line: median ratio candidate/baseline, the target, the absolute delta, each side's median and range."""
    base, cand = samples
    ratio = statistics.median(cand) / statistics.median(base)
    if target is None:
        verdict = "report only"
    elif higher_is_better:
        verdict = f"target >= {target}x, " + ("met" if ratio >= target else "NOT met")
    else:
        verdict = f"target <= {target}x, " + ("met" if ratio <= target else "NOT met")
    delta = statistics.median(cand) - statistics.median(base)
    # Lower-is-better samples are seconds; higher-is-better ones are rates or scores in their own unit.
    shown = f"{delta:+.4g}" if higher_is_better else f"{delta * 1000:+.1f} ms"
    return (
        f"{name:<24} ratio {ratio:6.2f}x ({verdict}, delta {shown})  "
        f"baseline median {statistics.median(base):.4g} [{min(base):.4g}-{max(base):.4g}]  "
        f"candidate median {statistics.median(cand):.4g} [{min(cand):.4g}-{max(cand):.4g}]  "
        f"n={len(base)}  # {title}"
    )


def print_results(results: dict[str, Result]) -> None:
    """One `report` line per metric."""
    for name, result in results.items():
        print(report(name, result.title, result.samples, result.target, result.higher_is_better), flush=True)


def suite_main(
    run_all: Callable[..., dict[str, Result]],
    doc: str | None,
    argv: list[str] | None = None,
    *,
    repeats: int = 3,
    quick_help: str | None = None,
) -> int:
    """The command line of a suite module: ``--repeats N`` (and ``--quick`` when the suite has one)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=repeats)
    if quick_help:
        parser.add_argument("--quick", action="store_true", help=quick_help)
    args = parser.parse_args(argv)
    kwargs = {"quick": args.quick} if quick_help else {}
    print_results(run_all(repeats=args.repeats, **kwargs))
    return 0
