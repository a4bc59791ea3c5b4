"""Test-session set-up shared by unit and integration tests.

Airflow reads AIRFLOW_HOME at import time, so the isolated home is chosen here, before
any test module imports airflow.
"""

from __future__ import annotations

import os
import signal

from dev.harness.airflow import prepare_airflow_env

os.environ.update(prepare_airflow_env(name=f"pytest-{os.getpid()}"))


def _interrupt(signum: int, frame: object) -> None:
    # CI stops a job with SIGTERM; turn it into KeyboardInterrupt so session fixtures stop their
    # servers (which run in their own process groups and would otherwise outlive pytest).
    raise KeyboardInterrupt(f"signal {signum}")


signal.signal(signal.SIGTERM, _interrupt)

pytest_plugins = [
    "tests.fixtures.airflow",
    "tests.fixtures.elasticsearch",
    "tests.fixtures.es_knn",
    "tests.fixtures.triton",
    "tests.fixtures.dvc",
    "tests.fixtures.kubernetes",
]


def pytest_collection_modifyitems(config, items):
    """Mark the harness's own tests, tests/integration and tests/system as integration; unit tests first."""
    import pytest

    def needs_servers(item: pytest.Item) -> bool:
        path = str(item.path).replace("\\", "/")
        return any(f"tests/{folder}/" in path for folder in ("integration", "harness", "system"))

    for item in items:
        if needs_servers(item):
            item.add_marker(pytest.mark.integration)
    items.sort(key=needs_servers)
