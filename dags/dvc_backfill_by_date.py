"""Pull and review the DVC dataset version each date saw: a daily DAG you can backfill.

Without a rev, `DvcPullOperator` and `DvcDatasetReviewOperator` resolve the last commit of the
branch at or before the run's logical date. So a backfill over past dates (the UI's *Backfill*
button, or ``POST /api/v2/backfills``) reproduces exactly the data each date saw, and a rerun of
a date gives the same result: folders are named after the date, the pull after the version.

Copy this file into your DAGs folder; point the ``llmops_dvc_default`` connection at your
project and the ``llmops_data_dir`` Variable at a shared volume.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_llmops.operators.dvc import DvcDatasetReviewOperator, DvcPullOperator

DATA_DIR = "{{ var.value.get('llmops_data_dir', '/tmp/airflow-llmops') }}"

with DAG(
    dag_id="llmops_dvc_backfill_by_date",
    description="The DVC dataset as of each logical date: pull and review it (backfillable)",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["llmops", "dvc", "example", "backfill"],
    # Every task is idempotent, so a retry after a transient error (a remote or lock timeout) is safe.
    default_args={"retries": 2, "retry_delay": timedelta(seconds=15)},
    doc_md=__doc__,
) as dag:
    # [START howto_operator_dvc_pull_by_date]
    pull = DvcPullOperator(
        task_id="pull_dataset",
        path="data/train",
        local_path=DATA_DIR + "/by-date/{{ ds_nodash }}/train",
    )
    review = DvcDatasetReviewOperator(
        task_id="review_dataset",
        path="data/train",
        output_dir=DATA_DIR + "/by-date/{{ ds_nodash }}/review",
    )
    # [END howto_operator_dvc_pull_by_date]
    pull >> review
