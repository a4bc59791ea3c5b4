"""Hook for DVC projects: the client of one git + DVC project.

The hook holds the connection settings and secrets, runs git, resolves revisions, reads what a
rev tracks, and opens DVC's `Repo` with the remote overrides in memory. Multi-step work lives in
managers that hold a hook: `DvcPuller` (pull and verify, `utils/dvc_pull.py`) and `DvcPublisher`
(the transactional publish, `utils/dvc_publish.py`), the way the Kubernetes provider splits
`KubernetesHook` from `PodManager`.

The project is a git URL or a local path (connection extra ``repo``). A local git working copy
is used in place; anything else (a URL, a bare repository) is cloned once into a cache folder
and fetched before each resolution. DVC itself (``dvc.repo.Repo``) is imported inside methods
only, so importing this module stays cheap for the scheduler and the DAG processor.

Credentials (connection login/password and secret ``remote_config`` extras) are handed to DVC
in memory as remote config overrides: they are never written to ``.dvc/config``, never logged,
and are redacted from every exception message this hook raises.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from airflow_provider_llmops.assets.dvc import DEFAULT_CONN_ID, repo_name
from airflow_provider_llmops.exceptions import (
    DvcCommandError,
    DvcError,
    DvcLockTimeoutError,
    DvcPathNotTrackedError,
    DvcRemoteError,
    DvcRevisionNotFoundError,
)
from airflow_provider_llmops.utils.dvc_records import DvcVersion
from airflow_provider_llmops.utils.locks import file_lock
from airflow_provider_llmops.utils.redact import mask_secrets, redact, strip_userinfo, url_secrets

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from dvc.data_cloud import Remote
    from dvc.repo import Repo
    from dvc_data.hashfile.db import HashFileDB

__all__ = ["DEFAULT_CONN_ID", "DvcConnection", "DvcHook", "DvcRepoHandle", "norm_path"]

DEFAULT_REV = "main"
OVERRIDE_REMOTE_NAME = "airflow"
# Keys of `remote_config` whose values are secrets (redacted and masked).
_SECRET_KEY_RE = re.compile(r"(secret|password|passwd|token|key|credential|sas|session)", re.IGNORECASE)
# How connection login/password map to DVC remote options, by remote URL scheme.
_CREDENTIAL_KEYS: dict[str, tuple[str, str]] = {
    "s3": ("access_key_id", "secret_access_key"),
    "azure": ("account_name", "account_key"),
    "ssh": ("user", "password"),
    "http": ("user", "password"),
    "https": ("user", "password"),
    "webdav": ("user", "password"),
    "webdavs": ("user", "password"),
    "oss": ("oss_key_id", "oss_key_secret"),
}

_E = TypeVar("_E", bound=DvcError)


def norm_path(path: str) -> str:
    """A tracked path in the one form the hook compares: POSIX, no ``./`` prefix, no trailing ``/``."""
    p = str(PurePosixPath(str(path).replace("\\", "/")))
    return p[2:] if p.startswith("./") else p.rstrip("/")


def _is_local(url: str) -> bool:
    return "://" not in url and not re.match(r"^[\w.-]+@[\w.-]+:", url)


@dataclass(frozen=True)
class DvcConnection:
    """The parsed ``llmops_dvc`` connection (plus the hook's overrides)."""

    repo: str
    rev: str
    remote: str | None
    remote_url: str | None
    remote_config: dict[str, Any]
    login: str | None
    password: str | None = field(repr=False)
    git_remote: str = "origin"
    git_user_name: str | None = None
    git_user_email: str | None = None
    subdir: str = ""

    @property
    def secrets(self) -> list[str]:
        """Every value that must never appear in a message: password, secret extras, URL tokens."""
        values = [self.password or ""]
        values += [str(v) for k, v in self.remote_config.items() if _SECRET_KEY_RE.search(k)]
        for url in (self.repo, self.remote_url or "", str(self.remote_config.get("url") or "")):
            values += url_secrets(url)
        return values


@dataclass(frozen=True)
class DvcRepoHandle:
    """An open DVC project: DVC's `Repo`, the name of the remote in use, and the project's folder
    (the git working copy, or its `subdir` in a monorepo)."""

    repo: Repo
    remote: str | None
    workdir: Path

    def cache_odb(self, hash_name: str) -> HashFileDB:
        """The cache object database for a hash algorithm (DVC 2 outputs live in the legacy one)."""
        return self.repo.cache.legacy if hash_name == "md5-dos2unix" else self.repo.cache.local


class DvcHook(BaseHook):
    """Talks to one DVC project (git repo + DVC remote).

    Example::

        hook = DvcHook("llmops_dvc_default")
        version = hook.version("data/train", "v2")   # DvcVersion(rev="v2", sha=..., md5=..., ...)
        DvcPuller(hook).pull("data/train", version.sha, "/data/train")

    :param dvc_conn_id: ``llmops_dvc`` connection; ``None`` to use only the arguments below.
    :param repo: git URL or local path; overrides the connection's ``repo`` extra.
    :param rev: default branch/tag/commit; overrides the ``rev`` extra (default ``main``).
    :param remote: DVC remote name; overrides the ``remote`` extra.
    :param remote_url: DVC remote URL override (e.g. ``s3://bucket/dvc``).
    :param subdir: the DVC project's folder inside the git repository, for monorepos
        (``dvc init --subdir``); overrides the ``subdir`` extra. Paths are relative to it. A local
        `repo` that is a folder inside a git working copy is found without it.
    :param clone_dir: where URL repositories are cloned (default ``$LLMOPS_DVC_CLONE_DIR`` or
        ``~/.cache/airflow-provider-llmops/dvc-repos``).
    :param git_timeout: seconds allowed for each git command.
    :param progress_interval: seconds between progress log lines of long transfers.
    :param lock_timeout: seconds to wait for a lock held by another run (same pull destination,
        same working copy being published, same cached clone) before DvcLockTimeoutError.
    """

    conn_name_attr = "dvc_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "llmops_dvc"
    hook_name = "DVC Project"

    def __init__(
        self,
        dvc_conn_id: str | None = DEFAULT_CONN_ID,
        *,
        repo: str | None = None,
        rev: str | None = None,
        remote: str | None = None,
        remote_url: str | None = None,
        subdir: str | None = None,
        clone_dir: str | os.PathLike[str] | None = None,
        git_timeout: float = 300.0,
        progress_interval: float = 5.0,
        lock_timeout: float = 3600.0,
    ) -> None:
        super().__init__()
        self.dvc_conn_id = dvc_conn_id
        self._repo_arg = repo
        self._rev_arg = rev
        self._remote_arg = remote
        self._remote_url_arg = remote_url
        self._subdir_arg = subdir
        self._clone_dir_arg = clone_dir
        self.git_timeout = git_timeout
        self.progress_interval = progress_interval
        self.lock_timeout = lock_timeout
        self._fetched = False

    # ------------------------------------------------------------------ settings / secrets
    @cached_property
    def settings(self) -> DvcConnection:
        extras: dict[str, Any] = {}
        login = password = None
        conn = self._connection()
        if conn is not None:
            # Not `extra_dejson`: it hands every extra value to the masker, which warns about each
            # short one ("main"); the secrets among them are masked below.
            extras = _extras(conn.extra, self.dvc_conn_id)
            login, password = conn.login or None, conn.password or None
        # The connection form shows Repository as the (relabelled) Host field; the `repo` extra wins.
        repo = self._repo_arg or extras.get("repo") or (conn.host if conn is not None else None)
        if not repo:
            raise DvcError(
                f"No DVC project given: set Repository (the `repo` extra, or Host) of connection "
                f"{self.dvc_conn_id!r} to a git URL or local path, or pass repo=... to the hook/operator."
            )
        remote_config = _remote_config(extras.get("remote_config"), self.dvc_conn_id)
        repo, subdir = self._split_monorepo(str(repo), str(self._subdir_arg or extras.get("subdir") or ""))
        settings = DvcConnection(
            repo=repo,
            subdir=subdir,
            rev=str(self._rev_arg or extras.get("rev") or DEFAULT_REV),
            remote=self._remote_arg or extras.get("remote") or None,
            remote_url=self._remote_url_arg or extras.get("remote_url") or None,
            remote_config=dict(remote_config),
            login=login,
            password=password,
            git_remote=str(extras.get("git_remote") or "origin"),
            git_user_name=str(extras.get("git_user_name") or "") or None,
            git_user_email=str(extras.get("git_user_email") or "") or None,
        )
        mask_secrets(settings.secrets)
        return settings

    def _split_monorepo(self, repo: str, subdir: str) -> tuple[str, str]:
        """(git repository, DVC project folder inside it): a local folder inside a git working copy
        (``/src/mono/ml`` with ``.git`` in ``/src/mono``) becomes (``/src/mono``, ``ml``)."""
        from airflow_provider_llmops.utils.dvc_checks import check_path

        if subdir:
            check_path(subdir)
            subdir = norm_path(subdir)
        folder = Path(repo)
        if not _is_local(repo) or not folder.is_dir() or (folder / ".git").exists():
            return repo, subdir
        try:  # not self.git(): its errors read the settings being built here
            proc = subprocess.run(
                ["git", "rev-parse", "--show-toplevel"],
                cwd=folder,
                env=_git_env(),
                capture_output=True,
                text=True,
                timeout=self.git_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return repo, subdir
        top = proc.stdout.strip() if proc.returncode == 0 else ""
        if not top:
            return repo, subdir
        inner = Path(os.path.relpath(folder.resolve(), Path(top).resolve())).as_posix()
        return top, norm_path(f"{inner}/{subdir}" if subdir else inner)

    def git_path(self, rel: str) -> str:
        """A path of the DVC project as git names it (prefixed with `subdir` in a monorepo)."""
        return f"{self.settings.subdir}/{rel}" if self.settings.subdir else rel

    def _connection(self) -> Any:
        """The Airflow connection; None when there is none to read.

        With `repo` given, the default connection is optional: a project whose remote needs no
        credentials works without one (DVC then uses the project's own `.dvc/config`).
        """
        if not self.dvc_conn_id:
            return None
        from airflow.exceptions import AirflowNotFoundException

        try:
            return self.get_connection(self.dvc_conn_id)
        except AirflowNotFoundException:
            if self._repo_arg and self.dvc_conn_id == DEFAULT_CONN_ID:
                self.log.info(
                    "No connection %r: using %s with its own DVC config", self.dvc_conn_id, self._repo_arg
                )
                return None
            raise

    def redact(self, text: str) -> str:
        """`text` with every secret of this connection, and the userinfo of any URL, replaced by ***."""
        return redact(text, self.settings.secrets)

    def error(self, cls: type[_E], message: str, *, rev: str = "", sha: str = "", path: str = "") -> _E:
        """`cls` for this project, its message redacted; the error renders repo, rev and path itself."""
        return cls(self.redact(message), repo=self.repo_label, rev=rev, sha=sha, path=path)

    @property
    def repo_label(self) -> str:
        """The project's URL or path without credentials, for messages."""
        return strip_userinfo(self.settings.repo)

    @property
    def repo_name(self) -> str:
        return repo_name(self.settings.repo)

    # ------------------------------------------------------------------ git plumbing
    def _git_run(
        self, args: Sequence[str], cwd: Path, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The one place git runs: argv list, no prompts, C locale, a timeout (DvcCommandError)."""
        try:
            return subprocess.run(
                ["git", *args],
                cwd=cwd,
                env=_git_env(),
                capture_output=True,
                text=True,
                timeout=timeout or self.git_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise self.error(
                DvcCommandError,
                f"`git {args[0]}` timed out after {timeout or self.git_timeout:.0f}s. Check that the git "
                "server is reachable, or raise git_timeout.",
            ) from err

    def git(self, args: Sequence[str], cwd: Path, check: bool = True, timeout: float | None = None) -> str:
        """stdout of a git command, without its trailing newline; on failure DvcCommandError (check) or ''."""
        proc = self._git_run(args, cwd, timeout)
        if check and proc.returncode != 0:
            shown = list(args)
            while shown[:1] == ["-c"]:  # `-c user.name=...` options: name the command itself
                shown = shown[2:]
            raise self.error(
                DvcCommandError,
                f"`git {' '.join(shown[:3])}` failed (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}",
            )
        return proc.stdout.rstrip("\n") if proc.returncode == 0 else ""

    def git_ok(self, args: Sequence[str], cwd: Path) -> bool:
        """True when a git command succeeds (a timeout counts as failure)."""
        try:
            return self._git_run(args, cwd).returncode == 0
        except DvcCommandError:
            return False

    @property
    def is_local_checkout(self) -> bool:
        """True when `repo` is a local git working copy (used in place, publishing allowed)."""
        repo = self.settings.repo
        return _is_local(repo) and (Path(repo) / ".git").exists()

    def _clone_path(self) -> Path:
        base = self._clone_dir_arg or os.environ.get("LLMOPS_DVC_CLONE_DIR")
        root = Path(base) if base else Path.home() / ".cache" / "airflow-provider-llmops" / "dvc-repos"
        digest = hashlib.sha256(self.settings.repo.encode()).hexdigest()[:16]
        return root / f"{self.repo_name}-{digest}"

    def lock(self, path: Path, what: str, *, rev: str = "", rel: str = "") -> AbstractContextManager[None]:
        """Exclusive lock file `path` (re-entrant per thread), waiting up to lock_timeout."""
        return file_lock(
            path,
            timeout=self.lock_timeout,
            what=f"{what} of {self.repo_label}",
            error=lambda message: self.error(DvcLockTimeoutError, message, rev=rev, path=rel),
        )

    def _clone_lock(self) -> AbstractContextManager[None]:
        """The cached clone's lock (URL repos); a no-op for a local working copy."""
        if self.is_local_checkout:
            return contextlib.nullcontext()
        target = self._clone_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        return self.lock(target.parent / f".{target.name}.lock", f"the cached clone {target}")

    def workdir(self, refresh: bool = False) -> Path:
        """The local git working copy: the repo itself, or a cached clone fetched once per hook."""
        repo = self.settings.repo
        if self.is_local_checkout:
            return Path(repo).resolve()
        if _is_local(repo) and not Path(repo).exists():
            raise self.error(
                DvcRemoteError,
                f"DVC project {self.repo_label} does not exist. Fix the `repo` extra of connection "
                f"{self.dvc_conn_id!r} (git URL or path of a git working copy).",
            )
        target = self._clone_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._clone_lock():
            if not (target / ".git").exists():
                self.log.info("Cloning %s into %s", self.repo_label, target)
                shutil.rmtree(target, ignore_errors=True)
                try:
                    self.git(["clone", "--quiet", repo, str(target)], cwd=target.parent)
                except DvcCommandError as err:
                    raise self.error(
                        DvcRemoteError,
                        f"Cannot clone DVC project {self.repo_label}: {err.message}. Check the URL and "
                        "the git credentials of the worker.",
                    ) from err
                self._fetched = True
            elif refresh or not self._fetched:
                try:
                    self.git(["fetch", "--quiet", "--prune", "--tags", "--force", "origin"], cwd=target)
                    # DVC reads .dvc/config from the checkout: keep it at the default branch's tip.
                    self.git(
                        ["checkout", "--quiet", "--force", "--detach", "refs/remotes/origin/HEAD"], cwd=target
                    )
                except DvcCommandError as err:
                    raise self.error(
                        DvcRemoteError, f"Cannot fetch DVC project {self.repo_label}: {err.message}"
                    ) from err
                self._fetched = True
        return target

    # ------------------------------------------------------------------ revisions
    def resolve_rev(self, rev: str | None = None, *, path: str = "", refresh: bool = False) -> str:
        """Full commit sha of a branch, tag or (short) commit; default: the configured rev."""
        rev = rev or self.settings.rev
        wd = self.workdir(refresh=refresh)
        candidates = (
            [rev] if self.is_local_checkout else [f"refs/remotes/origin/{rev}", f"refs/tags/{rev}", rev]
        )
        for candidate in candidates:
            sha = self.git(
                ["rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"], cwd=wd, check=False
            )
            if sha:
                return sha
        raise self.error(
            DvcRevisionNotFoundError,
            f"Revision {rev!r} not found. Check the branch/tag/commit name; list them with "
            "`git ls-remote --heads --tags <repo>`.",
            rev=rev,
            path=path,
        )

    def resolve_rev_at(self, when: datetime, branch: str | None = None, *, path: str = "") -> str:
        """The last commit on `branch` (first-parent) committed at or before `when`."""
        branch = branch or self.settings.rev
        tip = self.resolve_rev(branch, path=path)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        stamp = when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        sha = self.git(["rev-list", "-1", "--first-parent", f"--before={stamp}", tip], cwd=self.workdir())
        if not sha:
            raise self.error(
                DvcRevisionNotFoundError,
                f"No commit on {branch!r} at or before {stamp}. The branch starts later: pick a later "
                "logical date or pass an explicit rev.",
                rev=f"{branch}@{stamp}",
                path=path,
            )
        return sha

    def newest_tag(self, pattern: str, *, path: str = "") -> tuple[str, str]:
        """(tag, commit sha) of the newest tag matching a glob like ``v*`` (by date, then version)."""
        out = self.git(
            [
                "for-each-ref",
                "--sort=-version:refname",
                "--sort=-creatordate",
                "--format=%(refname:short)",
                "refs/tags",
            ],
            cwd=self.workdir(),
        )
        for name in out.splitlines():
            if fnmatch.fnmatchcase(name, pattern):
                return name, self.resolve_rev(name, path=path)
        raise self.error(
            DvcRevisionNotFoundError,
            f"No tag matching {pattern!r}. Publish a version (DvcAddOperator) or fix tag_pattern.",
            rev=pattern,
            path=path,
        )

    def show(self, sha: str, rel: str) -> str | None:
        """The content of file `rel` at commit `sha`, or None when it does not exist there."""
        return self.git(["show", f"{sha}:{rel}"], cwd=self.workdir(), check=False) or None

    # ------------------------------------------------------------------ what a rev tracks
    def version(self, path: str, rev: str | None = None) -> DvcVersion:
        """The version of `path` at `rev` (md5, size, nfiles), from its .dvc file or dvc.lock.

        A path inside a tracked folder (``data/images/cats`` when ``data/images`` is tracked)
        gives the folder's version with `tracked` set; pulling it materialises only that part.
        """
        path = norm_path(path)
        rev = rev or self.settings.rev
        sha = self.resolve_rev(rev, path=path)
        parts = PurePosixPath(path).parts
        for depth in range(len(parts), 0, -1):
            candidate = str(PurePosixPath(*parts[:depth]))
            out = self._tracked_out(sha, candidate)
            if out and out.get("md5"):
                md5 = str(out["md5"])
                if depth < len(parts) and not md5.endswith(".dir"):
                    break  # a tracked file cannot contain `path`
                return DvcVersion(
                    repo=self.repo_label,
                    path=path,
                    rev=rev,
                    sha=sha,
                    md5=md5,
                    size=out.get("size"),
                    nfiles=out.get("nfiles") if md5.endswith(".dir") else 1,
                    hash=out.get("hash") or "md5-dos2unix",
                    tracked="" if depth == len(parts) else candidate,
                )
        if self.show(sha, self.git_path(".dvc/config")) is None:
            where = f"folder {self.settings.subdir!r}" if self.settings.subdir else "its root"
            hint = (
                f" The repository has no DVC project at {where} at this rev: for a DVC project in a "
                "folder of the repository (`dvc init --subdir`), set `subdir` to that folder."
            )
        else:
            hint = f" Track it with `dvc add {path}` and commit."
        raise self.error(
            DvcPathNotTrackedError,
            f"Path {path!r} is not tracked by DVC: no {self.git_path(path)}.dvc, no dvc.lock output, and no "
            f"tracked folder containing it.{hint}",
            rev=rev,
            sha=sha,
            path=path,
        )

    def _tracked_out(self, sha: str, path: str) -> dict[str, Any] | None:
        """The `outs` entry of `path` in its .dvc file, else in a dvc.lock; None when untracked."""
        import yaml

        text = self.show(sha, f"{self.git_path(path)}.dvc")
        if not text:
            return self._lock_out(sha, path)
        outs = (yaml.safe_load(text) or {}).get("outs") or []
        name = PurePosixPath(path).name
        return next((o for o in outs if norm_path(str(o.get("path", ""))) == name), outs[0] if outs else None)

    def _lock_out(self, sha: str, path: str) -> dict[str, Any] | None:
        import yaml

        parts = PurePosixPath(path).parts
        for depth in range(len(parts) - 1, -1, -1):
            base = PurePosixPath(*parts[:depth]) if depth else PurePosixPath(".")
            lock = self.show(sha, self.git_path("dvc.lock" if depth == 0 else f"{base}/dvc.lock"))
            if not lock:
                continue
            rel = str(PurePosixPath(*parts[depth:]))
            for stage in ((yaml.safe_load(lock) or {}).get("stages") or {}).values():
                for out in stage.get("outs") or []:
                    if norm_path(str(out.get("path", ""))) == rel:
                        out = dict(out)
                        # No `hash` field: written by DVC 2, whose md5s are md5-dos2unix.
                        out.setdefault("hash", "md5-dos2unix")
                        return out
        return None

    def current_version(
        self, path: str, rev: str | None = None, tag_pattern: str | None = None
    ) -> DvcVersion | None:
        """The version of `path` at the tip of `rev` (or the newest tag matching `tag_pattern`).

        Fetches URL repositories first. None while nothing is tracked there yet (no matching
        tag, or the path is not tracked at that rev), so waiting for a first version works.
        """
        path = norm_path(path)
        self.workdir(refresh=True)
        try:
            if tag_pattern:
                rev, _ = self.newest_tag(tag_pattern, path=path)
            return self.version(path, rev)
        except DvcPathNotTrackedError:
            return None
        except DvcRevisionNotFoundError:
            if tag_pattern:
                return None
            raise

    def previous_rev(self, path: str, rev: str) -> str | None:
        """Sha of the newest commit before `rev` whose data for `path` differs (None: first version)."""
        path = norm_path(path)
        current = self.version(path, rev)
        parts = PurePosixPath(path).parts
        tracked = current.tracked or path
        specs = [f"{tracked}.dvc", "dvc.lock"] + [
            f"{PurePosixPath(*parts[:d])}/dvc.lock" for d in range(1, len(parts))
        ]
        specs = [self.git_path(spec) for spec in specs]
        out = self.git(
            ["log", "--first-parent", "--format=%H", "-n", "200", f"{current.sha}^", "--", *specs],
            cwd=self.workdir(),
            check=False,
        )
        for sha in out.splitlines():
            try:
                if self.version(path, sha).md5 != current.md5:
                    return sha
            except DvcPathNotTrackedError:
                return None
        return None

    # ------------------------------------------------------------------ DVC repo / remote
    @contextlib.contextmanager
    def open_repo(self) -> Iterator[DvcRepoHandle]:
        """DVC's `Repo` on the working copy, with remote overrides and credentials in memory."""
        # A cached clone is checked out by other tasks' fetches: DVC reads .dvc/config and the
        # cache from it, so hold the clone's lock while the Repo is open.
        with self._clone_lock():
            root = self.workdir() / self.settings.subdir if self.settings.subdir else self.workdir()
            repo, remote = self._make_repo(root)
            try:
                yield DvcRepoHandle(repo=repo, remote=remote, workdir=root)
            finally:
                repo.close()

    def _make_repo(self, wd: Path) -> tuple[Repo, str | None]:
        from dvc.repo import Repo

        s = self.settings
        try:
            base = Repo(str(wd), uninitialized=False)
        except Exception as err:
            where = f"{self.repo_label}" + (
                f" (subdir {self.settings.subdir!r})" if self.settings.subdir else ""
            )
            raise self.error(
                DvcError,
                f"{where} is not a DVC project ({type(err).__name__}: {err}). Run `dvc init` there and "
                "commit, fix the `repo` extra, or, for a DVC project in a folder of the repository "
                "(`dvc init --subdir`), set `subdir`.",
            ) from err
        default_remote = base.config["core"].get("remote")
        remote_name = s.remote or default_remote or (OVERRIDE_REMOTE_NAME if s.remote_url else None)
        overrides = self._remote_overrides(base, remote_name)
        if not overrides and remote_name in (None, default_remote):
            return base, remote_name
        base.close()
        if remote_name and remote_name not in base.config["remote"] and "url" not in overrides:
            raise self.error(
                DvcRemoteError,
                f"DVC remote {remote_name!r} is not configured in project {self.repo_label}. Add it "
                "(`dvc remote add`), fix the `remote` extra, or set `remote_url`.",
            )
        return Repo(str(wd), remote=remote_name, remote_config=overrides or None), remote_name

    def _remote_overrides(self, base: Repo, remote_name: str | None) -> dict[str, Any]:
        """Remote config set in memory: `remote_config`, `remote_url`, and login/password by URL scheme."""
        s = self.settings
        overrides = dict(s.remote_config)
        if s.remote_url:
            overrides["url"] = s.remote_url
        if not (s.login or s.password):
            return overrides
        url = str(
            overrides.get("url")
            or (base.config["remote"].get(remote_name, {}).get("url") if remote_name else "")
        )
        scheme = urlsplit(url).scheme if "://" in url else "local"
        keys = _CREDENTIAL_KEYS.get(scheme)
        if not keys:
            self.log.info("Connection login/password are not used for %s remotes", scheme)
            return overrides
        for key, value in zip(keys, (s.login, s.password), strict=True):
            if value:
                overrides.setdefault(key, value)
        if scheme in ("http", "https"):
            # DVC's HTTP remote ignores user/password unless an auth method is set.
            overrides.setdefault("auth", "basic")
        return overrides

    def check_remote(self, handle: DvcRepoHandle, *, rev: str = "", path: str = "") -> Remote:
        """The DVC remote object; DvcRemoteError unless it is configured and reachable."""
        name = handle.remote
        if not name:
            raise self.error(
                DvcRemoteError,
                "No DVC remote configured. Set a default remote (`dvc remote add -d`) or the "
                "connection's `remote`/`remote_url`.",
                rev=rev,
                path=path,
            )
        try:
            remote = handle.repo.cloud.get_remote(name)
            if remote.fs.protocol in ("local", "file") or type(remote.fs).__name__ == "LocalFileSystem":
                ok = os.path.isdir(remote.path)
            else:
                ok = bool(remote.fs.exists(remote.path))
        except Exception as err:
            raise self.error(
                DvcRemoteError,
                f"DVC remote {name!r} is unreachable: {type(err).__name__}: {err}. Check its URL and "
                "credentials.",
                rev=rev,
                path=path,
            ) from err
        if not ok:
            raise self.error(
                DvcRemoteError,
                f"DVC remote {name!r} does not exist at {strip_userinfo(str(remote.path))}. Create it or "
                "fix the remote URL; nothing was transferred.",
                rev=rev,
                path=path,
            )
        return remote

    def test_connection(self) -> tuple[bool, str]:
        try:
            sha = self.resolve_rev()
            with self.open_repo() as handle:
                self.check_remote(handle, rev=self.settings.rev)
        except Exception as err:
            return False, self.redact(str(err))
        return True, f"{self.repo_label}@{self.settings.rev} = {sha[:12]}; DVC remote reachable"


def _remote_config(value: Any, conn_id: str | None) -> dict[str, Any]:
    """The `remote_config` extra: a JSON object, or ``key=value`` lines (what the connection form's
    list field gives: one setting per line, no JSON editor needed)."""
    if not value:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except ValueError as err:
                raise DvcError(
                    f"Connection {conn_id!r}: extra `remote_config` is not valid JSON ({err})."
                ) from None
            if isinstance(parsed, dict):
                return parsed
        value = text.splitlines()
    if isinstance(value, list):
        settings: dict[str, Any] = {}
        for line in (str(item).strip() for item in value):
            if not line or line.startswith("#"):
                continue
            key, sep, val = line.partition("=")
            if not sep or not key.strip():
                raise DvcError(
                    f"Connection {conn_id!r}: remote setting {line.split('=')[0][:40]!r} is not "
                    "key=value (one DVC remote setting per line, e.g. region=eu-west-1)."
                )
            settings[key.strip()] = val.strip()
        return settings
    raise DvcError(f"Connection {conn_id!r}: extra `remote_config` must be key=value lines or a JSON object.")


def _extras(raw: str | None, conn_id: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as err:
        raise DvcError(f"Connection {conn_id!r}: the extra field is not valid JSON ({err}).") from None
    if not isinstance(value, dict):
        raise DvcError(f"Connection {conn_id!r}: the extra field must be a JSON object.")
    return value


def _git_env() -> dict[str, str]:
    """Environment for git: never wait for a password or host-key prompt (no tty on workers)."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    if not env.get("GIT_SSH_COMMAND") and not env.get("GIT_SSH"):
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return env
