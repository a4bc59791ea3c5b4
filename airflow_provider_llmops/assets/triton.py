"""Lineage names of served Triton models: the Asset ``triton://<server>/<model>``.

``<server>`` is a stable logical name for the Triton deployment: the operator's ``server_name``
or, by default, its connection id (hosts move; the connection id stays). Stdlib + ``airflow.sdk``
only, as the DAG processor imports it.

Example::

    triton_asset("llmops_triton_default", "minilm")  # Asset("triton://llmops_triton_default/minilm")
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.sdk import Asset, AssetAlias

__all__ = ["sanitize_uri", "triton_alias", "triton_asset"]

_SERVER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Airflow's normaliser for ``triton://`` URIs (registered in get_provider_info).

    Needs a server name and exactly one model name: ``triton://prod-triton/minilm``.
    """
    if not uri.netloc or not _SERVER.match(uri.netloc):
        raise ValueError(f"triton URI must name the server: triton://<server>/<model>, got {uri.geturl()!r}")
    model = uri.path.strip("/")
    if not model or "/" in model or ".." in model or not _MODEL.match(model):
        raise ValueError(
            f"triton URI must name one model: triton://{uri.netloc}/<model>, got {uri.geturl()!r}"
        )
    return uri._replace(path=f"/{model}", query="", fragment="")


def triton_asset(server: str, model: str) -> Asset:
    """The Asset of model ``model`` served by ``server``."""
    from airflow.sdk import Asset

    return Asset(f"triton://{server}/{model}")


def triton_alias(dag_id: str, task_id: str) -> AssetAlias:
    """AssetAlias ``triton:<dag_id>:<task_id>`` for a task whose model name is templated."""
    from airflow.sdk import AssetAlias

    return AssetAlias(f"triton:{dag_id}:{task_id}")
