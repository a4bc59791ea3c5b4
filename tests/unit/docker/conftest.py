"""Fixtures of the docker/ static checks: the rendered compose file (`docker compose config`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dev.docker_checks import compose_config

# Values a developer may have in docker/.env or the shell: the checks read the file's own defaults.
_COMPOSE_VARS = (
    "AIRFLOW_UID",
    "AIRFLOW_JWT_SECRET",
    "MINIO_ROOT_USER",
    "MINIO_ROOT_PASSWORD",
    "LLMOPS_IMAGE_TAG",
    "LLMOPS_PROJECT_DIR",
)


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """docker/compose.yaml as Compose itself resolves it (interpolated, normalised, validated)."""
    done = compose_config(env={name: "" for name in _COMPOSE_VARS} | {"COMPOSE_DISABLE_ENV_FILE": "1"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
