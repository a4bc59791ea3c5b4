"""Publish a new version of a DVC-tracked path: one transaction over git and the DVC remote.

`DvcPublisher.publish` runs named steps: validate (nothing changes before every check passed),
add + commit + tag, push the data, push git (data first, so no commit on the git remote ever
points at data the DVC remote lacks), and roll back the working copy when any step fails. A
rerun that finds its tag on the same data finishes the pushes and changes nothing else.

Example::

    published = DvcPublisher(DvcHook("llmops_dvc_default")).publish("data/train", "v3", "nightly")
    published.created  # False when v3 already held this data
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.exceptions import (
    DvcCommandError,
    DvcDirtyWorkspaceError,
    DvcError,
    DvcPathNotTrackedError,
    DvcRemoteError,
    DvcRevisionNotFoundError,
    DvcTagExistsError,
)
from airflow_provider_llmops.hooks.dvc import norm_path
from airflow_provider_llmops.utils.dvc_records import DvcPublished, DvcPushed, DvcVersion
from airflow_provider_llmops.utils.progress import NewFilesProbe, TransferProgress, tree_size

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_llmops.hooks.dvc import DvcHook, DvcRepoHandle

__all__ = ["DvcPublisher", "dirty_paths"]

PUBLISH_LOCK = "llmops-publish.lock"  # in <repo>/.dvc/tmp/ (git-ignored by DVC)


@dataclass(frozen=True)
class _Plan:
    """What a validated publish will do, and what it needs to undo it."""

    path: str  # in the DVC project
    git_rel: str  # the same path as git names it (under the project's subdir in a monorepo)
    tag: str
    message: str
    wd: Path  # the git working copy
    branch: str
    orig_head: str
    has_origin: bool

    @property
    def data(self) -> Path:
        return self.wd / self.git_rel

    @property
    def dvc_file(self) -> str:
        return f"{self.git_rel}.dvc"

    @property
    def gitignore(self) -> str:
        parent = str(PurePosixPath(self.git_rel).parent)
        return ".gitignore" if parent == "." else f"{parent}/.gitignore"


def dirty_paths(porcelain_z: str) -> list[str]:
    """Paths of `git status --porcelain -z` output, exactly as git names them (no quoting, no trimming).

    Each entry is ``XY <path>``; a rename or copy (X in R/C) is followed by its source path as a
    separate NUL-terminated field.
    """
    fields = porcelain_z.split("\0")
    paths: list[str] = []
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC" and i < len(fields):
            paths.append(fields[i])
            i += 1
    return paths


class DvcPublisher:
    """Publishes and pushes data from a local working copy of a DVC project.

    :param hook: the project's client (its `repo` must be a local git working copy).
    """

    def __init__(self, hook: DvcHook) -> None:
        self.hook = hook
        self.log = hook.log

    def publish(self, path: str, tag: str, message: str | None = None) -> DvcPublished:
        """`dvc add` + git commit + git tag + `dvc push` + git push of the workspace data at `path`.

        Everything is validated first (clean tree apart from `path`, tag free or already on the
        same data, remote and git origin reachable); a failure part-way restores HEAD, the tag
        and the .dvc file. `created` is False for an idempotent rerun.
        """
        path = norm_path(path)
        with self._workspace_lock(rev=tag, path=path):
            plan = self._validate(path, tag, message or f"Update {path} ({tag})")
            with self.hook.open_repo() as handle:
                self._check_remotes(handle, plan)
                tag_sha = self.hook.git(
                    ["rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}"], cwd=plan.wd, check=False
                )
                if tag_sha:
                    return self._finish_existing(handle, plan, tag_sha)
                ident = self._git_identity(plan)
                saved = {rel: _read(plan.wd / rel) for rel in (plan.dvc_file, plan.gitignore)}
                created_tag = False
                try:
                    sha = self._add_commit_tag(handle, plan, ident)
                    created_tag = True
                    version = self.hook.version(path, tag)
                    self._push_data(handle, plan, version)
                    self._push_git(plan, sha)
                except BaseException:
                    self._roll_back(plan, saved, created_tag)
                    raise
        self.log.info("Published %s as %s (%s, md5 %s)", path, tag, sha[:12], version.md5)
        return DvcPublished(**dataclasses.asdict(version.at(tag)), created=True)

    def push(self, path: str | None = None) -> DvcPushed:
        """`dvc push` of `path` (or every output) from the local working copy."""
        rel = norm_path(path) if path else ""
        with self._workspace_lock(rev="HEAD", path=rel), self.hook.open_repo() as handle:
            self.hook.check_remote(handle, rev="HEAD", path=rel)
            if rel:
                self.hook.version(rel, "HEAD")  # tracked at HEAD, or DvcPathNotTrackedError
            pushed = self._push(handle, [str(handle.workdir / rel)] if rel else None, rev="HEAD", path=rel)
        self.log.info("Pushed %d object(s) of %s to the DVC remote", pushed, rel or "all outputs")
        return DvcPushed(repo=self.hook.repo_label, path=rel or None, pushed=pushed)

    # ------------------------------------------------------------------ steps
    def _fail(self, cls: type[DvcError], message: str, plan: _Plan | None = None, **where: str) -> DvcError:
        if plan is not None:
            where = {"rev": plan.tag, "path": plan.path, **where}
        return self.hook.error(cls, message, **where)

    def _validate(self, path: str, tag: str, message: str) -> _Plan:
        """Every check that needs no DVC remote: working copy, data, tag name, branch, clean tree."""
        hook = self.hook
        if not hook.is_local_checkout:
            raise self._fail(
                DvcError,
                f"Publishing needs a local git working copy, but {hook.repo_label} is a URL. Point the "
                "`repo` extra (or repo=...) at a clone that holds the new data.",
                rev=tag,
                path=path,
            )
        wd = hook.workdir()
        if not (wd / hook.git_path(path)).exists():
            raise self._fail(
                DvcPathNotTrackedError,
                f"Nothing to publish: {wd / hook.git_path(path)} does not exist. Write the new dataset "
                "version there first.",
                rev=tag,
                path=path,
            )
        if not hook.git_ok(["check-ref-format", f"refs/tags/{tag}"], wd):
            raise self._fail(
                DvcRevisionNotFoundError, f"{tag!r} is not a valid git tag name.", rev=tag, path=path
            )
        branch = hook.git(["symbolic-ref", "--short", "-q", "HEAD"], cwd=wd, check=False)
        if not branch:
            raise self._fail(
                DvcDirtyWorkspaceError,
                f"The working copy has a detached HEAD; check out a branch before publishing as {tag!r}.",
                rev=tag,
                path=path,
            )
        plan = _Plan(
            path=path,
            git_rel=hook.git_path(path),
            tag=tag,
            message=message,
            wd=wd,
            branch=branch,
            orig_head=hook.resolve_rev("HEAD", path=path),
            has_origin=hook.settings.git_remote in hook.git(["remote"], cwd=wd).split(),
        )
        self._check_clean(plan)
        return plan

    def _check_clean(self, plan: _Plan) -> None:
        """DvcDirtyWorkspaceError when files other than the dataset, its .dvc file and .gitignore changed."""
        status = self.hook.git(
            ["status", "--porcelain", "-z", "--untracked-files=all"], cwd=plan.wd, check=False
        )
        allowed = {plan.git_rel, plan.dvc_file, plan.gitignore}
        dirty = [
            p
            for p in dict.fromkeys(dirty_paths(status))
            if p not in allowed and not p.startswith(plan.git_rel + "/")
        ]
        if dirty:
            shown = ", ".join(dirty[:10]) + (" ..." if len(dirty) > 10 else "")
            raise self._fail(
                DvcDirtyWorkspaceError,
                f"The working tree has changes outside {plan.path!r} ({shown}); publishing {plan.tag!r} "
                "would commit them. Commit, stash or discard them and retry.",
                plan,
            )

    def _check_remotes(self, handle: DvcRepoHandle, plan: _Plan) -> None:
        self.hook.check_remote(handle, rev=plan.tag, path=plan.path)
        remote = self.hook.settings.git_remote
        if plan.has_origin and not self.hook.git_ok(["ls-remote", "--quiet", remote, "HEAD"], plan.wd):
            raise self._fail(
                DvcRemoteError,
                f"git remote {remote!r} is unreachable; nothing was published. Check the URL and credentials.",
                plan,
            )

    def _git_identity(self, plan: _Plan) -> list[str]:
        """`-c user.name=.. -c user.email=..` for commit and tag; DvcError when there is none.

        From the connection extras ``git_user_name``/``git_user_email``, else the environment
        (GIT_AUTHOR_NAME/GIT_AUTHOR_EMAIL, EMAIL), else git config. Checked before any change.
        """
        s, git = self.hook.settings, self.hook.git
        name = (
            s.git_user_name
            or os.environ.get("GIT_AUTHOR_NAME")
            or git(["config", "user.name"], plan.wd, False)
        )
        email = (
            s.git_user_email
            or os.environ.get("GIT_AUTHOR_EMAIL")
            or os.environ.get("EMAIL")
            or git(["config", "user.email"], plan.wd, False)
        )
        if not name or not email:
            missing = " and ".join(k for k, v in (("name", name), ("email", email)) if not v)
            raise self._fail(
                DvcError,
                f"No git identity ({missing}) to commit and tag {plan.path!r} as {plan.tag!r}; nothing was "
                "changed. Set the connection extras `git_user_name` and `git_user_email`, or "
                "GIT_AUTHOR_NAME/GIT_AUTHOR_EMAIL on the worker, or `git config user.name/user.email`.",
                plan,
            )
        return ["-c", f"user.name={name}", "-c", f"user.email={email}"]

    def _add_commit_tag(self, handle: DvcRepoHandle, plan: _Plan, ident: list[str]) -> str:
        """`dvc add`, commit the .dvc file (unless unchanged) and tag; returns the tagged sha."""
        self._dvc_add(handle, plan)
        git = self.hook.git
        git(
            ["add", "--", plan.dvc_file, *([plan.gitignore] if (plan.wd / plan.gitignore).exists() else [])],
            plan.wd,
        )
        if self.hook.git_ok(["diff", "--cached", "--quiet"], plan.wd):
            self.log.info("%s unchanged since HEAD; tagging HEAD as %s", plan.path, plan.tag)
        else:
            git([*ident, "commit", "--quiet", "--no-verify", "-m", plan.message], plan.wd)
        git([*ident, "tag", "-a", plan.tag, "-m", plan.message], plan.wd)
        return self.hook.resolve_rev("HEAD", path=plan.path)

    def _dvc_add(self, handle: DvcRepoHandle, plan: _Plan) -> None:
        """`dvc add` with progress (bytes written to the cache) and errors as DvcCommandError."""
        total_files, total_bytes = tree_size(plan.data)
        self.log.info(
            "dvc add %s in %s (%d files, %.1f MB)",
            plan.path,
            self.hook.repo_label,
            total_files,
            total_bytes / 1e6,
        )
        cache = handle.repo.cache
        probe = NewFilesProbe([Path(cache.local.path), Path(cache.legacy.path)])
        try:
            with TransferProgress(
                self.log, f"dvc add {plan.path}", total_files, total_bytes, self.hook.progress_interval, probe
            ):
                handle.repo.add(str(plan.data))
        except DvcError:
            raise
        except Exception as err:
            raise self._fail(DvcCommandError, f"dvc add failed: {type(err).__name__}: {err}", plan) from err

    def _push_data(self, handle: DvcRepoHandle, plan: _Plan, version: DvcVersion) -> None:
        """`dvc push` of the dataset, logging objects/bytes arriving at a local remote."""
        self.log.info("dvc push %s (%s) to remote %s", plan.path, version.md5, handle.remote)
        probe: Callable[[], tuple[int, int]] | None = None
        try:
            remote = handle.repo.cloud.get_remote(handle.remote)
            if type(remote.fs).__name__ == "LocalFileSystem":
                root = Path(remote.path)
                probe = NewFilesProbe([root, root / "files" / "md5"])
        except Exception:  # no probe: progress logs elapsed time only
            probe = None
        with TransferProgress(
            self.log,
            f"dvc push {plan.path}",
            int(version.nfiles or 1),
            int(version.size or 0),
            self.hook.progress_interval,
            probe,
        ):
            pushed = self._push(handle, [str(plan.data)], rev=plan.tag, path=plan.path)
        self.log.info("dvc push %s: %d object(s) transferred", plan.path, pushed)

    def _push_git(self, plan: _Plan, sha: str) -> None:
        """Push the branch and tag to the git remote unless it already has them (idempotent).

        The branch must contain the tagged commit; one that moved on past it is left alone. Only
        the tagged commit is pushed (never whatever else HEAD has since), and only as a
        fast-forward of the remote branch.
        """
        if not plan.has_origin:
            return
        git, remote, wd = self.hook.git, self.hook.settings.git_remote, plan.wd
        branch_ref, tag_ref = f"refs/heads/{plan.branch}", f"refs/tags/{plan.tag}"
        refs: dict[str, str] = {}
        for line in git(["ls-remote", remote, branch_ref, tag_ref], wd).splitlines():
            obj, _, ref = line.partition("\t")
            refs[ref.strip()] = obj.strip()
        specs: list[str] = []
        if refs.get(tag_ref) != git(["rev-parse", "-q", "--verify", tag_ref], wd, False):
            specs.append(tag_ref)
        remote_branch = refs.get(branch_ref)
        if remote_branch is None or not self.hook.git_ok(
            ["merge-base", "--is-ancestor", sha, remote_branch], wd
        ):
            if remote_branch is not None and not self.hook.git_ok(
                ["merge-base", "--is-ancestor", remote_branch, sha], wd
            ):
                raise self._fail(
                    DvcRemoteError,
                    f"Branch {plan.branch!r} of git remote {remote!r} ({remote_branch[:12]}) neither contains "
                    f"tag {plan.tag!r} ({sha[:12]}) nor is an ancestor of it, so pushing would not be a "
                    "fast-forward; nothing was pushed to git. Fetch and merge or rebase, then publish under "
                    "a new tag.",
                    plan,
                    sha=sha,
                )
            specs.append(f"{sha}:{branch_ref}")
        if not specs:
            self.log.info("git remote %s already has %s and %s", remote, plan.branch, plan.tag)
            return
        self.log.info("git push %s %s", remote, " ".join(specs))
        git(["push", "--quiet", "--atomic", remote, *specs], wd)

    def _roll_back(self, plan: _Plan, saved: dict[str, bytes | None], created_tag: bool) -> None:
        """Undo add + commit + tag: HEAD, the tag, the .dvc file and .gitignore as they were."""
        self.log.error(
            "Publishing %s as %s failed; restoring %s to %s",
            plan.path,
            plan.tag,
            plan.branch,
            plan.orig_head[:12],
        )
        if created_tag:
            self.hook.git(["tag", "-d", plan.tag], plan.wd, False)
        self.hook.git(["reset", "--quiet", "--mixed", plan.orig_head], plan.wd, False)
        for rel, content in saved.items():
            if content is None:
                (plan.wd / rel).unlink(missing_ok=True)
            else:
                (plan.wd / rel).write_bytes(content)

    def _finish_existing(self, handle: DvcRepoHandle, plan: _Plan, tag_sha: str) -> DvcPublished:
        """The tag exists: on the same data, finish the pushes (a retry); otherwise DvcTagExistsError."""
        at_tag = self.hook.version(plan.path, plan.tag)
        head_md5 = self.hook.version(plan.path, "HEAD").md5 if self.hook.show("HEAD", plan.dvc_file) else None
        try:
            clean = not handle.repo.status(targets=[str(plan.data)])
        except Exception:
            clean = False
        if not (clean and head_md5 == at_tag.md5):
            raise self._fail(
                DvcTagExistsError,
                f"Tag {plan.tag!r} already exists ({tag_sha[:12]}) with different data (md5 {at_tag.md5}). "
                "Pick a new tag; nothing was changed.",
                plan,
            )
        # The tag may come from a run that died between `git tag` and the pushes: finish them
        # (both are idempotent and cheap when everything is already there).
        self.log.info(
            "Tag %s already holds %s (md5 %s); making sure the data and refs reached the remotes",
            plan.tag,
            plan.path,
            at_tag.md5,
        )
        self._push_data(handle, plan, at_tag)
        self._push_git(plan, tag_sha)
        return DvcPublished(**dataclasses.asdict(at_tag.at(plan.tag)), created=False)

    def _push(self, handle: DvcRepoHandle, targets: list[str] | None, *, rev: str, path: str) -> int:
        try:
            return int(handle.repo.push(targets=targets, remote=handle.remote) or 0)
        except Exception as err:
            raise self._fail(
                DvcRemoteError,
                f"dvc push of {path or 'all outputs'!r} failed: {type(err).__name__}: {err}. Check the "
                "remote's URL, space and credentials.",
                rev=rev,
                path=path,
            ) from err

    def _workspace_lock(self, *, rev: str, path: str) -> Any:
        """Lock of a local working copy (in .dvc/tmp), held while publishing or pushing from it."""
        import contextlib

        dvc_dir = Path(self.hook.settings.repo) / self.hook.settings.subdir / ".dvc"
        if not self.hook.is_local_checkout or not dvc_dir.is_dir():
            return contextlib.nullcontext()  # refused (URL) or reported (no DVC project) later
        (dvc_dir / "tmp").mkdir(exist_ok=True)
        return self.hook.lock(dvc_dir / "tmp" / PUBLISH_LOCK, "the working copy", rev=rev, rel=path)


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None
