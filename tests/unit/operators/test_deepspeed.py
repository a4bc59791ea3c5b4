"""The training operators without a cluster: validation, the pod and Job objects field by field."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from airflow_provider_llmops.exceptions import (
    TrainingConfigError,
    TrainingOutputConflictError,
    TrainingSpecError,
)
from airflow_provider_llmops.operators.deepspeed import (
    RUN_LABEL,
    DeepSpeedLocalTrainingOperator,
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
from airflow_provider_llmops.utils.training_pod import KUEUE_QUEUE_LABEL, SPEC_ENV, TrainingVolume


def _spec(**changes) -> TrainingJobSpec:
    spec = TrainingJobSpec(
        name="support-bot",
        task="causal_lm",
        model=ModelSpec(path="/models/base"),
        data=DataSpec(path="/data/train.jsonl"),
        output="s3://bucket/runs/support-bot",
        deepspeed=DeepSpeedSpec(zero_stage=2, precision="bf16", micro_batch_size=2),
        resources=ResourcesSpec(gpus_per_node=8, shm_size="64Gi", cpu="32", memory="400Gi"),
        max_steps=100,
    )
    return spec.replace(**changes)


def _context(try_number: int = 1):
    ti = SimpleNamespace(dag_id="train_dag", task_id="train", map_index=-1, try_number=try_number)
    return {"ti": ti, "run_id": "manual__2026-12-01", "dag": SimpleNamespace()}


POD_ARGS = dict(
    image="ghcr.io/org/trainer:0.1",
    namespace="team-nlp",
    service_account_name="trainer",
    priority_class_name="training-high",
    queue_name="team-nlp-queue",
    node_selector={"nvidia.com/gpu.product": "H100"},
    tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
    affinity={
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    },
    volumes=[
        TrainingVolume("data", "/data", claim_name="nlp-data", read_only=True),
        TrainingVolume("models", "/models", host_path="/mnt/models", read_only=True),
    ],
    secrets={"AWS_SECRET_ACCESS_KEY": ("s3-creds", "secret")},
    env={"EXTRA": "1"},
)


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: team-nlp}}]
current-context: x
"""


@pytest.fixture
def kubeconfig(tmp_path, monkeypatch):
    """A client configuration only (nothing listens there): building a Job reads it, never calls it."""
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(path))
    return str(path)


def _serialize(obj):
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(obj)


def test_pod_fields():
    op = DeepSpeedTrainingOperator(task_id="train", spec=_spec(), **POD_ARGS)
    pod = op.build_pod_operator().build_pod_request_obj(_context(), dry_run=True)
    body = _serialize(pod)
    json.dumps(body)
    meta, spec = body["metadata"], body["spec"]
    assert meta["namespace"] == "team-nlp"
    assert meta["labels"][KUEUE_QUEUE_LABEL] == "team-nlp-queue"
    assert {k: meta["labels"][k] for k in ("dag_id", "task_id", "try_number")} == {
        "dag_id": "train_dag",
        "task_id": "train",
        "try_number": "1",
    }
    assert meta["labels"]["run_id"].startswith("manual__2026-12-01")
    assert meta["labels"]["llmops/spec-hash"] == _spec().spec_hash()
    assert spec["serviceAccountName"] == "trainer"
    assert spec["priorityClassName"] == "training-high"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "H100"}
    assert {t["key"] for t in spec["tolerations"]} == {"dedicated", "nvidia.com/gpu"}
    assert spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert spec["securityContext"] == {
        "fsGroup": 1000,
        "runAsGroup": 1000,
        "runAsNonRoot": True,
        "runAsUser": 1000,
    }
    (container,) = spec["containers"]
    assert container["image"] == "ghcr.io/org/trainer:0.1"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "8", "memory": "400Gi"}
    assert container["resources"]["requests"] == {"nvidia.com/gpu": "8", "cpu": "32", "memory": "400Gi"}
    assert container["command"] == [
        "python",
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "8",
        "--standalone",
        "--nnodes",
        "1",
        "-m",
        "airflow_provider_llmops.training",
        f"env:{SPEC_ENV}",
    ]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "nlp-data", "readOnly": True}
    assert volumes["models"]["hostPath"]["path"] == "/mnt/models"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"dshm": "/dev/shm", "data": "/data", "models": "/models"}
    env = {e["name"]: e for e in container["env"]}
    assert TrainingJobSpec.from_json(env[SPEC_ENV]["value"]) == _spec()
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "s3-creds", "key": "secret"}
    assert "value" not in env["AWS_SECRET_ACCESS_KEY"]
    assert env["TORCH_NCCL_ASYNC_ERROR_HANDLING"]["value"] == "1"
    assert env["LLMOPS_DIST_TIMEOUT_S"]["value"] == "1800"
    assert env["EXTRA"]["value"] == "1"


def test_deepspeed_launcher_command():
    op = DeepSpeedTrainingOperator(task_id="train", spec=_spec(), launcher="deepspeed", **{**POD_ARGS})
    pod = op.build_pod_operator().build_pod_request_obj(_context(), dry_run=True)
    assert pod.spec.containers[0].command[:3] == ["deepspeed", "--num_gpus", "8"]


