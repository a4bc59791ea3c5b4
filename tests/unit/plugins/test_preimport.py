"""The ``llmops`` plugin pre-imports what DAG files use from the provider, and only that."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest

from airflow_provider_llmops.plugins import preimport
from airflow_provider_llmops.plugins.preimport import parse_time_modules, preimport_parse_time_modules


def _run(code: str, **env: str) -> dict:
    """Run `code` in a fresh interpreter (sys.modules as a DAG processor starts) and return its JSON line."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env={**os.environ, **env},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_lists_the_registered_operator_sensor_and_asset_modules():
    modules = parse_time_modules()
    assert len(modules) == len(set(modules))
    for module in (
        "airflow_provider_llmops.operators.dvc",
        "airflow_provider_llmops.operators.deepspeed",
        "airflow_provider_llmops.sensors.dvc",
        "airflow_provider_llmops.assets.dvc",
        "airflow_provider_llmops.assets.model",
        "airflow_provider_llmops.training.spec",
    ):
        assert module in modules
    assert not [m for m in modules if ".hooks." in m or ".triggers." in m]


def test_parsing_the_example_dags_after_the_preimport_imports_none_of_the_provider():
    result = _run(
        """
        import json, sys
        from airflow_provider_llmops.plugins.preimport import preimport_parse_time_modules
        preimport_parse_time_modules()
        before = {m for m in sys.modules if m.startswith("airflow_provider_llmops")}
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder="dags")
        assert not bag.import_errors, bag.import_errors
        after = {m for m in sys.modules if m.startswith("airflow_provider_llmops")}
        print(json.dumps({"dags": len(bag.dags), "imported_by_parse": sorted(after - before)}))
        """
    )
    assert result["dags"] >= 5
    assert result["imported_by_parse"] == []


def test_loading_the_plugins_preimports_even_when_airflow_loads_them_on_import():
    # [core] lazy_load_plugins=False loads plugins inside `import airflow`: no circular import.
    result = _run(
        """
        import json, sys
        import airflow
        from airflow import plugins_manager
        plugins_manager.ensure_plugins_loaded()
        print(json.dumps({
            "errors": {k: v for k, v in plugins_manager.get_import_errors().items() if "llmops" in k},
            "loaded": "airflow_provider_llmops.operators.dvc" in sys.modules,
        }))
        """,
        AIRFLOW__CORE__LAZY_LOAD_PLUGINS="False",
    )
    assert result == {"errors": {}, "loaded": True}


def test_parsing_pre_import_modules_off_turns_it_off():
    result = _run(
        """
        import json, sys
        from airflow import plugins_manager
        plugins_manager.ensure_plugins_loaded()
        print(json.dumps({"loaded": sorted(m for m in sys.modules if ".operators." in m and "llmops" in m)}))
        """,
        AIRFLOW__DAG_PROCESSOR__PARSING_PRE_IMPORT_MODULES="False",
    )
    assert result == {"loaded": []}


def test_a_module_that_fails_to_import_is_logged_and_skipped(monkeypatch, caplog, capsys):
    broken = "airflow_provider_llmops.operators.no_such_module"
    monkeypatch.setattr(
        preimport, "parse_time_modules", lambda: [broken, "airflow_provider_llmops.assets.dvc"]
    )
    with caplog.at_level(logging.WARNING, logger=preimport.__name__):
        assert preimport_parse_time_modules() == ["airflow_provider_llmops.assets.dvc"]
    logged = caplog.text + capsys.readouterr().out  # Airflow's structlog set-up prints to stdout
    assert f"could not pre-import {broken} for DAG parsing: No module named" in logged


@pytest.mark.parametrize("value", ["False", "false", "0"])
def test_the_setting_is_read_at_load(monkeypatch, value):
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__PARSING_PRE_IMPORT_MODULES", value)
    assert preimport_parse_time_modules() == []
