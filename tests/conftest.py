"""Test-session set-up shared by unit and integration tests.

Airflow reads AIRFLOW_HOME at import time, so the isolated home is chosen here, before
any test module imports airflow.
"""

from __future__ import annotations

import os

from dev.harness.airflow import prepare_airflow_env

os.environ.update(prepare_airflow_env(name=f"pytest-{os.getpid()}"))

pytest_plugins = [
    "tests.fixtures.airflow",
    "tests.fixtures.elasticsearch",
    "tests.fixtures.triton",
    "tests.fixtures.dvc",
]


def pytest_collection_modifyitems(config, items):
    """Mark everything under tests/integration as integration, and run unit tests first."""
    import pytest

    for item in items:
        if "tests/integration/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)
    items.sort(key=lambda item: "tests/integration/" in str(item.path).replace("\\", "/"))
