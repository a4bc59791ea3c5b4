"""A real Triton Inference Server on 127.0.0.1 (CPU only) for integration tests and local demos.

What it runs: the ``tritonserver`` 2.51 binary bundled in the ``nvidia-pytriton`` 0.7.0 wheel
from PyPI. The wheel is downloaded once into ``CACHE_DIR/wheels`` (``pip download``, never
installed into the venv) and only its server part (``pytriton/tritonserver`` and
``nvidia_pytriton.libs``) is unpacked into ``WORK_DIR/pytriton-0.7.0`` with the wheel's
relative layout, so the binaries' RPATHs find the bundled libraries. The python backend
stub for the running Python (``python_backend_stubs/<X.Y>``) is copied into
``backends/python``.

The server runs in EXPLICIT model-control mode: nothing is loaded until a client asks
(``POST /v2/repository/models/<name>/load``), like the deploy operator does in production.

Two things about the python backend that are easy to trip over:

- The stub embeds the system ``libpython3.X.so`` in *isolated* mode: ``PYTHONPATH`` and the
  user site are ignored. It finds its packages by looking up ``python3`` on ``PATH`` and
  reading the ``pyvenv.cfg`` next to it, so the harness puts a venv's ``bin`` first on the
  server's ``PATH`` (pytriton does the same).
- The stub is built against numpy 1.x. With numpy 2 it loads and runs, but reads input
  tensors with wrong strides ([1, 2, 3] arrives as [1, 1, 1]) and rejects outputs. So
  models run in a small dedicated venv, ``WORK_DIR/triton-pyenv-<X.Y>``, with
  ``MODEL_ENV_PACKAGES`` (numpy 1.26), not in the project's venv (numpy 2).

A third one: with strict readiness (Triton's default, kept here), one model that fails to
load leaves ``/v2/health/ready`` at 503 until a model of that name loads successfully;
unloading it or deleting its directory does not help. ``heal_failed_models`` does that.

CLI: ``python -m dev.harness triton [--model-repository DIR] [--demo-model NAME] ...``
(see :func:`main`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from dev.harness.common import (
    CACHE_DIR,
    WORK_DIR,
    HarnessError,
    ServiceProcess,
    ensure_port_free,
    file_lock,
    free_port,
    http_get,
    log_tail,
    serve_until_stopped,
    stop_on_signal,
)

PYTRITON_VERSION = "0.7.0"
WHEEL_REQUIREMENT = f"nvidia-pytriton=={PYTRITON_VERSION}"
WHEEL_NAME = f"nvidia_pytriton-{PYTRITON_VERSION}-py3-none-manylinux_2_35_x86_64.whl"
# numpy 1.x: the python backend stub of Triton 2.51 mis-reads numpy 2 arrays (see module doc).
MODEL_ENV_PACKAGES = ("numpy==1.26.4",)
DEFAULT_STARTUP_TIMEOUT = 60.0
RUNS_DIR = WORK_DIR / "triton-runs"
PIP = (sys.executable, "-m", "pip")


def _run(argv: Sequence[str], what: str, timeout: float = 600) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:
        raise HarnessError(f"{what}: `{' '.join(argv)}` timed out after {timeout:.0f}s") from err
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()[-20:]
        raise HarnessError(
            f"{what}: `{' '.join(argv)}` failed (exit {done.returncode}):\n" + "\n".join(output)
        )
    return done.stdout


def download_wheel(cache_dir: Path | None = None) -> Path:
    """Return the nvidia-pytriton wheel in ``cache_dir/wheels``, downloading it with pip when missing."""
    wheels = (cache_dir or CACHE_DIR) / "wheels"
    wheel = wheels / WHEEL_NAME
    if wheel.is_file():
        return wheel
    wheels.mkdir(parents=True, exist_ok=True)
    with file_lock(wheels / ".pytriton.lock"):
        if not wheel.is_file():
            _run(
                [*PIP, "download", "--no-deps", "--only-binary=:all:", "-d", str(wheels), WHEEL_REQUIREMENT],
                "downloading the Triton server wheel (needs PyPI)",
            )
    if not wheel.is_file():
        raise HarnessError(
            f"pip downloaded nvidia-pytriton=={PYTRITON_VERSION} but {wheel} is missing; "
            f"found: {sorted(p.name for p in wheels.glob('nvidia_pytriton-*'))}. "
            "The wheel exists only for manylinux x86_64."
        )
    return wheel


def _python_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def install_tritonserver(work_dir: Path | None = None) -> Path:
    """Unpack the server from the wheel (once) and put this Python's backend stub in place.

    Returns the ``tritonserver`` root (with ``bin/``, ``backends/``, ``caches/``).
    """
    home = (work_dir or WORK_DIR) / f"pytriton-{PYTRITON_VERSION}"
    root = home / "pytriton" / "tritonserver"
    with file_lock((work_dir or WORK_DIR) / ".pytriton.lock"):
        if not (home / ".complete").is_file():
            wheel = download_wheel()
            tmp = Path(tempfile.mkdtemp(prefix=".pytriton-", dir=home.parent))
            try:
                with zipfile.ZipFile(wheel) as zf:
                    for info in zf.infolist():
                        if not info.filename.startswith(("pytriton/tritonserver/", "nvidia_pytriton.libs/")):
                            continue
                        target = Path(zf.extract(info, tmp))
                        mode = (info.external_attr >> 16) & 0o777
                        if mode and not info.is_dir():
                            target.chmod(mode)
                for exe in [
                    tmp / "pytriton/tritonserver/bin/tritonserver",
                    *tmp.glob("pytriton/tritonserver/python_backend_stubs/*/triton_python_backend_stub"),
                ]:
                    exe.chmod(0o755)
                (tmp / ".complete").write_text(WHEEL_NAME + "\n")
                if home.exists():
                    shutil.rmtree(home)
                tmp.rename(home)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        stub_src = root / "python_backend_stubs" / _python_tag() / "triton_python_backend_stub"
        if not stub_src.is_file():
            have = sorted(p.name for p in (root / "python_backend_stubs").iterdir())
            raise HarnessError(
                f"the Triton wheel has no python backend stub for Python {_python_tag()} (it has {have}); "
                "run the harness with one of those Python versions."
            )
        stub_dst = root / "backends" / "python" / "triton_python_backend_stub"
        if not stub_dst.is_file() or stub_dst.read_bytes() != stub_src.read_bytes():
            tmp_stub = stub_dst.with_name(f".stub-{os.getpid()}")
            shutil.copy2(stub_src, tmp_stub)
            tmp_stub.chmod(0o755)
            os.replace(tmp_stub, stub_dst)
    missing = [
        line.strip()
        for binary in (root / "bin" / "tritonserver", stub_dst)
        for line in _run(["ldd", str(binary)], f"checking the libraries of {binary.name}").splitlines()
        if "not found" in line
    ]
    if missing:
        raise HarnessError(
            f"Triton binaries in {root} miss shared libraries: {missing}. The python backend stub needs the "
            f"system libpython{_python_tag()} (Debian/Ubuntu: `apt-get install libpython{_python_tag()}`)."
        )
    return root


def ensure_model_env(work_dir: Path | None = None) -> Path:
    """Create (once) the venv the python backend models run in; return its root.

    It has only ``MODEL_ENV_PACKAGES``; wheels are cached in ``CACHE_DIR/wheels``.
    """
    env = (work_dir or WORK_DIR) / f"triton-pyenv-{_python_tag()}"
    marker = env / ".llmops-packages"
    want = "\n".join(MODEL_ENV_PACKAGES) + "\n"
    if marker.is_file() and marker.read_text() == want:
        return env
    with file_lock((work_dir or WORK_DIR) / ".triton-pyenv.lock"):
        if marker.is_file() and marker.read_text() == want:
            return env
        if env.exists():
            shutil.rmtree(env)
        _run([sys.executable, "-m", "venv", "--without-pip", str(env)], "creating the Triton model venv")
        site = _run(
            [str(env / "bin" / "python3"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            "locating the model venv's site-packages",
        ).strip()
        wheels = CACHE_DIR / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        install = [*PIP, "install", "--quiet", "--no-index", "--find-links", str(wheels), "--target", site]
        try:
            _run([*install, *MODEL_ENV_PACKAGES], "installing the model venv from cached wheels")
        except HarnessError:
            download = [*PIP, "download", "--quiet", "--only-binary=:all:", "-d", str(wheels)]
            _run([*download, *MODEL_ENV_PACKAGES], "downloading the model venv's wheels (needs PyPI)")
            _run([*install, *MODEL_ENV_PACKAGES], "installing the model venv")
        marker.write_text(want)
    return env


def install_model_requirements(requirements: Path | str, work_dir: Path | None = None) -> Path:
    """Install a packaged model's ``requirements.txt`` into the model venv (once per content).

    The venv keeps ``MODEL_ENV_PACKAGES`` (numpy 1.x) as a constraint, so a requirement cannot
    pull numpy 2 in. Python-backend models import these at load time, so installing after the
    server started is fine. Wheels are cached in ``CACHE_DIR/wheels`` for offline reruns.

    Example::

        install_model_requirements(package_dir / "requirements.txt")
    """
    import hashlib

    env = ensure_model_env(work_dir)
    text = Path(requirements).read_text()
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    marker = env / f".llmops-req-{digest}"
    if marker.is_file():
        return env
    with file_lock((work_dir or WORK_DIR) / ".triton-pyenv.lock"):
        if marker.is_file():
            return env
        constraints = env / ".llmops-constraints.txt"
        constraints.write_text("\n".join(MODEL_ENV_PACKAGES) + "\n")
        wheels = CACHE_DIR / "wheels" / "model-env"
        wheels.mkdir(parents=True, exist_ok=True)
        base = [*PIP, "--python", str(env / "bin" / "python3")]
        offline = [*base, "install", "--quiet", "--no-index", "--find-links", str(wheels)]
        args = ["-c", str(constraints), "-r", str(requirements)]
        try:
            _run([*offline, *args], "installing the model requirements from cached wheels")
        except HarnessError:
            _run(
                [*PIP, "download", "--quiet", "--only-binary=:all:", "-d", str(wheels), *args],
                "downloading the model requirements' wheels (needs PyPI)",
            )
            _run([*offline, *args], "installing the model requirements into the model venv")
        marker.write_text(text)
    return env


def write_python_model(
    repository: Path,
    name: str,
    *,
    factor: float = 2.0,
    fail_on_initialize: str | None = None,
    model_source: str | None = None,
    max_batch_size: int = 0,
    version: int = 1,
) -> Path:
    """Write a tiny python-backend model ``name`` into ``repository``; return the model dir.

    The model takes FP32 ``INPUT0`` (shape ``[-1]``) and returns ``OUTPUT0 = INPUT0 * factor``
    on CPU. ``fail_on_initialize="text"`` makes ``initialize()`` raise ``RuntimeError(text)``,
    so loading fails with that text; ``model_source`` replaces ``model.py`` entirely.

    Example::

        write_python_model(repo, "double")               # OUTPUT0 = 2 * INPUT0
        write_python_model(repo, "broken", fail_on_initialize="boom 42")
    """
    model_dir = repository / name
    (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(
        textwrap.dedent(
            f"""\
            name: "{name}"
            backend: "python"
            max_batch_size: {max_batch_size}
            input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
            output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
            instance_group [ {{ kind: KIND_CPU count: 1 }} ]
            """
        )
    )
    if model_source is None:
        fail = f"        raise RuntimeError({fail_on_initialize!r})\n" if fail_on_initialize else ""
        model_source = (
            "import numpy as np\n"
            "import triton_python_backend_utils as pb_utils\n\n\n"
            "class TritonPythonModel:\n"
            "    def initialize(self, args):\n"
            f"{fail}"
            f"        self.factor = np.float32({factor!r})\n\n"
            "    def execute(self, requests):\n"
            "        responses = []\n"
            "        for request in requests:\n"
            '            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()\n'
            "            y = (x * self.factor).astype(np.float32)\n"
            '            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", y)]))\n'
            "        return responses\n"
        )
    (model_dir / str(version) / "model.py").write_text(model_source)
    return model_dir


class TritonServer:
    """A ``tritonserver`` process on 127.0.0.1, CPU only, EXPLICIT model control.

    Example::

        repo = Path(".llmops/triton-runs/demo/models")
        write_python_model(repo, "double")
        with TritonServer(repo) as server:
            print(server.http_url)  # http://127.0.0.1:<port>; POST .../v2/repository/models/double/load
    """

    def __init__(
        self,
        model_repository: Path,
        *,
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        metrics: bool = False,
        strict_readiness: bool = True,
        load_models: Sequence[str] = (),
        log_path: Path | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        exit_timeout_s: int = 5,
        model_env: Path | None = None,
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.metrics_port = metrics_port
        self.metrics = metrics
        self.strict_readiness = strict_readiness
        self.load_models = list(load_models)
        self.log_path = log_path or self.model_repository.parent / "tritonserver.log"
        self.startup_timeout = startup_timeout
        self.exit_timeout_s = exit_timeout_s
        self.model_env = model_env
        self.process: ServiceProcess | None = None
        self.startup_seconds: float | None = None

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:<port>`` (tritonclient.http wants it without the scheme)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """``127.0.0.1:<port>``: gRPC target for ``tritonclient.grpc``."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str | None:
        return f"http://127.0.0.1:{self.metrics_port}/metrics" if self.metrics else None

    def is_ready(self) -> bool:
        return http_get(f"{self.http_url}/v2/health/ready", timeout=2.0)[0] == 200

    def argv(self, root: Path) -> list[str]:
        argv = [
            str(root / "bin" / "tritonserver"),
            f"--model-repository={self.model_repository}",
            "--model-control-mode=explicit",
            f"--backend-directory={root / 'backends'}",
            f"--cache-directory={root / 'caches'}",
            "--http-address=127.0.0.1",
            f"--http-port={self.http_port}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={self.grpc_port}",
            # No GPU: skip GPU metrics, keep pinned memory off (CUDA is absent anyway).
            "--allow-gpu-metrics=false",
            "--pinned-memory-pool-byte-size=0",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            f"--strict-readiness={str(self.strict_readiness).lower()}",
            # Unique shared-memory names: several servers may run on one host (pytriton does this too).
            f"--backend-config=python,shm-region-prefix-name=llmops{os.getpid()}p{self.http_port}",
            "--log-verbose=0",
        ]
        if self.metrics:
            argv += [
                "--allow-metrics=true",
                "--metrics-address=127.0.0.1",
                f"--metrics-port={self.metrics_port}",
            ]
        else:
            argv += ["--allow-metrics=false"]
        argv += [f"--load-model={name}" for name in self.load_models]
        return argv

    def start(self) -> TritonServer:
        if self.process is not None and self.process.alive():
            return self
        root = install_tritonserver()
        model_env = self.model_env or ensure_model_env()
        self.model_repository.mkdir(parents=True, exist_ok=True)
        self.http_port = self.http_port or free_port()
        self.grpc_port = self.grpc_port or free_port()
        if self.metrics:
            self.metrics_port = self.metrics_port or free_port()
        ports = {"HTTP": self.http_port, "gRPC": self.grpc_port}
        if self.metrics and self.metrics_port:
            ports["metrics"] = self.metrics_port
        if len(set(ports.values())) != len(ports):
            raise HarnessError(f"tritonserver: ports must differ, got {ports}")
        for what, port in ports.items():
            ensure_port_free(port, f"tritonserver ({what})")
        env = dict(os.environ)
        # The stub's embedded Python is isolated: it finds packages via `python3` on PATH (see module doc).
        env["PATH"] = f"{model_env / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env.pop("PYTHONPATH", None)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_bytes(b"")
        started = time.monotonic()
        self.process = ServiceProcess(
            "tritonserver", self.argv(root), log_path=self.log_path, env=env
        ).start()
        self.process.wait_until(self.is_ready, timeout=self.startup_timeout, what="ready on /v2/health/ready")
        self.startup_seconds = time.monotonic() - started
        return self

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=self.exit_timeout_s + 10)
            self.process = None

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def heal_failed_models(
    server: TritonServer, names: Sequence[str] | None = None, timeout: float = 60
) -> list[str]:
    """Clear failed loads so a strict-readiness server turns ready again; return the names healed.

    For each model whose last load failed (state UNAVAILABLE, reason not ``unloaded``), or only
    those in ``names``, a working stand-in replaces its directory, is loaded, then unloaded.
    The stand-in stays on disk; delete the directory afterwards if it should go.
    """
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(
        server.http_url.removeprefix("http://"), network_timeout=timeout
    )
    healed: list[str] = []
    try:
        index = client.get_model_repository_index()
        failed_versions: dict[str, set[int]] = {}
        for model in index:
            name = model["name"]
            failed = model.get("state") == "UNAVAILABLE" and model.get("reason") not in (None, "", "unloaded")
            if failed and (names is None or name in names):
                failed_versions.setdefault(name, set())
        for model in index:
            version = str(model.get("version") or "1")
            if model["name"] in failed_versions and version.isdigit():
                failed_versions[model["name"]].add(int(version))
        for name, versions in failed_versions.items():
            # The failed state sticks to its version number: every known version must load once.
            shutil.rmtree(server.model_repository / name, ignore_errors=True)
            for version in sorted(versions or {1}):
                write_python_model(server.model_repository, name, version=version)
            config = {
                "name": name,
                "backend": "python",
                "max_batch_size": 0,
                "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [-1]}],
                "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [-1]}],
                "instance_group": [{"kind": "KIND_CPU", "count": 1}],
                "version_policy": {"all": {}},
            }
            client.load_model(name, config=json.dumps(config))
            client.unload_model(name)
            healed.append(name)
        deadline = time.monotonic() + timeout
        while healed and not server.is_ready():
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"tritonserver stayed not ready after healing {healed}; index: "
                    f"{client.get_model_repository_index()}\n{server.log_tail()}"
                )
            time.sleep(0.2)
    finally:
        client.close()
    return healed


