"""The list of the provider's importable modules, shared by the unit tests."""

from __future__ import annotations

import pkgutil

import airflow_provider_llmops


def provider_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(airflow_provider_llmops.__path__, prefix="airflow_provider_llmops.")
    )
