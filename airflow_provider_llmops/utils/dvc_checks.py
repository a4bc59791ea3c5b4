"""Checks of the DVC operators' and sensor's arguments, run at parse time and again once rendered.

Stdlib only, and no regular expression on the common path: the DAG processor runs them for every
DVC task it parses, in a fresh process each time (a first `re` compile costs more than the checks).

Example::

    check_path("data/train")                         # fine
    check_repo("https://token@github.com/acme/x")    # ValueError: credentials in the URL
"""

from __future__ import annotations

from typing import Any

from airflow_provider_llmops.utils.templating import is_templated, require_str

__all__ = ["check_dvc_fields", "check_path", "check_rendered_repo", "check_repo"]


def check_path(path: Any, name: str = "path") -> None:
    """ValueError unless `path` is a non-empty path relative to the DVC project root.

    The operators and the sensor run it at parse time and again, on the rendered value, when
    the task runs.
    """
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"{name} must be a non-empty string, got {path!r}")
    drive = len(path) > 2 and path[0].isascii() and path[0].isalpha() and path[1] == ":" and path[2] in "/\\"
    if path.startswith(("/", "\\")) or drive or ".." in path.replace("\\", "/").split("/"):
        raise ValueError(f"{name} must be relative to the DVC project root, got {path!r}")


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
    if "@" not in repo:
        return  # no userinfo without an "@"
    from airflow_provider_llmops.utils.redact import URL_USERINFO_RE

    if URL_USERINFO_RE.match(repo.strip()):
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
    from airflow_provider_llmops.utils.redact import URL_USERINFO_RE, mask_secrets

    if isinstance(repo, str) and URL_USERINFO_RE.match(repo.strip()):
        userinfo = repo.strip().split("://", 1)[1].split("@", 1)[0]
        mask_secrets([userinfo, *userinfo.split(":", 1)])
    check_repo(repo)


def check_dvc_fields(
    owner: Any,
    *,
    rendered: bool,
    required: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
    path_required: bool = True,
) -> None:
    """The one validation pass of a DVC operator or sensor: `path`, `repo`, then its string fields.

    At parse time (`rendered` False) a templated `repo` is left for later; once rendered, a
    `repo` with credentials is masked and refused before Airflow stores the rendered fields.
    """
    if owner.path is not None or path_required:
        check_path(owner.path)
    if rendered:
        check_rendered_repo(owner.repo)
    elif not is_templated(owner.repo):
        check_repo(owner.repo)
    for name in required:
        require_str(name, getattr(owner, name))
    for name in optional:
        require_str(name, getattr(owner, name), optional=True)
    if getattr(owner, "subdir", None) is not None:
        check_path(owner.subdir, "subdir")