def test_default_shm_sized_per_gpu():
    spec = _spec(resources=ResourcesSpec(gpus_per_node=4))
    op = DeepSpeedTrainingOperator(task_id="train", spec=spec, image="img", namespace="ns")
    pod = op.build_pod_operator().build_pod_request_obj(_context(), dry_run=True)
    shm = next(v for v in pod.spec.volumes if v.name == "dshm")
    assert shm.empty_dir.size_limit == "4Gi"


def test_multinode_job_and_service_fields(kubeconfig):
    spec = _spec(resources=ResourcesSpec(nodes=4, gpus_per_node=8))
    op = DeepSpeedMultiNodeTrainingOperator(
        task_id="train",
        spec=spec,
        rdzv_join_timeout_s=300,
        kpo_kwargs={"config_file": kubeconfig},
        **POD_ARGS,
    )
    inner, service = op.build_job_operator(_context())
    job = _serialize(inner.build_job_request_obj(_context()))
    json.dumps(job)
    name = job["metadata"]["name"]
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 4
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "team-nlp-queue"
    svc = _serialize(service)
    assert pod["spec"]["subdomain"] == svc["metadata"]["name"]
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == {"batch.kubernetes.io/job-name": name}
    assert svc["metadata"]["namespace"] == "team-nlp"
    cmd = pod["spec"]["containers"][0]["command"]
    assert cmd[cmd.index("--nnodes") + 1] == "4"
    assert cmd[cmd.index("--rdzv_backend") + 1] == "c10d"
    assert cmd[cmd.index("--rdzv_endpoint") + 1] == f"{name}-0.{svc['metadata']['name']}:29500"
    assert cmd[cmd.index("--rdzv_conf") + 1] == "join_timeout=300"
    assert len(f"{name}-3") <= 63


def test_multinode_names_change_per_try():
    spec = _spec(resources=ResourcesSpec(nodes=2, gpus_per_node=8))
    op = DeepSpeedMultiNodeTrainingOperator(task_id="train", spec=spec, **POD_ARGS)
    j1, s1 = op.build_job_operator(_context(1))
    j2, s2 = op.build_job_operator(_context(2))
    assert s1.metadata.name != s2.metadata.name
    assert j1.name != j2.name
    # One label for every try of the run: a new try finds and deletes what an earlier one left.
    assert j1.labels[RUN_LABEL] == j2.labels[RUN_LABEL] == s1.metadata.labels[RUN_LABEL]
    other_run = dict(_context(1), run_id="manual__other")
    assert op.build_job_operator(other_run)[0].labels[RUN_LABEL] != j1.labels[RUN_LABEL]


def test_impossible_deepspeed_combination_fails_at_parse_time():
    bad = _spec(deepspeed=DeepSpeedSpec(zero_stage=1, offload_param="cpu"))
    with pytest.raises(TrainingConfigError, match="needs ZeRO stage 3"):
        DeepSpeedTrainingOperator(task_id="train", spec=bad, image="img")


def test_single_pod_refuses_several_nodes():
    with pytest.raises(TrainingSpecError, match="runs one pod"):
        DeepSpeedTrainingOperator(
            task_id="train", spec=_spec(resources=ResourcesSpec(nodes=2, gpus_per_node=8)), image="img"
        )


def test_multinode_refuses_one_node():
    with pytest.raises(TrainingSpecError, match="use DeepSpeedTrainingOperator"):
        DeepSpeedMultiNodeTrainingOperator(task_id="train", spec=_spec(), image="img")


def test_deepspeed_launcher_without_gpus_refused():
    cpu = _spec(resources=ResourcesSpec(cpu_procs=2), deepspeed=DeepSpeedSpec())
    with pytest.raises(TrainingSpecError, match="deepspeed launcher counts GPUs"):
        DeepSpeedTrainingOperator(task_id="train", spec=cpu, image="img", launcher="deepspeed")


def test_local_gpu_count_mismatch_refused(tmp_path):
    from airflow_provider_llmops.utils.training_local import LocalTrainingLauncher, local_gpu_count

    spec = _spec(output=str(tmp_path / "out"), resources=ResourcesSpec(gpus_per_node=local_gpu_count() + 1))
    op = DeepSpeedLocalTrainingOperator(task_id="train", spec=spec, work_dir=str(tmp_path))
    assert isinstance(op.launcher, LocalTrainingLauncher)
    with pytest.raises(TrainingSpecError, match="this host has"):
        op.launcher.check()


def test_local_work_dir_is_rendered(tmp_path):
    """A templated work_dir is rendered like the other fields, never used as a literal '{{ ... }}' folder."""
    from jinja2 import Environment

    spec = _spec(output=str(tmp_path / "out"))
    op = DeepSpeedLocalTrainingOperator(
        task_id="train", spec=spec, work_dir=str(tmp_path) + "/{{ ds_nodash }}"
    )
    assert "work_dir" in op.template_fields
    op._do_render_template_fields(op, ("work_dir",), {"ds_nodash": "20240103"}, Environment(), set())
    assert str(op.launcher.work_dir) == f"{tmp_path}/20240103"


