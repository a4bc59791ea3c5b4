"""A real Kubernetes control plane on 127.0.0.1 with simulated GPU nodes (kwok), for the training tests.

What runs: etcd, kube-apiserver, kube-controller-manager and kube-scheduler built from source
(``k8s.io/kubernetes`` v1.36.3, etcd v3.6.8, through the wrapper Go module in ``dev/harness/k8s``),
and the kwok controller (``sigs.k8s.io/kwok`` v0.8.0), which plays the kubelet of the fake nodes:
it moves pods through the Stage rules below and serves their logs. No container ever runs and kwok
executes nothing on the host (no Exec/ClusterExec/PortForward rules: such requests are refused).

The binaries are built once per machine (``go build``: about 11 minutes cold on 2 cores, 2 GB peak
memory, 1.1 GB of modules, 3.4 GB of build cache) into
``CACHE_DIR/kubernetes/<versions>/bin``; a repeated run skips the build. The build goes into a
temporary folder renamed at the end, so an interrupted build never leaves a half cache.

Each component runs in its own process group (stopped by group id), binds 127.0.0.1 only and
is waited for (``/health``, ``/readyz``, ``/healthz``); a failure shows the log tail. The apiserver
serves TLS with certificates generated here (``cryptography``), authorises with ``Node,RBAC`` and
signs service-account tokens with a generated key.

Nodes (``NODES``): two with 8 ``nvidia.com/gpu`` each (tainted ``nvidia.com/gpu=present:NoSchedule``
like a GPU operator's nodes) and one without GPUs. Pod stages (`STAGES`):

- scheduled pods go Running at once;
- label ``llmops.test/outcome=succeed|fail``: Succeeded (exit 0) / Failed (exit 1) after a second;
- annotation ``llmops.test/exit-code=N`` (set by a test playing the trainer): Succeeded for 0,
  Failed with that exit code otherwise; without either a pod runs until it is deleted;
- deleted pods disappear at once (as after a kubelet's kill).

Every container's log is ``TRAINER_LOG`` (CRI log format). kwok never ends a *followed* log stream,
so readers use non-streaming reads (the training operators poll the log).

Access: ``admin.kubeconfig`` (system:masters, for the harness and the tests' checks) and
``airflow.kubeconfig``: a token of the ServiceAccount ``airflow/airflow-worker`` that holds exactly the
RBAC of ``docker/kubernetes/rbac.yaml`` (bound per namespace by `create_namespace`).

CLI: ``python -m dev.harness kubernetes [--build-only]`` prints ``KUBECONFIG=...`` and
``AIRFLOW_CONN_KUBERNETES_DEFAULT=...`` and serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from dev.harness.common import (
    CACHE_DIR,
    REPO_ROOT,
    WORK_DIR,
    HarnessError,
    ServiceProcess,
    file_lock,
    free_port,
    log_tail,
    serve_until_stopped,
    stop_on_signal,
)

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.8"  # the etcd that k8s.io/kubernetes v1.36.3 pins
KWOK_VERSION = "v0.8.0"
GO_MODULE_DIR = REPO_ROOT / "dev" / "harness" / "k8s"
RBAC_FILE = REPO_ROOT / "docker" / "kubernetes" / "rbac.yaml"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
GO_CANDIDATES = ("/usr/local/go/bin/go", "/usr/lib/go/bin/go")
BUILD_TIMEOUT_S = 60 * 60
AIRFLOW_NAMESPACE = "airflow"
AIRFLOW_SERVICE_ACCOUNT = "airflow-worker"
OUTCOME_LABEL = "llmops.test/outcome"
EXIT_CODE_ANNOTATION = "llmops.test/exit-code"
GPU = "nvidia.com/gpu"
SERVICE_CIDR = "10.96.0.0/24"

# name -> (GPUs, CPUs, memory)
NODES: dict[str, tuple[int, str, str]] = {
    "kwok-gpu-0": (8, "96", "1Ti"),
    "kwok-gpu-1": (8, "96", "1Ti"),
    "kwok-cpu-0": (0, "16", "64Gi"),
}

TRAINER_LOG = [
    "kwok: simulated trainer container (nothing runs on the host)",
    "[rank0] loading spec from env:LLMOPS_JOB_SPEC",
    "step 1/4 (25%), loss 2.31, 10.0 samples/s",
    "step 2/4 (50%), loss 2.05, 10.0 samples/s",
    "step 4/4 (100%), loss 1.87, 10.0 samples/s",
    "kwok: end of the simulated log",
]


def binaries_dir() -> Path:
    """Where the built binaries live: keyed by all three versions."""
    key = f"{KUBERNETES_VERSION}-etcd-{ETCD_VERSION}-kwok-{KWOK_VERSION}"
    return CACHE_DIR / "kubernetes" / key / "bin"


def binaries_present(bin_dir: Path | None = None) -> bool:
    bin_dir = bin_dir or binaries_dir()
    return all(os.access(bin_dir / name, os.X_OK) for name in COMPONENTS)


def go_binary() -> str:
    explicit = os.environ.get("LLMOPS_GO")
    for candidate in (explicit, shutil.which("go"), *GO_CANDIDATES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise HarnessError(
        "kubernetes: the Go toolchain (1.26+) is needed once to build the control plane, and no `go` "
        f"was found (LLMOPS_GO, PATH, {', '.join(GO_CANDIDATES)}). Install Go or set LLMOPS_GO."
    )


def _ldflags() -> str:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={KUBERNETES_VERSION}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(flags)


def build_binaries(log: Callable[[str], None] | None = None) -> Path:
    """Build the control plane and kwok into the cache unless present; return the bin folder."""
    log = log or (lambda msg: print(f"[kubernetes] {msg}", file=sys.stderr, flush=True))
    final = binaries_dir()
    if binaries_present(final):
        return final
    root = final.parent.parent
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f"{final.parent.name}.lock"):
        if binaries_present(final):
            return final
        go = go_binary()
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        build_log = root / f"{final.parent.name}.build.log"
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
        nice = ["nice", "-n", "10"] if shutil.which("nice") else []
        steps = [
            (
                "kube-apiserver, kube-controller-manager, kube-scheduler, etcd",
                [
                    *nice,
                    go,
                    "build",
                    "-trimpath",
                    "-ldflags",
                    _ldflags(),
                    "-o",
                    f"{staging}/",
                    "k8s.io/kubernetes/cmd/kube-apiserver",
                    "k8s.io/kubernetes/cmd/kube-controller-manager",
                    "k8s.io/kubernetes/cmd/kube-scheduler",
                    "./etcd",
                ],
                env,
            ),
            (
                "kwok",
                [
                    *nice,
                    go,
                    "install",
                    "-trimpath",
                    "-ldflags",
                    f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={KWOK_VERSION}",
                    f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}",
                ],
                {**env, "GOBIN": str(staging), "GOFLAGS": ""},
            ),
        ]
        started = time.monotonic()
        try:
            with open(build_log, "w") as out:
                for what, argv, step_env in steps:
                    log(f"building {what} (once per machine; about 11 minutes in all, cold) ...")
                    out.write(f"$ {' '.join(argv)}\n")
                    out.flush()
                    try:
                        done = subprocess.run(
                            argv,
                            cwd=GO_MODULE_DIR,
                            env=step_env,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            timeout=BUILD_TIMEOUT_S,
                            check=False,
                        )
                    except subprocess.TimeoutExpired as err:
                        raise HarnessError(
                            f"kubernetes: building {what} took over {BUILD_TIMEOUT_S}s"
                        ) from err
                    if done.returncode != 0:
                        raise HarnessError(
                            f"kubernetes: building {what} failed (exit {done.returncode}). "
                            f"Last lines of {build_log}:\n{log_tail(build_log)}"
                        )
            bin_dir = staging / "bin"
            bin_dir.mkdir()
            for name in COMPONENTS:
                os.replace(staging / name, bin_dir / name)
            staging.chmod(0o755)  # mkdtemp made it private
            shutil.rmtree(final.parent, ignore_errors=True)
            os.replace(staging, final.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log(f"built in {time.monotonic() - started:.0f}s into {final}")
    return final


# --------------------------------------------------------------------------- certificates


class _Pki:
    """A CA and the leaf certificates of one cluster, written as PEM files into `root`."""

    def __init__(self, root: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.x509.oid import NameOID

        self._x509, self._hashes, self._ser, self._ec, self._oid = x509, hashes, serialization, ec, NameOID
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llmops-test-ca")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_file = root / "ca.crt"
        self.ca_file.write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))
        # The service-account token signing key (RSA: what every Kubernetes client expects).
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_key_file = root / "sa.key"
        self.sa_pub_file = root / "sa.pub"
        self.sa_key_file.write_bytes(
            sa_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        self.sa_pub_file.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def issue(
        self, name: str, common_name: str, *, orgs: Sequence[str] = (), hosts: Sequence[str] = ()
    ) -> tuple[Path, Path]:
        """A leaf certificate: a client one (CN/O = user/groups) or, with `hosts`, a serving one."""
        import ipaddress

        x509, oid = self._x509, self._oid
        key = self._ec.generate_private_key(self._ec.SECP256R1())
        attrs = [x509.NameAttribute(oid.ORGANIZATION_NAME, org) for org in orgs]
        attrs.append(x509.NameAttribute(oid.COMMON_NAME, common_name))
        now = datetime.datetime.now(datetime.timezone.utc)
        usage = [x509.ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if hosts:
            usage.append(x509.ExtendedKeyUsageOID.SERVER_AUTH)
            sans: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    sans.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        cert = builder.sign(self.ca_key, self._hashes.SHA256())
        cert_file, key_file = self.root / f"{name}.crt", self.root / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(self._ser.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(self._ser.Encoding.PEM, self._ser.PrivateFormat.PKCS8, self._ser.NoEncryption())
        )
        key_file.chmod(0o600)
        return cert_file, key_file


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(
    path: Path,
    server: str,
    ca_file: Path,
    *,
    user: str,
    cert: tuple[Path, Path] | None = None,
    token: str = "",
    namespace: str = "default",
) -> Path:
    """A kubeconfig with the CA, the server and one user (a client certificate or a bearer token)."""
    creds: dict[str, str] = {"token": token} if token else {}
    if cert is not None:
        creds = {"client-certificate-data": _b64(cert[0]), "client-key-data": _b64(cert[1])}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "llmops", "cluster": {"server": server, "certificate-authority-data": _b64(ca_file)}}
        ],
        "users": [{"name": user, "user": creds}],
        "contexts": [{"name": user, "context": {"cluster": "llmops", "user": user, "namespace": namespace}}],
        "current-context": user,
    }
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    path.chmod(0o600)
    return path


# --------------------------------------------------------------------------- kwok rules


def _stage(name: str, selector: list[dict[str, Any]], template: str, delay_ms: int = 0) -> dict[str, Any]:
    stage: dict[str, Any] = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": selector},
            "next": {"statusTemplate": template},
        },
    }
    if delay_ms:
        stage["spec"]["delay"] = {"durationMilliseconds": delay_ms}
    return stage


_NOT_DELETED = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}
_RUNNING = {"key": ".status.phase", "operator": "In", "values": ["Running"]}

_POD_RUNNING = """\
{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: ContainersReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: true
  restartCount: 0
  started: true
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
{{ $hostIPs := NodeIPsWith .spec.nodeName }}
{{ with $hostIPs }}
hostIP: {{ index . 0 | Quote }}
hostIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
{{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) \
( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
{{ with $podIPs }}
podIP: {{ index . 0 | Quote }}
podIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
phase: Running
startTime: {{ $now | Quote }}
"""


def _pod_finished(code: str) -> str:
    """Status template of a finished pod; `code` is a template expression for the exit code."""
    return """\
{{ $now := Now }}
{{ $annotations := or .metadata.annotations dict }}
{{ $code := CODE }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  type: ContainersReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  restartCount: 0
  started: false
  state:
    terminated:
      exitCode: {{ $code }}
      finishedAt: {{ $now | Quote }}
      reason: {{ if eq $code "0" }}Completed{{ else }}Error{{ end }}
      startedAt: {{ $now | Quote }}
{{ end }}
phase: {{ if eq $code "0" }}Succeeded{{ else }}Failed{{ end }}
""".replace("CODE", code)


STAGES: list[dict[str, Any]] = [
    {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": "node-initialize"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Node"},
            "selector": {
                "matchExpressions": [
                    {
                        "key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
                        "operator": "NotIn",
                        "values": ["True"],
                    }
                ]
            },
            "next": {
                "statusTemplate": """\
{{ $now := Now }}
conditions:
{{ range NodeConditions }}
- lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $now | Quote }}
  message: {{ .message | Quote }}
  reason: {{ .reason | Quote }}
  status: {{ .status | Quote }}
  type: {{ .type | Quote }}
{{ end }}
addresses:
{{ with NodeIP }}
- address: {{ . | Quote }}
  type: InternalIP
{{ end }}
{{ with NodeName }}
- address: {{ . | Quote }}
  type: Hostname
{{ end }}
{{ with NodePort }}
daemonEndpoints:
  kubeletEndpoint:
    Port: {{ . }}
{{ end }}
allocatable:
{{ with .status.allocatable }}
{{ YAML . 1 }}
{{ else }}
  cpu: "1"
  memory: 1Gi
  pods: "110"
{{ end }}
capacity:
{{ with .status.capacity }}
{{ YAML . 1 }}
{{ else }}
  cpu: "1"
  memory: 1Gi
  pods: "110"
{{ end }}
nodeInfo:
  architecture: amd64
  containerRuntimeVersion: kwok
  kernelVersion: kwok
  kubeletVersion: kwok
  operatingSystem: linux
phase: Running
"""
            },
        },
    },
    _stage(
        "pod-running",
        [
            _NOT_DELETED,
            {"key": ".spec.nodeName", "operator": "Exists"},
            {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
        ],
        _POD_RUNNING,
    ),
    _stage(
        "pod-outcome-succeed",
        [
            _NOT_DELETED,
            _RUNNING,
            {"key": f'.metadata.labels["{OUTCOME_LABEL}"]', "operator": "In", "values": ["succeed"]},
        ],
        _pod_finished('"0"'),
        delay_ms=1000,
    ),
    _stage(
        "pod-outcome-fail",
        [
            _NOT_DELETED,
            _RUNNING,
            {"key": f'.metadata.labels["{OUTCOME_LABEL}"]', "operator": "In", "values": ["fail"]},
        ],
        _pod_finished('"1"'),
        delay_ms=1000,
    ),
    _stage(
        "pod-exit-code",
        [
            _NOT_DELETED,
            _RUNNING,
            {"key": f'.metadata.annotations["{EXIT_CODE_ANNOTATION}"]', "operator": "Exists"},
        ],
        _pod_finished(f'index $annotations "{EXIT_CODE_ANNOTATION}"'),
    ),
    {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": "pod-delete"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}]},
            "next": {"delete": True},
        },
    },
]


def kwok_config(log_file: Path) -> list[dict[str, Any]]:
    """kwok's configuration documents: the stages (they replace all of kwok's defaults) and the logs."""
    logs = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ClusterLogs",
        "metadata": {"name": "trainer-logs"},
        "spec": {"selector": {}, "logs": [{"logsFile": str(log_file)}]},
    }
    return [*STAGES, logs]


def write_cri_log(path: Path, lines: Sequence[str]) -> Path:
    """Lines in the CRI log format kwok serves: ``<RFC3339Nano> stdout F <text>``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    out = []
    for i, line in enumerate(lines):
        stamp = (now + datetime.timedelta(milliseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
        out.append(f"{stamp} stdout F {line}\n")
    path.write_text("".join(out))
    return path


# --------------------------------------------------------------------------- the cluster


def _https_ok(url: str, context: ssl.SSLContext, expect: bytes = b"ok") -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as resp:
            return resp.status == 200 and resp.read().strip() == expect
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


class KubernetesCluster:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok on 127.0.0.1.

    Example::

        with KubernetesCluster() as cluster:
            core = cluster.admin_core_v1()
            ns = cluster.create_namespace("team-a")  # with the README's RBAC bound in it
            os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"] = cluster.airflow_connection(ns)
    """

    def __init__(self, name: str | None = None, *, startup_timeout: float = 180.0) -> None:
        self.name = name or f"k8s-{os.getpid()}"
        self.startup_timeout = startup_timeout
        self.run_dir = WORK_DIR / "k8s-runs" / self.name
        self.processes: list[ServiceProcess] = []
        self.apiserver_port = 0
        self.startup_seconds: float | None = None
        self._pki: _Pki | None = None
        self._admin_api: Any = None

    # -- paths
    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.run_dir / "admin.kubeconfig"

    @property
    def airflow_kubeconfig(self) -> Path:
        return self.run_dir / "airflow.kubeconfig"

    def log_path(self, component: str) -> Path:
        return self.run_dir / "logs" / f"{component}.log"

    # -- lifecycle
    def start(self) -> KubernetesCluster:
        started = time.monotonic()
        bin_dir = build_binaries()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        (self.run_dir / "logs").mkdir(parents=True)
        pki = self._pki = _Pki(self.run_dir / "pki")
        try:
            self._start_components(bin_dir, pki)
            self._register_nodes()
            self._prepare_access()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _spawn(self, component: str, argv: list[str], ready: Callable[[], bool], what: str) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.run_dir),  # kwok reads ~/.kwok/kwok.yaml: keep the user's out
        }
        proc = ServiceProcess(component, argv, log_path=self.log_path(component), env=env, cwd=self.run_dir)
        self.processes.append(proc)
        proc.start()
        proc.wait_until(ready, self.startup_timeout, what=what)

    def _start_components(self, bin_dir: Path, pki: _Pki) -> None:
        etcd_client, etcd_peer = free_port(), free_port()
        self.apiserver_port = free_port()
        kcm_port, scheduler_port, kwok_port = free_port(), free_port(), free_port()
        loopback = ssl.create_default_context(cafile=str(pki.ca_file))
        unverified = ssl._create_unverified_context()  # the components' self-signed health ports

        def etcd_ready() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{etcd_client}/health", timeout=5) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")

        self._spawn(
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--name=llmops",
                f"--data-dir={self.run_dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=llmops=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",  # test data: durability buys nothing, fsync costs seconds
                "--quota-backend-bytes=536870912",
                "--log-level=warn",
            ],
            etcd_ready,
            "healthy (/health)",
        )
        serving = pki.issue(
            "apiserver",
            "kube-apiserver",
            hosts=(
                "127.0.0.1",
                "localhost",
                "10.96.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
            ),
        )
        kubelet_client = pki.issue(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", orgs=("system:masters",)
        )
        self._spawn(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                f"--tls-cert-file={serving[0]}",
                f"--tls-private-key-file={serving[1]}",
                f"--client-ca-file={pki.ca_file}",
                f"--service-account-key-file={pki.sa_pub_file}",
                f"--service-account-signing-key-file={pki.sa_key_file}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                f"--kubelet-client-certificate={kubelet_client[0]}",
                f"--kubelet-client-key={kubelet_client[1]}",
                "--kubelet-preferred-address-types=InternalIP",
                # The `kubernetes` Service's endpoint would be 127.0.0.1, which Endpoints refuse.
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                f"--cert-dir={self.run_dir / 'apiserver'}",
            ],
            lambda: _https_ok(f"{self.server}/readyz", loopback),
            "ready (/readyz)",
        )
        server = self.server
        write_kubeconfig(
            self.admin_kubeconfig,
            server,
            pki.ca_file,
            user="admin",
            cert=pki.issue("admin", "llmops-admin", orgs=("system:masters",)),
        )
        kcm = write_kubeconfig(
            self.run_dir / "kcm.kubeconfig",
            server,
            pki.ca_file,
            user="system:kube-controller-manager",
            cert=pki.issue("kcm", "system:kube-controller-manager"),
        )
        self._spawn(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kcm}",
                f"--authentication-kubeconfig={kcm}",
                f"--authorization-kubeconfig={kcm}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                f"--cert-dir={self.run_dir / 'kcm'}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki.sa_key_file}",
                f"--root-ca-file={pki.ca_file}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--controllers=*,-nodeipam,-bootstrap-signer-controller,-token-cleaner-controller",
                "--profiling=false",
            ],
            lambda: _https_ok(f"https://127.0.0.1:{kcm_port}/healthz", unverified),
            "healthy (/healthz)",
        )
        sched = write_kubeconfig(
            self.run_dir / "scheduler.kubeconfig",
            server,
            pki.ca_file,
            user="system:kube-scheduler",
            cert=pki.issue("scheduler", "system:kube-scheduler"),
        )
        self._spawn(
            "kube-scheduler",
            [
                str(bin_dir / "kube-scheduler"),
                f"--kubeconfig={sched}",
                f"--authentication-kubeconfig={sched}",
                f"--authorization-kubeconfig={sched}",
                "--bind-address=127.0.0.1",
                f"--secure-port={scheduler_port}",
                f"--cert-dir={self.run_dir / 'scheduler'}",
                "--leader-elect=false",
                "--profiling=false",
            ],
            lambda: _https_ok(f"https://127.0.0.1:{scheduler_port}/healthz", unverified),
            "healthy (/healthz)",
        )
        kwok_kubeconfig = write_kubeconfig(
            self.run_dir / "kwok.kubeconfig",
            server,
            pki.ca_file,
            user="kwok-controller",
            cert=pki.issue("kwok", "kwok-controller", orgs=("system:masters",)),
        )
        kwok_serving = pki.issue("kwok-serving", "kwok", hosts=("127.0.0.1", "localhost"))
        log_file = write_cri_log(self.run_dir / "trainer.log", TRAINER_LOG)
        config = self.run_dir / "kwok.yaml"
        config.write_text("\n---\n".join(json.dumps(doc) for doc in kwok_config(log_file)))
        self._spawn(
            "kwok",
            [
                str(bin_dir / "kwok"),
                f"--config={config}",
                f"--kubeconfig={kwok_kubeconfig}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--server-address=127.0.0.1:{kwok_port}",
                "--node-ip=127.0.0.1",
                f"--node-port={kwok_port}",
                f"--tls-cert-file={kwok_serving[0]}",
                f"--tls-private-key-file={kwok_serving[1]}",
                "--node-lease-duration-seconds=40",
            ],
            lambda: _https_ok(f"https://127.0.0.1:{kwok_port}/healthz", unverified),
            "healthy (/healthz)",
        )

    # -- API access (the kubernetes client is imported lazily)
    def admin_api(self) -> Any:
        """A kubernetes ApiClient with admin rights (system:masters)."""
        if self._admin_api is None:
            from kubernetes import config as k8s_config

            self._admin_api = k8s_config.new_client_from_config(config_file=str(self.admin_kubeconfig))
        return self._admin_api

    def admin_core_v1(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.admin_api())

    def admin_batch_v1(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self.admin_api())

    def _wait(self, check: Callable[[], bool], what: str, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        while time.monotonic() < deadline:
            for proc in self.processes:
                if not proc.alive():
                    raise HarnessError(
                        f"kubernetes: {proc.name} exited while waiting for {what}. "
                        f"Last lines of {proc.log_path}:\n{log_tail(proc.log_path)}"
                    )
            with contextlib.suppress(Exception):
                if check():
                    return
            time.sleep(0.3)
        tails = "\n".join(f"--- {p.name}:\n{log_tail(p.log_path, 15)}" for p in self.processes)
        raise HarnessError(f"kubernetes: timed out waiting for {what}.\n{tails}")

    def _register_nodes(self) -> None:
        core = self.admin_core_v1()
        for name, (gpus, cpu, memory) in NODES.items():
            capacity = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "1Ti"}
            labels = {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            }
            taints = []
            if gpus:
                capacity[GPU] = str(gpus)
                labels.update(
                    {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
                )
                taints.append({"key": GPU, "value": "present", "effect": "NoSchedule"})
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
                "spec": {"taints": taints},
                "status": {"capacity": capacity, "allocatable": capacity},
            }
            core.create_node(body)

        def nodes_ready() -> bool:
            nodes = core.list_node().items
            ready = [
                n
                for n in nodes
                if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
            ]
            return len(ready) == len(NODES)

        self._wait(nodes_ready, "the kwok nodes to be Ready")

    def _prepare_access(self) -> None:
        from kubernetes import client

        core = self.admin_core_v1()
        core.create_namespace({"metadata": {"name": AIRFLOW_NAMESPACE}})
        self.apply_rbac(namespace=None)  # the ServiceAccount only
        self.wait_for_default_service_account(AIRFLOW_NAMESPACE)
        token = core.create_namespaced_service_account_token(
            AIRFLOW_SERVICE_ACCOUNT,
            AIRFLOW_NAMESPACE,
            client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=86400)
            ),
        ).status.token
        assert self._pki is not None
        write_kubeconfig(
            self.airflow_kubeconfig,
            self.server,
            self._pki.ca_file,
            user=f"system:serviceaccount:{AIRFLOW_NAMESPACE}:{AIRFLOW_SERVICE_ACCOUNT}",
            token=token,
        )

    def wait_for_default_service_account(self, namespace: str) -> None:
        """The `default` ServiceAccount appears seconds after its namespace; pods need it."""
        core = self.admin_core_v1()
        self._wait(
            lambda: core.read_namespaced_service_account("default", namespace) is not None,
            f"{namespace}/default",
        )

    def rbac_documents(self, namespace: str | None) -> list[dict[str, Any]]:
        """docker/kubernetes/rbac.yaml; with `namespace`, its Role and RoleBinding moved there."""
        import yaml

        docs = [d for d in yaml.safe_load_all(RBAC_FILE.read_text()) if d]
        out = []
        for doc in docs:
            if doc["kind"] == "ServiceAccount":
                if namespace is None:
                    out.append(doc)
            elif namespace is not None:
                doc["metadata"]["namespace"] = namespace
                out.append(doc)
        return out

    def apply_rbac(
        self, namespace: str | None, *, drop: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        """Create the documented RBAC objects (`drop` may edit a copy first, to remove a permission)."""
        from kubernetes import utils

        for doc in self.rbac_documents(namespace):
            if drop is not None:
                drop(doc)
            utils.create_from_dict(self.admin_api(), doc)

    def create_namespace(self, name: str, *, rbac: bool = True) -> str:
        core = self.admin_core_v1()
        core.create_namespace({"metadata": {"name": name, "labels": {"llmops.test/namespace": "true"}}})
        if rbac:
            self.apply_rbac(name)
        self.wait_for_default_service_account(name)
        return name

    def delete_namespace(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self.admin_core_v1().delete_namespace(name)

    def airflow_connection(self, namespace: str = "default") -> str:
        """``AIRFLOW_CONN_KUBERNETES_DEFAULT``: the airflow-worker token, defaulting to `namespace`."""
        return json.dumps(
            {
                "conn_type": "kubernetes",
                "extra": {"kube_config_path": str(self.airflow_kubeconfig), "namespace": namespace},
            }
        )

    def stop(self) -> None:
        """Stop the components, newest first, each by its process group."""
        if self._admin_api is not None:
            with contextlib.suppress(Exception):
                self._admin_api.close()
            self._admin_api = None
        for proc in reversed(self.processes):
            proc.stop(grace=10)
        self.processes = []

    def remove(self) -> None:
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> KubernetesCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str]) -> int:
    """Build if needed, start the cluster, print how to reach it, serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m dev.harness kubernetes",
        description="Run a local Kubernetes control plane with simulated GPU nodes (kwok) on 127.0.0.1.",
    )
    parser.add_argument(
        "--build-only", action="store_true", help="build the binaries into the cache and exit"
    )
    parser.add_argument("--name", default="dev", help="run dir name under .llmops/k8s-runs (default: dev)")
    parser.add_argument("--namespace", default="team-nlp", help="a namespace with the README's RBAC bound")
    args = parser.parse_args(list(argv))
    if args.build_only:
        print(build_binaries())
        return 0
    cluster = KubernetesCluster(args.name)
    with stop_on_signal() as stop:
        try:
            cluster.start()
            cluster.create_namespace(args.namespace)
            print(f"KUBECONFIG={cluster.admin_kubeconfig}", flush=True)
            print(
                f"AIRFLOW_CONN_KUBERNETES_DEFAULT='{cluster.airflow_connection(args.namespace)}'", flush=True
            )
            print(
                f"# ready in {cluster.startup_seconds:.1f}s; nodes {', '.join(NODES)}; "
                f"logs in {cluster.run_dir}/logs; Ctrl-C to stop",
                file=sys.stderr,
                flush=True,
            )
            apiserver = next(p for p in cluster.processes if p.name == "kube-apiserver")
            return serve_until_stopped(apiserver, stop, apiserver.log_path)
        finally:
            cluster.stop()
