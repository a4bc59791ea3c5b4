"""Ratio benchmarks: each metric is a candidate measured against a baseline in the same run.

    python -m benchmarks.run                 # parse-time and import-time ratios
    python -m benchmarks.run --repeats 9     # more repeats on a noisy machine
    python -m benchmarks.run --suite dvc     # also the DVC add+push / pull ratios
    python -m benchmarks.run --suite triton  # also the Triton infer / deploy / batching ratios
    python -m benchmarks.run --suite es      # Elasticsearch ingest, recall and encoder ratios
    python -m benchmarks.run --suite train   # also trainer vs plain DeepSpeed, launcher overhead

Every suite lives in ``benchmarks/bench_<name>.py`` and returns `reporting.Result`s; this
module only picks the suites and prints one line per metric (median ratio, min-max of each
side). These are not tests: nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from benchmarks.reporting import print_results

# Suite name -> module; `parse` always runs, the others on request.
SUITES = {
    "parse": "benchmarks.bench_parse",
    "dvc": "benchmarks.bench_dvc",
    "triton": "benchmarks.bench_triton",
    "es": "benchmarks.bench_es",
    "train": "benchmarks.bench_train",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--suite", action="append", default=[], choices=sorted(set(SUITES) - {"parse"}))
    parser.add_argument("--quick", action="store_true", help="small data for the extra suites")
    args = parser.parse_args(argv)
    for suite in ["parse", *args.suite]:
        print_results(importlib.import_module(SUITES[suite]).run_all(repeats=args.repeats, quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
