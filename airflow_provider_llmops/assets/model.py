"""Lineage names of trained models: ``model://<name>``, one Asset per model.

The Asset is the model, as ``dvc://`` names a dataset and not one of its versions; each training
run is an event on it, whose extra carries the spec hash (the run's idempotency key: the same spec
trained again is the same model version), the dataset rev and the output location. Because the
name is all the URI holds, a task with a literal spec name declares the Asset at DAG parse time
(it shows on the Assets page, and a DAG can be scheduled on it); only a templated name or spec
file makes the task declare the AssetAlias ``model:<dag_id>:<task_id>`` and attach the Asset when
it runs.

Example::

    model_asset("support-bot")  # Asset("model://support-bot")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.sdk import Asset, AssetAlias

__all__ = ["model_alias", "model_asset", "sanitize_uri"]


def model_asset(name: str) -> Asset:
    """The Asset of a trained model: ``model://<name>``."""
    from airflow.sdk import Asset

    return Asset(f"model://{name}")


def model_alias(dag_id: str, task_id: str) -> AssetAlias:
    """AssetAlias ``model:<dag_id>:<task_id>``: the model's name is only known once the spec is rendered."""
    from airflow.sdk import AssetAlias

    return AssetAlias(f"model:{dag_id}:{task_id}")


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Airflow's normaliser for ``model://`` URIs (registered in get_provider_info): a model name only."""
    if not uri.netloc or uri.path.strip("/"):
        raise ValueError(
            f"model URI must be model://<name> (the version is in each event's extra), got {uri.geturl()!r}"
        )
    return uri._replace(path="")
