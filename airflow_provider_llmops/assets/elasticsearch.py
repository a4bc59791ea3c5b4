"""Lineage names of kNN indices: the Asset ``elasticsearch://<cluster>/<alias>`` and its URI normaliser.

Stdlib + ``airflow.sdk`` only: DAG parsing imports it. When the alias or cluster is templated,
the task declares the AssetAlias ``elasticsearch:<dag_id>:<task_id>`` and attaches the rendered
Asset when it runs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.sdk import Asset, AssetAlias

__all__ = ["SCHEME", "check_alias_name", "es_alias", "es_asset", "sanitize_uri"]

SCHEME = "elasticsearch"
# Elasticsearch's own rules for index and alias names.
_BAD_CHARS = re.compile(r'[\\/*?"<>| ,#:A-Z]')


def check_alias_name(alias: object) -> None:
    """ValueError unless `alias` is a valid Elasticsearch alias name (lowercase, no ``\\/*?"<>| ,#:``)."""
    if not isinstance(alias, str) or not alias.strip():
        raise ValueError(f"alias must be a non-empty string, got {alias!r}")
    if _BAD_CHARS.search(alias) or alias.startswith(("-", "_", "+")) or alias in (".", ".."):
        raise ValueError(
            f"alias {alias!r} is not a valid Elasticsearch alias name: use lowercase letters, digits, "
            "'-', '_' and '.', not starting with '-', '_' or '+'."
        )
    if len(alias.encode()) > 200:
        raise ValueError(f"alias {alias!r} is too long (at most 200 bytes, so versioned index names fit)")


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Airflow's normaliser for ``elasticsearch://<cluster>/<alias>`` (registered in get_provider_info)."""
    if not uri.netloc:
        raise ValueError("elasticsearch URI must name the cluster: elasticsearch://<cluster>/<alias>")
    alias = uri.path.strip("/")
    if not alias or "/" in alias:
        raise ValueError(f"elasticsearch URI must name one alias: elasticsearch://{uri.netloc}/<alias>")
    return uri


def es_asset(cluster: str, alias: str) -> Asset:
    from airflow.sdk import Asset

    return Asset(
        uri=f"{SCHEME}://{cluster}/{alias}", name=f"{SCHEME}://{cluster}/{alias}", group="elasticsearch"
    )


def es_alias(dag_id: str, task_id: str) -> AssetAlias:
    from airflow.sdk import AssetAlias

    return AssetAlias(name=f"{SCHEME}:{dag_id}:{task_id}", group="elasticsearch")
