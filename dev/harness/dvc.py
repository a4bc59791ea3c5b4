"""A throwaway git + DVC project with a local-folder DVC remote and a bare git origin.

Layout under ``root``::

    root/project/     git working copy with `dvc init`, branch main, remote "storage" as default
    root/origin.git/  bare git repository the project pushes branches and tags to
    root/remote/      local-folder DVC remote (what `dvc push` fills)
    root/site-cache/  DVC_SITE_CACHE_DIR for anything run against it

Everything runs through `git` and `dvc` CLIs with argv lists and timeouts, so the project is
exactly what a user would have. `python -m dev.harness dvc <dir>` builds a demo project with a
small JSONL dataset in two versions tagged v1 and v2 and prints its path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from dev.harness.common import HarnessError

if TYPE_CHECKING:
    from dvc.repo import Repo

GIT_USER = "LLMOps Harness"
GIT_EMAIL = "harness@llmops.invalid"
DEFAULT_REMOTE = "storage"
COMMAND_TIMEOUT = 600.0


def _dvc_bin() -> str:
    candidate = Path(sys.executable).with_name("dvc")
    return str(candidate) if candidate.exists() else "dvc"


def dvc_env(site_cache_dir: Path | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for git/dvc subprocesses: no analytics, no global git config, fixed site cache."""
    env = dict(os.environ)
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_TERMINAL_PROMPT"] = "0"
    if site_cache_dir is not None:
        env["DVC_SITE_CACHE_DIR"] = str(site_cache_dir)
    if extra:
        env.update(extra)
    return env


