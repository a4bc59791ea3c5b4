"""Shared pieces of the local-service harness: ports, processes, readiness waits, caches.

Every server the harness starts runs in its own process group on 127.0.0.1 and is
stopped by that group's id (TERM, wait, then KILL), never by name.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Downloads (ES zip, wheels) survive between runs and CI jobs on the same machine.
CACHE_DIR = Path(os.environ.get("LLMOPS_CACHE_DIR", Path.home() / ".cache" / "airflow-provider-llmops"))
# Unpacked installs and per-run state live inside the checkout (git-ignored).
WORK_DIR = Path(os.environ.get("LLMOPS_WORK_DIR", REPO_ROOT / ".llmops"))


class HarnessError(RuntimeError):
    """A local service could not be set up or started; the message says why and what to do."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int, service: str) -> None:
    """Fail early, naming the port, when something already listens on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            raise HarnessError(
                f"{service}: port 127.0.0.1:{port} is already taken ({err.strerror}). "
                f"Stop whatever listens there (e.g. `ss -ltnp 'sport = :{port}'`) or pick another port."
            ) from err


def log_tail(path: Path, lines: int = 40) -> str:
    """Return the last lines of a log file, or a note that it is empty or missing."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"(log {path} is empty)"


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET a URL; return (status, body). Connection errors return status 0."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, b""


class ServiceProcess:
    """A server process in its own process group, with its output in a log file.

    Example::

        proc = ServiceProcess("triton", ["tritonserver", ...], log_path=Path("triton.log"))
        proc.start()
        proc.wait_until(lambda: http_get(url)[0] == 200, timeout=60)
        proc.stop()
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        preexec_user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = preexec_user
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = self.argv
        if self.user:
            # setpriv keeps the environment (ES_JAVA_HOME etc.) and drops root for servers that refuse it.
            argv = ["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--init-groups", "--", *argv]
        with open(self.log_path, "ab") as log:
            try:
                self.popen = subprocess.Popen(
                    argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,
                )
            except FileNotFoundError as err:
                raise HarnessError(f"{self.name}: cannot run {argv[0]!r}: {err.strerror}") from err
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str = "ready") -> None:
        """Poll `ready` until true; raise with the log tail if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.popen.returncode if self.popen else None
                self.stop()  # the leader died; its children (scheduler, model stubs) must not linger
                raise HarnessError(
                    f"{self.name} exited with code {code} before it was {what}. "
                    f"Last lines of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.5)
        self.stop()
        raise HarnessError(
            f"{self.name} was not {what} after {timeout:.0f}s. Last lines of {self.log_path}:\n"
            f"{log_tail(self.log_path)}"
        )

    def stop(self, grace: float = 20.0) -> None:
        """TERM the process group, wait up to `grace` seconds, then KILL the group."""
        if self.popen is None:
            return
        pgid = self.popen.pid  # start_new_session: the leader's pid is the group id
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        # Children (e.g. standalone's scheduler) may outlive the leader: always sweep the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise downloads and installs between concurrent sessions sharing CACHE_DIR/WORK_DIR."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def stop_on_signal() -> Iterator[threading.Event]:
    """Set the yielded event on SIGINT/SIGTERM (for the CLI's serve-until-stopped loops)."""
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve_until_stopped(process: ServiceProcess | None, stop: threading.Event, log_path: Path | None) -> int:
    """Block until `stop` is set (0) or the server process dies (1, with a pointer to its log)."""
    while not stop.wait(1.0):
        if process is None or not process.alive():
            print(f"error: the server exited; see {log_path}", file=sys.stderr)
            return 1
    return 0
