"""Airflow itself (CLI on the isolated SQLite home) recognises the installed provider and its plugin."""

from __future__ import annotations

import json

import pytest

from airflow_provider_llmops import __version__
from airflow_provider_llmops.plugins.preimport import parse_time_modules
from dev.harness.airflow import probe_dag_processor, run_airflow


def test_providers_list_shows_the_provider(airflow_db):
    providers = json.loads(run_airflow(["providers", "list", "--output", "json"], airflow_db))
    ours = [p for p in providers if p["package_name"] == "airflow-provider-llmops"]
    assert ours and ours[0]["version"] == __version__


def test_providers_get_describes_the_provider(airflow_db):
    short = json.loads(
        run_airflow(["providers", "get", "airflow-provider-llmops", "--output", "json"], airflow_db)
    )
    assert short == [{"Provider": "airflow-provider-llmops", "Version": __version__}]
    full = json.loads(
        run_airflow(["providers", "get", "airflow-provider-llmops", "--full", "--output", "json"], airflow_db)
    )
    types = {c["connection-type"] for c in full[0]["connection-types"]}
    assert types == {"llmops_dvc", "llmops_triton"}


def test_connection_types_appear_in_providers_hooks(airflow_db):
    hooks = json.loads(run_airflow(["providers", "hooks", "--output", "json"], airflow_db))
    by_type = {h["connection_type"]: h for h in hooks}
    assert by_type["llmops_dvc"]["class"] == "airflow_provider_llmops.hooks.dvc.DvcHook"
    assert by_type["llmops_triton"]["class"] == "airflow_provider_llmops.hooks.triton.TritonHook"
    assert by_type["llmops_dvc"]["package_name"] == "airflow-provider-llmops"
    assert by_type["llmops_triton"]["hook_name"] == "Triton Inference Server"


@pytest.mark.parametrize("lazy_load_plugins", ["True", "False"])
def test_dag_processor_parses_with_the_provider_modules_already_imported(tmp_path, lazy_load_plugins):
    """A real `airflow dag-processor`: the manager loads the plugins, and its parses (forks) inherit our modules."""
    probe = probe_dag_processor(tmp_path, {"AIRFLOW__CORE__LAZY_LOAD_PLUGINS": lazy_load_plugins})
    assert probe.inherited(set(parse_time_modules())), probe


def test_dag_processor_with_parsing_pre_import_modules_off_parses_without_them(tmp_path):
    probe = probe_dag_processor(tmp_path, {"AIRFLOW__DAG_PROCESSOR__PARSING_PRE_IMPORT_MODULES": "False"})
    assert probe.parses, probe
    for parse in probe.parses:
        assert not set(parse_time_modules()) & parse.loaded
