"""Import the modules that DAG files use from the provider once, in the DAG processor's manager.

The DAG processor parses each file in a fresh fork of its manager process. So that a parse does not
re-import Airflow each time, the manager first imports the ``airflow.*`` modules that the file names
(``[dag_processor] parsing_pre_import_modules``, on by default). Official providers live under
``airflow.providers`` and get this for free; a third-party package does not, so every parse of a DAG
using this provider imported our operator modules again (about a third of a 20-task DAG's parse).

The manager loads plugins before it forks. The ``llmops`` plugin's ``on_load`` therefore imports the
operator and sensor modules the provider registers, its Asset URI handlers and the training spec
types, and every parse finds them loaded. The same setting turns both off. For this to cover a
parse, an operator module imports at its top what its constructor uses (the checks, the spec
types) and imports inside methods only what a running task needs. Other components that load
plugins (scheduler, API server, triggerer, workers) pay the import once per process (a few ms).

Example::

    preimport_parse_time_modules()  # ["airflow_provider_llmops.operators.dvc", ...]
"""

from __future__ import annotations

import importlib
import logging

from airflow_provider_llmops.get_provider_info import PACKAGE, get_provider_info

__all__ = ["parse_time_modules", "preimport_parse_time_modules"]

log = logging.getLogger(__name__)

# Imported by DAG files but not an operator or sensor module: the spec types a DAG builds.
_ALSO_IMPORTED_BY_DAGS = (f"{PACKAGE}.training.spec",)


def parse_time_modules() -> list[str]:
    """The registered operator and sensor modules, the Asset URI handlers' modules and the spec types."""
    info = get_provider_info()
    modules = [
        module
        for kind in ("operators", "sensors")
        for entry in info[kind]
        for module in entry["python-modules"]
    ]
    modules += [entry["handler"].rpartition(".")[0] for entry in info["asset-uris"]]
    modules += _ALSO_IMPORTED_BY_DAGS
    return list(dict.fromkeys(modules))


def preimport_parse_time_modules() -> list[str]:
    """Import `parse_time_modules()` unless ``parsing_pre_import_modules`` is off; return those imported.

    A module that fails to import is logged and skipped: this only saves time, and the DAG file that
    imports it reports the same error as an import error of its own.
    """
    from airflow.sdk.configuration import conf

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
