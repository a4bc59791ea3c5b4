"""The pod and Job training operators against a real kube-apiserver, scheduler and controller-manager.

The nodes are kwok's: they advertise ``nvidia.com/gpu`` and move pods through their phases, but no
container runs (see dev/harness/kubernetes.py). So where a trainer would write ``manifest.json`` to
the shared output location and exit, the test plays the trainer: it writes the manifest into the
output folder on this host (the worker's side of a shared volume) and then marks the pod's exit code
with the ``llmops.test/exit-code`` annotation, which kwok turns into Succeeded or Failed. Pods with the
label ``llmops.test/outcome=succeed|fail`` finish by themselves after a second.

Everything runs under the ``airflow/airflow-worker`` ServiceAccount with exactly the RBAC of
docker/kubernetes/rbac.yaml (the README quotes that file), so these tests also prove it sufficient.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_llmops.exceptions import TrainingLaunchError
from airflow_provider_llmops.operators.deepspeed import (
    DeepSpeedMultiNodeTrainingOperator,
    DeepSpeedTrainingOperator,
)
from airflow_provider_llmops.training.spec import (
    DataSpec,
    DeepSpeedSpec,
    ModelSpec,
    ResourcesSpec,
    TrainingJobSpec,
)
from dev.harness.kubernetes import EXIT_CODE_ANNOTATION, GPU, OUTCOME_LABEL, RBAC_FILE, TRAINER_LOG

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

IMAGE = "ghcr.io/airflow-provider-llmops/trainer:test"  # never pulled: kwok runs no container
FAST = {"poll_interval": 0.5, "log_interval_s": 1}


def _spec(output: Path, **resources: Any) -> TrainingJobSpec:
    return TrainingJobSpec(
        name="support-bot",
        task="causal_lm",
        model=ModelSpec(path="/models/base"),
        data=DataSpec(path="/data/train.jsonl", rev="v2", md5="0123abcd"),
        output=str(output),
        deepspeed=DeepSpeedSpec(zero_stage=2, precision="bf16", micro_batch_size=2),
        resources=ResourcesSpec(**{"gpus_per_node": 4, "shm_size": "8Gi", **resources}),
        max_steps=4,
    )


class _TaskInstance:
    """What KubernetesPodOperator reads from the task instance: its identity, and XCom pushes."""

    def __init__(self, try_number: int = 1, task_id: str = "train") -> None:
        self.dag_id, self.task_id, self.map_index, self.try_number = "train_dag", task_id, -1, try_number
        self.run_id = "manual__2026-12-01"
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def _context(try_number: int = 1, task_id: str = "train") -> dict[str, Any]:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    ti = _TaskInstance(try_number, task_id)
    return {"ti": ti, "run_id": ti.run_id, "dag": None, "outlet_events": OutletEventAccessors()}


def _write_manifest(spec: TrainingJobSpec, world_size: int) -> None:
    """What the trainer writes last, at the output location (here: the worker's view of it)."""
    out = Path(spec.output)
    (out / "model").mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": spec.name,
        "task": spec.task,
        "spec_hash": spec.spec_hash(),
        "model_uri": f"{out}/model",
        "output_uri": str(out),
        "dataset": {"path": spec.data.path, "rev": spec.data.rev, "md5": spec.data.md5},
        "steps": spec.max_steps,
        "world_size": world_size,
        "first_loss": 2.31,
        "final_loss": 1.87,
        "loss_curve": [[1, 2.31], [4, 1.87]],
    }
    (out / "manifest.json").write_text(json.dumps(manifest))


