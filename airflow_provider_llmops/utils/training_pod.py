"""What the training pod (or each pod of an Indexed Job) looks like: the KubernetesPodOperator's kwargs.

The operators build a cncf `KubernetesPodOperator` / `KubernetesJobOperator` from these at run time,
so PodManager, the deferrable trigger, reattach and cleanup are the provider's own. The kubernetes
client is imported inside the functions: importing this module stays cheap for the DAG processor.
Example::

    settings = PodSettings(image="ghcr.io/org/trainer:1.0", namespace="team-a", queue_name="team-a")
    kwargs = pod_operator_kwargs(spec, settings)
    KubernetesPodOperator(task_id="train", **kwargs)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.exceptions import TrainingSpecError

if TYPE_CHECKING:
    from kubernetes.client import models as k8s

    from airflow_provider_llmops.training.spec import TrainingJobSpec

__all__ = [
    "RDZV_PORT",
    "SPEC_ENV",
    "PodSettings",
    "TrainingVolume",
    "headless_service",
    "job_names",
    "pod_operator_kwargs",
    "trainer_command",
]

SPEC_ENV = "LLMOPS_JOB_SPEC"
RDZV_PORT = 29500
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
LAUNCHERS = ("torchrun", "deepspeed")


@dataclass(frozen=True)
class TrainingVolume:
    """A volume for data, models or checkpoints: a PVC (`claim_name`) or a node path (`host_path`)."""

    name: str
    mount_path: str
    claim_name: str = ""
    host_path: str = ""
    read_only: bool = False

    def validate(self) -> None:
        if bool(self.claim_name) == bool(self.host_path):
            raise TrainingSpecError(
                f"volume {self.name!r}: give exactly one of claim_name (a PVC) or host_path", field="volumes"
            )
        if not self.mount_path.startswith("/"):
            raise TrainingSpecError(f"volume {self.name!r}: mount_path must be absolute", field="volumes")


@dataclass(frozen=True)
class PodSettings:
    """Cluster-side settings of a training pod; the job spec says what to train, this where.

    `secrets` maps an env var name to ``(secret name, key)``: the value never passes through Airflow.
    """

    image: str
    namespace: str | None = None
    launcher: str = "torchrun"
    service_account_name: str | None = None
    priority_class_name: str | None = None
    queue_name: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    affinity: dict[str, Any] | None = None
    volumes: tuple[TrainingVolume, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    run_as_user: int = 1000
    dist_timeout_s: int = 1800
    rdzv_join_timeout_s: int = 900
    image_pull_policy: str | None = None

    def validate(self, spec: TrainingJobSpec) -> None:
        if not self.image:
            raise TrainingSpecError("image: the training image must be given", field="image")
        if self.launcher not in LAUNCHERS:
            raise TrainingSpecError(
                f"launcher must be one of {LAUNCHERS}, got {self.launcher!r}", field="launcher"
            )
        if self.launcher == "deepspeed" and not spec.resources.gpus_per_node:
            raise TrainingSpecError(
                "the deepspeed launcher counts GPUs (--num_gpus) but resources.gpus_per_node is 0; "
                "use launcher='torchrun' for CPU processes",
                field="resources.gpus_per_node",
            )
        if self.run_as_user == 0:
            raise TrainingSpecError(
                "pod_run_as_user must not be 0: training pods run as non-root", field="run_as_user"
            )
        for volume in self.volumes:
            volume.validate()
        names = [v.name for v in self.volumes]
        if len(set(names)) != len(names) or "dshm" in names:
            raise TrainingSpecError(f"volume names must be unique and not 'dshm': {names}", field="volumes")


def _dns_name(text: str, limit: int) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:limit].rstrip("-") or "train"


def job_names(spec: TrainingJobSpec, run_key: str) -> tuple[str, str]:
    """(Job name, Service name), stable for one run and try (`run_key`), DNS-safe and short enough.

    Pod hostnames of an Indexed Job are ``<job>-<index>``; both must stay within 63 characters.
    """
    digest = hashlib.sha256(f"{spec.spec_hash()}:{run_key}".encode()).hexdigest()[:8]
    base = _dns_name(spec.name, 40)
    return f"{base}-{digest}", f"{base}-{digest}-rdzv"


def trainer_command(
    spec: TrainingJobSpec, settings: PodSettings, *, rdzv_endpoint: str = "", rdzv_id: str = ""
) -> list[str]:
    """The container's argv: torchrun (or deepspeed) over ``python -m airflow_provider_llmops.training``."""
    res = spec.resources
    trainer = ["-m", "airflow_provider_llmops.training", f"env:{SPEC_ENV}"]
    if settings.launcher == "deepspeed":
        return ["deepspeed", "--num_gpus", str(res.gpus_per_node), "--module", *trainer[1:]]
    cmd = ["python", "-m", "torch.distributed.run", "--nproc_per_node", str(res.procs_per_node)]
    if res.nodes == 1:
        cmd += ["--standalone", "--nnodes", "1"]
    else:
        cmd += [
            "--nnodes",
            str(res.nodes),
            "--rdzv_backend",
            "c10d",
            "--rdzv_endpoint",
            rdzv_endpoint,
            "--rdzv_id",
            rdzv_id,
            "--rdzv_conf",
            f"join_timeout={settings.rdzv_join_timeout_s}",
            "--max_restarts",
            "0",
        ]
    return [*cmd, *trainer]


