"""The README's copy-paste operator examples build valid tasks inside a DAG."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG

README = Path(__file__).resolve().parents[2] / "README.md"


def _operator_examples() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    return [b for b in blocks if "airflow_provider_llmops.operators" in b]


def test_readme_operator_examples_build_a_dag():
    examples = _operator_examples()
    assert examples, "README has no operator example"
    for code in examples:
        with DAG("readme_example", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
            exec(compile(code, str(README), "exec"), {})
        if "operators.dvc" in code:
            assert {"wait_for_dataset", "pull", "review", "publish"} <= set(dag.task_ids)
        if "operators.triton" in code:
            assert {"deploy_embedder", "wait_minilm", "rollback_embedder"} <= set(dag.task_ids)
        if "operators.deepspeed" in code:
            assert {"train", "train_big", "train_local"} <= set(dag.task_ids)
        if "operators.elasticsearch" in code:
            assert dag.task_ids and {"index_docs", "rollback_docs"} & set(dag.task_ids)
