"""Import the modules that DAG files use from the provider once, in the DAG processor's manager.

The DAG processor parses each file in a fresh fork of its manager process. So that a parse does not
re-import Airflow each time, the manager first imports the ``airflow.*`` modules that the file names
(``[dag_processor] parsing_pre_import_modules``, on by default). Official providers live under
``airflow.providers`` and get this for free; a third-party package does not, so every parse of a DAG
using this provider imported our operator modules again (about a third of a 20-task DAG's parse).

The manager loads plugins before it forks. The ``llmops`` plugin's ``on_load`` therefore imports the
operator and sensor modules the provider registers, its Asset URI handlers and the training spec
types, and every parse finds them loaded. It does so only in ``airflow dag-processor`` (the other
components load plugins too, each task try among them, and have no use for it); the same setting
turns both pre-imports off. For this to cover a parse, an operator module imports at its top what
its constructor uses (the checks, the spec types) and imports inside methods only what a running
task needs.

Example::

    preimport_parse_time_modules()  # ["airflow_provider_llmops.operators.dvc", ...]
"""

from __future__ import annotations

import importlib
import logging
import sys

from airflow_provider_llmops.get_provider_info import PACKAGE, declared_modules, get_provider_info

__all__ = [
    "in_dag_processor",
    "parse_time_modules",
    "preimport_for_dag_processor",
    "preimport_parse_time_modules",
]

log = logging.getLogger(__name__)

# Imported by DAG files but not an operator or sensor module: the spec types a DAG builds.
_ALSO_IMPORTED_BY_DAGS = (f"{PACKAGE}.training.spec",)


def parse_time_modules() -> list[str]:
    """The registered operator and sensor modules, the Asset URI handlers' modules and the spec types."""
    modules = declared_modules("operators", "sensors")
    modules += [entry["handler"].rpartition(".")[0] for entry in get_provider_info()["asset-uris"]]
    modules += _ALSO_IMPORTED_BY_DAGS
    return list(dict.fromkeys(modules))


def in_dag_processor() -> bool:
    """True in the ``airflow dag-processor`` process (also the one `airflow standalone` starts)."""
    # Only that command imports the manager module. With [core] lazy_load_plugins off, plugins load
    # inside `import airflow`, before the command module: then only the command line tells.
    return "airflow.dag_processing.manager" in sys.modules or sys.argv[1:2] == ["dag-processor"]


def preimport_parse_time_modules() -> list[str]:
    """Import `parse_time_modules()` unless ``parsing_pre_import_modules`` is off; return those imported.

    A module that fails to import is logged and skipped: this only saves time, and the DAG file that
    imports it reports the same error as an import error of its own.
    """
    from airflow.configuration import conf

    if not conf.getboolean("dag_processor", "parsing_pre_import_modules", fallback=True):
        return []
    imported = []
    for module in parse_time_modules():
        try:
            importlib.import_module(module)
        except Exception as exc:
            log.warning("llmops plugin: could not pre-import %s for DAG parsing: %s", module, exc)
        else:
            imported.append(module)
    return imported


def preimport_for_dag_processor() -> list[str]:
    """The plugin's ``on_load``: `preimport_parse_time_modules()` in the DAG processor only; never raises.

    An exception out of ``on_load`` would make Airflow drop the plugin, and the review pages with it.
    """
    try:
        return preimport_parse_time_modules() if in_dag_processor() else []
    except Exception as exc:
        log.warning("llmops plugin: skipped the pre-import for DAG parsing: %s", exc)
        return []
