"""A real single-node Elasticsearch on 127.0.0.1 for integration tests and local demos.

What it runs: Elastic's *integ-test-zip* distribution from Maven Central
(``org.elasticsearch.distribution.integ-test-zip:elasticsearch``), the same minimal server
Elastic's own REST tests use. It is downloaded once into ``CACHE_DIR`` (sha1-checked), unpacked
into ``WORK_DIR/elasticsearch-<version>`` (see `es_base_dir`) and started with per-instance data,
logs, config and tmp dirs under ``WORK_DIR/es-runs/<name>``. Security is off, HTTP on 127.0.0.1 only.

Environment:

- ``ES_JAVA_HOME``: a JDK 21+ (the integ-test-zip bundles no JDK). When unset, the newest JDK
  found in ``JAVA_CANDIDATES`` is used; when set, it must be valid (no silent fallback).
- ``LLMOPS_ES_VERSION``: the distribution version (default ``DEFAULT_VERSION``).
- ``LLMOPS_ES_SHA1``: the expected sha1 of the zip, for versions whose ``.sha1`` is missing
  on Maven Central and that are not pinned in ``KNOWN_SHA1``.
- ``LLMOPS_ES_JAVA_OPTS``: JVM options (default ``-Xms512m -Xmx512m``).

As root, Elasticsearch refuses to start, so the harness creates the system user
``llmops-es`` (idempotently), gives it the install and the run dirs, and runs the server
as that user via ``setpriv``. As any other user it runs as that user.

Known gaps of the integ-test-zip (it ships only the server plus transport-netty4,
x-pack-core, x-pack-security and apm modules):

- no ``GET /`` (the rest-root module is absent), so ``Elasticsearch.info()`` and ``ping()``
  fail; readiness uses ``GET /_cluster/health?wait_for_status=yellow``;
- no painless scripting (``script_score``, scripted updates, runtime fields with scripts);
- no RRF retriever (``retriever.rrf``), no ML / inference / semantic_text, no ingest
  pipelines beyond what the server itself provides.

dense_vector mappings, kNN search, bulk, aliases, refresh and cluster health all work.

CLI: ``python -m dev.harness elasticsearch [--http-port N] [--name NAME] [--fresh]``
(see :func:`main`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
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

DEFAULT_VERSION = "9.5.4"
MIN_JAVA = 21
ES_USER = "llmops-es"
DEFAULT_JAVA_OPTS = "-Xms512m -Xmx512m"
DEFAULT_STARTUP_TIMEOUT = 180.0
MAVEN_URL = (
    "https://repo1.maven.org/maven2/org/elasticsearch/distribution/integ-test-zip/"
    "elasticsearch/{version}/elasticsearch-{version}.zip"
)
# Maven Central serves no .sha1 next to some 9.x integ-test-zips (404); pin those here.
KNOWN_SHA1 = {
    "9.5.4": "068732643a261dbbe468b204c310c86751c9f65d",
}
# Where a JDK 21+ is looked for when ES_JAVA_HOME is unset (newest first).
JAVA_CANDIDATES: tuple[str, ...] = (
    "/usr/lib/jvm/temurin-25-jdk-amd64",
    "/usr/lib/jvm/temurin-21-jdk-amd64",
    "/usr/lib/jvm/java-25-openjdk-amd64",
    "/usr/lib/jvm/java-21-openjdk-amd64",
)
_INSTALLED_MARKER = ".llmops-installed"


def es_version() -> str:
    return os.environ.get("LLMOPS_ES_VERSION", DEFAULT_VERSION)


# --------------------------------------------------------------------------- java


def java_major_version(java_home: Path) -> int:
    """Run ``<java_home>/bin/java -version`` and return the major version (8, 17, 21, ...)."""
    java = java_home / "bin" / "java"
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise HarnessError(f"elasticsearch: cannot run {java} -version: {err}") from err
    text = out.stderr + out.stdout
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if out.returncode != 0 or not match:
        raise HarnessError(f"elasticsearch: cannot read the Java version from `{java} -version`:\n{text}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0_392"
        major = int(match.group(2))
    return major


def resolve_java_home(java_home: str | os.PathLike[str] | None = None) -> Path:
    """Return a JDK 21+ home: the argument, else ES_JAVA_HOME, else the newest of JAVA_CANDIDATES.

    Raises HarnessError naming ES_JAVA_HOME when none is usable.
    """
    explicit = java_home if java_home is not None else os.environ.get("ES_JAVA_HOME") or None
    searched = ", ".join(JAVA_CANDIDATES) or "(nowhere)"
    if explicit is not None:
        home = Path(explicit)
        if not (home / "bin" / "java").is_file():
            raise HarnessError(
                f"elasticsearch: ES_JAVA_HOME={home} has no bin/java. Set ES_JAVA_HOME to a JDK "
                f"{MIN_JAVA}+ home (the integ-test-zip bundles no JDK); looked for one in: {searched}."
            )
        candidates = [home]
    else:
        candidates = [Path(c) for c in JAVA_CANDIDATES if (Path(c) / "bin" / "java").is_file()]
        if not candidates:
            raise HarnessError(
                f"elasticsearch: ES_JAVA_HOME is not set and no JDK {MIN_JAVA}+ was found in: "
                f"{searched}. Install a JDK {MIN_JAVA}+ and export ES_JAVA_HOME=<its home> "
                "(dev/bootstrap.sh does this when one of those exists)."
            )
    for home in candidates:
        major = java_major_version(home)
        if major >= MIN_JAVA:
            return home
        if explicit is not None:
            raise HarnessError(
                f"elasticsearch: ES_JAVA_HOME={home} is Java {major}; Elasticsearch 9 needs Java "
                f"{MIN_JAVA}+. Point ES_JAVA_HOME at a newer JDK (looked for one in: {searched})."
            )
    raise HarnessError(
        f"elasticsearch: ES_JAVA_HOME is not set and the JDKs in {searched} are older than Java "
        f"{MIN_JAVA}. Install a JDK {MIN_JAVA}+ and export ES_JAVA_HOME=<its home>."
    )


# --------------------------------------------------------------------------- download & install


def _expected_sha1(url: str, version: str) -> str:
    status, body = http_get(url + ".sha1", timeout=30)
    if status == 200 and body.strip():
        return body.decode().split()[0].lower()
    pinned = os.environ.get("LLMOPS_ES_SHA1") or KNOWN_SHA1.get(version)
    if pinned:
        return pinned.lower()
    raise HarnessError(
        f"elasticsearch: {url}.sha1 is not available (HTTP {status}) and no sha1 is pinned for "
        f"{version}. Set LLMOPS_ES_SHA1=<sha1 of the zip> to accept it, or choose another "
        "LLMOPS_ES_VERSION."
    )


def download_distribution(version: str | None = None, cache_dir: Path | None = None) -> Path:
    """Return the cached integ-test-zip, downloading and sha1-checking it when missing."""
    version = version or es_version()
    cache_dir = cache_dir or CACHE_DIR
    target = cache_dir / f"elasticsearch-{version}.zip"
    if target.is_file():
        return target
    with file_lock(cache_dir / f"elasticsearch-{version}.zip.lock"):
        if target.is_file():
            return target
        url = MAVEN_URL.format(version=version)
        expected = _expected_sha1(url, version)
        fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=cache_dir)
        tmp = Path(tmp_name)
        digest = hashlib.sha1()  # matches the .sha1 Maven publishes
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
                while chunk := resp.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != expected:
                raise HarnessError(
                    f"elasticsearch: sha1 mismatch for {url}: got {digest.hexdigest()}, "
                    f"expected {expected}. The download was discarded; retry."
                )
            tmp.chmod(0o644)
            os.replace(tmp, target)
        except urllib.error.HTTPError as err:
            raise HarnessError(
                f"elasticsearch: cannot download {url}: HTTP {err.code}. Does version {version} "
                "exist as an integ-test-zip on Maven Central? Set LLMOPS_ES_VERSION to one that does."
            ) from err
        except (urllib.error.URLError, OSError) as err:
            raise HarnessError(f"elasticsearch: cannot download {url}: {err}") from err
        finally:
            tmp.unlink(missing_ok=True)
    return target


def _service_user() -> str | None:
    """The user the server runs as: ``llmops-es`` (created if needed) when root, else None."""
    if os.geteuid() != 0:
        return None
    probe = subprocess.run(["id", "-u", ES_USER], capture_output=True, check=False)
    if probe.returncode != 0:
        made = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ES_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        # 9: the user appeared meanwhile (another session created it).
        if made.returncode not in (0, 9):
            raise HarnessError(
                f"elasticsearch: Elasticsearch refuses to run as root and creating the user "
                f"{ES_USER!r} failed: {made.stderr.strip()}. Run the tests as a non-root user."
            )
    return ES_USER


def _chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    subprocess.run(["chown", "-R", f"{user}:{user}", str(path)], check=True)


def es_base_dir() -> Path:
    """Where the ES install and run dirs live: WORK_DIR, unless the ES user could not reach it.

    As root, ES runs as a system user; a checkout under a private home (mode 700, e.g. /root)
    is out of that user's reach, so the install then lives under /var/tmp instead.
    """
    if os.geteuid() != 0:
        return WORK_DIR
    for parent in [WORK_DIR.resolve(), *WORK_DIR.resolve().parents]:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            return Path(os.environ.get("LLMOPS_ES_BASE_DIR", "/var/tmp/airflow-provider-llmops"))
    return WORK_DIR


def install_distribution(version: str | None = None, user: str | None = None) -> Path:
    """Unpack the integ-test-zip into ``WORK_DIR/elasticsearch-<version>``; return that ES home."""
    version = version or es_version()
    base = es_base_dir()
    base.mkdir(parents=True, exist_ok=True)
    home = base / f"elasticsearch-{version}"
    if (home / _INSTALLED_MARKER).is_file():
        if user is not None and home.owner() != user:
            _chown_tree(home, user)
        return home
    archive = download_distribution(version)
    with file_lock(base / f"elasticsearch-{version}.lock"):
        if (home / _INSTALLED_MARKER).is_file():
            return home
        staging = Path(tempfile.mkdtemp(prefix=f"elasticsearch-{version}.", dir=base))
        try:
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    extracted = Path(zf.extract(info, staging))
                    mode = (info.external_attr >> 16) & 0o777
                    if mode and not info.is_dir():
                        extracted.chmod(mode)
            top = staging / f"elasticsearch-{version}"
            if not (top / "bin" / "elasticsearch").is_file():
                raise HarnessError(f"elasticsearch: {archive} has no bin/elasticsearch")
            (top / _INSTALLED_MARKER).write_text(f"{archive}\n")
            _chown_tree(top, user)
            if home.exists():  # a half-finished earlier install without the marker
                shutil.rmtree(home)
            os.replace(top, home)
        except zipfile.BadZipFile as err:
            archive.unlink(missing_ok=True)
            raise HarnessError(f"elasticsearch: {archive} is corrupt ({err}); deleted it, retry.") from err
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return home


# --------------------------------------------------------------------------- server


class ElasticsearchServer:
    """One single-node Elasticsearch on 127.0.0.1.

    Example::

        with ElasticsearchServer(name="demo") as es:
            print(es.url)  # http://127.0.0.1:PORT

    ``extra_settings`` are more ``-E key=value`` settings (they override the defaults).
    ``fresh=True`` wipes the instance's run dir (data, logs) before starting.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        http_port: int | None = None,
        transport_port: int | None = None,
        version: str | None = None,
        java_home: str | os.PathLike[str] | None = None,
        java_opts: str | None = None,
        extra_settings: Mapping[str, str] | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        fresh: bool = False,
    ) -> None:
        self.version = version or es_version()
        self.http_port = http_port
        self.transport_port = transport_port
        self.name = name
        self.java_home = java_home
        self.java_opts = java_opts or os.environ.get("LLMOPS_ES_JAVA_OPTS", DEFAULT_JAVA_OPTS)
        self.extra_settings = dict(extra_settings or {})
        self.startup_timeout = startup_timeout
        self.fresh = fresh
        self.process: ServiceProcess | None = None
        self.run_dir: Path | None = None
        self.startup_seconds: float | None = None

    # -- paths and URLs
    @property
    def url(self) -> str:
        if self.http_port is None:
            raise HarnessError("elasticsearch: the server has no port yet; call start() first")
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def console_log(self) -> Path | None:
        return self.run_dir / "console.log" if self.run_dir else None

    @property
    def server_log(self) -> Path | None:
        """Elasticsearch's own log (``<path.logs>/<cluster.name>.log``)."""
        return self.run_dir / "logs" / f"{self._cluster_name}.log" if self.run_dir else None

    @property
    def _cluster_name(self) -> str:
        return f"llmops-{self.name}"

    def is_ready(self) -> bool:
        status, _ = http_get(f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=2s", timeout=10)
        return status == 200

    # -- lifecycle
    def settings(self) -> dict[str, str]:
        assert self.run_dir is not None
        settings = {
            "cluster.name": self._cluster_name,
            "node.name": self._cluster_name,
            "discovery.type": "single-node",
            "network.host": "127.0.0.1",
            "http.port": str(self.http_port),
            "transport.port": str(self.transport_port),
            "xpack.security.enabled": "false",
            "path.data": str(self.run_dir / "data"),
            "path.logs": str(self.run_dir / "logs"),
            "cluster.routing.allocation.disk.threshold_enabled": "false",
        }
        return {**settings, **self.extra_settings}

    def start(self) -> ElasticsearchServer:
        if self.process is not None and self.process.alive():
            return self
        # Cheap checks first, so a bad set-up fails in well under a second.
        java_home = resolve_java_home(self.java_home)
        self.http_port = self.http_port or free_port()
        self.transport_port = self.transport_port or free_port()
        if self.transport_port == self.http_port:
            raise HarnessError(f"elasticsearch: http and transport port are both {self.http_port}")
        ensure_port_free(self.http_port, "elasticsearch (http.port)")
        ensure_port_free(self.transport_port, "elasticsearch (transport.port)")
        self.name = self.name or str(self.http_port)

        user = _service_user()
        home = install_distribution(self.version, user)
        if (home / "modules" / "x-pack-core").is_dir():
            # x-pack-core declares xpack.ml.enabled (also without the ML module); a distribution
            # without x-pack-core would reject it as an unknown setting.
            self.extra_settings.setdefault("xpack.ml.enabled", "false")
        self.run_dir = self._prepare_run_dir(home, user)

        argv = [str(home / "bin" / "elasticsearch")]
        for key, value in self.settings().items():
            argv += ["-E", f"{key}={value}"]
        env = {
            **os.environ,
            "ES_JAVA_HOME": str(java_home),
            "ES_JAVA_OPTS": self.java_opts,
            "ES_PATH_CONF": str(self.run_dir / "config"),
            "ES_TMPDIR": str(self.run_dir / "tmp"),
        }
        for var in ("JAVA_HOME", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JAVA_OPTS"):
            env.pop(var, None)
        assert self.console_log is not None
        self.process = ServiceProcess(
            f"elasticsearch {self.version} on {self.url}",
            argv,
            log_path=self.console_log,
            env=env,
            cwd=self.run_dir,
            preexec_user=user,
        )
        started = time.monotonic()
        self.process.start()
        try:
            self.process.wait_until(self.is_ready, self.startup_timeout, what="ready (cluster yellow)")
        except HarnessError as err:
            self.process.stop()
            raise HarnessError(f"{self._failure_reason()}{err}{self._server_log_tail()}") from None
        self.startup_seconds = time.monotonic() - started
        return self

    def _log_lines(self, path: Path | None) -> list[str]:
        if path is None:
            return []
        with contextlib.suppress(OSError):
            return path.read_text(errors="replace").splitlines()
        return []

    def _failure_reason(self) -> str:
        """The last exception message Elasticsearch logged, as a one-line summary."""
        pattern = re.compile(r"\b(?:[\w$]+\.)*\w*(?:Exception|Error): .+")
        for path in (self.console_log, self.server_log):
            for line in reversed(self._log_lines(path)):
                match = pattern.search(line)
                if match:
                    return f"Elasticsearch failed to start: {match.group(0)}\n"
        return ""

    def _server_log_tail(self) -> str:
        """ES's own log tail, unless the console log (already shown) holds the same lines."""
        log = self.server_log
        server_lines = [line for line in self._log_lines(log) if line.strip()]
        if log is None or not server_lines or server_lines[-1] in self._log_lines(self.console_log):
            return ""
        return f"\nLast lines of Elasticsearch's own log {log}:\n{log_tail(log, 30)}"

    def _prepare_run_dir(self, home: Path, user: str | None) -> Path:
        run_dir = es_base_dir() / "es-runs" / str(self.name)
        if self.fresh and run_dir.exists():
            shutil.rmtree(run_dir)
        for sub in ("data", "logs", "tmp"):
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
        # A private config dir: ES writes its keystore there, and the stock jvm.options would put
        # gc.log and hs_err files into the shared install.
        config = run_dir / "config"
        shutil.rmtree(config, ignore_errors=True)
        shutil.copytree(home / "config", config)
        logs = run_dir / "logs"
        jvm_options = config / "jvm.options"
        text = jvm_options.read_text()
        text = text.replace("file=gc.log:", f"file={logs}/gc.log:")
        text = text.replace("-XX:ErrorFile=hs_err_pid%p.log", f"-XX:ErrorFile={logs}/hs_err_pid%p.log")
        text += f"\n-XX:HeapDumpPath={logs}\n"
        jvm_options.write_text(text)
        _chown_tree(run_dir, user)
        return run_dir

    def stop(self, remove_run_dir: bool = False) -> None:
        """Stop the server's process group; optionally delete its data and logs."""
        if self.process is not None:
            self.process.stop()
        if remove_run_dir and self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> ElasticsearchServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str]) -> int:
    """Start a server, print ``ELASTICSEARCH_URL=...`` and serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m dev.harness elasticsearch",
        description="Run a local single-node Elasticsearch (integ-test-zip) on 127.0.0.1.",
    )
    parser.add_argument("--http-port", type=int, default=None, help="default: a free port")
    parser.add_argument("--transport-port", type=int, default=None, help="default: a free port")
    parser.add_argument("--name", default="dev", help="run dir name under .llmops/es-runs (default: dev)")
    parser.add_argument("--fresh", action="store_true", help="wipe the run dir's data first")
    parser.add_argument("--timeout", type=float, default=DEFAULT_STARTUP_TIMEOUT, help="startup timeout (s)")
    parser.add_argument(
        "-E", dest="settings", action="append", default=[], metavar="KEY=VALUE", help="extra ES setting"
    )
    args = parser.parse_args(list(argv))
    extra: dict[str, str] = {}
    for item in args.settings:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"-E expects KEY=VALUE, got {item!r}")
        extra[key] = value

    server = ElasticsearchServer(
        args.name,
        http_port=args.http_port,
        transport_port=args.transport_port,
        extra_settings=extra,
        startup_timeout=args.timeout,
        fresh=args.fresh,
    )
    with stop_on_signal() as stop:
        try:
            try:
                server.start()
            except HarnessError as err:
                print(f"error: {err}", file=sys.stderr)
                return 1
            print(f"ELASTICSEARCH_URL={server.url}", flush=True)
            print(
                f"# ready in {server.startup_seconds:.1f}s; logs in {server.run_dir}/logs; Ctrl-C to stop",
                file=sys.stderr,
                flush=True,
            )
            return serve_until_stopped(server.process, stop, server.console_log)
        finally:
            server.stop()
