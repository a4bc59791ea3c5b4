"""The provider metadata is valid, complete and points at classes that exist."""

from __future__ import annotations

import importlib
import json
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema
import pytest
from airflow.sdk import Asset

import airflow_provider_llmops
from airflow_provider_llmops.get_provider_info import declared_modules, get_provider_info
from tests.unit.provider_modules import provider_modules


def test_entry_point_is_registered():
    eps = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_llmops")
    ]
    assert len(eps) == 1
    assert eps[0].load()() == get_provider_info()


def test_provider_info_matches_airflow_schema():
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)
    assert get_provider_info()["versions"][0] == airflow_provider_llmops.__version__


def test_declared_modules_exist_and_every_module_is_declared():
    declared = set(declared_modules("hooks", "operators", "sensors", "triggers"))
    for module in declared:
        importlib.import_module(module)
    on_disk = {
        m
        for m in provider_modules()
        if len(m.split(".")) == 3 and m.split(".")[1] in ("hooks", "operators", "sensors", "triggers")
    }
    assert on_disk <= declared, f"modules missing from get_provider_info: {sorted(on_disk - declared)}"


def test_connection_types_point_at_hooks_with_that_conn_type():
    for conn in get_provider_info()["connection-types"]:
        module, _, cls = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), cls)
        assert hook.conn_type == conn["connection-type"]
        assert conn["connection-type"].startswith("llmops_")
        behaviour = conn["ui-field-behaviour"]
        assert set(behaviour) == {"hidden-fields", "relabeling", "placeholders"}


def test_dvc_asset_uris_are_validated_by_the_registered_handler():
    assert Asset("dvc://datasets/data/train/").uri == "dvc://datasets/data/train"
    with pytest.raises(ValueError, match="must name a tracked path"):
        Asset("dvc://datasets")
    with pytest.raises(ValueError, match="must name the DVC project"):
        Asset("dvc-review:///data/train")
