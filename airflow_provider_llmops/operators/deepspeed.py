"""DeepSpeed fine-tuning operators: one job spec, three launchers (local processes, one pod, an Indexed Job).

All three validate the spec and its DeepSpeed config once the template fields are rendered (a
bad combination fails before any process or pod starts), run the trainer
(``python -m airflow_provider_llmops.training``), read ``manifest.json`` from the output location,
return it as a `TrainingManifest` XCom and attach it to the event of the model Asset ``model://<name>``
(declared at parse time when the spec's name is literal; otherwise through the AssetAlias
``model:<dag_id>:<task_id>``, the name being known once rendered).

The pod operators build the cncf `KubernetesPodOperator` / `KubernetesJobOperator` inside
`execute()`: importing this module never loads the kubernetes client (about 0.85 s per DAG parse).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_llmops.assets.model import model_alias, model_asset
from airflow_provider_llmops.exceptions import (
    TrainingLaunchError,
    TrainingManifestError,
    TrainingOutputConflictError,
    TrainingSpecError,
)
from airflow_provider_llmops.training.spec import TrainingJobSpec
from airflow_provider_llmops.utils.training_pod import PodSettings

# On the Job and Service of a multi-node run: the same for every try of one task in one run.
RUN_LABEL = "llmops/run"
# The deferred pod operator's next_kwargs key for the task's deadline (epoch seconds).
DEADLINE_KWARG = "llmops_deadline"

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Asset, AssetAlias, Context

    from airflow_provider_llmops.utils.training_local import LocalTrainingLauncher
    from airflow_provider_llmops.utils.training_pod import TrainingVolume
    from airflow_provider_llmops.utils.training_records import TrainingManifest

__all__ = [
    "DeepSpeedLocalTrainingOperator",
    "DeepSpeedMultiNodeTrainingOperator",
    "DeepSpeedTrainingOperator",
]


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_templated(v) for v in value)
    return False


def _literal_name(spec: dict[str, Any] | str) -> str | None:
    """The spec's name when known at parse time (a dict with a literal name); None for a file or template."""
    name = spec.get("name") if isinstance(spec, dict) else None
    return name if isinstance(name, str) and name and not _templated(name) else None


