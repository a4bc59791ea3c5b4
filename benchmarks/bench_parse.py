"""What the scheduler pays for our operators: DAG parse and module import, each against a baseline.

Three baselines for the parse of a 20-task DAG (a sensor, then 19 pulls declaring the dataset
Asset): the same DAG of EmptyOperators (the floor); EmptyOperators with the same Asset outlets
(what the lineage alone costs: the first Asset of a file makes Airflow discover every provider's
URI handlers); and the DAG a user would write without the provider (a BashSensor and
BashOperators calling `dvc`, with the same Assets as outlets). A report-only row compares with
an official provider's operator as deep as ours (common.sql's SQLExecuteQueryOperator).

Every sample runs in a fresh interpreter that first does what the DAG processor's manager does
before it forks a parse: load the plugins (its Job does, for listeners), which runs the
``llmops`` plugin's pre-import of the provider's parse-time modules, import the ``airflow.*``
modules that the file names, and freeze the heap for the garbage collector (``gc.freeze()``).
The ``*_no_preimport`` rows turn ``[dag_processor] parsing_pre_import_modules`` off, so that
each parse imports everything, Airflow's modules and ours.

    python -m benchmarks.bench_parse --repeats 9
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.reporting import Result, Samples, measure, suite_main, time_in_fresh_interpreter

TASKS = 20
DVC_TASK = (
    "DvcPullOperator(task_id=f'step_{i}', path='data/train.jsonl', local_path='/tmp/data', repo='/srv/ds') "
    "if i else DvcUpdateSensor(task_id=f'step_{i}', path='data/train.jsonl', repo='/srv/ds')"
)
TRAIN_IMPORTS = (
    "from airflow_provider_llmops.operators.deepspeed import DeepSpeedTrainingOperator\n"
    "from airflow_provider_llmops.training.spec import DataSpec, ModelSpec, TrainingJobSpec\n"
    "SPEC = TrainingJobSpec(name='bench', task='causal_lm', model=ModelSpec(path='/models/base'), "
    "data=DataSpec(path='/data/train.jsonl'), output='/runs/bench')"
)
TRAIN_TASK = "DeepSpeedTrainingOperator(task_id=f'step_{i}', spec=SPEC, image='trainer:1')"
BASH_TASK = (
    "BashOperator(task_id=f'step_{i}', bash_command='dvc pull data/train.jsonl', "
    "outlets=[Asset('dvc://ds/data/train.jsonl')]) "
    "if i else BashSensor(task_id=f'step_{i}', bash_command='dvc data status --granular data/train.jsonl')"
)
SQL_TASK = (
    "SQLExecuteQueryOperator(task_id=f'step_{i}', conn_id='db', sql='select 1', "
    "outlets=[Asset('dvc://ds/data/train.jsonl')] if i else [])"
)
EMPTY_ASSET_TASK = (
    "EmptyOperator(task_id=f'step_{i}', outlets=[Asset('dvc://ds/data/train.jsonl')] if i else [])"
)


def _write_dag(folder: Path, name: str, imports: str, make_task: str) -> Path:
    body = [
        "from __future__ import annotations",
        "import pendulum",
        "from airflow.sdk import DAG, Asset",
        imports,
        "",
        f"with DAG(dag_id={name!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1), tags=['bench']):",
        "    prev = None",
        f"    for i in range({TASKS}):",
        f"        t = {make_task}",
        "        if prev is not None:",
        "            prev >> t",
        "        prev = t",
    ]
    path = folder / f"{name}.py"
    path.write_text("\n".join(body) + "\n")
    return path


def _parse(path: Path, preimport: bool = True) -> Callable[[], float]:
    setup = (
        "import importlib, airflow.sdk\n"
        "import airflow.dag_processing.manager\n"  # as in `airflow dag-processor`, the plugin's cue
        "from airflow import plugins_manager\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "from airflow.utils.file import iter_airflow_imports\n"
        "plugins_manager.ensure_plugins_loaded()\n"
    )
    if preimport:
        setup += f"for m in iter_airflow_imports({str(path)!r}): importlib.import_module(m)\n"
    else:
        setup = (
            "import os\nos.environ['AIRFLOW__DAG_PROCESSOR__PARSING_PRE_IMPORT_MODULES'] = 'False'\n" + setup
        )
    # The manager freezes its heap before the parsing loop, so a parse's collections skip it.
    setup += "import gc\ngc.freeze()\n"
    body = f"bag = DagBag(dag_folder={str(path)!r}); assert not bag.import_errors, bag.import_errors"
    return lambda: time_in_fresh_interpreter(body, setup)


def bench_dag_parse(repeats: int) -> dict[str, Samples]:
    tmp = Path(tempfile.mkdtemp(prefix="llmops-bench-"))
    empty = _write_dag(
        tmp,
        "bench_empty",
        "from airflow.providers.standard.operators.empty import EmptyOperator",
        "EmptyOperator(task_id=f'step_{i}')",
    )
    empty_assets = _write_dag(
        tmp,
        "bench_empty_assets",
        "from airflow.providers.standard.operators.empty import EmptyOperator",
        EMPTY_ASSET_TASK,
    )
    bash = _write_dag(
        tmp,
        "bench_bash",
        "from airflow.providers.standard.operators.bash import BashOperator\n"
        "from airflow.providers.standard.sensors.bash import BashSensor",
        BASH_TASK,
    )
    provider = _write_dag(
        tmp,
        "bench_provider",
        "from airflow_provider_llmops.operators.dvc import DvcPullOperator\n"
        "from airflow_provider_llmops.sensors.dvc import DvcUpdateSensor",
        DVC_TASK,
    )
    official = _write_dag(
        tmp,
        "bench_official",
        "from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator",
        SQL_TASK,
    )
    training = _write_dag(tmp, "bench_training", TRAIN_IMPORTS, TRAIN_TASK)
    for path in (empty, empty_assets, bash, official, provider, training):
        _parse(path)()  # writes the bytecode caches, which every later parse on a worker finds
    return {
        "dag_parse": measure(_parse(empty), _parse(provider), repeats),
        "dag_parse_vs_assets": measure(_parse(empty_assets), _parse(provider), repeats),
        "dag_parse_vs_bash": measure(_parse(bash), _parse(provider), repeats),
        "dag_parse_vs_official": measure(_parse(official), _parse(provider), repeats),
        "dag_parse_training": measure(_parse(empty), _parse(training), repeats),
        "dag_parse_no_preimport": measure(_parse(empty, False), _parse(provider, False), repeats),
        "dag_parse_vs_bash_no_preimport": measure(_parse(bash, False), _parse(provider, False), repeats),
    }


def bench_operator_import(repeats: int) -> Samples:
    """Import the provider's operator and sensor modules (with airflow.sdk) vs `import airflow.sdk` alone."""
    from tests.unit.provider_modules import provider_modules

    modules = [m for m in provider_modules() if m.split(".")[1] in ("operators", "sensors")]
    candidate = "import airflow.sdk\n" + "\n".join(f"import {m}" for m in modules)
    return measure(
        lambda: time_in_fresh_interpreter("import airflow.sdk"),
        lambda: time_in_fresh_interpreter(candidate),
        repeats,
    )


