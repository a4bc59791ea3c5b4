"""Airflow provider with LLMOps building blocks: DVC, DeepSpeed, Triton and Elasticsearch kNN."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
