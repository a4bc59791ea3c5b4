"""Hook for DVC projects: resolve revisions, read what a rev tracks, pull, publish and push data.

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
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import BaseHook

from airflow_provider_llmops.assets import DEFAULT_CONN_ID, repo_name
from airflow_provider_llmops.exceptions import (
    DvcChecksumError,
    DvcCommandError,
    DvcDestinationError,
    DvcDirtyWorkspaceError,
    DvcError,
    DvcLockTimeoutError,
    DvcPathNotTrackedError,
    DvcRemoteError,
    DvcRevisionNotFoundError,
    DvcTagExistsError,
)

if TYPE_CHECKING:
    from dvc.repo import Repo

__all__ = ["DEFAULT_CONN_ID", "DvcHook", "repo_name"]

DEFAULT_REV = "main"
OVERRIDE_REMOTE_NAME = "airflow"
MARKER_SUFFIX = ".dvc-pull.json"
LOCK_SUFFIX = ".dvc-pull.lock"
PUBLISH_LOCK = "llmops-publish.lock"  # in <repo>/.dvc/tmp/ (git-ignored by DVC)
CHUNK = 4 * 1024 * 1024
DOS2UNIX_CHUNK = 2**20  # dvc_data's fobj_md5 block: text detection and CRLF->LF apply per block
VERIFIED_HASHES = ("md5", "md5-dos2unix")
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


_log = logging.getLogger(__name__)

# `scheme://userinfo@` anywhere in a text (git and DVC quote URLs in their error messages).
_URL_USERINFO_RE = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'\"]+@")


def _strip_userinfo(url: str) -> str:
    """`https://user:pw@host/x` -> `https://***@host/x`; paths are returned unchanged."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
    return url


def _is_local(url: str) -> bool:
    return "://" not in url and not re.match(r"^[\w.-]+@[\w.-]+:", url)


@dataclass
class _Settings:
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


