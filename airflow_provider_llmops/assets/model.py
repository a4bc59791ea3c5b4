"""Lineage names of trained models: ``model://<name>/<spec-hash>``.

The spec hash (the training job spec without its output location) is the model's idempotency
key: the same spec trained again is the same model. A task whose spec is templated declares the
AssetAlias ``model:<dag_id>:<task_id>`` and attaches the Asset when it runs.

Example::

    model_asset("support-bot", "3f2a9c...")  # Asset("model://support-bot/3f2a9c...")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.sdk import Asset, AssetAlias

__all__ = ["model_alias", "model_asset", "sanitize_uri"]


def model_asset(name: str, spec_hash: str) -> Asset:
    """The Asset of a trained model: ``model://<name>/<spec-hash>``."""
    from airflow.sdk import Asset

    return Asset(f"model://{name}/{spec_hash}")


def model_alias(dag_id: str, task_id: str) -> AssetAlias:
    """AssetAlias ``model:<dag_id>:<task_id>``: the spec hash is only known once the spec is rendered."""
    from airflow.sdk import AssetAlias

    return AssetAlias(f"model:{dag_id}:{task_id}")


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Airflow's normaliser for ``model://`` URIs (registered in get_provider_info): a name and a spec hash."""
    if not uri.netloc or uri.path.strip("/") == "":
        raise ValueError(f"model URI must be model://<name>/<spec-hash>, got {uri.geturl()!r}")
    return uri
