"""Every file in dags/ loads without import errors and follows the project's DAG conventions."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS_DIR))


def test_no_import_errors(dagbag: DagBag):
    assert dagbag.import_errors == {}


def test_every_dag_file_defines_a_dag(dagbag: DagBag):
    files_with_dags = {Path(dag.fileloc).name for dag in dagbag.dags.values()}
    dag_files = {p.name for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_")}
    assert dag_files and dag_files == files_with_dags


def test_dags_have_tags_owner_and_no_catchup_surprises(dagbag: DagBag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert "llmops" in dag.tags, f"{dag_id} should be tagged 'llmops' so users can filter examples"
        assert dag.doc_md, f"{dag_id} has no doc_md"