def _shm_size(spec: TrainingJobSpec) -> str:
    return spec.resources.shm_size or f"{max(1, spec.resources.gpus_per_node)}Gi"


def pod_operator_kwargs(
    spec: TrainingJobSpec, settings: PodSettings, *, command: list[str] | None = None
) -> dict[str, Any]:
    """KubernetesPodOperator kwargs for one training pod of `spec` (also each pod of a Job)."""
    from kubernetes.client import models as k8s

    settings.validate(spec)
    res = spec.resources
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    if res.gpus_per_node:
        limits["nvidia.com/gpu"] = requests["nvidia.com/gpu"] = str(res.gpus_per_node)
    if res.cpu:
        requests["cpu"] = res.cpu
    if res.memory:
        limits["memory"] = requests["memory"] = res.memory
    env: dict[str, str] = {
        SPEC_ENV: spec.to_json(),
        "PYTHONUNBUFFERED": "1",
        "LLMOPS_DIST_TIMEOUT_S": str(settings.dist_timeout_s),
        # A hung collective fails the pod (and so the task) instead of blocking until the deadline.
        "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1",
        "TORCH_NCCL_TRACE_BUFFER_SIZE": "1000",
        "NCCL_DEBUG": "WARN",
        "HF_HUB_OFFLINE": "1",
    }
    if not res.gpus_per_node:
        env["DS_ACCELERATOR"] = "cpu"
        env["OMP_NUM_THREADS"] = "1"
    env.update(settings.env)
    env_vars = [k8s.V1EnvVar(name=k, value=v) for k, v in env.items()]
    env_vars += [
        k8s.V1EnvVar(
            name=name,
            value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name=secret, key=key)),
        )
        for name, (secret, key) in settings.secrets.items()
    ]
    volumes = [
        k8s.V1Volume(
            name="dshm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory", size_limit=_shm_size(spec))
        )
    ]
    mounts = [k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm")]  # noqa: S108 - the pod's shm mount
    for v in settings.volumes:
        source: dict[str, Any] = (
            {
                "persistent_volume_claim": k8s.V1PersistentVolumeClaimVolumeSource(
                    claim_name=v.claim_name, read_only=v.read_only
                )
            }
            if v.claim_name
            else {"host_path": k8s.V1HostPathVolumeSource(path=v.host_path, type="Directory")}
        )
        volumes.append(k8s.V1Volume(name=v.name, **source))
        mounts.append(k8s.V1VolumeMount(name=v.name, mount_path=v.mount_path, read_only=v.read_only))
    labels = {
        "app.kubernetes.io/name": "llmops-trainer",
        "app.kubernetes.io/managed-by": "airflow-provider-llmops",
        "llmops/job": _dns_name(spec.name, 63),
        "llmops/spec-hash": spec.spec_hash(),
        **settings.labels,
    }
    if settings.queue_name:
        labels[KUEUE_QUEUE_LABEL] = settings.queue_name
    # Dicts in the Kubernetes API's own JSON form: KubernetesPodOperator converts them.
    tolerations = [dict(t) for t in settings.tolerations]
    if res.gpus_per_node and not any(t.get("key") == "nvidia.com/gpu" for t in tolerations):
        tolerations.append({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
    kwargs: dict[str, Any] = {
        "namespace": settings.namespace,
        "image": settings.image,
        "name": _dns_name(f"train-{spec.name}", 50),
        "cmds": command or trainer_command(spec, settings),
        "env_vars": env_vars,
        "labels": labels,
        "annotations": {"llmops/output": spec.output, **settings.annotations},
        "container_resources": k8s.V1ResourceRequirements(limits=limits or None, requests=requests or None),
        "volumes": volumes,
        "volume_mounts": mounts,
        "node_selector": dict(settings.node_selector) or None,
        "tolerations": tolerations or None,
        "affinity": dict(settings.affinity) if settings.affinity else None,
        "service_account_name": settings.service_account_name,
        "priority_class_name": settings.priority_class_name,
        "security_context": k8s.V1PodSecurityContext(
            run_as_user=settings.run_as_user,
            run_as_group=settings.run_as_user,
            fs_group=settings.run_as_user,
            run_as_non_root=True,
        ),
        "container_security_context": k8s.V1SecurityContext(
            allow_privilege_escalation=False,
            run_as_non_root=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        # Results leave through manifest.json at the output location, never the XCom sidecar.
        "do_xcom_push": False,
        "get_logs": True,
        "on_finish_action": "delete_pod",
        "on_kill_action": "delete_pod",
        "log_events_on_failure": True,
    }
    if settings.image_pull_policy:
        kwargs["image_pull_policy"] = settings.image_pull_policy
    return kwargs


def headless_service(
    name: str, job_name: str, namespace: str | None, labels: dict[str, str]
) -> k8s.V1Service:
    """Headless Service giving the Job's pods DNS names (``<job>-0.<service>``) before they are ready."""
    from kubernetes.client import models as k8s

    return k8s.V1Service(
        api_version="v1",
        kind="Service",
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=labels),
        spec=k8s.V1ServiceSpec(
            cluster_ip="None",
            publish_not_ready_addresses=True,  # rendezvous happens before any pod is Ready
            selector={"batch.kubernetes.io/job-name": job_name},
            ports=[k8s.V1ServicePort(name="rdzv", port=RDZV_PORT, target_port=RDZV_PORT)],
        ),
    )
