"""The ``llmops`` plugin pre-imports what DAG files use from the provider, in the DAG processor only."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest

from airflow_provider_llmops.plugins import preimport
from airflow_provider_llmops.plugins.preimport import (
    parse_time_modules,
    preimport_for_dag_processor,
    preimport_parse_time_modules,
)
from dev.harness.common import REPO_ROOT

SETTING = "AIRFLOW__DAG_PROCESSOR__PARSING_PRE_IMPORT_MODULES"

# Load the plugins as a process does, then report whether the llmops plugin loaded and what it imported.
LOAD_PLUGINS = """
import json, sys
from airflow import plugins_manager
plugins, errors = plugins_manager._get_plugins()
print(json.dumps({
    "plugin": "llmops" in [p.name for p in plugins],
    "errors": {k: v for k, v in errors.items() if "llmops" in k},
    "operators": sorted(m for m in sys.modules if m.startswith("airflow_provider_llmops.operators.")),
}))
"""


def _run(code: str, **env: str) -> dict:
    """Run `code` in a fresh interpreter and return the JSON of its last line."""
    clean = {k: v for k, v in os.environ.items() if k != SETTING}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**clean, **env},
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def setting_unset(monkeypatch):
    monkeypatch.delenv(SETTING, raising=False)


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
        f"""
        import json, sys
        from airflow_provider_llmops.plugins.preimport import preimport_parse_time_modules
        preimport_parse_time_modules()
        before = {{m for m in sys.modules if m.startswith("airflow_provider_llmops")}}
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(REPO_ROOT / "dags")!r})
        assert not bag.import_errors, bag.import_errors
        after = {{m for m in sys.modules if m.startswith("airflow_provider_llmops")}}
        print(json.dumps({{"dags": len(bag.dags), "imported_by_parse": sorted(after - before)}}))
        """
    )
    assert result["dags"] >= 5
    assert result["imported_by_parse"] == []


def test_the_dag_processor_pre_imports_when_it_loads_the_plugins():
    result = _run("import airflow.dag_processing.manager\n" + LOAD_PLUGINS)
    assert result["plugin"] and result["errors"] == {}
    assert "airflow_provider_llmops.operators.dvc" in result["operators"]


def test_other_processes_load_the_plugin_without_the_pre_import():
    # The API server, scheduler, triggerer and each task try load plugins too.
    assert _run(LOAD_PLUGINS) == {"plugin": True, "errors": {}, "operators": []}


def test_with_plugins_loaded_inside_import_airflow_the_command_line_tells():
    # [core] lazy_load_plugins=False loads plugins within `import airflow`, before the
    # dag-processor command imports its manager; the import is not circular.
    result = _run(
        """
        import json, sys
        sys.argv = ["airflow", "dag-processor"]
        import airflow
        print(json.dumps({"operators": "airflow_provider_llmops.operators.dvc" in sys.modules}))
        """,
        AIRFLOW__CORE__LAZY_LOAD_PLUGINS="False",
    )
    assert result == {"operators": True}


def test_parsing_pre_import_modules_off_turns_it_off():
    result = _run("import airflow.dag_processing.manager\n" + LOAD_PLUGINS, **{SETTING: "False"})
    assert result == {"plugin": True, "errors": {}, "operators": []}


def test_a_bad_setting_keeps_the_plugin_and_skips_the_pre_import():
    result = _run("import airflow.dag_processing.manager\n" + LOAD_PLUGINS, **{SETTING: "maybe"})
    assert result == {"plugin": True, "errors": {}, "operators": []}


def test_a_module_that_fails_to_import_is_logged_and_skipped(monkeypatch, caplog, capsys, setting_unset):
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
    monkeypatch.setenv(SETTING, value)
    assert preimport_parse_time_modules() == []


def test_outside_the_dag_processor_nothing_is_imported(monkeypatch, setting_unset):
    monkeypatch.setattr(preimport, "in_dag_processor", lambda: False)
    assert preimport_for_dag_processor() == []