class _DeepSpeedBaseOperator(BaseOperator):
    """Shared arguments, the single validation pass and the manifest hand-off of the three launchers.

    :param spec: the job: a `TrainingJobSpec`, its dict form (templated field by field), or the
        path of a ``.json``/``.yaml`` spec file.
    :param output_uri: overrides ``spec.output`` (e.g. ``s3://bucket/runs/{{ ds_nodash }}``).
    :param data_path: overrides ``spec.data.path``.
    :param data_rev: dataset rev for the manifest, e.g. ``{{ ti.xcom_pull('pull')['rev'] }}``.
    :param data_md5: dataset md5 for the manifest, e.g. ``{{ ti.xcom_pull('pull')['md5'] }}``.
    :param manifest_uri: where the worker reads the run's output (default: the spec's output);
        set it when the pod writes to a volume the worker sees under another path or URI.
    :param emit_asset: attach the manifest (spec hash, dataset rev, losses) to the event of the
        model Asset ``model://<name>``, declared at parse time when ``spec.name`` is literal.
    """

    template_fields: Sequence[str] = (
        "spec",
        "output_uri",
        "data_path",
        "data_rev",
        "data_md5",
        "manifest_uri",
    )
    template_fields_renderers = {"spec": "json"}
    ui_color = "#76b900"

    def __init__(
        self,
        *,
        spec: TrainingJobSpec | dict[str, Any] | str,
        output_uri: str | None = None,
        data_path: str | None = None,
        data_rev: str | None = None,
        data_md5: str | None = None,
        manifest_uri: str | None = None,
        emit_asset: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spec: dict[str, Any] | str = spec.to_dict() if isinstance(spec, TrainingJobSpec) else spec
        self.output_uri = output_uri
        self.data_path = data_path
        self.data_rev = data_rev
        self.data_md5 = data_md5
        self.manifest_uri = manifest_uri
        self.emit_asset = emit_asset
        self._job: TrainingJobSpec | None = None
        if not _templated([self.spec, output_uri, data_path, data_rev, data_md5, manifest_uri]):
            # Literal arguments: fail at DAG parse time already (a spec object needs no rebuilding).
            self._validate(spec if isinstance(spec, TrainingJobSpec) else None)
        name = _literal_name(self.spec)
        self.asset: Asset | None = model_asset(name) if emit_asset and name else None
        self.asset_alias: AssetAlias | None = None
        if self.asset is not None:
            self.outlets.append(self.asset)
        elif emit_asset:
            self.asset_alias = model_alias(self.dag_id, self.task_id)
            self.outlets.append(self.asset_alias)

    def _do_render_template_fields(
        self,
        parent: Any,
        template_fields: Any,
        context: Context,
        jinja_env: jinja2.Environment,
        seen_oids: set[int],
    ) -> None:
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)
        # Mapped tasks render through here too; validate the rendered values before anything runs.
        if parent is self:
            self._validate()

    @property
    def job(self) -> TrainingJobSpec:
        """The resolved, validated spec (after rendering)."""
        if self._job is None:
            self._validate()
        assert self._job is not None
        return self._job

    def _load_spec(self) -> TrainingJobSpec:
        if isinstance(self.spec, str):
            return TrainingJobSpec.load(self.spec)
        if isinstance(self.spec, dict):
            return TrainingJobSpec.from_dict(self.spec)
        raise TrainingSpecError(
            f"spec must be a TrainingJobSpec, dict or file path, got {type(self.spec).__name__}"
        )

    def _resolve(self, job: TrainingJobSpec | None = None) -> TrainingJobSpec:
        """The spec with the data and output overrides applied (`job`: the spec, else built from `spec`)."""
        import dataclasses

        job = job or self._load_spec()
        data_changes: dict[str, Any] = {
            k: v
            for k, v in (("path", self.data_path), ("rev", self.data_rev), ("md5", self.data_md5))
            if v is not None
        }
        if data_changes:
            job = job.replace(data=dataclasses.replace(job.data, **data_changes))
        if self.output_uri is not None:
            job = job.replace(output=self.output_uri)
        return job

    def _validate(self, job: TrainingJobSpec | None = None) -> None:
        from airflow_provider_llmops.training.ds_config import build_ds_config

        job = self._resolve(job).validate()
        build_ds_config(job)
        self._check_launcher(job)
        self._job = job

    def _check_launcher(self, job: TrainingJobSpec) -> None:
        """Launcher-specific checks on the resolved spec (node and GPU counts)."""

    def _read_manifest(self) -> TrainingManifest:
        from airflow_provider_llmops.training.storage import MANIFEST, OutputStore
        from airflow_provider_llmops.utils.training_records import TrainingManifest

        store = OutputStore(self.manifest_uri or self.job.output)
        manifest = store.read_manifest()
        if manifest is None:
            raise TrainingManifestError(
                f"the training finished but {store.uri_of(MANIFEST)} is missing; check that the worker "
                "reads the same output location the trainer wrote (manifest_uri)"
            )
        if manifest.get("spec_hash") != self.job.spec_hash():
            raise TrainingManifestError(
                f"{store.uri_of(MANIFEST)} is of spec {manifest.get('spec_hash')!r}, not this task's "
                f"{self.job.spec_hash()!r}"
            )
        return TrainingManifest.from_manifest(manifest, manifest_uri=store.uri_of(MANIFEST))

    def _finish(self, context: Context) -> dict[str, Any]:
        from airflow_provider_llmops.assets.events import emit_event

        record = self._read_manifest()
        self.log.info(
            "Trained %s: %d steps, loss %s -> %s, %.1f samples/s; model %s",
            record.name,
            record.steps,
            record.first_loss,
            record.final_loss,
            record.samples_per_s,
            record.model_uri,
        )
        emit_event(
            context,
            record.asset_extra(),
            asset=self.asset,
            alias=self.asset_alias,
            resolve=lambda: model_asset(record.name),
        )
        return record.to_xcom()

    def _check_output_before_launch(self) -> bool:
        """True when the output already holds this finished run; conflicts raise before launching."""
        from airflow_provider_llmops.training.storage import OutputStore, check_output

        try:
            store = OutputStore(self.manifest_uri or self.job.output)
        except (ImportError, ValueError) as err:
            # A protocol the worker has no fsspec driver for: the trainer checks in the pod.
            self.log.info("Cannot check the output location from the worker (%s); the trainer will", err)
            return False
        if store.is_local and not Path(store.root).exists():
            return False  # nothing there yet (or a path only the pod sees)
        try:
            return check_output(store, self.job.spec_hash()) is not None
        except (TrainingOutputConflictError, TrainingManifestError):
            raise
        except Exception as err:  # no credentials here, unreachable store, ...: the pod has its own
            self.log.info("Cannot read the output location from the worker (%s); the trainer checks it", err)
            return False