def _wait(check, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _pods(cluster, namespace: str, selector: str = "") -> list[Any]:
    return list(cluster.admin_core_v1().list_namespaced_pod(namespace, label_selector=selector).items)


def _running_pods(cluster, namespace: str, count: int = 1) -> list[Any]:
    def running():
        pods = [p for p in _pods(cluster, namespace) if p.status.phase == "Running"]
        return pods if len(pods) >= count else None

    return _wait(running, f"{count} running pod(s) in {namespace}")


def _finish_pod(cluster, namespace: str, name: str, exit_code: int) -> None:
    """Play the trainer's exit: kwok moves the pod to Succeeded (0) or Failed (else)."""
    body = {"metadata": {"annotations": {EXIT_CODE_ANNOTATION: str(exit_code)}}}
    cluster.admin_core_v1().patch_namespaced_pod(name, namespace, body)


class _Run:
    """An operator's execute() in a thread, as a worker runs it."""

    def __init__(self, op, context) -> None:
        self.op, self.context = op, context
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.op.execute(self.context)
        except BaseException as err:  # handed to the test
            self.error = err

    def join(self, timeout: float = 120.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the operator did not return"
        if self.error is not None:
            raise self.error
        return self.result


# --------------------------------------------------------------------------- one pod


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_pod_runs_on_a_gpu_node_and_hands_off_the_manifest(
    kubernetes_cluster, k8s_namespace, k8s_leftovers, tmp_path, deferrable, capsys
):
    spec = _spec(tmp_path / "out", gpus_per_node=4)
    op = DeepSpeedTrainingOperator(task_id="train", spec=spec, image=IMAGE, deferrable=deferrable, **FAST)
    context = _context()
    run = _Run(op, context) if not deferrable else None
    if deferrable:
        from airflow.sdk.exceptions import TaskDeferred

        with pytest.raises(TaskDeferred) as deferred:
            op.execute(context)
    (pod,) = _running_pods(kubernetes_cluster, k8s_namespace)
    # Accepted by the real API server, scheduled by the real scheduler onto a GPU node.
    assert pod.spec.node_name.startswith("kwok-gpu-")
    limits = pod.spec.containers[0].resources.limits
    assert limits[GPU] == "4"
    assert pod.metadata.labels["dag_id"] == "train_dag"
    node = kubernetes_cluster.admin_core_v1().read_node(pod.spec.node_name)
    assert int(node.status.allocatable[GPU]) >= 4
    _write_manifest(spec, world_size=4)
    _finish_pod(kubernetes_cluster, k8s_namespace, pod.metadata.name, 0)
    if deferrable:
        result = _resume(op, context, deferred.value)
    else:
        result = run.join()
    assert result["spec_hash"] == spec.spec_hash()
    assert result["manifest_uri"] == str(tmp_path / "out" / "manifest.json")
    assert result["dataset_rev"] == "v2"
    out = capsys.readouterr().out
    assert TRAINER_LOG[2] in out and TRAINER_LOG[-1] in out  # the trainer's log reached the task log
    _wait(lambda: not k8s_leftovers(k8s_namespace), "the finished pod to be deleted")


def _resume(op, context, deferred) -> Any:
    """Run the trigger KubernetesPodOperator deferred with, then re-enter the operator (as Airflow does)."""
    import asyncio

    trigger = deferred.trigger

    async def first_event():
        async for event in trigger.run():
            return event.payload

    payload = asyncio.run(first_event())
    while True:
        from airflow.sdk.exceptions import TaskDeferred

        try:
            return getattr(op, deferred.method_name)(context, payload, **(deferred.kwargs or {}))
        except TaskDeferred as again:  # logging_interval: the pod still runs, read its log, defer again
            deferred = again
            trigger = again.trigger
            payload = asyncio.run(first_event())


def test_rbac_file_is_what_the_readme_documents():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    assert RBAC_FILE.read_text() in blocks, "README.md must quote docker/kubernetes/rbac.yaml verbatim"


def test_failing_pod_fails_the_task_with_its_log_tail(
    kubernetes_cluster, k8s_namespace, k8s_leftovers, tmp_path
):
    spec = _spec(tmp_path / "out")
    op = DeepSpeedTrainingOperator(
        task_id="train", spec=spec, image=IMAGE, labels={OUTCOME_LABEL: "fail"}, **FAST
    )
    with pytest.raises(Exception) as failed:
        op.execute(_context())
    message = str(failed.value)
    assert "exit code 1" in message
    assert message.endswith("\n".join(f"  {line}" for line in TRAINER_LOG))  # the log tail, line by line
    _wait(lambda: not k8s_leftovers(k8s_namespace), "the failed pod to be deleted")


def test_killing_the_task_deletes_the_pod(kubernetes_cluster, k8s_namespace, k8s_leftovers, tmp_path):
    op = DeepSpeedTrainingOperator(task_id="train", spec=_spec(tmp_path / "out"), image=IMAGE, **FAST)
    run = _Run(op, _context())
    (pod,) = _running_pods(kubernetes_cluster, k8s_namespace)
    op.on_kill()  # what the worker calls when the task is killed (UI, SIGTERM, timeout)
    with pytest.raises(Exception):  # noqa: B017 - the pod vanished under the waiting operator
        run.join()
    _wait(lambda: not k8s_leftovers(k8s_namespace), f"pod {pod.metadata.name} to be deleted")


def test_rerun_while_the_pod_runs_reattaches(kubernetes_cluster, k8s_namespace, k8s_leftovers, tmp_path):
    from airflow.sdk.exceptions import TaskDeferred

    spec = _spec(tmp_path / "out")
    # The first try creates the pod and defers; then its worker and triggerer are lost.
    first = DeepSpeedTrainingOperator(task_id="train", spec=spec, image=IMAGE, deferrable=True, **FAST)
    with pytest.raises(TaskDeferred):
        first.execute(_context(1))
    (pod,) = _running_pods(kubernetes_cluster, k8s_namespace)
    # Airflow runs the task again (the next try) while the pod keeps training.
    second = _Run(DeepSpeedTrainingOperator(task_id="train", spec=spec, image=IMAGE, **FAST), _context(2))
    _wait(lambda: second.op._inner is not None and second.op._inner.pod is not None, "the second try's pod")
    assert second.op._inner.pod.metadata.name == pod.metadata.name
    assert [p.metadata.uid for p in _pods(kubernetes_cluster, k8s_namespace)] == [pod.metadata.uid]
    _write_manifest(spec, world_size=4)
    _finish_pod(kubernetes_cluster, k8s_namespace, pod.metadata.name, 0)
    assert second.join()["spec_hash"] == spec.spec_hash()
    _wait(lambda: not k8s_leftovers(k8s_namespace), "the pod to be deleted")


def test_too_many_gpus_fails_with_the_unschedulable_reason(
    kubernetes_cluster, k8s_namespace, k8s_leftovers, tmp_path
):
    op = DeepSpeedTrainingOperator(
        task_id="train",
        spec=_spec(tmp_path / "out", gpus_per_node=16),  # the biggest node has 8
        image=IMAGE,
        startup_timeout_seconds=5,
        **FAST,
    )
    with pytest.raises(TrainingLaunchError) as failed:
        op.execute(_context())
    message = str(failed.value)
    assert "did not start within 5s" in message
    assert "Insufficient nvidia.com/gpu" in message
    _wait(lambda: not k8s_leftovers(k8s_namespace), "the pending pod to be deleted")


def test_cpu_only_pod_lands_on_the_node_without_gpus(
    kubernetes_cluster, k8s_namespace, k8s_leftovers, tmp_path
):
    spec = _spec(tmp_path / "out", gpus_per_node=0, cpu_procs=2)
    op = DeepSpeedTrainingOperator(
        task_id="train", spec=spec, image=IMAGE, labels={OUTCOME_LABEL: "succeed"}, **FAST
    )
    run = _Run(op, _context())
    (pod,) = _running_pods(kubernetes_cluster, k8s_namespace)
    assert pod.spec.node_name == "kwok-cpu-0"  # the GPU nodes' taint keeps it off them
    _write_manifest(spec, world_size=2)
    assert run.join()["world_size"] == 2
    _wait(lambda: not k8s_leftovers(k8s_namespace), "the pod to be deleted")


# --------------------------------------------------------------------------- multi-node


def _multinode(spec, deferrable: bool = False, **kwargs):
    return DeepSpeedMultiNodeTrainingOperator(
        task_id="train",
        spec=spec,
        image=IMAGE,
        deferrable=deferrable,
        rdzv_join_timeout_s=60,
        **FAST,
        **kwargs,
    )


def _check_job_pods(cluster, namespace: str, op) -> list[Any]:
    pods = sorted(_running_pods(cluster, namespace, count=2), key=lambda p: p.metadata.name)
    (job,) = cluster.admin_batch_v1().list_namespaced_job(namespace).items
    assert job.spec.completion_mode == "Indexed"
    assert (job.spec.completions, job.spec.parallelism, job.spec.backoff_limit) == (2, 2, 0)
    (service,) = cluster.admin_core_v1().list_namespaced_service(namespace).items
    assert service.spec.cluster_ip == "None"  # headless
    assert service.spec.publish_not_ready_addresses is True
    assert {p.spec.node_name for p in pods} == {"kwok-gpu-0", "kwok-gpu-1"}  # 8 GPUs each: one per node
    for index, pod in enumerate(pods):
        assert pod.spec.hostname == f"{job.metadata.name}-{index}"
        assert pod.spec.subdomain == service.metadata.name
        assert pod.spec.containers[0].resources.limits[GPU] == "8"
        cmd = pod.spec.containers[0].command
        endpoint = cmd[cmd.index("--rdzv_endpoint") + 1]
        assert endpoint == f"{job.metadata.name}-0.{service.metadata.name}:29500"
        assert cmd[cmd.index("--nnodes") + 1] == "2"
    return pods


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_multinode_job_succeeds_and_leaves_nothing_behind(
    kubernetes_cluster, k8s_namespace, k8s_leftovers, tmp_path, deferrable
):
    from airflow.sdk.exceptions import TaskDeferred

    spec = _spec(tmp_path / "out", nodes=2, gpus_per_node=8)
    op = _multinode(spec, deferrable)
    context = _context()
    if deferrable:
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(context)
    else:
        run = _Run(op, context)
    pods = _check_job_pods(kubernetes_cluster, k8s_namespace, op)
    _write_manifest(spec, world_size=16)
    for pod in pods:
        _finish_pod(kubernetes_cluster, k8s_namespace, pod.metadata.name, 0)
    result = _resume(op, context, deferred.value) if deferrable else run.join()
    assert result["world_size"] == 16
    _wait(lambda: not k8s_leftovers(k8s_namespace), "the Job, its pods and the Service to be deleted")


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_multinode_one_failed_pod_fails_the_run_and_cleans_up(
    kubernetes_cluster, k8s_namespace, k8s_leftovers, tmp_path, deferrable
):
    from airflow.sdk.exceptions import TaskDeferred

    spec = _spec(tmp_path / "out", nodes=2, gpus_per_node=8)
    op = _multinode(spec, deferrable)
    context = _context()
    if deferrable:
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(context)
    else:
        run = _Run(op, context)
    pods = _check_job_pods(kubernetes_cluster, k8s_namespace, op)
    _finish_pod(kubernetes_cluster, k8s_namespace, pods[1].metadata.name, 3)  # rank 1 crashes
    with pytest.raises(TrainingLaunchError) as failed:
        _resume(op, context, deferred.value) if deferrable else run.join()
    message = str(failed.value)
    assert f"pod {pods[1].metadata.name} (index 1)" in message
    assert "exit code 3" in message
    assert TRAINER_LOG[-1] in message
    _wait(lambda: not k8s_leftovers(k8s_namespace), "the Job, its pods and the Service to be deleted")


def test_deferred_task_past_its_timeout_deletes_the_pod(
    kubernetes_cluster, k8s_namespace, k8s_leftovers, tmp_path
):
    from datetime import timedelta

    from airflow.sdk.exceptions import TaskDeferred

    op = DeepSpeedTrainingOperator(
        task_id="train",
        spec=_spec(tmp_path / "out"),
        image=IMAGE,
        deferrable=True,
        execution_timeout=timedelta(seconds=3),
        **FAST,
    )
    context = _context()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    # The framework's own timeout only backs the operator's up: it must come later.
    assert deferred.value.timeout is not None and deferred.value.timeout > timedelta(seconds=3)
    (pod,) = _running_pods(kubernetes_cluster, k8s_namespace)
    with pytest.raises(TrainingLaunchError) as failed:
        _resume(op, context, deferred.value)  # the trigger hands back at the deadline
    assert "execution_timeout" in str(failed.value) and "deleted it" in str(failed.value)
    _wait(lambda: not k8s_leftovers(k8s_namespace), f"pod {pod.metadata.name} to be deleted")


# --------------------------------------------------------------------------- RBAC


def _without(resource: str):
    def drop(doc: dict) -> None:
        if doc["kind"] == "Role":
            doc["rules"] = [r for r in doc["rules"] if resource not in r["resources"]]

    return drop


@pytest.mark.parametrize(
    ("resource", "operator", "refused"),
    [
        ("pods", DeepSpeedTrainingOperator, 'cannot list resource "pods"'),
        ("services", DeepSpeedMultiNodeTrainingOperator, 'cannot list resource "services"'),
    ],
    ids=["pod-without-pods", "multinode-without-services"],
)
def test_a_missing_permission_fails_with_a_clear_error(
    kubernetes_cluster, k8s_leftovers, request, monkeypatch, tmp_path, resource, operator, refused
):
    import uuid

    namespace = kubernetes_cluster.create_namespace(f"t-rbac-{resource}-{uuid.uuid4().hex[:6]}", rbac=False)
    request.addfinalizer(lambda: kubernetes_cluster.delete_namespace(namespace))
    kubernetes_cluster.apply_rbac(namespace, drop=_without(resource))
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", kubernetes_cluster.airflow_connection(namespace))
    nodes = {"nodes": 2, "gpus_per_node": 8} if operator is DeepSpeedMultiNodeTrainingOperator else {}
    op = operator(task_id="train", spec=_spec(tmp_path / "out", **nodes), image=IMAGE, **FAST)
    with pytest.raises(TrainingLaunchError) as failed:
        op.execute(_context())
    message = str(failed.value)
    assert "403 Forbidden" in message and refused in message
    assert "system:serviceaccount:airflow:airflow-worker" in message
    assert "docker/kubernetes/rbac.yaml" in message
    assert not k8s_leftovers(namespace)


def test_killing_a_multinode_task_deletes_job_pods_and_service(
    kubernetes_cluster, k8s_namespace, k8s_leftovers, tmp_path
):
    op = _multinode(_spec(tmp_path / "out", nodes=2, gpus_per_node=8))
    run = _Run(op, _context())
    _check_job_pods(kubernetes_cluster, k8s_namespace, op)
    op.on_kill()
    with pytest.raises(Exception):  # noqa: B017 - the Job vanished under the waiting operator
        run.join(60)
    _wait(lambda: not k8s_leftovers(k8s_namespace), "the Job, its pods and the Service to be deleted")
