"""Lineage names of DVC datasets: ``dvc://<repo-name>/<path>`` and ``dvc-review://<repo-name>/<path>``.

Kept small on purpose (stdlib + ``airflow.sdk`` only): the DAG processor imports it for every
DAG file that uses the provider, while the hook (git/DVC plumbing) is imported only when a task
runs.

* a dataset path is the Asset ``dvc://<repo-name>/<path>`` (a review: ``dvc-review://...``);
  ``<repo-name>`` is the last component of the project's URL or path without ``.git``, however
  a task points at the project (``repo=`` or the connection's ``repo`` extra), so one dataset
  has one URI;
* characters outside ASCII letters, digits and ``-._~/`` are percent-encoded as UTF-8
  (``data/données`` -> ``data/donn%C3%A9es``), so every path gives a valid, stable URI;
* when the project is only known at run time (``repo`` templated, taken from the connection,
  or the task mapped) the task declares the AssetAlias ``dvc:<dag_id>:<task_id>``
  (``dvc-review:...``) and attaches the concrete Asset to it when it runs.

Example::

    dvc_asset("https://github.com/acme/datasets.git", "data/train")  # Asset("dvc://datasets/data/train")
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.sdk import Asset, AssetAlias

__all__ = [
    "DEFAULT_CONN_ID",
    "DVC_REVIEW_SCHEME",
    "DVC_SCHEME",
    "dvc_alias",
    "dvc_asset",
    "dvc_review_asset",
    "repo_name",
    "sanitize_uri",
]

DEFAULT_CONN_ID = "llmops_dvc_default"
DVC_SCHEME = "dvc"
DVC_REVIEW_SCHEME = "dvc-review"


def repo_name(repo: str) -> str:
    """Short name of a project: last path component without ``.git`` (``datasets`` for ``.../datasets.git``)."""
    tail = repo.rstrip("/").replace(":", "/").rsplit("/", 1)[-1] or "repo"
    return tail[:-4] if tail.endswith(".git") else tail


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Airflow's normaliser for ``dvc://`` and ``dvc-review://`` URIs (registered in get_provider_info).

    Both need a project name and a tracked path: ``dvc://datasets/data/train``.
    """
    if not uri.netloc:
        raise ValueError(f"{uri.scheme} URI must name the DVC project: {uri.scheme}://<repo-name>/<path>")
    if uri.path in ("", "/"):
        raise ValueError(f"{uri.scheme} URI must name a tracked path: {uri.scheme}://{uri.netloc}/<path>")
    return uri


@lru_cache(maxsize=256)
def _asset(scheme: str, repo: str, path: str) -> Asset:
    from airflow.sdk import Asset

    return Asset(f"{scheme}://{quote(repo_name(repo), safe='')}/{quote(path.strip('/'), safe='/')}")


def dvc_asset(repo: str, path: str) -> Asset:
    """The Asset of a DVC-tracked path: ``dvc://<repo-name>/<path>`` (`repo`: the project's URL or path)."""
    return _asset(DVC_SCHEME, repo, path)


def dvc_review_asset(repo: str, path: str) -> Asset:
    """The Asset of the review of a DVC-tracked path: ``dvc-review://<repo-name>/<path>``."""
    return _asset(DVC_REVIEW_SCHEME, repo, path)


def dvc_alias(scheme: str, dag_id: str, task_id: str) -> AssetAlias:
    """AssetAlias ``<scheme>:<dag_id>:<task_id>`` for a task whose Asset is only known at run time."""
    from airflow.sdk import AssetAlias

    return AssetAlias(f"{scheme}:{dag_id}:{task_id}")