def run_all(repeats: int = 5, quick: bool = False) -> dict[str, Result]:
    """The suite's metrics for benchmarks/run.py."""
    parse = bench_dag_parse(repeats)
    return {
        "dag_parse": Result(
            parse["dag_parse"], 1.2, f"DAG parse, {TASKS} tasks: provider operators vs EmptyOperator"
        ),
        "dag_parse_vs_assets": Result(
            parse["dag_parse_vs_assets"],
            1.2,
            "the same DAG vs EmptyOperators with the same Asset outlets (the lineage's own cost)",
        ),
        "dag_parse_vs_bash": Result(
            parse["dag_parse_vs_bash"],
            1.2,
            "the same DAG vs BashSensor + BashOperators calling dvc, with the same Asset outlets",
        ),
        "dag_parse_vs_official": Result(
            parse["dag_parse_vs_official"],
            None,
            "the same DAG vs common.sql's SQLExecuteQueryOperator (an official provider's operator, "
            "also three classes deep), with the same Asset outlets",
        ),
        "dag_parse_training": Result(
            parse["dag_parse_training"],
            1.2,
            f"DAG parse, {TASKS} DeepSpeedTrainingOperator tasks vs EmptyOperator",
        ),
        "dag_parse_no_preimport": Result(
            parse["dag_parse_no_preimport"],
            None,
            "the first DAG again, with parsing_pre_import_modules off: each parse imports every module",
        ),
        "dag_parse_vs_bash_no_preimport": Result(
            parse["dag_parse_vs_bash_no_preimport"],
            None,
            "the Bash comparison again, with parsing_pre_import_modules off",
        ),
        "operator_import": Result(
            bench_operator_import(repeats), 1.15, "import: provider operators vs `import airflow.sdk`"
        ),
    }


def main(argv: list[str] | None = None) -> int:
    return suite_main(run_all, __doc__, argv, repeats=5)


if __name__ == "__main__":
    sys.exit(main())