def test_root_user_refused():
    with pytest.raises(TrainingSpecError, match="non-root"):
        DeepSpeedTrainingOperator(task_id="train", spec=_spec(), image="img", pod_run_as_user=0)


def test_volume_needs_exactly_one_source():
    with pytest.raises(TrainingSpecError, match="exactly one of claim_name"):
        DeepSpeedTrainingOperator(
            task_id="train", spec=_spec(), image="img", volumes=[TrainingVolume("v", "/v")]
        )


def test_templated_spec_validated_after_rendering(tmp_path):
    spec = _spec(output=str(tmp_path / "out")).to_dict()
    spec["deepspeed"]["zero_stage"] = "{{ params.stage }}"
    # Templated: nothing is checked at parse time ...
    op = DeepSpeedTrainingOperator(task_id="train", spec=spec, image="img", output_uri="{{ params.out }}")
    op.spec["deepspeed"]["zero_stage"] = 7  # ... rendering produced a bad value
    op.output_uri = str(tmp_path / "out")
    with pytest.raises(TrainingSpecError, match="zero_stage"):
        op._validate()


def test_data_overrides_reach_the_spec():
    op = DeepSpeedTrainingOperator(
        task_id="train", spec=_spec(), image="img", data_rev="v2", data_md5="abc", output_uri="s3://b/o"
    )
    assert (op.job.data.rev, op.job.data.md5, op.job.output) == ("v2", "abc", "s3://b/o")
    assert op.job.spec_hash() != _spec().spec_hash()


def test_conflicting_output_refused_before_launch(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"spec_hash": "someone-else"}))
    op = DeepSpeedTrainingOperator(task_id="train", spec=_spec(), image="img", output_uri=str(out))
    with pytest.raises(TrainingOutputConflictError, match="another spec"):
        op.execute(_context())


def test_spec_from_yaml_file(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(_spec().to_yaml())
    op = DeepSpeedTrainingOperator(task_id="train", spec=str(path), image="img")
    assert op.job == _spec()


@pytest.mark.parametrize(
    ("spec", "declared"),
    [
        pytest.param(_spec(), "model://support-bot", id="literal-name"),
        pytest.param({**_spec().to_dict(), "name": "{{ params.model }}"}, None, id="templated-name"),
        pytest.param("/jobs/{{ params.job }}.yaml", None, id="spec-file"),
    ],
)
def test_model_asset_declared_at_parse_time_when_the_name_is_literal(spec, declared):
    from airflow.sdk import Asset, AssetAlias

    op = DeepSpeedTrainingOperator(task_id="train", spec=spec, image="img")
    if declared:
        # One Asset per model, known to the scheduler before any run: no alias, no dynamic Asset.
        assert op.outlets == [Asset(declared)] and op.asset_alias is None
    else:
        assert op.outlets == [AssetAlias(f"model:{op.dag_id}:train")] and op.asset is None
    off = DeepSpeedTrainingOperator(task_id="off", spec=spec, image="img", emit_asset=False)
    assert off.outlets == [] and off.asset is None and off.asset_alias is None


@pytest.mark.parametrize("uri", ["model://support-bot/3f2a9c", "model:///x"])
def test_model_uri_names_the_model_only(uri):
    from urllib.parse import urlsplit

    from airflow_provider_llmops.assets.model import sanitize_uri

    with pytest.raises(ValueError, match=r"model://<name>"):
        sanitize_uri(urlsplit(uri))
    assert sanitize_uri(urlsplit("model://support-bot/")).geturl() == "model://support-bot"


def test_importing_the_operators_loads_no_kubernetes():
    # Airflow's own start-up may read the cncf provider's metadata; the KPO module and client must not load.
    code = (
        "import sys\n"
        "import airflow.sdk\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_llmops.operators.deepspeed\n"
        "new = set(sys.modules) - before\n"
        "bad = sorted(m for m in new if m.split('.')[0] in ('kubernetes', 'torch', 'deepspeed', 'transformers')"
        " or m.startswith('airflow.providers.cncf.kubernetes'))\n"
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_deferral_re_entry_names_are_delegated():
    """Airflow resumes a deferred task by the inner operator's method name, called on ours."""
    import inspect

    from airflow.providers.cncf.kubernetes.operators.job import KubernetesJobOperator
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    assert 'method_name="trigger_reentry"' in inspect.getsource(KubernetesPodOperator.invoke_defer_method)
    assert 'method_name="execute_complete"' in inspect.getsource(KubernetesJobOperator.execute_deferrable)
    assert callable(DeepSpeedTrainingOperator.trigger_reentry)
    assert "execute_complete" in DeepSpeedMultiNodeTrainingOperator.__dict__


def test_on_kill_before_launch_is_harmless():
    op = DeepSpeedTrainingOperator(task_id="train", spec=_spec(), image="img")
    op.on_kill()
    DeepSpeedMultiNodeTrainingOperator(
        task_id="train", spec=_spec(resources=ResourcesSpec(nodes=2, gpus_per_node=8)), image="img"
    ).on_kill()
