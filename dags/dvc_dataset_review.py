"""Review a new DVC dataset version and ask a human to approve it before training.

Copy this file into your DAGs folder and change the Params' defaults (or pass them when
you trigger a run).

Which dataset version a run uses, and what that means for backfills:

* `DvcUpdateSensor` always watches the *present*: the tip of the branch `rev` (or the newest
  tag matching `tag_pattern`). It has no notion of the run's logical date, so a backfilled run
  of this DAG still waits for, and hands on, the version that is current when the sensor runs.
* `DvcPullOperator` and `DvcDatasetReviewOperator` take the rev they are given; here that is
  the git sha the sensor pushed, so pull, review, approval and training all see exactly one
  version. Given no rev (`rev=None`, `new_rev=None`), they resolve the last commit of the
  branch at or before the run's logical date instead, so a backfill over past dates
  reproduces the data each date saw. To backfill, copy this DAG without the sensor and leave
  those revs empty (or pass an explicit tag or sha per run); a sensor-driven DAG like this
  one is for following new versions as they land.

Every folder is named after the dataset's git sha, never the clock, so a rerun or backfill of
the same version reuses its pulled data and review.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from airflow_provider_llmops.operators.approval import DatasetApprovalOperator
from airflow_provider_llmops.operators.dvc import DvcDatasetReviewOperator, DvcPullOperator
from airflow_provider_llmops.sensors.dvc import DvcUpdateSensor

DAG_ID = "llmops_dvc_dataset_review"
# The llmops_dvc connection (extras: repo, rev, remote...). Operators take it at parse time,
# so it is a constant rather than a Param; the `repo` Param overrides its repository per run.
DVC_CONN_ID = "llmops_dvc_default"

# Every path is derived from the dataset's git sha (the idempotency key), never from the clock:
# a rerun or backfill of the same version reuses the same folders.
DATASET_SHA = "{{ ti.xcom_pull(task_ids='wait_for_dataset')['sha'] }}"

DOC_MD = """
### Review a DVC dataset version, then approve it for training

1. **wait_for_dataset** (`DvcUpdateSensor`, deferrable) waits until the md5 of `path` at the
   tip of `rev` differs from `since_md5` (empty: from the md5 of the last successful run, else
   from the md5 when waiting starts) and pushes `{rev, sha, md5}`.
2. **pull_dataset** (`DvcPullOperator`) materialises that exact git sha under `workdir`.
3. **review_dataset** (`DvcDatasetReviewOperator`) compares it with `baseline_rev` (empty: the
   version the last successful run reviewed, else the previous change of `path`) and writes
   `review.md` plus PNG charts (files, schema, label counts, text lengths, samples).
4. **approve_dataset** (`DatasetApprovalOperator`, human in the loop) shows the review's key tables
   and flagged shifts in the *Required actions* view, with a link to the full review and its charts
   (also the *Dataset review* link in review_dataset's Details). *Approve* lets training run;
   *Reject* skips it. The task's log then says who decided, and when.
5. **train** is a placeholder: replace it with `DeepSpeedTrainingOperator`.

Trigger it manually with a config, or give it a schedule (e.g. `"@hourly"`) so each run waits
for the next dataset version.

**Backfills:** the sensor always watches the branch tip (or newest tag), whatever the run's
logical date, so a backfilled run of *this* DAG reviews the current version. Pull and review
with no rev resolve the version as of the run's logical date instead: for a backfill over past
dates, drop the sensor and leave `rev`/`new_rev` empty.
"""

with DAG(
    dag_id=DAG_ID,
    description="DVC dataset version -> review (Markdown + charts) -> human approval -> training",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["llmops", "dvc", "example", "hitl"],
    doc_md=DOC_MD,
    # Native rendering keeps None params None (e.g. repo -> use the connection).
    render_template_as_native_obj=True,
    params={
        "repo": Param(
            None,
            type=["null", "string"],
            title="DVC project",
            description=f"Git URL or local path of the DVC project. Empty: the {DVC_CONN_ID} connection's.",
        ),
        "path": Param(
            "data/train",
            type="string",
            minLength=1,
            title="Dataset path",
            description="The DVC-tracked folder or file, relative to the project root (e.g. data/train).",
        ),
        "rev": Param(
            "main",
            type="string",
            minLength=1,
            title="Branch to follow",
            description="Branch whose tip is watched.",
        ),
        "since_md5": Param(
            None,
            type=["null", "string"],
            pattern=r"^[0-9a-f]{32}(\.dir)?$",
            title="Already-trained version (md5)",
            description=(
                "Leave empty to wait for a version newer than the last successful run's. Otherwise the "
                "DVC md5 of the version already trained on, as in the dataset's .dvc file: 32 hex "
                "characters, ending in .dir for a folder (e.g. 3f2c9a0b1d4e5f60718293a4b5c6d7e8.dir). The "
                "sensor waits for any other md5; a value of another shape is refused when you trigger."
            ),
        ),
        "baseline_rev": Param(
            None,
            type=["null", "string"],
            title="Compare with (rev)",
            description="Tag, branch or sha to review against. Empty: the version the last successful run reviewed.",
        ),
        "workdir": Param(
            "/tmp/airflow-llmops",  # noqa: S108 - example default; point it at a shared volume
            type="string",
            minLength=1,
            title="Work folder",
            description="Where pulled datasets and reviews are written; use a volume the workers share.",
        ),
    },
) as dag:
    # [START howto_operator_dvc_dataset_review]
    wait_for_dataset = DvcUpdateSensor(
        task_id="wait_for_dataset",
        path="{{ params.path }}",
        rev="{{ params.rev }}",
        since_md5="{{ params.since_md5 }}",
        repo="{{ params.repo }}",
        dvc_conn_id=DVC_CONN_ID,
        deferrable=True,
        poke_interval=60,
        timeout=timedelta(days=1).total_seconds(),
    )

    pull_dataset = DvcPullOperator(
        task_id="pull_dataset",
        path="{{ params.path }}",
        rev=DATASET_SHA,
        local_path="{{ params.workdir }}/datasets/" + DATASET_SHA,
        repo="{{ params.repo }}",
        dvc_conn_id=DVC_CONN_ID,
    )

    review_dataset = DvcDatasetReviewOperator(
        task_id="review_dataset",
        path="{{ params.path }}",
        new_rev=DATASET_SHA,
        old_rev="{{ params.baseline_rev }}",
        output_dir="{{ params.workdir }}/reviews/" + DATASET_SHA,
        data_dir="{{ params.workdir }}/review-data",
        repo="{{ params.repo }}",
        dvc_conn_id=DVC_CONN_ID,
    )

    # The Required actions view shows the review's approval_markdown (flagged shifts, record and
    # schema changes, label shares) with a link to the full review and its charts (also the review
    # task's "Dataset review" link); once answered, the task says who decided and when.
    approve_dataset = DatasetApprovalOperator(
        task_id="approve_dataset",
        review_task_id="review_dataset",
        response_timeout=timedelta(days=3),
    )

    @task
    def train(dataset: dict) -> dict:
        """Placeholder for DeepSpeedTrainingOperator: runs only when the dataset was approved."""
        print(
            f"Training on {dataset['path']} @ {dataset['sha']} (md5 {dataset['md5']}) in {dataset['local_path']}"
        )
        return {"dataset_sha": dataset["sha"], "dataset_md5": dataset["md5"]}

    wait_for_dataset >> pull_dataset >> review_dataset >> approve_dataset >> train(pull_dataset.output)
    # [END howto_operator_dvc_dataset_review]
