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
