"""Airflow provider with LLMOps building blocks: DVC, DeepSpeed, Triton and Elasticsearch kNN."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "get_provider_info"]


def get_provider_info() -> dict:
    """Describe this provider to Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    from airflow_provider_llmops.get_provider_info import get_provider_info as _info

    return _info()
