"""What DVC operators and the sensor need at DAG parse time: connection default and lineage names.

Kept small on purpose (stdlib + ``airflow.sdk`` only): the DAG processor imports it for every
DAG file that uses the provider, while the hook (git/DVC plumbing) is imported only when a task
runs. Lineage:

* a dataset path is the Asset ``dvc://<repo-name>/<path>`` (a review: ``dvc-review://...``);
  ``<repo-name>`` is the last component of the repo URL/path without ``.git``, or the
  connection id when no ``repo`` is given;
* when ``path`` or ``repo`` is templated the Asset is only known at run time, so the task
  declares the AssetAlias ``dvc:<dag_id>:<task_id>`` (``dvc-review:...``) instead and
  attaches the concrete Asset to it when it runs.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.sdk import Asset, AssetAlias, Context

__all__ = [
    "ASSET_KEYS",
    "DEFAULT_CONN_ID",
    "check_path",
    "check_rendered_repo",
    "check_repo",
    "dvc_alias",
    "dvc_asset",
    "dvc_review_asset",
    "is_templated",
    "last_success_xcom",
    "repo_name",
    "sanitize_uri",
]

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "llmops_dvc_default"
# What a dataset asset event carries in its extra.
ASSET_KEYS = ("repo", "path", "rev", "sha", "md5", "size", "nfiles")


def is_templated(*values: Any) -> bool:
    """True when any value is a string holding a Jinja expression (rendered at run time)."""
    return any(isinstance(v, str) and "{{" in v for v in values)


def check_path(path: Any) -> None:
    """ValueError unless `path` is a non-empty path relative to the DVC project root.

    The operators and the sensor run it at parse time and again, on the rendered value, when
    the task runs.
    """
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"path must be a non-empty string, got {path!r}")
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[/\\]", path) or ".." in re.split(r"[/\\]", path):
        raise ValueError(f"path must be relative to the DVC project root, got {path!r}")


# ``scheme://userinfo@host`` (userinfo: ``user:pass`` or a bare token).
_URL_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@?#]*@")


def check_repo(repo: Any) -> None:
    """ValueError when `repo` is not a string, or is a URL carrying credentials (``user:pass@``, ``token@``).

    ``ssh://git@host/...`` (a login name without password) and scp-like ``git@host:org/repo``
    stay allowed: ssh authenticates with a key.

    `repo` is a template field: whatever it holds is stored in the rendered template fields and
    shown in the UI before any secret masking applies, so credentials there would leak. They
    belong in the ``llmops_dvc`` connection (login/password), which is masked. Run at parse
    time when `repo` is literal, and on the rendered value when the task runs.
    """
    if repo is None:
        return
    if not isinstance(repo, str) or not repo.strip():
        raise ValueError(f"repo must be a non-empty git URL or path, got {type(repo).__name__}")
    if _URL_USERINFO.match(repo.strip()):
        scheme, _, rest = repo.strip().partition("://")
        userinfo = rest.split("@", 1)[0]
        if scheme.lower() in ("ssh", "git+ssh") and ":" not in userinfo:
            return  # ssh://git@host/...: a login name, the key does the authenticating
        safe = f"{scheme}://{rest.split('@', 1)[1]}"
        raise ValueError(
            f"repo must not carry credentials in its URL (got {safe!r} with a user/token part, "
            "not shown): a template field is stored and displayed unmasked. Pass the URL without "
            "them and put the user/token in the llmops_dvc connection's login/password instead."
        )


def check_rendered_repo(repo: Any) -> None:
    """`check_repo` for a rendered value: first mask its credentials, so no later log shows them.

    The operators and the sensor call it right after rendering their template fields, before
    Airflow stores them (rendered template fields): the task fails there, with the URL's
    userinfo registered as a secret.
    """
    if isinstance(repo, str) and _URL_USERINFO.match(repo.strip()):
        userinfo = repo.strip().split("://", 1)[1].split("@", 1)[0]
        try:
            from airflow.sdk.log import mask_secret

            for secret in {userinfo, *userinfo.split(":", 1)}:
                if secret:
                    mask_secret(secret)
        except ImportError:  # pragma: no cover - older SDK: the check below still refuses it
            pass
    check_repo(repo)


def repo_name(repo: str) -> str:
    """Short name of a project: last path component without ``.git`` (``datasets`` for ``.../datasets.git``)."""
    tail = re.split(r"[/:]", repo.rstrip("/"))[-1] or "repo"
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
def _asset(scheme: str, repo_or_conn: str, path: str) -> Asset:
    from airflow.sdk import Asset

    return Asset(f"{scheme}://{repo_name(repo_or_conn)}/{path.strip('/')}")


def dvc_asset(repo_or_conn: str, path: str) -> Asset:
    """The Asset of a DVC-tracked path: ``dvc://<repo-name>/<path>`` (repo URL/path or connection id)."""
    return _asset("dvc", repo_or_conn, path)


def dvc_review_asset(repo_or_conn: str, path: str) -> Asset:
    """The Asset of the review of a DVC-tracked path: ``dvc-review://<repo-name>/<path>``."""
    return _asset("dvc-review", repo_or_conn, path)


def dvc_alias(kind: str, dag_id: str, task_id: str) -> AssetAlias:
    """AssetAlias ``<kind>:<dag_id>:<task_id>`` for a task whose Asset is only known at run time."""
    from airflow.sdk import AssetAlias

    return AssetAlias(f"{kind}:{dag_id}:{task_id}")


def last_success_xcom(context: Context, task_id: str, key: str) -> Any:
    """``return_value[key]`` of `task_id` in its dag's last successful run; None when there is none."""
    ti = context.get("ti")
    if ti is None:
        return None
    try:
        from airflow.sdk import TaskInstanceState

        prev = ti.get_previous_ti(state=TaskInstanceState.SUCCESS)  # type: ignore[union-attr]
        if prev is None:
            return None
        value = ti.xcom_pull(task_ids=task_id, dag_id=ti.dag_id, run_id=prev.run_id)
    except Exception as err:  # older API or no previous run: callers fall back
        log.info("No previous successful run to compare with (%s)", type(err).__name__)
        return None
    return value.get(key) if isinstance(value, dict) else None