class DeepSpeedLocalTrainingOperator(_DeepSpeedBaseOperator):
    """Run the job spec as torchrun processes on the worker host (CPU with gloo, or its GPUs).

    For development, CI and the embedded demo: the same spec as on the cluster. The trainer's
    log streams into the task log; killing the task (or its timeout) kills the process group; a
    retry resumes from the newest complete checkpoint. Example::

        train = DeepSpeedLocalTrainingOperator(
            task_id="train",
            spec="/opt/jobs/support-bot.yaml",
            data_rev="{{ ti.xcom_pull('pull_data')['rev'] }}",
            execution_timeout=timedelta(hours=2),
        )

    :param python: interpreter with the ``[train]`` extra (default: the worker's).
    :param env: extra environment for the trainer processes.
    :param work_dir: where the rendered spec file is written (templated; default: a temp folder).
    :param timeout: seconds before the processes are killed (besides ``execution_timeout``).
    """

    template_fields: Sequence[str] = (*_DeepSpeedBaseOperator.template_fields, "env", "python", "work_dir")

    def __init__(
        self,
        *,
        python: str | None = None,
        env: dict[str, str] | None = None,
        work_dir: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.python = python
        self.env = env
        self.work_dir = work_dir
        self.timeout = timeout
        super().__init__(**kwargs)

    def _check_launcher(self, job: TrainingJobSpec) -> None:
        if job.resources.nodes != 1:
            raise TrainingSpecError(
                f"resources.nodes is {job.resources.nodes}: the local launcher runs one node",
                field="resources.nodes",
            )

    @cached_property
    def launcher(self) -> LocalTrainingLauncher:
        from airflow_provider_llmops.utils.training_local import LocalTrainingLauncher

        work = self.work_dir or os.path.join(tempfile.gettempdir(), "airflow-llmops-train")
        return LocalTrainingLauncher(self.job, work_dir=work, log=self.log, python=self.python, env=self.env)

    def execute(self, context: Context) -> dict[str, Any]:
        if self._check_output_before_launch():
            self.log.info(
                "%s already holds this finished run (spec %s)", self.job.output, self.job.spec_hash()
            )
        else:
            self.launcher.run(timeout=self.timeout)
        return self._finish(context)

    def on_kill(self) -> None:
        if "launcher" in self.__dict__:
            self.launcher.kill()


class _DeepSpeedPodBase(_DeepSpeedBaseOperator):
    """Cluster arguments shared by the pod and the Job operator (see `PodSettings`)."""

    template_fields: Sequence[str] = (
        *_DeepSpeedBaseOperator.template_fields,
        "image",
        "namespace",
        "env",
        "queue_name",
    )

    def __init__(
        self,
        *,
        image: str,
        namespace: str | None = None,
        kubernetes_conn_id: str = "kubernetes_default",
        launcher: str = "torchrun",
        service_account_name: str | None = None,
        priority_class_name: str | None = None,
        queue_name: str | None = None,
        node_selector: dict[str, str] | None = None,
        tolerations: list[dict[str, Any]] | None = None,
        affinity: dict[str, Any] | None = None,
        volumes: Sequence[TrainingVolume] = (),
        env: dict[str, str] | None = None,
        secrets: dict[str, tuple[str, str]] | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        pod_run_as_user: int = 1000,
        dist_timeout_s: int = 1800,
        deferrable: bool = False,
        startup_timeout_seconds: int = 600,
        poll_interval: float = 10.0,
        log_interval_s: float = 60.0,
        kpo_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.image = image
        self.poll_interval = poll_interval
        self.log_interval_s = log_interval_s
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.launcher = launcher
        self.service_account_name = service_account_name
        self.priority_class_name = priority_class_name
        self.queue_name = queue_name
        self.node_selector = node_selector or {}
        self.tolerations = tolerations or []
        self.affinity = affinity
        self.volumes = tuple(volumes)
        self.env = env or {}
        self.secrets = secrets or {}
        self.labels = labels or {}
        self.annotations = annotations or {}
        self.pod_run_as_user = pod_run_as_user
        self.dist_timeout_s = dist_timeout_s
        self.deferrable = deferrable
        self.startup_timeout_seconds = startup_timeout_seconds
        self.kpo_kwargs = kpo_kwargs or {}
        self._inner: Any = None
        super().__init__(**kwargs)

    def pod_settings(self) -> PodSettings:
        return PodSettings(
            image=self.image,
            namespace=self.namespace,
            launcher=self.launcher,
            service_account_name=self.service_account_name,
            priority_class_name=self.priority_class_name,
            queue_name=self.queue_name,
            node_selector=dict(self.node_selector),
            tolerations=list(self.tolerations),
            affinity=self.affinity,
            volumes=self.volumes,
            env=dict(self.env),
            secrets=dict(self.secrets),
            labels=dict(self.labels),
            annotations=dict(self.annotations),
            run_as_user=self.pod_run_as_user,
            dist_timeout_s=self.dist_timeout_s,
        )

    def _check_launcher(self, job: TrainingJobSpec) -> None:
        # Pod settings are checked with the spec, so a wrong launcher/GPU pairing fails at parse time.
        self.pod_settings().validate(job)

    def _common_kpo_kwargs(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "kubernetes_conn_id": self.kubernetes_conn_id,
            "deferrable": self.deferrable,
            "startup_timeout_seconds": self.startup_timeout_seconds,
            "poll_interval": self.poll_interval,
            **self.kpo_kwargs,
        }

    def on_kill(self) -> None:
        if self._inner is not None:
            self._inner.on_kill()


class DeepSpeedTrainingOperator(_DeepSpeedPodBase):
    """Fine-tune in one Kubernetes pod with N GPUs, through the cncf KubernetesPodOperator.

    The pod gets ``nvidia.com/gpu`` limits, a memory-backed /dev/shm, the volumes, secrets as env,
    a non-root security context, NCCL/torch timeouts, dag/task/run/try labels (KubernetesPodOperator's,
    which also reattach after a worker restart) and the team's namespace, service account, priority
    class and Kueue queue. Killing the task deletes the pod; deferrable mode works. Example::

        DeepSpeedTrainingOperator(
            task_id="train",
            spec=spec,  # resources=ResourcesSpec(gpus_per_node=8, shm_size="64Gi")
            image="ghcr.io/org/llmops-trainer:0.1",
            namespace="team-nlp",
            queue_name="team-nlp",
            volumes=[TrainingVolume("ckpt", "/ckpt", claim_name="nlp-checkpoints")],
            secrets={"AWS_SECRET_ACCESS_KEY": ("s3-creds", "secret")},
            deferrable=True,
        )

    :param launcher: ``torchrun`` (``--nproc_per_node``) or ``deepspeed`` (``--num_gpus``).
    :param pod_run_as_user: uid (and gid, fsGroup) the trainer runs as; never 0.
    :param poll_interval: seconds between status checks (and, not deferred, log reads) of the pod.
    :param log_interval_s: deferred: seconds between the trigger's hand-backs that copy new log lines.
    :param kpo_kwargs: further KubernetesPodOperator arguments (e.g. ``image_pull_secrets``).
    """

    def _check_launcher(self, job: TrainingJobSpec) -> None:
        if job.resources.nodes != 1:
            raise TrainingSpecError(
                f"resources.nodes is {job.resources.nodes}: DeepSpeedTrainingOperator runs one pod; "
                "use DeepSpeedMultiNodeTrainingOperator for several nodes",
                field="resources.nodes",
            )
        super()._check_launcher(job)

    def build_pod_operator(self) -> Any:
        """The inner KubernetesPodOperator (not attached to a DAG) that runs the trainer pod."""
        from airflow_provider_llmops.utils.training_kpo import training_pod_operator_class
        from airflow_provider_llmops.utils.training_pod import pod_operator_kwargs

        kwargs = {
            **pod_operator_kwargs(self.job, self.pod_settings()),
            "base_container_status_polling_interval": self.poll_interval,
            "log_poll_interval_s": self.poll_interval,
            # Deferred, the log is read (without following) each time the trigger hands back.
            "logging_interval": int(max(1, self.log_interval_s)) if self.deferrable else None,
            **self._common_kpo_kwargs(),
        }
        return training_pod_operator_class()(**kwargs)

    def execute(self, context: Context) -> dict[str, Any]:
        if self._check_output_before_launch():
            self.log.info(
                "%s already holds this finished run (spec %s)", self.job.output, self.job.spec_hash()
            )
            return self._finish(context)
        from airflow_provider_llmops.utils.training_kpo import explain_forbidden

        self._inner = self.build_pod_operator()
        # execute_sync/execute_async rather than execute(): the inner operator is not a task of
        # its own, and its deferral names trigger_reentry, which this operator delegates.
        with explain_forbidden(self.kubernetes_conn_id):
            if self.deferrable:
                timeout = self.execution_timeout
                deadline = time.time() + timeout.total_seconds() if timeout else None
                self._defer_inner(lambda: self._inner.execute_async(context), deadline)
            else:
                self._inner.execute_sync(context)
        return self._finish(context)

    def _defer_inner(self, call: Any, deadline: float | None) -> None:
        """Run the inner operator's step; its deferral carries the task's deadline (`execution_timeout`).

        Airflow does not apply ``execution_timeout`` to a deferred task, and a deferral that times out
        fails the task without cleanup (the pod would keep its GPUs). So the deferral waits on
        `TrainingPodTrigger`, which hands back when the deadline passes; ``trigger_reentry`` then deletes
        the pod. The framework's own deferral timeout is padded past it, as a backstop only.
        """
        import datetime

        from airflow.sdk.exceptions import TaskDeferred

        from airflow_provider_llmops.triggers.training_pod import TrainingPodTrigger

        try:
            call()
        except TaskDeferred as deferred:
            if deadline is None:
                raise
            _, trigger_kwargs = deferred.trigger.serialize()
            backstop = max(0.0, deadline - time.time()) + 2 * self.poll_interval + 60
            raise TaskDeferred(
                trigger=TrainingPodTrigger(**trigger_kwargs, deadline=deadline),
                method_name=deferred.method_name,
                kwargs={**(deferred.kwargs or {}), DEADLINE_KWARG: deadline},
                timeout=datetime.timedelta(seconds=backstop),
            ) from None

    def trigger_reentry(
        self, context: Context, event: dict[str, Any], llmops_deadline: float | None = None
    ) -> dict[str, Any]:
        """Re-entry after KubernetesPodOperator's deferral: let it finish the pod, then hand off."""
        from airflow_provider_llmops.triggers.training_pod import DEADLINE_PASSED
        from airflow_provider_llmops.utils.training_kpo import explain_forbidden

        self._inner = self.build_pod_operator()
        with explain_forbidden(self.kubernetes_conn_id):
            if event.get(DEADLINE_PASSED):
                self._delete_timed_out_pod(event)
            self._defer_inner(lambda: self._inner.trigger_reentry(context, event), llmops_deadline)
        return self._finish(context)

    def _delete_timed_out_pod(self, event: dict[str, Any]) -> None:
        from airflow_provider_llmops.utils.training_kpo import PodLogPoller

        name, namespace = event["name"], event["namespace"]
        client = self._inner.client
        tail = PodLogPoller(client, name, namespace, self._inner.base_container_name, self.log).read_tail()
        try:
            client.delete_namespaced_pod(name=name, namespace=namespace)
            deleted = "deleted it"
        except Exception as err:
            deleted = f"could not delete it ({err})"
        log = "\n".join(f"  {line}" for line in tail) or "  (no log)"
        assert self.execution_timeout is not None
        raise TrainingLaunchError(
            f"training pod {namespace}/{name} still ran when the task's execution_timeout "
            f"({self.execution_timeout}) passed; {deleted}. Last {len(tail)} log lines:\n{log}"
        )

    execute_complete = trigger_reentry


class DeepSpeedMultiNodeTrainingOperator(_DeepSpeedPodBase):
    """Fine-tune on M pods x N GPUs: an Indexed Job plus a headless Service for torchrun's rendezvous.

    Pod 0 hosts the c10d rendezvous (``<job>-0.<service>:29500``) with a join timeout; the Job has
    ``backoffLimit: 0`` so one failed pod fails the whole run (all or nothing). The Service is created
    before the Job and deleted after it, also when the task fails or is killed. Example::

        DeepSpeedMultiNodeTrainingOperator(
            task_id="train",
            spec=spec,  # resources=ResourcesSpec(nodes=4, gpus_per_node=8)
            image="ghcr.io/org/llmops-trainer:0.1",
            namespace="team-nlp",
            queue_name="team-nlp",
        )

    :param rdzv_join_timeout_s: how long pods wait for each other at the rendezvous.
    """

    def __init__(self, *, rdzv_join_timeout_s: int = 900, **kwargs: Any) -> None:
        self.rdzv_join_timeout_s = rdzv_join_timeout_s
        self._service: tuple[str, str | None] | None = None
        self._job_name = ""
        self._namespace = "default"
        self._pod_logs: list[Any] = []
        super().__init__(**kwargs)

    def pod_settings(self) -> PodSettings:
        import dataclasses

        return dataclasses.replace(super().pod_settings(), rdzv_join_timeout_s=self.rdzv_join_timeout_s)

    def _check_launcher(self, job: TrainingJobSpec) -> None:
        if job.resources.nodes < 2:
            raise TrainingSpecError(
                "resources.nodes is 1: use DeepSpeedTrainingOperator for one pod", field="resources.nodes"
            )
        if self.launcher != "torchrun":
            raise TrainingSpecError(
                "multi-node runs use launcher='torchrun' (c10d rendezvous)", field="launcher"
            )
        super()._check_launcher(job)

    @staticmethod
    def _run_key(context: Context) -> str:
        ti = context["ti"]
        return f"{ti.dag_id}:{ti.task_id}:{context['run_id']}:{ti.map_index}:{ti.try_number}"

    @staticmethod
    def _run_label(context: Context) -> str:
        """A label value shared by every try of this task in this run (the Job name has the try)."""
        import hashlib

        ti = context["ti"]
        key = f"{ti.dag_id}:{ti.task_id}:{context['run_id']}:{ti.map_index}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def build_job_operator(self, context: Context) -> tuple[Any, Any]:
        """(the inner KubernetesJobOperator, the headless Service) for this run and try."""
        from airflow.providers.cncf.kubernetes.operators.job import JOB_NAME_PREFIX

        from airflow_provider_llmops.utils.training_kpo import training_job_operator_class
        from airflow_provider_llmops.utils.training_pod import (
            RDZV_PORT,
            headless_service,
            job_names,
            pod_operator_kwargs,
            trainer_command,
        )

        job = self.job
        settings = self.pod_settings()
        job_name, service_name = job_names(job, self._run_key(context))
        full_name = f"{JOB_NAME_PREFIX}{job_name}"  # what KubernetesJobOperator names the Job
        self._job_name = full_name
        command = trainer_command(
            job, settings, rdzv_endpoint=f"{full_name}-0.{service_name}:{RDZV_PORT}", rdzv_id=full_name
        )
        kwargs = pod_operator_kwargs(job, settings, command=command)
        kwargs["labels"] = {**kwargs["labels"], RUN_LABEL: self._run_label(context)}
        kwargs.update(
            name=job_name,
            random_name_suffix=False,
            subdomain=service_name,
            completion_mode="Indexed",
            completions=job.resources.nodes,
            parallelism=job.resources.nodes,
            backoff_limit=0,
            wait_until_job_complete=True,
            # Logs are read by this operator with bounded reads before the Job is deleted: the
            # Job operator would follow each pod's log stream, which a node may never close.
            get_logs=False,
            job_poll_interval=self.poll_interval,
            # The pods go with the Job, which this operator deletes when it has read their logs.
            on_finish_action="keep_pod",
        )
        for key in ("on_kill_action", "do_xcom_push"):
            kwargs.pop(key, None)
        kwargs.update(self._common_kpo_kwargs())
        inner = training_job_operator_class()(**kwargs)
        service = headless_service(service_name, full_name, self.namespace, kwargs["labels"])
        return inner, service

    def execute(self, context: Context) -> dict[str, Any]:
        if self._check_output_before_launch():
            self.log.info(
                "%s already holds this finished run (spec %s)", self.job.output, self.job.spec_hash()
            )
            return self._finish(context)
        from airflow.sdk.exceptions import TaskDeferred

        from airflow_provider_llmops.utils.training_kpo import explain_forbidden

        self._inner, service = self.build_job_operator(context)
        namespace = self.namespace or self._inner.hook.get_namespace() or "default"
        self._namespace = namespace
        with explain_forbidden(self.kubernetes_conn_id):
            self._stop_earlier_tries(context, namespace)
            self._inner.hook.core_v1_client.create_namespaced_service(namespace=namespace, body=service)
        self._service = (service.metadata.name, namespace)
        self.log.info("Created rendezvous Service %s/%s", namespace, service.metadata.name)
        deferred = False
        try:
            self._inner.execute(context)
        except TaskDeferred:
            deferred = True  # the Job runs on; execute_complete finishes and cleans up
            raise
        except Exception as err:
            self._fail_with_logs(err)
        finally:
            if not deferred:
                self._delete_job_and_service()
        self._copy_logs()
        return self._finish(context)

    def execute_complete(self, context: Context, event: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Re-entry after the Job operator's deferral: finish it, delete Job and Service, hand off."""
        self._inner, service = self.build_job_operator(context)
        self._namespace = self.namespace or self._inner.hook.get_namespace() or "default"
        self._service = (service.metadata.name, self._namespace)
        try:
            self._inner.execute_complete(context, event, **kwargs)
        except Exception as err:
            self._fail_with_logs(err)
        finally:
            self._delete_job_and_service()
        self._copy_logs()
        return self._finish(context)

    def _job_pods(self) -> list[Any]:
        selector = f"batch.kubernetes.io/job-name={self._job_name}"
        core = self._inner.hook.core_v1_client
        pods = core.list_namespaced_pod(namespace=self._namespace, label_selector=selector).items
        return sorted(pods, key=lambda p: p.metadata.name)

    def _copy_logs(self) -> None:
        """Each pod's log (read before the Job was deleted) into the task log."""
        for pod in self._pod_logs:
            self.log.info("Log of %s:", pod.metadata.name)
            for line in pod.tail_lines:
                self.log.info("[%s] %s", pod.metadata.name, line)
        self._pod_logs = []

    def _read_pod_logs(self) -> None:
        """Read every pod's log and status now, before the Job (and so its pods) is deleted."""
        from types import SimpleNamespace

        from airflow_provider_llmops.utils.training_kpo import PodLogPoller

        container = self._inner.base_container_name
        self._pod_logs = []
        try:
            pods = self._job_pods()
        except Exception as err:  # the Job's result matters more than its logs
            self.log.warning("Could not list the pods of Job %s: %s", self._job_name, err)
            return
        for pod in pods:
            poller = PodLogPoller(
                self._inner.hook.core_v1_client, pod.metadata.name, self._namespace, container, self.log
            )
            self._pod_logs.append(
                SimpleNamespace(metadata=pod.metadata, status=pod.status, tail_lines=poller.read_tail())
            )

    def _fail_with_logs(self, err: Exception) -> None:
        """Raise the Job's failure with each failed pod's exit code and log tail."""
        from airflow_provider_llmops.utils.training_kpo import forbidden_error, pod_failure_summary

        forbidden = forbidden_error(err, self.kubernetes_conn_id)
        if forbidden is not None:
            raise forbidden from err
        self._read_pod_logs()
        container = self._inner.base_container_name
        failed = [p for p in self._pod_logs if p.status and p.status.phase == "Failed"]
        parts = [f"training Job {self._namespace}/{self._job_name} failed: {err}"]
        for pod in failed or self._pod_logs:
            index = (pod.metadata.annotations or {}).get("batch.kubernetes.io/job-completion-index", "?")
            log = "\n".join(f"  {line}" for line in pod.tail_lines) or "  (no log)"
            parts.append(
                f"pod {pod.metadata.name} (index {index}): {pod_failure_summary(pod, container)}. "
                f"Last {len(pod.tail_lines)} log lines:\n{log}"
            )
        self._pod_logs = []
        raise TrainingLaunchError("\n".join(parts)) from err

    def _delete_job_and_service(self) -> None:
        """Delete the Job (its pods go with it) and the rendezvous Service, on success and failure."""
        if self._inner is not None and self._job_name:
            if not self._pod_logs:
                self._read_pod_logs()
            try:
                self._inner.job_client.delete_namespaced_job(
                    name=self._job_name, namespace=self._namespace, propagation_policy="Background"
                )
                self.log.info("Deleted Job %s/%s and its pods", self._namespace, self._job_name)
            except Exception as err:
                if getattr(err, "status", None) != 404:
                    self.log.warning("Could not delete Job %s/%s: %s", self._namespace, self._job_name, err)
        self._delete_service()

    def _stop_earlier_tries(self, context: Context, namespace: str) -> None:
        """Delete Jobs (and their Services) an earlier try left running, e.g. after a worker died.

        Two tries training into one output would corrupt its checkpoints; the new try resumes
        from the newest complete one instead.
        """
        selector = f"{RUN_LABEL}={self._run_label(context)}"
        jobs = self._inner.job_client.list_namespaced_job(namespace=namespace, label_selector=selector)
        for old in jobs.items:
            if old.metadata.name == self._job_name:
                continue  # this very try (a re-execution): KubernetesJobOperator refuses a duplicate
            self.log.warning("Deleting Job %s/%s left by an earlier try", namespace, old.metadata.name)
            self._inner.job_client.delete_namespaced_job(
                name=old.metadata.name, namespace=namespace, propagation_policy="Foreground"
            )
        services = self._inner.hook.core_v1_client.list_namespaced_service(
            namespace=namespace, label_selector=selector
        )
        for svc in services.items:
            self._inner.hook.core_v1_client.delete_namespaced_service(
                name=svc.metadata.name, namespace=namespace
            )

    def _delete_service(self) -> None:
        if self._service is None or self._inner is None:
            return
        name, namespace = self._service
        self._service = None
        try:
            self._inner.hook.core_v1_client.delete_namespaced_service(name=name, namespace=namespace)
            self.log.info("Deleted rendezvous Service %s/%s", namespace, name)
        except Exception as err:  # the Job's failure matters more than a leftover Service
            self.log.warning("Could not delete rendezvous Service %s/%s: %s", namespace, name, err)

    def on_kill(self) -> None:
        super().on_kill()
        self._delete_service()
