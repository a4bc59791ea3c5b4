"""What the images and the compose stack run is what the operators launch and the tests exercise.

Read statically from docker/*.Dockerfile and the rendered compose file: no Docker engine is needed.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from packaging.requirements import Requirement

from airflow_provider_llmops.operators.deepspeed import DeepSpeedTrainingOperator
from airflow_provider_llmops.serving.package import DEFAULT_NUMPY_REQUIREMENT, TEMPLATES
from airflow_provider_llmops.training.spec import DataSpec, ModelSpec, ResourcesSpec, TrainingJobSpec
from airflow_provider_llmops.utils.training_pod import SPEC_ENV, PodSettings, pod_operator_kwargs
from dev.harness import elasticsearch as es_harness
from dev.harness import triton as triton_harness
from dev.harness.common import REPO_ROOT
from tests.unit.docker.dockerfiles import Dockerfile


def _declared_extras() -> set[str]:
    """The keys of pyproject.toml's [project.optional-dependencies] (no TOML parser on Python 3.10)."""
    text = (REPO_ROOT / "pyproject.toml").read_text()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*) = \[", section, re.MULTILINE))


EXTRAS = _declared_extras()
CONSTRAINTS = (REPO_ROOT / "constraints.txt").read_text()
# The NGC tritonserver release of the Triton inside each nvidia-pytriton wheel the harness may run.
NGC_RELEASE_OF_PYTRITON = {"0.7.0": ("2.51", "24.10")}


def _pin(dist: str) -> str:
    match = re.search(rf"^{re.escape(dist)}==(\S+)$", CONSTRAINTS, re.MULTILINE)
    assert match, f"{dist} is not pinned in constraints.txt"
    return match.group(1)


def _constraints_python() -> str:
    match = re.search(r"--python-version (\d+\.\d+)", CONSTRAINTS)
    assert match
    return match.group(1)


def _one_gpu_spec() -> TrainingJobSpec:
    return TrainingJobSpec(
        name="support-bot",
        task="causal_lm",
        model=ModelSpec(path="/models/base"),
        data=DataSpec(path="/data/train.jsonl"),
        output="/ckpt/support-bot",
        resources=ResourcesSpec(gpus_per_node=1),
    )


def _extras(text: str) -> list[str]:
    """The extras of ``/opt/airflow-provider-llmops[a,b]`` requirements in `text`."""
    found = re.findall(r"/opt/airflow-provider-llmops\[([^\]]+)\]", text)
    assert found, "the provider is not installed with extras"
    return [e.strip() for group in found for e in group.split(",")]


# -- the trainer image ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trainer() -> Dockerfile:
    return Dockerfile.read("trainer.Dockerfile")


def test_trainer_cmd_is_the_one_gpu_pod_command(trainer):
    operator = DeepSpeedTrainingOperator(task_id="train", spec=_one_gpu_spec(), image="llmops-trainer:dev")
    pod = operator.build_pod_operator()
    assert trainer.last("CMD").exec_form() == pod.cmds
    assert pod.cmds[pod.cmds.index("-m", 3) + 1] == "airflow_provider_llmops.training"
    assert pod.cmds[-1] == f"env:{SPEC_ENV}"
    # No wrapper around it: the pod's command replaces ENTRYPOINT, and `docker run` runs the same argv.
    assert trainer.last("ENTRYPOINT").exec_form() == []


def test_trainer_module_is_the_trainer_entry_point():
    main = REPO_ROOT / "airflow_provider_llmops" / "training" / "__main__.py"
    tree = ast.parse(main.read_text())
    imported = {
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert ("airflow_provider_llmops.training.trainer", "main") in imported


def test_trainer_launchers_resolve_in_the_image_venv(trainer):
    env = trainer.env()
    venv = env["VIRTUAL_ENV"]
    assert env["PATH"].split(":")[0] == f"{venv}/bin"  # `python` and `deepspeed` of the pod's argv
    assert f'uv venv --python "{trainer.args["PYTHON_VERSION"]}" {venv}' in trainer.run_text().replace(
        "${PYTHON_VERSION}", trainer.args["PYTHON_VERSION"]
    )
    assert f"--python {venv}/bin/python" in trainer.run_text()
    assert trainer.args["PYTHON_VERSION"] == _constraints_python()


def test_trainer_runs_as_the_pod_user(trainer):
    uid = PodSettings(image="x").run_as_user
    assert trainer.last("USER").args == f"{uid}:{uid}"
    assert f"--uid {uid}" in trainer.run_text()


def test_trainer_env_matches_the_pod_env(trainer):
    kwargs = pod_operator_kwargs(_one_gpu_spec(), PodSettings(image="x"))
    pod_env = {v.name: v.value for v in kwargs["env_vars"]}
    image_env = trainer.env()
    shared = {k: image_env[k] for k in image_env if k in pod_env}
    assert {"PYTHONUNBUFFERED", "HF_HUB_OFFLINE", "TORCH_NCCL_ASYNC_ERROR_HANDLING"} <= set(shared)
    assert shared == {k: pod_env[k] for k in shared}


def test_trainer_cuda_major_matches_torch(trainer):
    image = trainer.base_image()
    match = re.match(r"nvidia/cuda:(\d+)\.\d+\.\d+-devel-ubuntu\d+\.\d+$", image)
    assert match, image
    runtime = _pin("nvidia-cuda-runtime")
    assert runtime.split(".")[0] == match.group(1), f"torch's CUDA runtime {runtime} vs {image}"
    assert _pin("torch") == "2.15.0"
    assert trainer.args["UV_IMAGE"].endswith(":" + _bootstrap_uv_version())


def _bootstrap_uv_version() -> str:
    match = re.search(r'^UV_VERSION="([\d.]+)"', (REPO_ROOT / "dev" / "bootstrap.sh").read_text(), re.M)
    assert match
    return match.group(1)


# -- extras, constraints and the build context ---------------------------------------------------


@pytest.mark.parametrize("name", ["trainer.Dockerfile", "airflow.Dockerfile"])
def test_images_install_declared_extras_under_the_constraints(name):
    dockerfile = Dockerfile.read(name)
    run = dockerfile.run_text()
    declared = EXTRAS
    assert set(_extras(run)) <= declared
    assert "-c /opt/airflow-provider-llmops/constraints.txt" in run
    assert "constraints.txt" in dockerfile.copy_sources()


def test_trainer_installs_the_train_extra():
    # s3: fsspec's s3fs for s3:// outputs (checkpoints, model, manifest) and data.
    assert _extras(Dockerfile.read("trainer.Dockerfile").run_text()) == ["train", "s3"]


def test_compose_airflow_extras_are_declared(compose):
    extras = compose["services"]["airflow"]["build"]["args"]["PROVIDER_EXTRAS"].split(",")
    assert set(extras) <= EXTRAS
    assert "s3" in extras  # the DVC remote on MinIO


def test_airflow_image_versions_match_the_constraints():
    airflow = Dockerfile.read("airflow.Dockerfile")
    assert airflow.args["AIRFLOW_VERSION"] == _pin("apache-airflow")
    assert airflow.args["PYTHON_VERSION"] == _constraints_python()
    assert airflow.base_image() == f"apache/airflow:{_pin('apache-airflow')}-python{_constraints_python()}"


def _dockerignore_allows(path: str, rules: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins (``!`` re-includes); parents count too."""
    allowed = True
    parts = path.strip("/").split("/")
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule[1:] if negate else rule
        pattern = pattern.strip("/")
        for depth in range(1, len(parts) + 1):
            candidate = "/".join(parts[:depth])
            if fnmatch.fnmatchcase(candidate, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(parts[depth - 1], pattern[3:])
            ):
                allowed = negate
                break
    return allowed


def test_dockerignore_lets_every_copy_source_through_and_nothing_else():
    rules = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for name in ("trainer.Dockerfile", "triton.Dockerfile", "airflow.Dockerfile"):
        for source in Dockerfile.read(name).copy_sources():
            assert (REPO_ROOT / source).exists(), f"{name} copies {source}, which does not exist"
            assert _dockerignore_allows(source, rules), f"{name} copies {source}, which .dockerignore drops"
    for private in (".venv/bin/python", ".git/config", ".llmops/x", "tests/conftest.py"):
        assert not _dockerignore_allows(private, rules), private
    assert not _dockerignore_allows("airflow_provider_llmops/__pycache__/x.pyc", rules)


def test_compose_builds_the_images_from_the_repository_root(compose):
    for service, dockerfile in (("airflow", "airflow.Dockerfile"), ("triton", "triton.Dockerfile")):
        build = compose["services"][service]["build"]
        assert Path(build["context"]) == REPO_ROOT
        assert build["dockerfile"] == f"docker/{dockerfile}"


# -- the Triton image ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def triton() -> Dockerfile:
    return Dockerfile.read("triton.Dockerfile")


def test_triton_release_is_the_harness_release(triton):
    version = triton.args["PYTRITON_VERSION"]
    assert version == triton_harness.PYTRITON_VERSION
    _, ngc = NGC_RELEASE_OF_PYTRITON[version]
    assert triton.base_image() == f"nvcr.io/nvidia/tritonserver:{ngc}-py3"
    assert f"nvidia_pytriton-{version}-py3-none-manylinux_2_35_x86_64.whl" == triton_harness.WHEEL_NAME


def _template_imports() -> set[str]:
    names: set[str] = set()
    for template in Path(TEMPLATES).glob("*.py"):
        for node in ast.walk(ast.parse(template.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "__future__"}


def _triton_requirements() -> dict[str, Requirement]:
    lines = (REPO_ROOT / "docker" / "triton-requirements.txt").read_text().splitlines()
    reqs = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return {r.name: r for r in reqs}


def test_triton_image_installs_what_the_generated_models_import():
    # triton_python_backend_utils is the python backend's own module, inside every Triton.
    assert set(_triton_requirements()) == _template_imports() - {"triton_python_backend_utils"}


def test_triton_requirements_are_the_pins_packages_record():
    reqs = _triton_requirements()
    for name in ("onnxruntime", "tokenizers"):  # package.py records the worker's versions (constraints)
        assert str(reqs[name].specifier) == f"=={_pin(name)}"
    numpy = reqs["numpy"]
    assert str(numpy) in triton_harness.MODEL_ENV_PACKAGES
    pinned = next(iter(numpy.specifier)).version
    assert Requirement(DEFAULT_NUMPY_REQUIREMENT).specifier.contains(pinned)


def test_triton_model_env_is_on_path_and_the_stub_python(triton):
    env = triton.env()
    assert env["PATH"].split(":")[0] == "/opt/llmops/model-env/bin"  # the stub looks up python3 there
    assert triton.args["PYTHON_VERSION"] == _constraints_python()
    run = triton.run_text()
    assert (
        "/opt/llmops/model-env/bin/python -m pip install --no-cache-dir -r /opt/llmops/triton-requirements.txt"
        in run
    )
    assert f'"{triton.args["PYTHON_VERSION"]}"' in run.split("triton_stub.py", 1)[1]


def test_triton_wheel_hash_is_the_harness_wheel(triton):
    import hashlib

    wheel = triton_harness.download_wheel()
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == triton.args["PYTRITON_SHA256"]


def test_triton_stub_script_installs_a_stub_that_loads(tmp_path):
    """docker/triton_stub.py, as the image runs it: the linked stub finds its libraries and starts."""
    wheel = triton_harness.download_wheel()
    backend = tmp_path / "tritonserver" / "backends" / "python"
    script = REPO_ROOT / "docker" / "triton_stub.py"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run(
        [sys.executable, str(script), str(wheel), str(tmp_path / "pytriton"), str(backend), python],
        check=True,
        capture_output=True,
        timeout=120,
    )
    stub = backend / "triton_python_backend_stub"
    assert stub.is_symlink()
    # Without Triton's arguments it stops at once, but only after the loader resolved libcudart (via
    # the RPATH, through the link) and libpython: a missing library would fail before main().
    done = subprocess.run([str(stub)], capture_output=True, text=True, timeout=30)
    assert "error while loading shared libraries" not in done.stderr, done.stderr
    assert "arguments" in done.stdout + done.stderr, done.stdout + done.stderr


def test_triton_stub_script_names_the_pythons_it_has(tmp_path):
    script = REPO_ROOT / "docker" / "triton_stub.py"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            str(triton_harness.download_wheel()),
            str(tmp_path),
            str(tmp_path),
            "2.7",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "no python backend stub for Python 2.7" in done.stderr and "3.11" in done.stderr


def test_triton_runs_in_explicit_mode_on_the_compose_model_repository(triton, compose):
    cmd = triton.last("CMD").exec_form()
    assert cmd[0] == "tritonserver"
    flags = dict(arg.split("=", 1) for arg in cmd[1:])
    assert flags["--model-control-mode"] == "explicit"  # TritonDeployOperator loads and unloads
    conn = json.loads(compose["services"]["airflow"]["environment"]["AIRFLOW_CONN_LLMOPS_TRITON_DEFAULT"])
    assert flags["--model-repository"] == conn["extra"]["model_repository"]
    assert compose["services"]["triton"].get("command") is None  # compose runs the image's CMD


# -- the compose stack: connections, paths, versions ------------------------------------------------


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    return {m["target"]: m["source"] for m in service.get("volumes", []) if m["type"] == "volume"}


def _set_connections(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in compose["services"]["airflow"]["environment"].items():
        if key.startswith("AIRFLOW_CONN_"):
            json.loads(value)  # the JSON form the README documents
            monkeypatch.setenv(key, value)


def _published(service: dict[str, Any]) -> set[int]:
    return {int(p["target"]) for p in service.get("ports", [])}


def test_triton_connection_reaches_the_triton_service(compose, monkeypatch):
    from airflow_provider_llmops.hooks.triton import TritonHook

    _set_connections(compose, monkeypatch)
    endpoint = TritonHook().endpoint
    services = compose["services"]
    assert endpoint.host in services
    assert {endpoint.port, endpoint.grpc_port} <= _published(services[endpoint.host])
    # The deploy operator (in Airflow) writes where Triton reads: one volume at the same path.
    repo = endpoint.model_repository
    assert _mounts(services["airflow"])[repo] == _mounts(services[endpoint.host])[repo]


def test_elasticsearch_connection_reaches_the_harness_version(compose, monkeypatch):
    from airflow_provider_llmops.hooks.elasticsearch import ElasticsearchVectorHook

    _set_connections(compose, monkeypatch)
    (url,) = ElasticsearchVectorHook().endpoint.hosts
    parsed = urlsplit(url)
    service = compose["services"][parsed.hostname]
    assert parsed.port in _published(service)
    assert service["image"] == f"docker.elastic.co/elasticsearch/elasticsearch:{es_harness.DEFAULT_VERSION}"
    assert "elasticsearch" in compose["services"]["airflow"]["depends_on"]


def test_dvc_connection_uses_the_minio_bucket_the_init_service_creates(compose, monkeypatch):
    from airflow_provider_llmops.hooks.dvc import DvcHook

    _set_connections(compose, monkeypatch)
    hook = DvcHook()
    settings = hook.settings
    services = compose["services"]
    minio_env = services["minio"]["environment"]
    endpoint = urlsplit(settings.remote_config["endpointurl"])
    assert endpoint.hostname == "minio" and endpoint.port in _published(services["minio"])
    # login/password become the S3 keys DVC uses (by the remote URL's scheme).
    overrides = hook._remote_overrides(None, settings.remote)  # type: ignore[arg-type]
    assert overrides["access_key_id"] == minio_env["MINIO_ROOT_USER"]
    assert overrides["secret_access_key"] == minio_env["MINIO_ROOT_PASSWORD"]
    bucket = urlsplit(settings.remote_url).netloc
    init = " ".join(services["minio-init"]["command"])
    assert f"mc mb --ignore-existing llmops/{bucket}" in init
    assert services["minio-init"]["image"] == services["minio"]["image"]
    assert services["airflow"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    # The DVC project path of the connection is mounted into Airflow.
    binds = {m["target"] for m in services["airflow"]["volumes"] if m["type"] == "bind"}
    assert settings.repo in binds


def test_compose_mount_points_exist_group_writable_in_the_images(compose):
    """An empty named volume takes its first image's directory: both images make it gid-0 writable."""
    airflow_run = Dockerfile.read("airflow.Dockerfile").run_text()
    for target in _mounts(compose["services"]["airflow"]):
        assert re.search(rf"chmod 2775 [^\n]*{re.escape(target)}(\s|$)", airflow_run), target
    assert "chmod 2775 /models" in Dockerfile.read("triton.Dockerfile").run_text()
    assert compose["services"]["airflow"]["user"].endswith(":0")


def test_compose_binds_only_to_loopback(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", (name, port)


def test_airflow_command_is_standalone(compose):
    assert compose["services"]["airflow"]["command"] == ["standalone"]


def test_trainer_cmd_starts_the_trainer_on_the_pod_env(trainer, tmp_path):
    """The image's CMD, run here with the pod's environment, reaches the trainer's own preflight.

    A CPU spec with one process has the same argv as the one-GPU pod (``--nproc_per_node 1``); its
    model folder is missing on purpose, so the trainer stops at its first check, after torchrun
    started it and it read the spec from ``$LLMOPS_JOB_SPEC``.
    """
    import os

    spec = _one_gpu_spec().replace(
        resources=ResourcesSpec(cpu_procs=1),
        model=ModelSpec(path=str(tmp_path / "no-such-model")),
        output=str(tmp_path / "out"),
    )
    kwargs = pod_operator_kwargs(spec, PodSettings(image="x"))
    cmd = trainer.last("CMD").exec_form()
    assert cmd == kwargs["cmds"]
    env = {**os.environ, **{v.name: v.value for v in kwargs["env_vars"]}}
    done = subprocess.run(
        [sys.executable, *cmd[1:]], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "[llmops-train] error:" in output and "no-such-model" in output, output[-3000:]
