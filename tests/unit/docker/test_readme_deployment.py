"""The README's Kubernetes and Compose sections: their copy-paste connections work, their claims hold."""

from __future__ import annotations

import json
import re

import pytest

from airflow_provider_llmops.training.spec import DataSpec, ModelSpec, ResourcesSpec, TrainingJobSpec
from airflow_provider_llmops.utils.training_pod import PodSettings, pod_operator_kwargs
from dev.harness.common import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


KUBERNETES = _section("Deploying on Kubernetes")
COMPOSE = _section("Local stack with Docker Compose")


def _exports(text: str) -> dict[str, str]:
    return dict(re.findall(r"export (AIRFLOW_CONN_\w+)='(.*?)'", text, flags=re.DOTALL))


def test_kubernetes_section_sets_every_connection_the_operators_use():
    assert set(_exports(KUBERNETES)) == {
        "AIRFLOW_CONN_KUBERNETES_DEFAULT",
        "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT",
        "AIRFLOW_CONN_LLMOPS_TRITON_DEFAULT",
    }
    # The Helm values map the same variables.
    helm = set(re.findall(r"envName: (AIRFLOW_CONN_\w+)", KUBERNETES))
    assert helm == {"AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", "AIRFLOW_CONN_LLMOPS_TRITON_DEFAULT"}


@pytest.fixture
def readme_connections(monkeypatch):
    for name, value in _exports(KUBERNETES).items():
        json.loads(value)
        monkeypatch.setenv(name, value)


def test_readme_triton_connection_resolves(readme_connections):
    from airflow_provider_llmops.hooks.triton import TritonHook

    endpoint = TritonHook().endpoint
    assert (endpoint.host, endpoint.port, endpoint.grpc_port) == ("triton.serving.svc", 8000, 8001)
    assert endpoint.model_repository == "s3://ml-models/triton"
    assert f"--model-repository={endpoint.model_repository}" in KUBERNETES


def test_readme_elasticsearch_connection_resolves(readme_connections):
    from airflow_provider_llmops.hooks.elasticsearch import ElasticsearchVectorHook

    endpoint = ElasticsearchVectorHook().endpoint
    assert endpoint.hosts == ("https://llmops-es-http.search.svc:9200",)
    assert endpoint.auth == "basic"
    assert endpoint.ca_certs == "/etc/elasticsearch/ca.crt"


def test_readme_kubernetes_connection_is_in_cluster(readme_connections):
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection("kubernetes_default")
    assert conn.conn_type == "kubernetes"
    assert conn.extra_dejson == {"in_cluster": True}


def test_readme_gpu_claims_match_the_pod():
    spec = TrainingJobSpec(
        name="bot",
        task="causal_lm",
        model=ModelSpec(path="/models/base"),
        data=DataSpec(path="/data/train.jsonl"),
        output="/ckpt/bot",
        resources=ResourcesSpec(gpus_per_node=8, memory="400Gi", cpu="32"),
    )
    kwargs = pod_operator_kwargs(spec, PodSettings(image="x"))
    resources = kwargs["container_resources"]
    assert resources.limits["nvidia.com/gpu"] == resources.requests["nvidia.com/gpu"] == "8"
    assert resources.limits["memory"] == resources.requests["memory"] == "400Gi"
    assert "cpu" in resources.requests and "cpu" not in resources.limits
    assert kwargs["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "`nvidia.com/gpu` `Exists`\n  `NoSchedule`" in KUBERNETES
    assert "nvidia.com/gpu=present:NoSchedule" in KUBERNETES  # a taint that toleration matches
    assert kwargs["security_context"].run_as_user == 1000
    env = {v.name: v.value for v in kwargs["env_vars"]}
    assert env["HF_HUB_OFFLINE"] == "1" and "`HF_HUB_OFFLINE=1`" in KUBERNETES
    dshm = next(v for v in kwargs["volumes"] if v.name == "dshm")
    assert dshm.empty_dir.medium == "Memory" and dshm.empty_dir.size_limit == "8Gi"  # 1Gi per GPU


def test_compose_section_names_the_stack_the_file_defines(compose):
    services = compose["services"]
    assert "9.5.4" in services["elasticsearch"]["image"] and "9.5.4" in COMPOSE
    assert services["airflow"]["build"]["args"]["PROVIDER_EXTRAS"] in COMPOSE
    for name in ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",):
        assert services["airflow"]["environment"][name] in COMPOSE
    assert "python -m dev.docker_checks" in COMPOSE
