"""The ``prepare`` stage of the demo data pipeline (dvc.yaml): write data/train from params.yaml.

python -m dev.demo_data --params params.yaml --out data/train
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from dev.harness.dvc import demo_records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=Path("data/train"))
    args = parser.parse_args(argv)
    params = yaml.safe_load(args.params.read_text())["demo_data"]
    records = demo_records(int(params["version"]), n=int(params["records"]))
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "train.jsonl"
    target.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    print(f"wrote {len(records)} records to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