def run(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run one command (argv list, timeout); raise HarnessError with its output when it fails."""
    try:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as err:
        raise HarnessError(f"cannot run {argv[0]!r}: {err.strerror}") from err
    except subprocess.TimeoutExpired as err:
        raise HarnessError(f"`{' '.join(argv)}` in {cwd} timed out after {timeout:.0f}s") from err
    if check and proc.returncode != 0:
        raise HarnessError(
            f"`{' '.join(argv)}` in {cwd} failed with code {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}"
        )
    return proc


@dataclass
class DvcProject:
    """A DVC project made by `make_dvc_project`; helpers publish dataset versions into it."""

    root: Path
    path: Path
    origin: Path
    remote: Path
    site_cache: Path
    remote_name: str = DEFAULT_REMOTE
    branch: str = "main"
    env: dict[str, str] = field(default_factory=dict)
    subdir: str = ""  # the DVC project's folder inside the git working copy (`dvc init --subdir`)

    @property
    def dvc_root(self) -> Path:
        return self.path / self.subdir if self.subdir else self.path

    def git_rel(self, rel: str) -> str:
        """`rel` of the DVC project as git names it."""
        return f"{self.subdir}/{rel}" if self.subdir else rel

    # -- plain commands -------------------------------------------------------------------
    def git(self, *args: str, env: Mapping[str, str] | None = None, check: bool = True) -> str:
        full_env = {**self.env, **(env or {})}
        return run(["git", *args], cwd=self.path, env=full_env, check=check).stdout.strip()

    def dvc(self, *args: str, check: bool = True) -> str:
        """The `dvc` CLI (about 1.5 s of start-up per call; `repo()` is faster for bulk work)."""
        return run([_dvc_bin(), *args], cwd=self.dvc_root, env=self.env, check=check).stdout.strip()

    def repo(self) -> Repo:
        """A fresh in-process `dvc.repo.Repo` for this project (close it, or use `with`)."""
        from dvc.repo import Repo

        return Repo(str(self.dvc_root))

    # -- state queries used by assertions -------------------------------------------------
    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def tags(self) -> dict[str, str]:
        """Tag name -> commit sha, local."""
        out = self.git("for-each-ref", "--format=%(refname:short) %(objectname)", "refs/tags")
        tags: dict[str, str] = {}
        for line in out.splitlines():
            name, sha = line.split()
            tags[name] = self.git("rev-parse", f"{sha}^{{commit}}")
        return tags

    def origin_refs(self) -> dict[str, str]:
        """Refs in the bare origin (branches and tags) -> object sha."""
        out = run(["git", "for-each-ref", "--format=%(refname) %(objectname)"], cwd=self.origin, env=self.env)
        return dict(line.split() for line in out.stdout.strip().splitlines() if line)

    def remote_objects(self) -> set[str]:
        """Relative paths of every object file in the DVC remote folder."""
        if not self.remote.exists():
            return set()
        return {str(p.relative_to(self.remote)) for p in self.remote.rglob("*") if p.is_file()}

    def cache_dir(self) -> Path:
        return self.dvc_root / ".dvc" / "cache"

    def snapshot(self) -> dict[str, object]:
        """HEAD, tags, origin refs and remote objects: compare before/after a failing call."""
        return {
            "head": self.head(),
            "tags": self.tags(),
            "origin": self.origin_refs(),
            "remote": self.remote_objects(),
            "status": self.git("status", "--porcelain"),
        }

    def md5_of(self, rel: str, rev: str = "HEAD") -> str:
        """The md5 recorded in `<rel>.dvc` at `rev`."""
        import yaml

        meta = yaml.safe_load(self.git("show", f"{rev}:{self.git_rel(rel)}.dvc"))
        return str(meta["outs"][0]["md5"])

    # -- writing data ---------------------------------------------------------------------
    def write_files(self, rel: str, files: Mapping[str, str | bytes], clear: bool = True) -> Path:
        """Write `files` (relative name -> content) under the workspace folder `rel`."""
        target = self.dvc_root / rel
        if clear and target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        target.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            p = target / name
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)
        return target

    def write_jsonl(self, rel: str, name: str, records: Sequence[Mapping[str, object]]) -> Path:
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        return self.write_files(rel, {name: text})

    def commit(
        self,
        message: str,
        paths: Sequence[str] = (".",),
        date: datetime | None = None,
        author: str | None = None,
    ) -> str:
        """`git add paths && git commit`, with author/committer date `date` when given; return sha."""
        env: dict[str, str] = {}
        if date is not None:
            stamp = (date if date.tzinfo else date.replace(tzinfo=timezone.utc)).isoformat()
            env["GIT_AUTHOR_DATE"] = stamp
            env["GIT_COMMITTER_DATE"] = stamp
        if author is not None:
            env["GIT_AUTHOR_NAME"] = author
            env["GIT_AUTHOR_EMAIL"] = f"{author.lower().replace(' ', '.')}@llmops.invalid"
        self.git("add", *paths)
        self.git("commit", "-q", "-m", message, env=env)
        return self.head()

    def publish(
        self,
        rel: str,
        files: Mapping[str, str | bytes] | None = None,
        message: str | None = None,
        tag: str | None = None,
        date: datetime | None = None,
        author: str | None = None,
        push: bool = True,
    ) -> str:
        """One dataset version, the way a user makes it: write, `dvc add`, commit, tag, push."""
        if files is not None:
            self.write_files(rel, files)
        with self.repo() as repo:
            repo.add(str(self.dvc_root / rel))
        parent = str(Path(self.git_rel(rel)).parent)
        gitignore = ".gitignore" if parent == "." else f"{parent}/.gitignore"
        sha = self.commit(
            message or f"dataset {rel} {tag or ''}".strip(),
            [f"{self.git_rel(rel)}.dvc", gitignore],
            date,
            author,
        )
        if tag:
            self.git("tag", tag)
        if push:
            with self.repo() as repo:
                repo.push([str(self.dvc_root / rel)], remote=self.remote_name)
            self.git("push", "-q", "origin", self.branch, *([tag] if tag else []))
        return sha


def make_dvc_project(root: Path, name: str = "project", subdir: str = "") -> DvcProject:
    """Create bare origin, local DVC remote and a working copy with `dvc init` and one commit.

    With `subdir` the DVC project is a folder of the git working copy (`dvc init --subdir`), as
    in a monorepo.
    """
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    site_cache = root / "site-cache"
    site_cache.mkdir(exist_ok=True)
    env = dvc_env(site_cache, {"HOME": os.environ.get("HOME", str(root))})
    origin = root / "origin.git"
    remote = root / "remote"
    path = root / name
    remote.mkdir(exist_ok=True)
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], cwd=root, env=env)
    run(["git", "init", "-q", "-b", "main", str(path)], cwd=root, env=env)
    proj = DvcProject(
        root=root, path=path, origin=origin, remote=remote, site_cache=site_cache, env=env, subdir=subdir
    )
    proj.git("config", "user.name", GIT_USER)
    proj.git("config", "user.email", GIT_EMAIL)
    proj.git("config", "commit.gpgsign", "false")
    proj.git("config", "tag.gpgsign", "false")
    proj.git("remote", "add", "origin", str(origin))
    from dvc.repo import Repo

    proj.dvc_root.mkdir(parents=True, exist_ok=True)
    with Repo.init(str(proj.dvc_root), subdir=bool(subdir)) as repo, repo.config.edit() as conf:
        conf["core"]["analytics"] = False
        conf["core"]["remote"] = DEFAULT_REMOTE
        conf["remote"][DEFAULT_REMOTE] = {"url": str(remote)}
    with Repo(str(proj.dvc_root)).config.edit("local") as conf:
        # Keep DVC's per-user state out of the user's home: inside the throwaway tree.
        conf["core"]["site_cache_dir"] = str(site_cache)
    proj.commit(
        "Initialise DVC project",
        [proj.git_rel(".dvc"), proj.git_rel(".dvcignore")],
        date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    )
    proj.git("push", "-q", "origin", "main")
    return proj


def demo_records(version: int, n: int = 20) -> list[dict[str, object]]:
    """Small instruction-tuning records; v2 adds rows and rewrites a few answers."""
    rows: list[dict[str, object]] = []
    for i in range(n + (version - 1) * 5):
        answer = f"Answer {i}" + (" (revised)" if version > 1 and i % 7 == 0 else "")
        rows.append(
            {"id": i, "prompt": f"Question {i}: what is {i} + {i}?", "response": answer, "label": i % 3}
        )
    return rows


def make_demo_project(root: Path) -> DvcProject:
    """A project with `data/train` in two versions tagged v1 and v2, both pushed."""
    proj = make_dvc_project(root)
    for version, day in ((1, 2), (2, 3)):
        proj.write_jsonl("data/train", "train.jsonl", demo_records(version))
        proj.publish(
            "data/train",
            message=f"train set v{version}",
            tag=f"v{version}",
            date=datetime(2024, 1, day, 12, tzinfo=timezone.utc),
        )
    return proj


def main(argv: list[str]) -> int:
    """`python -m dev.harness dvc <dir>`: build the demo DVC project and print its path."""
    target = Path(argv[0]) if argv else Path(os.environ.get("LLMOPS_WORK_DIR", ".llmops")) / "dvc-demo"
    if (target / "project" / ".dvc").exists():
        print(f"DVC demo project already at {(target / 'project').resolve()}", file=sys.stderr)
        print((target / "project").resolve())
        return 0
    proj = make_demo_project(target)
    print(f"remote: {proj.remote}  origin: {proj.origin}  tags: {', '.join(proj.tags())}", file=sys.stderr)
    print(proj.path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
