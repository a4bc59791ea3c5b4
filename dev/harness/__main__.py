"""`python -m dev.harness <service> [args]`: start one local service and keep it running."""

from __future__ import annotations

import importlib
import sys

from dev.harness.common import HarnessError

SERVICES = ("elasticsearch", "triton", "airflow", "dvc", "kubernetes")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SERVICES:
        print(f"usage: python -m dev.harness {{{','.join(SERVICES)}}} [args]", file=sys.stderr)
        return 2
    module = importlib.import_module(f"dev.harness.{argv[0]}")
    try:
        return int(module.main(argv[1:]))
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
