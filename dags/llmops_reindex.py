"""Re-embed the corpus with the model Triton serves now: one index version per dataset rev, backfillable.

Daily, and by hand: pull the corpus as of the run's logical date (the last commit of the branch
at or before it), embed it through the served version of ``stdlib_minilm`` into the index
``stdlib-docs-build-g<dataset sha>-<Triton version>``, gate it (kNN recall against exact
neighbours, held-out nDCG), then point the readers' alias ``stdlib-docs`` at it.

Idempotent: the index name comes from the dataset commit and the model version only, and
document ids from the passage ids, so a rerun of a date (or two dates that saw the same
dataset version) reuses one index instead of duplicating it. A backfill over past dates
(the UI's *Backfill*, or ``POST /api/v2/backfills``) builds each date's index version but leaves
the live alias alone: only scheduled and manual runs move it.

Connections and Variables as in ``llmops_finetune_and_deploy``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_llmops.assets.elasticsearch import es_asset
from airflow_provider_llmops.operators.dvc import DvcPullOperator
from airflow_provider_llmops.operators.elasticsearch import ElasticsearchKnnIndexOperator

DVC_CONN_ID = "llmops_dvc_default"
TRITON_CONN_ID = "llmops_triton_default"
ES_CONN_ID = "elasticsearch_default"
MODEL_NAME = "stdlib_minilm"
ALIAS = "stdlib-docs"
BUILD_ALIAS = f"{ALIAS}-build"
PULL = "ti.xcom_pull(task_ids='pull_dataset')"
DATA_DIR = "{{ var.value.get('llmops_data_dir', '/tmp/airflow-llmops') }}"

with DAG(
    dag_id="llmops_reindex",
    description="Re-embed the corpus as of each date with the served Triton model into its own index version",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["llmops", "example", "dvc", "triton", "elasticsearch", "backfill"],
    doc_md=__doc__,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=15)},
    params={
        "repo": Param(
            None,
            type=["null", "string"],
            title="DVC project",
            description=f"Git URL or local path of the DVC project. Empty: the {DVC_CONN_ID} connection's.",
        ),
        "dataset_path": Param(
            "data/llmops",
            type="string",
            minLength=1,
            title="Dataset path",
            description="The DVC-tracked folder with corpus/ and eval/ (dvc.yaml's llmops_datasets stage).",
        ),
    },
) as dag:
    # [START howto_llmops_reindex]
    pull_dataset = DvcPullOperator(
        task_id="pull_dataset",
        path="{{ params.dataset_path }}",
        local_path=DATA_DIR + "/reindex/{{ ds_nodash }}",
        repo="{{ params.repo }}",
        dvc_conn_id=DVC_CONN_ID,
        # A pull reads the dataset, it does not change it: an event on its Asset would start
        # llmops_finetune_and_deploy (scheduled on that Asset) again.
        emit_asset=False,
    )
    index_corpus = ElasticsearchKnnIndexOperator(
        task_id="index_corpus",
        alias=BUILD_ALIAS,
        elasticsearch_conn_id=ES_CONN_ID,
        input_path="{{ " + PULL + "['local_path'] }}/corpus",
        # "g" + 12 hex digits, as `git describe` writes a commit (and llmops_finetune_and_deploy):
        # native rendering would turn an all-digit prefix into a number.
        dataset_rev="{{ 'g' + " + PULL + "['sha'][:12] }}",
        encoder="triton",  # the served version, pinned for the whole build
        model=MODEL_NAME,
        triton_conn_id=TRITON_CONN_ID,
        # The served model's max_batch_size (llmops_finetune_and_deploy packages it with 64); more would
        # still work, the client sending at most max_batch_size texts per request.
        embed_batch_size=64,
        chunk_size=2000,
        chunk_overlap=0,
        min_recall=0.9,
        # No comparison with the index behind the build alias: that may be another dataset version
        # (a backfill, an older rev), whose held-out scores are not comparable.
        gate_tolerance=1.0,
        judgments_path="{{ " + PULL + "['local_path'] }}/eval/judgments.jsonl",
        replicas=0,
        keep_indices=4,
    )
    # [END howto_llmops_reindex]

    @task(outlets=[es_asset(ES_CONN_ID, ALIAS)])
    def switch_alias(ti: Any = None, dag_run: Any = None, outlet_events: Any = None) -> dict[str, Any]:
        """Point the readers' alias at the new index (not in backfills: they rebuild the past)."""
        from airflow_provider_llmops.hooks.elasticsearch import ElasticsearchVectorHook
        from airflow_provider_llmops.utils.es_index import EsIndexManager

        built = ti.xcom_pull(task_ids="index_corpus")
        manager = EsIndexManager(ElasticsearchVectorHook(ES_CONN_ID).get_conn())
        current = manager.alias_target(ALIAS)
        run_type = getattr(dag_run, "run_type", "")
        backfill = getattr(run_type, "value", run_type) == "backfill"
        moved = not backfill and current != built["index"]
        if moved:
            manager.switch_alias(ALIAS, built["index"], current)
        result = {
            "alias": ALIAS,
            "index": manager.alias_target(ALIAS),
            "built_index": built["index"],
            "moved": moved,
            "model_version": built["model_version"],
            "dataset_rev": built["dataset_rev"],
        }
        if moved:
            outlet_events[es_asset(ES_CONN_ID, ALIAS)].extra = {**result, "previous_index": current}
        return result

    pull_dataset >> index_corpus >> switch_alias()
