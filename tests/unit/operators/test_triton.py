"""Triton operators, sensor, trigger and asset URIs without a server: validation and serialisation."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from airflow_provider_llmops.assets.triton import sanitize_uri
from airflow_provider_llmops.exceptions import TritonConfigError, TritonModelNameError, TritonVersionError
from airflow_provider_llmops.operators.triton import TritonDeployOperator, TritonRollbackOperator
from airflow_provider_llmops.sensors.triton import TritonModelReadySensor
from airflow_provider_llmops.triggers.triton import TritonModelReadyTrigger


@pytest.mark.parametrize("name", ["../evil", "a/b", ".."])
def test_operators_refuse_bad_model_names_at_parse_time(name):
    with pytest.raises(TritonModelNameError):
        TritonDeployOperator(task_id="d", model_name=name, package_path="/p")
    with pytest.raises(TritonModelNameError):
        TritonModelReadySensor(task_id="s", model_name=name)


def test_deploy_needs_exactly_one_source():
    with pytest.raises(TritonConfigError):
        TritonDeployOperator(task_id="d", model_name="m")
    with pytest.raises(TritonConfigError):
        TritonDeployOperator(task_id="d", model_name="m", source="/x", package_path="/p")


@pytest.mark.parametrize("version", [0, -1, "0", "two"])
def test_non_positive_versions_fail_validation(version):
    op = TritonDeployOperator(task_id="d", model_name="m", package_path="/p", version=version)
    with pytest.raises(TritonVersionError):
        op.validate()
    rollback = TritonRollbackOperator(task_id="r", model_name="m", to_version=version)
    with pytest.raises(TritonVersionError):
        rollback.validate()


def test_templated_model_name_is_checked_after_rendering():
    from airflow.sdk import DAG

    with DAG("triton_unit", schedule=None):
        op = TritonDeployOperator(task_id="d", model_name="{{ params.m }}", package_path="/p")
    assert op.asset is None and op.asset_alias is not None
    op.model_name = "../rendered"
    with pytest.raises(TritonModelNameError):
        op.validate()


def test_literal_model_declares_the_triton_asset():
    op = TritonDeployOperator(task_id="d", model_name="minilm", package_path="/p", server_name="prod")
    assert op.asset is not None and op.asset.uri == "triton://prod/minilm"
    assert op.asset in op.outlets


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("triton://prod/minilm", True),
        ("triton:///minilm", False),
        ("triton://prod/", False),
        ("triton://prod/a/b", False),
        ("triton://prod/..", False),
    ],
)
def test_triton_uri_sanitizer(uri, ok):
    if ok:
        assert sanitize_uri(urlsplit(uri)).path == "/minilm"
    else:
        with pytest.raises(ValueError):
            sanitize_uri(urlsplit(uri))


def test_trigger_serialize_is_stable():
    trigger = TritonModelReadyTrigger("c", "m", version="2", poke_interval=1, timeout=30)
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_llmops.triggers.triton.TritonModelReadyTrigger"
    assert kwargs == {
        "triton_conn_id": "c",
        "model_name": "m",
        "version": "2",
        "poke_interval": 1.0,
        "timeout": 30.0,
    }
    assert TritonModelReadyTrigger(**kwargs).serialize() == (path, kwargs)
    assert "max_transient_errors" in TritonModelReadyTrigger("c", "m", max_transient_errors=9).serialize()[1]


def test_serving_never_imports_airflow():
    import json
    import subprocess
    import sys

    code = (
        "import json, sys, pkgutil, importlib, airflow_provider_llmops.serving as s\n"
        "for m in pkgutil.walk_packages(s.__path__, prefix='airflow_provider_llmops.serving.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
