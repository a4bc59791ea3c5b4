"""The Kubernetes harness: the cached build, kwok's rules, and what kwok refuses to do."""

from __future__ import annotations

import time

import pytest

from dev.harness import kubernetes as k8s_harness

pytestmark = pytest.mark.integration


def test_cached_binaries_are_used_without_go(kubernetes_cluster, monkeypatch):
    # The session cluster built (or found) them; a second call must not need the toolchain.
    monkeypatch.setenv("LLMOPS_GO", "/nonexistent/go")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert k8s_harness.build_binaries() == k8s_harness.binaries_dir()
    assert k8s_harness.binaries_dir().parent.name == "v1.36.3-etcd-v3.6.8-kwok-v0.8.0"


def test_kwok_has_no_rule_that_runs_anything_on_the_host(tmp_path):
    kinds = {doc["kind"] for doc in k8s_harness.kwok_config(tmp_path / "log")}
    assert kinds == {"Stage", "ClusterLogs"}  # no Exec/ClusterExec/Attach/PortForward
    node_stages = [d for d in k8s_harness.STAGES if d["spec"]["resourceRef"]["kind"] == "Node"]
    assert node_stages, "a custom Stage config replaces kwok's defaults: the node stages must be there"


def test_exec_into_a_pod_is_refused(kubernetes_cluster, k8s_namespace):
    from kubernetes.stream import stream

    core = kubernetes_cluster.admin_core_v1()
    pod = {
        "metadata": {"name": "probe"},
        "spec": {"containers": [{"name": "base", "image": "busybox"}], "nodeName": "kwok-cpu-0"},
    }
    core.create_namespaced_pod(k8s_namespace, pod)
    deadline = time.monotonic() + 60
    while core.read_namespaced_pod("probe", k8s_namespace).status.phase != "Running":
        assert time.monotonic() < deadline, "the probe pod never ran"
        time.sleep(0.2)
    marker = kubernetes_cluster.run_dir / "exec-marker"
    session = stream(
        core.connect_get_namespaced_pod_exec,
        "probe",
        k8s_namespace,
        command=["touch", str(marker)],
        stderr=True,
        stdout=True,
        stdin=False,
        tty=False,
        _preload_content=False,
    )
    session.run_forever(timeout=20)
    status = session.read_channel(3)  # the exec protocol's error channel: the kubelet's (kwok's) answer
    session.close()
    assert "no exec found" in status, status
    assert not marker.exists()


def test_pods_without_a_label_run_until_deleted_and_serve_the_fixed_log(kubernetes_cluster, k8s_namespace):
    core = kubernetes_cluster.admin_core_v1()
    pod = {"metadata": {"name": "idle"}, "spec": {"containers": [{"name": "base", "image": "busybox"}]}}
    core.create_namespaced_pod(k8s_namespace, pod)
    deadline = time.monotonic() + 60
    while core.read_namespaced_pod("idle", k8s_namespace).status.phase != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    response = core.read_namespaced_pod_log("idle", k8s_namespace, container="base", _preload_content=False)
    assert response.data.decode().splitlines() == k8s_harness.TRAINER_LOG  # a plain, ending read
    core.delete_namespaced_pod("idle", k8s_namespace)
    deadline = time.monotonic() + 30
    while core.list_namespaced_pod(k8s_namespace).items:
        assert time.monotonic() < deadline, "the deleted pod lingered"
        time.sleep(0.2)