def new_run_dir(name: str) -> Path:
    """A fresh ``WORK_DIR/triton-runs/<name>-XXXX`` with an empty ``models`` repository inside."""
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=RUNS_DIR))
    (run_dir / "models").mkdir()
    return run_dir


def main(argv: Sequence[str]) -> int:
    """Start a server, print ``TRITON_HTTP_URL=...`` and serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m dev.harness triton",
        description="Run a local CPU-only Triton Inference Server (explicit model control) on 127.0.0.1.",
    )
    parser.add_argument(
        "--model-repository", type=Path, default=None, help="default: a new dir under .llmops"
    )
    parser.add_argument("--http-port", type=int, default=None, help="default: a free port")
    parser.add_argument("--grpc-port", type=int, default=None, help="default: a free port")
    parser.add_argument("--metrics", action="store_true", help="serve Prometheus metrics on --metrics-port")
    parser.add_argument("--metrics-port", type=int, default=None, help="default: a free port")
    parser.add_argument(
        "--demo-model", default=None, metavar="NAME", help="write the python-backend doubling model NAME"
    )
    parser.add_argument("--load-model", action="append", default=[], help="load this model at startup")
    parser.add_argument("--timeout", type=float, default=DEFAULT_STARTUP_TIMEOUT, help="startup timeout (s)")
    args = parser.parse_args(list(argv))

    repo = args.model_repository or new_run_dir("cli") / "models"
    if args.demo_model:
        write_python_model(repo, args.demo_model)

    server = TritonServer(
        repo,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics=args.metrics,
        metrics_port=args.metrics_port,
        load_models=args.load_model,
        startup_timeout=args.timeout,
    )
    with stop_on_signal() as stop:
        try:
            try:
                server.start()
            except HarnessError as err:
                print(f"error: {err}", file=sys.stderr)
                return 1
            print(f"TRITON_HTTP_URL={server.http_url}", flush=True)
            print(f"TRITON_GRPC_URL={server.grpc_url}", flush=True)
            print(f"TRITON_MODEL_REPOSITORY={server.model_repository}", flush=True)
            if server.metrics_url:
                print(f"TRITON_METRICS_URL={server.metrics_url}", flush=True)
            print(
                f"# ready in {server.startup_seconds:.1f}s; log in {server.log_path}; Ctrl-C to stop",
                file=sys.stderr,
                flush=True,
            )
            return serve_until_stopped(server.process, stop, server.log_path)
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