class _Progress:
    """Logs files and bytes done, rate and ETA every `interval` seconds from a thread.

    Counts come from `add()` calls, or from `probe()` (files, bytes) when given: a watcher over
    the folder being filled, for transfers that DVC runs without callbacks.
    """

    def __init__(
        self,
        log: Any,
        what: str,
        total_files: int,
        total_bytes: int,
        interval: float,
        probe: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        self.log = log
        self.what = what
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.interval = interval
        self.probe = probe
        self.files = 0
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dvc-progress", daemon=True)
        self._start = time.monotonic()

    def add(self, nbytes: int, files: int = 0) -> None:
        self.bytes += nbytes
        self.files += files

    def _report(self, final: bool = False) -> None:
        files, nbytes = self.probe() if self.probe else (self.files, self.bytes)
        elapsed = max(time.monotonic() - self._start, 1e-6)
        rate = nbytes / elapsed
        if final:
            eta = "done"
        elif rate > 0 and self.total_bytes > nbytes:
            eta = f"ETA {(self.total_bytes - nbytes) / rate:.0f}s"
        else:
            eta = "ETA unknown"
        self.log.info(
            "%s: %d/%d files, %.1f/%.1f MB, %.1f MB/s, %.0fs elapsed, %s",
            self.what,
            min(files, self.total_files) if self.total_files else files,
            self.total_files,
            nbytes / 1e6,
            self.total_bytes / 1e6,
            rate / 1e6,
            elapsed,
            eta,
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):
                self._report()

    def __enter__(self) -> _Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if exc[0] is None:
            self._report(final=True)


class _NewFiles:
    """Probe for `_Progress`: files written since creation under DVC object folders.

    Looks at the two-hex-digit shard folders (``xx/``) of each root and lists only those whose
    mtime moved, so a big, old cache or remote costs a few hundred stat calls per report.
    """

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = [r for r in dict.fromkeys(roots)]
        self.since = time.time_ns() - 1_000_000_000  # 1s slack for coarse file system clocks

    def probe(self) -> tuple[int, int]:
        files = nbytes = 0
        for root in self.roots:
            try:
                shards = [e for e in os.scandir(root) if len(e.name) == 2 and e.is_dir()]
            except OSError:
                continue
            for shard in shards:
                with contextlib.suppress(OSError):
                    if shard.stat().st_mtime_ns < self.since:
                        continue
                    for entry in os.scandir(shard.path):
                        st = entry.stat()
                        if st.st_mtime_ns >= self.since and entry.is_file():
                            files += 1
                            nbytes += st.st_size
        return files, nbytes


def _tree_size(path: Path) -> tuple[int, int]:
    """(files, bytes) under `path` (or of the file)."""
    if not path.is_dir():
        return 1, path.stat().st_size
    files = nbytes = 0
    for root, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                nbytes += os.stat(os.path.join(root, name)).st_size
                files += 1
    return files, nbytes


class DvcHook(BaseHook):
    """Talks to one DVC project (git repo + DVC remote).

    :param dvc_conn_id: ``llmops_dvc`` connection; ``None`` to use only the arguments below.
    :param repo: git URL or local path; overrides the connection's ``repo`` extra.
    :param rev: default branch/tag/commit; overrides the ``rev`` extra (default ``main``).
    :param remote: DVC remote name; overrides the ``remote`` extra.
    :param remote_url: DVC remote URL override (e.g. ``s3://bucket/dvc``).
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
        self._clone_dir_arg = clone_dir
        self.git_timeout = git_timeout
        self.progress_interval = progress_interval
        self.lock_timeout = lock_timeout
        self._fetched = False

    # ------------------------------------------------------------------ settings / secrets
    @cached_property
    def settings(self) -> _Settings:
        extras: dict[str, Any] = {}
        login = password = None
        if self.dvc_conn_id:
            conn = self.get_connection(self.dvc_conn_id)
            extras = dict(conn.extra_dejson or {})
            login, password = conn.login or None, conn.password or None
        repo = self._repo_arg or extras.get("repo")
        if not repo:
            raise DvcError(
                f"No DVC project given: set the `repo` extra of connection {self.dvc_conn_id!r} "
                "(git URL or local path) or pass repo=... to the hook/operator."
            )
        remote_config = extras.get("remote_config") or {}
        if isinstance(remote_config, str):
            try:
                remote_config = json.loads(remote_config)
            except ValueError as err:
                raise DvcError(
                    f"Connection {self.dvc_conn_id!r}: extra `remote_config` must be a JSON object."
                ) from err
        settings = _Settings(
            repo=str(repo),
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
        self._mask(settings)
        return settings

    def _secrets(self) -> list[str]:
        return _secret_values(self.settings)

    def _mask(self, settings: _Settings) -> None:
        from airflow.sdk.log import mask_secret

        for value in _secret_values(settings):
            mask_secret(value)

    def redact(self, text: str) -> str:
        """`text` with every secret of this connection, and the userinfo of any URL, replaced by ***."""
        for value in self._secrets():
            text = text.replace(value, "***")
        return _URL_USERINFO_RE.sub(r"\1***@", text)

    @property
    def repo_label(self) -> str:
        """The project's URL or path without credentials, for messages."""
        return _strip_userinfo(self.settings.repo)

    @property
    def repo_name(self) -> str:
        return repo_name(self.settings.repo)

    # ------------------------------------------------------------------ git plumbing
    def _git_run(
        self, args: Sequence[str], cwd: Path, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The one place git runs: argv list, no prompts, C locale, a timeout (DvcCommandError)."""
        env = _git_env()
        try:
            return subprocess.run(
                ["git", *args],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout or self.git_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise DvcCommandError(
                self.redact(
                    f"`git {args[0]}` timed out after {timeout or self.git_timeout:.0f}s in repo "
                    f"{self.repo_label}. Check that the git server is reachable, or raise git_timeout."
                ),
                repo=self.repo_label,
            ) from err

    def _git(self, args: Sequence[str], cwd: Path, check: bool = True, timeout: float | None = None) -> str:
        """stdout of a git command; on failure DvcCommandError (check) or ''."""
        proc = self._git_run(args, cwd, timeout)
        if check and proc.returncode != 0:
            shown = list(args)
            while shown[:1] == ["-c"]:  # `-c user.name=...` options: name the command itself
                shown = shown[2:]
            raise DvcCommandError(
                self.redact(
                    f"`git {' '.join(shown[:3])}` failed (exit {proc.returncode}) in repo {self.repo_label}: "
                    f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
                ),
                repo=self.repo_label,
            )
        return proc.stdout.strip() if proc.returncode == 0 else ""

    def _git_ok(self, args: Sequence[str], cwd: Path) -> bool:
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

    def _clone_root(self) -> Path:
        base = self._clone_dir_arg or os.environ.get("LLMOPS_DVC_CLONE_DIR")
        return Path(base) if base else Path.home() / ".cache" / "airflow-provider-llmops" / "dvc-repos"

    def _clone_path(self) -> Path:
        digest = hashlib.sha256(self.settings.repo.encode()).hexdigest()[:16]
        return self._clone_root() / f"{self.repo_name}-{digest}"

    def _lock(self, path: Path, what: str, *, rev: str = "", rel: str = "") -> Any:
        """Exclusive lock file `path` (re-entrant per thread), waiting up to lock_timeout."""
        return _file_lock(
            path,
            timeout=self.lock_timeout,
            what=f"{what} of {self.repo_label}",
            repo=self.repo_label,
            rev=rev,
            path_label=rel,
        )

    def _clone_lock(self) -> Any:
        """The cached clone's lock (URL repos); a no-op for a local working copy."""
        if self.is_local_checkout:
            return contextlib.nullcontext()
        target = self._clone_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        return self._lock(target.parent / f".{target.name}.lock", f"the cached clone {target}")

    def workdir(self, refresh: bool = False) -> Path:
        """The local git working copy: the repo itself, or a cached clone fetched once per hook."""
        repo = self.settings.repo
        if self.is_local_checkout:
            return Path(repo).resolve()
        if _is_local(repo) and not Path(repo).exists():
            raise DvcRemoteError(
                f"DVC project {self.repo_label} does not exist. Fix the `repo` extra of connection "
                f"{self.dvc_conn_id!r} (git URL or path of a git working copy).",
                repo=self.repo_label,
            )
        target = self._clone_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._clone_lock():
            if not (target / ".git").exists():
                self.log.info("Cloning %s into %s", self.repo_label, target)
                shutil.rmtree(target, ignore_errors=True)
                try:
                    self._git(["clone", "--quiet", repo, str(target)], cwd=target.parent)
                except DvcCommandError as err:
                    raise DvcRemoteError(
                        f"Cannot clone DVC project {self.repo_label}: {err}. Check the URL and the "
                        "git credentials of the worker.",
                        repo=self.repo_label,
                    ) from err
                self._fetched = True
            elif refresh or not self._fetched:
                try:
                    self._git(["fetch", "--quiet", "--prune", "--tags", "--force", "origin"], cwd=target)
                    # DVC reads .dvc/config from the checkout: keep it at the default branch's tip.
                    self._git(
                        ["checkout", "--quiet", "--force", "--detach", "refs/remotes/origin/HEAD"], cwd=target
                    )
                except DvcCommandError as err:
                    raise DvcRemoteError(
                        f"Cannot fetch DVC project {self.repo_label}: {err}", repo=self.repo_label
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
            sha = self._git(
                ["rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"], cwd=wd, check=False
            )
            if sha:
                return sha
        raise DvcRevisionNotFoundError(
            f"Revision {rev!r} not found in DVC project {self.repo_label}"
            + (f" (path {path!r})" if path else "")
            + ". Check the branch/tag/commit name; list them with `git ls-remote --heads --tags <repo>`.",
            repo=self.repo_label,
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
        sha = self._git(["rev-list", "-1", "--first-parent", f"--before={stamp}", tip], cwd=self.workdir())
        if not sha:
            raise DvcRevisionNotFoundError(
                f"No commit on {branch!r} of DVC project {self.repo_label} at or before {stamp}"
                + (f" for path {path!r}" if path else "")
                + ". The branch starts later: pick a later logical date or pass an explicit rev.",
                repo=self.repo_label,
                rev=f"{branch}@{stamp}",
                path=path,
            )
        return sha

    def newest_tag(self, pattern: str, *, path: str = "") -> tuple[str, str]:
        """(tag, commit sha) of the newest tag matching a glob like ``v*`` (by date, then version)."""
        wd = self.workdir()
        out = self._git(
            [
                "for-each-ref",
                "--sort=-version:refname",
                "--sort=-creatordate",
                "--format=%(refname:short)",
                "refs/tags",
            ],
            cwd=wd,
        )
        for name in out.splitlines():
            if fnmatch.fnmatchcase(name, pattern):
                return name, self.resolve_rev(name, path=path)
        raise DvcRevisionNotFoundError(
            f"No tag matching {pattern!r} in DVC project {self.repo_label}"
            + (f" (path {path!r})" if path else "")
            + ". Publish a version (DvcAddOperator) or fix tag_pattern.",
            repo=self.repo_label,
            rev=pattern,
            path=path,
        )

    def _show(self, sha: str, rel: str) -> str | None:
        return self._git(["show", f"{sha}:{rel}"], cwd=self.workdir(), check=False) or None

    # ------------------------------------------------------------------ what a rev tracks
    def path_info(self, path: str, rev: str | None = None) -> dict[str, Any]:
        """md5, size and nfiles of the tracked `path` at `rev`, from its .dvc file or dvc.lock.

        Returns ``{repo, path, rev, sha, md5, size, nfiles, hash}``.
        """
        import yaml

        path = _norm(path)
        rev = rev or self.settings.rev
        sha = self.resolve_rev(rev, path=path)
        out: dict[str, Any] | None = None
        text = self._show(sha, f"{path}.dvc")
        if text:
            meta = yaml.safe_load(text) or {}
            outs = meta.get("outs") or []
            name = PurePosixPath(path).name
            out = next((o for o in outs if _norm(str(o.get("path", ""))) == name), outs[0] if outs else None)
        else:
            out = self._lock_out(sha, path)
        if not out or not out.get("md5"):
            raise DvcPathNotTrackedError(
                f"Path {path!r} is not tracked by DVC at rev {rev!r} ({sha[:12]}) of project "
                f"{self.repo_label}: no {path}.dvc and no dvc.lock output. Track it with "
                f"`dvc add {path}` and commit, or give the tracked folder that contains it.",
                repo=self.repo_label,
                rev=rev,
                path=path,
            )
        md5 = str(out["md5"])
        is_dir = md5.endswith(".dir")
        return {
            "repo": self.repo_label,
            "path": path,
            "rev": rev,
            "sha": sha,
            "md5": md5,
            "size": out.get("size"),
            "nfiles": out.get("nfiles") if is_dir else 1,
            "hash": out.get("hash") or "md5-dos2unix",
        }

    def _lock_out(self, sha: str, path: str) -> dict[str, Any] | None:
        import yaml

        parts = PurePosixPath(path).parts
        for depth in range(len(parts) - 1, -1, -1):
            base = PurePosixPath(*parts[:depth]) if depth else PurePosixPath(".")
            lock = self._show(sha, "dvc.lock" if depth == 0 else f"{base}/dvc.lock")
            if not lock:
                continue
            rel = str(PurePosixPath(*parts[depth:]))
            for stage in ((yaml.safe_load(lock) or {}).get("stages") or {}).values():
                for out in stage.get("outs") or []:
                    if _norm(str(out.get("path", ""))) == rel:
                        out = dict(out)
                        # No `hash` field: written by DVC 2, whose md5s are md5-dos2unix.
                        out.setdefault("hash", "md5-dos2unix")
                        return out
        return None

    def current_version(
        self, path: str, rev: str | None = None, tag_pattern: str | None = None
    ) -> dict[str, Any] | None:
        """{rev, sha, md5} of `path` at the tip of `rev` (or the newest tag matching `tag_pattern`).

        Fetches URL repositories first. None while nothing is tracked there yet (no matching
        tag, or the path is not tracked at that rev), so waiting for a first version works.
        """
        path = _norm(path)
        self.workdir(refresh=True)
        try:
            if tag_pattern:
                rev, _ = self.newest_tag(tag_pattern, path=path)
            info = self.path_info(path, rev)
        except DvcPathNotTrackedError:
            return None
        except DvcRevisionNotFoundError:
            if tag_pattern:
                return None
            raise
        return {"rev": info["rev"], "sha": info["sha"], "md5": info["md5"]}

    def previous_rev(self, path: str, rev: str) -> str | None:
        """Sha of the newest commit before `rev` whose data for `path` differs (None: first version)."""
        path = _norm(path)
        current = self.path_info(path, rev)
        parts = PurePosixPath(path).parts
        specs = [f"{path}.dvc", "dvc.lock"] + [
            f"{PurePosixPath(*parts[:d])}/dvc.lock" for d in range(1, len(parts))
        ]
        out = self._git(
            ["log", "--first-parent", "--format=%H", "-n", "200", f"{current['sha']}^", "--", *specs],
            cwd=self.workdir(),
            check=False,
        )
        for sha in out.splitlines():
            try:
                if self.path_info(path, sha)["md5"] != current["md5"]:
                    return sha
            except DvcPathNotTrackedError:
                return None
        return None

    # ------------------------------------------------------------------ DVC repo / remote
    @contextlib.contextmanager
    def open_repo(self) -> Iterator[Repo]:
        """`dvc.repo.Repo` on the working copy, with remote overrides and credentials in memory."""
        # A cached clone is checked out by other tasks' fetches: DVC reads .dvc/config and the
        # cache from it, so hold the clone's lock while the Repo is open.
        with self._clone_lock():
            with self._open_repo() as repo:
                yield repo

    @contextlib.contextmanager
    def _open_repo(self) -> Iterator[Repo]:
        from dvc.repo import Repo

        wd = self.workdir()
        s = self.settings
        try:
            base = Repo(str(wd), uninitialized=False)
        except Exception as err:
            raise DvcError(
                self.redact(
                    f"{self.repo_label} is not a DVC project ({type(err).__name__}: {err}). "
                    "Run `dvc init` there and commit, or fix the `repo` extra."
                ),
                repo=self.repo_label,
            ) from err
        remote_name = s.remote or base.config["core"].get("remote")
        if not remote_name and s.remote_url:
            remote_name = OVERRIDE_REMOTE_NAME
        overrides = dict(s.remote_config)
        if s.remote_url:
            overrides["url"] = s.remote_url
        url = overrides.get("url") or (
            base.config["remote"].get(remote_name, {}).get("url") if remote_name else ""
        )
        scheme = urlsplit(str(url or "")).scheme if "://" in str(url or "") else "local"
        if s.login or s.password:
            keys = _CREDENTIAL_KEYS.get(scheme)
            if keys:
                if s.login:
                    overrides.setdefault(keys[0], s.login)
                if s.password:
                    overrides.setdefault(keys[1], s.password)
                if scheme in ("http", "https"):
                    # DVC's HTTP remote ignores user/password unless an auth method is set.
                    overrides.setdefault("auth", "basic")
            else:
                self.log.info("Connection login/password are not used for %s remotes", scheme)
        if not overrides and (not remote_name or remote_name == base.config["core"].get("remote")):
            repo = base
        else:
            base.close()
            if remote_name and remote_name not in base.config["remote"] and "url" not in overrides:
                raise DvcRemoteError(
                    f"DVC remote {remote_name!r} is not configured in project {self.repo_label}. "
                    "Add it (`dvc remote add`), fix the `remote` extra, or set `remote_url`.",
                    repo=self.repo_label,
                )
            repo = Repo(str(wd), remote=remote_name, remote_config=overrides or None)
        repo.llmops_remote = remote_name  # type: ignore[attr-defined]
        try:
            yield repo
        finally:
            repo.close()

    def check_remote(self, repo: Repo, *, rev: str = "", path: str = "") -> Any:
        """Fail with DvcRemoteError unless the DVC remote is configured and reachable."""
        name = getattr(repo, "llmops_remote", None)
        if not name:
            raise DvcRemoteError(
                f"No DVC remote configured for project {self.repo_label} (rev {rev!r}, path {path!r}). "
                "Set a default remote (`dvc remote add -d`) or the connection's `remote`/`remote_url`.",
                repo=self.repo_label,
                rev=rev,
                path=path,
            )
        try:
            remote = repo.cloud.get_remote(name)
            if remote.fs.protocol in ("local", "file") or type(remote.fs).__name__ == "LocalFileSystem":
                ok = os.path.isdir(remote.path)
            else:
                ok = bool(remote.fs.exists(remote.path))
        except Exception as err:
            raise DvcRemoteError(
                self.redact(
                    f"DVC remote {name!r} of project {self.repo_label} is unreachable (rev {rev!r}, "
                    f"path {path!r}): {type(err).__name__}: {err}. Check its URL and credentials."
                ),
                repo=self.repo_label,
                rev=rev,
                path=path,
            ) from err
        if not ok:
            raise DvcRemoteError(
                self.redact(
                    f"DVC remote {name!r} of project {self.repo_label} does not exist at "
                    f"{_strip_userinfo(str(remote.path))} (rev {rev!r}, path {path!r}). Create it or fix "
                    "the remote URL; nothing was transferred."
                ),
                repo=self.repo_label,
                rev=rev,
                path=path,
            )
        return remote

    @staticmethod
    def _cache_odb(repo: Repo, hash_name: str) -> Any:
        return repo.cache.legacy if hash_name == "md5-dos2unix" else repo.cache.local

    def _transfer(self, repo: Repo, oids: Sequence[str], hash_name: str, info: dict[str, Any]) -> None:
        """Fetch objects from the remote into the cache; DvcRemoteError when the remote lacks any."""
        from dvc_data.hashfile.hash_info import HashInfo

        self.check_remote(repo, rev=info["rev"], path=info["path"])
        try:
            result = repo.cloud.pull(
                [HashInfo(hash_name, oid) for oid in oids],
                remote=repo.llmops_remote,  # type: ignore[attr-defined]
            )
        except DvcError:
            raise
        except Exception as err:
            raise DvcRemoteError(
                self.redact(
                    f"Fetching {info['path']!r} at rev {info['rev']!r} from the DVC remote of "
                    f"{self.repo_label} failed: {type(err).__name__}: {err}"
                ),
                repo=self.repo_label,
                rev=info["rev"],
                path=info["path"],
            ) from err
        odb = self._cache_odb(repo, hash_name)
        absent = [oid for oid in oids if not os.path.exists(odb.oid_to_path(oid))]
        if result.failed or absent:
            raise DvcRemoteError(
                f"The DVC remote of {self.repo_label} lacks {len(result.failed) or len(absent)} object(s) of "
                f"{info['path']!r} at rev {info['rev']!r} ({info['sha'][:12]}). Run `dvc push` from a "
                "copy that has the data, then retry.",
                repo=self.repo_label,
                rev=info["rev"],
                path=info["path"],
            )

    def _manifest(self, repo: Repo, info: dict[str, Any]) -> list[tuple[str, str]]:
        """(relpath, md5) of every file of the tracked path; relpath '' for a single file."""
        md5 = info["md5"]
        if not md5.endswith(".dir"):
            return [("", md5)]
        odb = self._cache_odb(repo, info["hash"])
        dir_path = Path(odb.oid_to_path(md5))
        if not dir_path.exists():
            self._transfer(repo, [md5], info["hash"], info)
        raw = dir_path.read_bytes()
        # A listing is JSON (no CRLF): its md5 and md5-dos2unix agree. Other hash types are
        # not verified here, so never deleted.
        if info["hash"] in VERIFIED_HASHES and hashlib.md5(raw).hexdigest() + ".dir" != md5:  # noqa: S324
            _remove(dir_path)
            raise DvcChecksumError(
                f"Directory listing {md5} of {info['path']!r} at rev {info['rev']!r} in {self.repo_label} "
                "is corrupted (md5 mismatch). It was removed from the cache; if the retry fails the DVC "
                "remote copy is corrupted too: re-push it from a good copy.",
                repo=self.repo_label,
                rev=info["rev"],
                path=info["path"],
            )
        return sorted((str(e["relpath"]), str(e["md5"])) for e in json.loads(raw))

    def changed_files(self, path: str, old_rev: str, new_rev: str) -> dict[str, list[str]]:
        """Files of `path` added, removed and modified between two revs (by content md5)."""
        old = self.path_info(path, old_rev)
        new = self.path_info(path, new_rev)
        if old["md5"] == new["md5"]:
            return {"added": [], "removed": [], "modified": []}
        with self.open_repo() as repo:
            a = dict(self._manifest(repo, old))
            b = dict(self._manifest(repo, new))
        return {
            "added": sorted(k for k in b if k not in a),
            "removed": sorted(k for k in a if k not in b),
            "modified": sorted(k for k in b if k in a and a[k] != b[k]),
        }

    # ------------------------------------------------------------------ pull
    def pull(self, path: str, rev: str | None, dest: str | os.PathLike[str]) -> dict[str, Any]:
        """Materialise tracked `path` at `rev` (None: the configured rev) as `dest`.

        `dest` becomes the folder (tracked folder) or the file itself. It must be absent, an
        empty folder, or an earlier pull's result (it has the marker below); anything else raises
        DvcDestinationError before a byte is touched. It may not be the current directory, one
        of its parents, or the project's working copy. Idempotent: a marker next to `dest`
        (``.<name>.dvc-pull.json``) records the md5 and each file's size and mtime; when they
        match the files on disk, nothing is transferred. Every file is checked against its md5.
        Returns ``{repo, path, rev, sha, md5, size, nfiles, hash, local_path, transferred}``.
        """
        target = self._check_dest(dest, path, rev)
        info = self.path_info(path, rev)
        marker = target.parent / f".{target.name}{MARKER_SUFFIX}"
        self._check_replaceable(target, marker, info)  # before even creating the lock file
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = target.parent / f".{target.name}{LOCK_SUFFIX}"
        with self._lock(lock, f"pull destination {target}", rev=info["rev"], rel=info["path"]):
            return self._pull_locked(info, target)

    def _pull_locked(self, info: dict[str, Any], target: Path) -> dict[str, Any]:
        marker = target.parent / f".{target.name}{MARKER_SUFFIX}"
        self._check_replaceable(target, marker, info)
        result = {**info, "local_path": str(target)}
        if self._marker_matches(marker, target, info):
            self.log.info(
                "%s@%s (%s, md5 %s) already at %s: nothing to transfer",
                info["path"],
                info["rev"],
                info["sha"][:12],
                info["md5"],
                target,
            )
            _write_marker(marker, info, target)
            return {**result, "transferred": False}
        start = time.monotonic()
        with self.open_repo() as repo:
            manifest = self._manifest(repo, info)
            odb = self._cache_odb(repo, info["hash"])
            missing = sorted({md5 for _, md5 in manifest if not os.path.exists(odb.oid_to_path(md5))})
            total = int(info.get("size") or 0)
            if missing:
                self.log.info(
                    "Fetching %d object(s) of %s@%s from the DVC remote of %s",
                    len(missing),
                    info["path"],
                    info["rev"],
                    self.repo_label,
                )

                def probe() -> tuple[int, int]:
                    done = [p for p in (Path(odb.oid_to_path(m)) for m in missing) if p.exists()]
                    return len(done), sum(p.stat().st_size for p in done)

                with _Progress(
                    self.log, f"fetch {info['path']}", len(missing), total, self.progress_interval, probe
                ):
                    self._transfer(repo, missing, info["hash"], info)
            try:
                self._materialise(odb, manifest, target, info, total, from_remote=bool(missing))
            except DvcChecksumError:
                if missing:
                    raise
                # A corrupted cache object was removed: fetch it once more from the remote.
                self.log.warning(
                    "Cache object of %s corrupted; fetching it again from the remote", info["path"]
                )
                missing = sorted({m for _, m in manifest if not os.path.exists(odb.oid_to_path(m))})
                self._transfer(repo, missing, info["hash"], info)
                self._materialise(odb, manifest, target, info, total, from_remote=True)
        _write_marker(marker, info, target)
        elapsed = time.monotonic() - start
        self.log.info(
            "Pulled %s@%s (%s, %d files, %.1f MB) to %s in %.1fs",
            info["path"],
            info["rev"],
            info["sha"][:12],
            len(manifest),
            total / 1e6,
            target,
            elapsed,
        )
        return {**result, "transferred": True}

    def _check_dest(self, dest: str | os.PathLike[str], path: str, rev: str | None) -> Path:
        """`dest` as an absolute path, refusing ones whose replacement would delete too much."""
        if dest is None or not str(dest).strip():
            raise DvcError(
                f"No destination given for {path!r} (rev {rev!r}) of {self.repo_label}: pass the "
                "folder (or file) the data should become.",
                repo=self.repo_label,
                rev=str(rev or ""),
                path=path,
            )
        target = Path(os.path.abspath(dest))
        cwd = Path(os.path.abspath(os.getcwd()))
        protected = [cwd, Path.home()]
        if self.is_local_checkout:
            protected.append(Path(self.settings.repo).resolve())
        if target == Path(target.anchor) or any(p == target or target in p.parents for p in protected):
            raise DvcError(
                f"Refusing to materialise {path!r} (rev {rev!r}) of {self.repo_label} as {target}: it "
                "would replace the current directory, the home folder or the project itself. Pass a "
                "dedicated folder such as ./data/<name>.",
                repo=self.repo_label,
                rev=str(rev or ""),
                path=path,
            )
        return target

    def _check_replaceable(self, target: Path, marker: Path, info: dict[str, Any]) -> None:
        """Raise DvcDestinationError unless `target` is absent, an empty folder, or ours (marker)."""
        if not os.path.lexists(target):
            return
        if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
            return
        if _read_marker(marker) is not None:
            return
        what = "a non-empty folder" if target.is_dir() and not target.is_symlink() else "a file"
        raise DvcDestinationError(
            f"Refusing to materialise {info['path']!r} (rev {info['rev']!r}) of {self.repo_label} as "
            f"{target}: it is {what} that this provider did not write (no pull marker {marker.name} "
            f"next to it), and pulling would delete it. Nothing was changed. Pick a new or empty "
            f"folder as the destination, or remove {target} yourself if its contents may go.",
            repo=self.repo_label,
            rev=info["rev"],
            path=info["path"],
        )

    def _materialise(
        self,
        odb: Any,
        manifest: list[tuple[str, str]],
        target: Path,
        info: dict[str, Any],
        total: int,
        from_remote: bool,
    ) -> None:
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}"
        _remove(tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with _Progress(
                self.log, f"checkout {info['path']}", len(manifest), total, self.progress_interval
            ) as progress:
                bad: list[str] = []
                for rel, md5 in manifest:
                    dst = tmp / rel if rel else tmp
                    src = Path(odb.oid_to_path(md5))
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    digest = _copy_md5(src, dst, progress, info["hash"])
                    if digest is not None and digest != md5:
                        _remove(src)  # never leave a bad object in the cache
                        bad.append(rel or PurePosixPath(info["path"]).name)
                    progress.add(0, 1)
                if bad:
                    where = (
                        "the DVC remote's copy is corrupted: re-push it from a good copy "
                        "(`dvc push` where the data is intact), then retry"
                        if from_remote
                        else "the local DVC cache was corrupted; retry to fetch it again"
                    )
                    shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
                    raise DvcChecksumError(
                        f"Checksum mismatch for {len(bad)} file(s) of {info['path']!r} ({shown}) at rev "
                        f"{info['rev']!r} ({info['sha'][:12]}) of {self.repo_label}: content differs from the "
                        f"md5 DVC recorded. The bad objects were removed from the cache; {where}.",
                        repo=self.repo_label,
                        rev=info["rev"],
                        path=info["path"],
                    )
            _remove(target)
            os.replace(tmp, target)
        finally:
            _remove(tmp)

    @staticmethod
    def _marker_matches(marker: Path, target: Path, info: dict[str, Any]) -> bool:
        data = _read_marker(marker)
        if data is None:
            return False
        if data.get("md5") != info["md5"] or data.get("path") != info["path"] or not target.exists():
            return False
        recorded = data.get("files")
        if not isinstance(recorded, dict):
            return False  # marker of an older version: re-materialise once
        # Count, sizes and mtimes of what is on disk now: a same-size edit changes the mtime.
        return _file_stats(target) == {k: list(v) for k, v in recorded.items()}

    # ------------------------------------------------------------------ publish
    def add_and_publish(self, path: str, tag: str, message: str | None = None) -> dict[str, Any]:
        """`dvc add` + git commit + git tag + `dvc push` + git push of the workspace data at `path`.

        Everything is validated first (clean tree apart from `path`, tag free or already on the
        same data, remote and git origin reachable); a failure part-way restores HEAD, the tag
        and the .dvc file. Returns path_info at the tag plus ``created`` (False: idempotent no-op).
        """
        path = _norm(path)
        with self._workspace_lock(rev=tag, path=path):
            return self._add_and_publish(path, tag, message)

    def _workspace_lock(self, *, rev: str, path: str) -> Any:
        """Lock of a local working copy (in .dvc/tmp), held while publishing or pushing from it."""
        dvc_dir = Path(self.settings.repo) / ".dvc"
        if not self.is_local_checkout or not dvc_dir.is_dir():
            return contextlib.nullcontext()  # refused (URL) or reported (no DVC project) later
        (dvc_dir / "tmp").mkdir(exist_ok=True)
        return self._lock(dvc_dir / "tmp" / PUBLISH_LOCK, "the working copy", rev=rev, rel=path)

    def _add_and_publish(self, path: str, tag: str, message: str | None) -> dict[str, Any]:
        message = message or f"Update {path} ({tag})"
        if not self.is_local_checkout:
            raise DvcError(
                f"Publishing {path!r} needs a local git working copy, but {self.repo_label} is a URL. "
                "Point the `repo` extra (or repo=...) at a clone that holds the new data.",
                repo=self.repo_label,
                rev=tag,
                path=path,
            )
        wd = self.workdir()
        data = wd / path
        if not data.exists():
            raise DvcPathNotTrackedError(
                f"Nothing to publish: {data} does not exist in {self.repo_label} (tag {tag!r}). "
                "Write the new dataset version there first.",
                repo=self.repo_label,
                rev=tag,
                path=path,
            )
        if not self._git_ok(["check-ref-format", f"refs/tags/{tag}"], wd):
            raise DvcRevisionNotFoundError(
                f"{tag!r} is not a valid git tag name (repo {self.repo_label}, path {path!r}).",
                repo=self.repo_label,
                rev=tag,
                path=path,
            )
        branch = self._git(["symbolic-ref", "--short", "-q", "HEAD"], cwd=wd, check=False)
        if not branch:
            raise DvcDirtyWorkspaceError(
                f"{self.repo_label} has a detached HEAD; check out a branch before publishing {path!r} "
                f"as {tag!r}.",
                repo=self.repo_label,
                rev=tag,
                path=path,
            )
        orig_head = self.resolve_rev("HEAD", path=path)
        dvc_file = f"{path}.dvc"
        parent = str(PurePosixPath(path).parent)
        gitignore = ".gitignore" if parent == "." else f"{parent}/.gitignore"
        allowed = (path, dvc_file, gitignore)
        dirty = [
            entry
            for entry in self._git(
                ["status", "--porcelain", "--untracked-files=all"], cwd=wd, check=False
            ).splitlines()
            if entry
            and not any((f := entry[3:].strip('"')) == a or f.startswith(path + "/") for a in allowed)
        ]
        if dirty:
            shown = ", ".join(e[3:] for e in dirty[:10]) + (" ..." if len(dirty) > 10 else "")
            raise DvcDirtyWorkspaceError(
                f"Working tree of {self.repo_label} has changes outside {path!r} ({shown}); publishing "
                f"{tag!r} would commit them. Commit, stash or discard them and retry.",
                repo=self.repo_label,
                rev=tag,
                path=path,
            )
        has_origin = self.settings.git_remote in self._git(["remote"], cwd=wd).split()
        with self.open_repo() as repo:
            self.check_remote(repo, rev=tag, path=path)
            if has_origin and not self._git_ok(
                ["ls-remote", "--quiet", self.settings.git_remote, "HEAD"], wd
            ):
                raise DvcRemoteError(
                    f"git remote {self.settings.git_remote!r} of {self.repo_label} is unreachable; nothing "
                    f"was published (path {path!r}, tag {tag!r}). Check the URL and credentials.",
                    repo=self.repo_label,
                    rev=tag,
                    path=path,
                )
            tag_sha = self._git(
                ["rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}"], cwd=wd, check=False
            )
            if tag_sha:
                return self._existing_tag(repo, path, tag, tag_sha, branch, has_origin)
            ident = self._git_identity(wd, tag=tag, path=path)
            saved = {
                rel: (wd / rel).read_bytes() if (wd / rel).exists() else None for rel in (dvc_file, gitignore)
            }
            created_tag = False
            try:
                self._dvc_add(repo, data, path=path, tag=tag)
                self._git(
                    ["add", "--", dvc_file, *([gitignore] if (wd / gitignore).exists() else [])], cwd=wd
                )
                if self._git_ok(["diff", "--cached", "--quiet"], wd):
                    self.log.info("%s unchanged since HEAD; tagging HEAD as %s", path, tag)
                else:
                    self._git([*ident, "commit", "--quiet", "--no-verify", "-m", message], cwd=wd)
                self._git([*ident, "tag", "-a", tag, "-m", message], cwd=wd)
                created_tag = True
                sha = self.resolve_rev("HEAD", path=path)
                info = self.path_info(path, tag)
                self._push_with_progress(repo, data, info, rev=tag, path=path)
                if has_origin:
                    self._git_push_refs(wd, branch, tag, sha)
            except BaseException:
                self.log.error(
                    "Publishing %s as %s failed; restoring %s to %s", path, tag, branch, orig_head[:12]
                )
                if created_tag:
                    self._git(["tag", "-d", tag], cwd=wd, check=False)
                self._git(["reset", "--quiet", "--mixed", orig_head], cwd=wd, check=False)
                for rel, content in saved.items():
                    if content is None:
                        (wd / rel).unlink(missing_ok=True)
                    else:
                        (wd / rel).write_bytes(content)
                raise
        self.log.info("Published %s as %s (%s, md5 %s)", path, tag, sha[:12], info["md5"])
        return {**info, "rev": tag, "sha": sha, "created": True}

    def _git_identity(self, wd: Path, *, tag: str, path: str) -> list[str]:
        """`-c user.name=.. -c user.email=..` for commit and tag; DvcError when there is none.

        From the connection extras ``git_user_name``/``git_user_email``, else the environment
        (GIT_AUTHOR_NAME/GIT_AUTHOR_EMAIL, EMAIL), else git config. Checked before any change.
        """
        s = self.settings
        name = (
            s.git_user_name
            or os.environ.get("GIT_AUTHOR_NAME")
            or self._git(["config", "user.name"], cwd=wd, check=False)
        )
        email = (
            s.git_user_email
            or os.environ.get("GIT_AUTHOR_EMAIL")
            or os.environ.get("EMAIL")
            or self._git(["config", "user.email"], cwd=wd, check=False)
        )
        if not name or not email:
            missing = " and ".join(k for k, v in (("name", name), ("email", email)) if not v)
            raise DvcError(
                f"No git identity ({missing}) to commit and tag {path!r} as {tag!r} in {self.repo_label}; "
                "nothing was changed. Set the connection extras `git_user_name` and `git_user_email`, "
                "or GIT_AUTHOR_NAME/GIT_AUTHOR_EMAIL on the worker, or `git config user.name/user.email`.",
                repo=self.repo_label,
                rev=tag,
                path=path,
            )
        return ["-c", f"user.name={name}", "-c", f"user.email={email}"]

    def _existing_tag(
        self, repo: Repo, path: str, tag: str, tag_sha: str, branch: str, has_origin: bool
    ) -> dict[str, Any]:
        at_tag = self.path_info(path, tag)
        head = self._show("HEAD", f"{path}.dvc")
        head_md5 = self.path_info(path, "HEAD")["md5"] if head else None
        try:
            clean = not repo.status(targets=[str(self.workdir() / path)])
        except Exception:
            clean = False
        if clean and head_md5 == at_tag["md5"]:
            # The tag may come from a run that died between `git tag` and the pushes: finish
            # them (both are idempotent and cheap when everything is already there).
            self.log.info(
                "Tag %s already holds %s (md5 %s); making sure the data and refs reached the remotes",
                tag,
                path,
                at_tag["md5"],
            )
            self._push_with_progress(repo, self.workdir() / path, at_tag, rev=tag, path=path)
            if has_origin:
                self._git_push_refs(self.workdir(), branch, tag, tag_sha)
            return {**at_tag, "rev": tag, "sha": tag_sha, "created": False}
        raise DvcTagExistsError(
            f"Tag {tag!r} already exists in {self.repo_label} ({tag_sha[:12]}) with different data for "
            f"{path!r} (md5 {at_tag['md5']}). Pick a new tag; nothing was changed.",
            repo=self.repo_label,
            rev=tag,
            path=path,
        )

    def _dvc_add(self, repo: Repo, data: Path, *, path: str, tag: str) -> None:
        """`dvc add` with progress (bytes written to the cache) and errors as DvcCommandError."""
        total_files, total_bytes = _tree_size(data)
        self.log.info(
            "dvc add %s in %s (%d files, %.1f MB)", path, self.repo_label, total_files, total_bytes / 1e6
        )
        watch = _NewFiles([Path(repo.cache.local.path), Path(repo.cache.legacy.path)])
        try:
            with _Progress(
                self.log, f"dvc add {path}", total_files, total_bytes, self.progress_interval, watch.probe
            ):
                repo.add(str(data))
        except DvcError:
            raise
        except Exception as err:
            raise DvcCommandError(
                self.redact(
                    f"dvc add of {path!r} (tag {tag!r}) in {self.repo_label} failed: "
                    f"{type(err).__name__}: {err}"
                ),
                repo=self.repo_label,
                rev=tag,
                path=path,
            ) from err

    def _push_with_progress(
        self, repo: Repo, data: Path, info: dict[str, Any], *, rev: str, path: str
    ) -> int:
        """`dvc push` of one tracked path, logging objects/bytes arriving at a local remote."""
        remote_name = repo.llmops_remote  # type: ignore[attr-defined]
        self.log.info("dvc push %s (%s) to remote %s", path, info["md5"], remote_name)
        probe = None
        try:
            remote = repo.cloud.get_remote(remote_name)
            if type(remote.fs).__name__ == "LocalFileSystem":
                root = Path(remote.path)
                probe = _NewFiles([root, root / "files" / "md5"]).probe
        except Exception:  # no probe: progress logs elapsed time only
            probe = None
        with _Progress(
            self.log,
            f"dvc push {path}",
            int(info.get("nfiles") or 1),
            int(info.get("size") or 0),
            self.progress_interval,
            probe,
        ):
            pushed = self._push(repo, [str(data)], rev=rev, path=path)
        self.log.info("dvc push %s: %d object(s) transferred", path, pushed)
        return pushed

    def _git_push_refs(self, wd: Path, branch: str, tag: str, sha: str) -> None:
        """Push `branch` and `tag` to the git remote unless it already has them (idempotent)."""
        remote = self.settings.git_remote
        refs: dict[str, str] = {}
        listing = self._git(["ls-remote", remote, f"refs/heads/{branch}", f"refs/tags/{tag}"], cwd=wd)
        for line in listing.splitlines():
            obj, _, ref = line.partition("\t")
            refs[ref.strip()] = obj.strip()
        specs: list[str] = []
        local_tag = self._git(["rev-parse", "-q", "--verify", f"refs/tags/{tag}"], cwd=wd, check=False)
        if refs.get(f"refs/tags/{tag}") != local_tag:
            specs.append(f"refs/tags/{tag}")
        remote_branch = refs.get(f"refs/heads/{branch}")
        # The branch must contain the tagged commit; one that moved on past it is left alone.
        # Only the tagged commit is pushed (never whatever else HEAD has since), and only as a
        # fast-forward of the remote branch.
        if remote_branch is None or not self._git_ok(["merge-base", "--is-ancestor", sha, remote_branch], wd):
            if remote_branch is not None and not self._git_ok(
                ["merge-base", "--is-ancestor", remote_branch, sha], wd
            ):
                raise DvcRemoteError(
                    f"Branch {branch!r} of git remote {remote!r} ({remote_branch[:12]}) neither contains "
                    f"tag {tag!r} ({sha[:12]}) nor is an ancestor of it, so pushing would not be a "
                    f"fast-forward; nothing was pushed to git (repo {self.repo_label}). Fetch and "
                    "merge or rebase, then publish under a new tag.",
                    repo=self.repo_label,
                    rev=tag,
                )
            specs.append(f"{sha}:refs/heads/{branch}")
        if not specs:
            self.log.info("git remote %s already has %s and %s", remote, branch, tag)
            return
        self.log.info("git push %s %s", remote, " ".join(specs))
        self._git(["push", "--quiet", "--atomic", remote, *specs], cwd=wd)

    def _push(self, repo: Repo, targets: list[str] | None, *, rev: str, path: str) -> int:
        try:
            return int(repo.push(targets=targets, remote=repo.llmops_remote) or 0)  # type: ignore[attr-defined]
        except Exception as err:
            raise DvcRemoteError(
                self.redact(
                    f"dvc push of {path or 'all outputs'!r} (rev {rev!r}) to the remote of {self.repo_label} "
                    f"failed: {type(err).__name__}: {err}. Check the remote's URL, space and credentials."
                ),
                repo=self.repo_label,
                rev=rev,
                path=path,
            ) from err

    def push(self, path: str | None = None) -> dict[str, Any]:
        """`dvc push` of `path` (or every output) from the local working copy. Returns counts."""
        rel = _norm(path) if path else ""
        with self._workspace_lock(rev="HEAD", path=rel), self.open_repo() as repo:
            wd = self.workdir()
            self.check_remote(repo, rev="HEAD", path=rel)
            if rel:
                self.path_info(rel, "HEAD")  # tracked at HEAD, or DvcPathNotTrackedError
            pushed = self._push(repo, [str(wd / rel)] if rel else None, rev="HEAD", path=rel)
        self.log.info("Pushed %d object(s) of %s to the DVC remote", pushed, rel or "all outputs")
        return {"repo": self.repo_label, "path": rel or None, "pushed": pushed}

    def test_connection(self) -> tuple[bool, str]:
        try:
            sha = self.resolve_rev()
            with self.open_repo() as repo:
                self.check_remote(repo, rev=self.settings.rev)
        except Exception as err:
            return False, self.redact(str(err))
        return True, f"{self.repo_label}@{self.settings.rev} = {sha[:12]}; DVC remote reachable"


# ---------------------------------------------------------------------- helpers
def _secret_values(s: _Settings) -> list[str]:
    values = [s.password or ""]
    values += [str(v) for k, v in s.remote_config.items() if _SECRET_KEY_RE.search(k)]
    for url in (s.repo, s.remote_url or "", str(s.remote_config.get("url") or "")):
        parts = urlsplit(url)
        if parts.password:
            values.append(parts.password)
        elif parts.username:  # https://TOKEN@host/repo.git: the user name is the token
            values.append(parts.username)
    return sorted({v for v in values if len(v) >= 3}, key=len, reverse=True)


def _git_env() -> dict[str, str]:
    """Environment for git: never wait for a password or host-key prompt (no tty on workers)."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    if not env.get("GIT_SSH_COMMAND") and not env.get("GIT_SSH"):
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return env


def _norm(path: str) -> str:
    p = str(PurePosixPath(str(path).replace("\\", "/")))
    return p[2:] if p.startswith("./") else p.rstrip("/")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _copy_md5(src: Path, dst: Path, progress: _Progress, hash_name: str = "md5") -> str | None:
    """Copy `src` to `dst`; returns its `hash_name` digest, or None for a hash type not verified.

    md5-dos2unix (outputs written by DVC 2, no ``hash`` field) is the md5 of the content with
    CRLF turned into LF for text files, judged per 1 MiB block exactly as dvc_data computes it.
    """
    dos2unix = hash_name == "md5-dos2unix"
    if dos2unix:
        from dvc_data.hashfile.istextfile import DEFAULT_CHUNK_SIZE, istextblock
    digest = hashlib.md5() if hash_name in VERIFIED_HASHES else None  # noqa: S324 - DVC's hash
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(DOS2UNIX_CHUNK if dos2unix else CHUNK):
            if digest is not None:
                if dos2unix and istextblock(chunk[:DEFAULT_CHUNK_SIZE]):
                    digest.update(chunk.replace(b"\r\n", b"\n"))
                else:
                    digest.update(chunk)
            fout.write(chunk)
            progress.add(len(chunk))
    return digest.hexdigest() if digest is not None else None


def _file_stats(target: Path) -> dict[str, list[int]]:
    """{relpath: [size, mtime_ns]} of every file of `target` ('' for a single file); stat only."""
    if not target.is_dir():
        st = target.stat()
        return {"": [st.st_size, st.st_mtime_ns]}
    stats: dict[str, list[int]] = {}
    for root, _, names in os.walk(target):
        for name in names:
            full = os.path.join(root, name)
            st = os.stat(full)
            stats[os.path.relpath(full, target).replace(os.sep, "/")] = [st.st_size, st.st_mtime_ns]
    return stats


def _read_marker(marker: Path) -> dict[str, Any] | None:
    """The pull marker's content, or None when it is absent or not one of ours."""
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or "md5" not in data or "path" not in data:
        return None
    return data


def _write_marker(marker: Path, info: dict[str, Any], target: Path) -> None:
    keys = ("repo", "path", "rev", "sha", "md5", "size", "nfiles")
    data: dict[str, Any] = {k: info.get(k) for k in keys}
    data["files"] = _file_stats(target)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, marker)


_held_locks = threading.local()


@contextlib.contextmanager
def _file_lock(
    path: Path,
    *,
    timeout: float | None = None,
    what: str = "",
    repo: str = "",
    rev: str = "",
    path_label: str = "",
) -> Iterator[None]:
    """Exclusive `flock` on `path`, re-entrant within a thread; DvcLockTimeoutError after `timeout` s.

    flock locks die with their process, so a crashed run never leaves a stale lock behind.
    """
    import fcntl

    key = os.path.abspath(path)
    held: dict[str, int] = _held_locks.__dict__.setdefault("paths", {})
    if held.get(key):
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    with open(path, "a") as fh:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay, logged = 0.05, False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise DvcLockTimeoutError(
                        f"Gave up after {timeout:.0f}s waiting for {what or path}: another run holds "
                        f"its lock ({path}). Retry once that run has finished, or raise lock_timeout "
                        "if it is legitimately long.",
                        repo=repo,
                        rev=rev,
                        path=path_label,
                    ) from None
                if not logged:
                    _log.info("Waiting for %s (lock %s held by another run)", what or path, path)
                    logged = True
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        held[key] = 1
        try:
            yield
        finally:
            held.pop(key, None)
            fcntl.flock(fh, fcntl.LOCK_UN)
