"""Thin operators for kNN indexing on Elasticsearch: build a versioned index behind an alias, roll back.

`ElasticsearchKnnIndexOperator` validates its arguments once rendered, then hands the work to
`airflow_provider_llmops.utils.es_indexer.KnnIndexBuilder` (read, chunk, embed, bulk load,
gate, atomic alias switch, retention). Lineage: the Asset ``elasticsearch://<cluster>/<alias>``
(cluster defaults to the connection id) with the index version as its event extra; when alias
or cluster are templated, the AssetAlias ``elasticsearch:<dag_id>:<task_id>``.

Nothing heavy is imported here: elasticsearch-py, numpy and the encoders load in ``execute()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_llmops.assets.elasticsearch import check_alias_name, es_alias, es_asset
from airflow_provider_llmops.assets.events import emit_event
from airflow_provider_llmops.utils.chunking import ChunkingSpec
from airflow_provider_llmops.utils.es_eval import GateSpec
from airflow_provider_llmops.utils.templating import ValidateAfterRender, is_templated, require_str

if TYPE_CHECKING:
    from airflow.sdk import Asset, AssetAlias, Context

    from airflow_provider_llmops.hooks.elasticsearch import ElasticsearchVectorHook
    from airflow_provider_llmops.utils.embedding import Encoder
    from airflow_provider_llmops.utils.es_indexer import IndexBuild, KnnIndexBuilder

__all__ = ["ElasticsearchAliasRollbackOperator", "ElasticsearchKnnIndexOperator"]

ENCODERS = ("local", "triton")
_SIMILARITIES = ("cosine", "dot_product", "l2_norm", "max_inner_product")
_INDEX_TYPES = ("hnsw", "int8_hnsw", "int4_hnsw", "bbq_hnsw", "flat", "int8_flat", "int4_flat", "bbq_flat")


class _EsLineage(ValidateAfterRender, BaseOperator):
    """Shared arguments of the Elasticsearch operators: connection, cluster name, alias and its Asset."""

    def _init_lineage(self, alias: str, cluster: str | None, emit_asset: bool) -> None:
        self.asset: Asset | None = None
        self.asset_alias: AssetAlias | None = None
        if not emit_asset:
            return
        if is_templated(alias, cluster):
            self.asset_alias = es_alias(self.dag_id, self.task_id)
            self.outlets.append(self.asset_alias)
        else:
            self.asset = es_asset(cluster or self.elasticsearch_conn_id, alias)
            self.outlets.append(self.asset)

    elasticsearch_conn_id: str
    alias: str
    cluster: str | None

    @property
    def cluster_name(self) -> str:
        return self.cluster or self.elasticsearch_conn_id

    @cached_property
    def hook(self) -> ElasticsearchVectorHook:
        from airflow_provider_llmops.hooks.elasticsearch import ElasticsearchVectorHook

        return ElasticsearchVectorHook(self.elasticsearch_conn_id)

    def _emit(self, context: Context, extra: dict[str, Any]) -> None:
        emit_event(
            context,
            extra,
            asset=self.asset,
            alias=self.asset_alias,
            resolve=lambda: es_asset(self.cluster_name, self.alias),
        )

    def _validate(self, *, rendered: bool) -> None:
        check_alias_name(self.alias)
        require_str("elasticsearch_conn_id", self.elasticsearch_conn_id)


class ElasticsearchKnnIndexOperator(_EsLineage):
    """Embed documents into a new versioned kNN index, gate it, and point `alias` at it.

    Reads JSONL/Parquet records (a file or a folder, e.g. a DvcPullOperator's output) with an
    `id_field` and a `text_field`, splits the text into chunks (`chunk_size`/`chunk_overlap` in
    `chunk_unit` ``chars`` or ``tokens``), embeds them with the ``local`` sentence-transformers
    encoder (`model`: a name or folder) or ``triton`` (`model`: the Triton model name, served
    through `triton_conn_id`; `encoder_kwargs` go to ``TritonEmbeddingClient``), and
    bulk-loads them into ``<alias>-<dataset_rev>-<model version>``. The alias moves only when
    recall@`gate_k` against exact neighbours is >= `min_recall` (and nDCG >= `min_ndcg` with
    `judgments_path`), and neither is worse than the current index's beyond `gate_tolerance`.
    The last `keep_indices` indices are kept. Returns the `IndexVersion` XCom dict; a failed gate
    pushes its evaluation under the XCom key ``evaluation`` before failing.

    Example::

        ElasticsearchKnnIndexOperator(
            task_id="index_docs",
            alias="docs",
            input_path="{{ ti.xcom_pull('pull')['local_path'] }}",
            dataset_rev="{{ ti.xcom_pull('pull')['rev'] }}",
            metadata_fields={"lang": "keyword"},
            index_type="int8_hnsw",
            min_recall=0.9,
        )
    """

    template_fields: Sequence[str] = (
        "alias",
        "input_path",
        "dataset_rev",
        "cluster",
        "model",
        "model_version",
        "judgments_path",
        "elasticsearch_conn_id",
        "triton_conn_id",
    )
    ui_color = "#3cbeb1"

    def __init__(
        self,
        *,
        alias: str,
        input_path: str,
        dataset_rev: str,
        elasticsearch_conn_id: str = "elasticsearch_default",
        cluster: str | None = None,
        encoder: str = "local",
        model: str = "sentence-transformers/all-MiniLM-L6-v2",
        model_version: str | None = None,
        encoder_kwargs: Mapping[str, Any] | None = None,
        triton_conn_id: str = "llmops_triton_default",
        id_field: str = "id",
        text_field: str = "text",
        metadata_fields: Mapping[str, str] | None = None,
        chunk_size: int = 1000,
        chunk_overlap: int = 100,
        chunk_unit: str = "chars",
        similarity: str = "cosine",
        index_type: str = "hnsw",
        m: int | None = None,
        ef_construction: int | None = None,
        replicas: int = 1,
        refresh_interval: str = "1s",
        bulk_max_bytes: int = 5 << 20,
        bulk_concurrency: int = 4,
        bulk_attempts: int = 8,
        embed_batch_size: int = 256,
        gate_k: int = 10,
        gate_sample_size: int = 50,
        min_recall: float = 0.9,
        min_ndcg: float | None = None,
        gate_tolerance: float = 0.02,
        judgments_path: str | None = None,
        keep_indices: int = 3,
        ready_timeout: float = 60.0,
        emit_asset: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.alias = alias
        self.input_path = input_path
        self.dataset_rev = dataset_rev
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self.cluster = cluster
        self.encoder = encoder
        self.model = model
        self.model_version = model_version
        self.encoder_kwargs = dict(encoder_kwargs or {})
        self.triton_conn_id = triton_conn_id
        self.id_field = id_field
        self.text_field = text_field
        self.metadata_fields = dict(metadata_fields or {})
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.chunk_unit = chunk_unit
        self.similarity = similarity
        self.index_type = index_type
        self.m = m
        self.ef_construction = ef_construction
        self.replicas = replicas
        self.refresh_interval = refresh_interval
        self.bulk_max_bytes = bulk_max_bytes
        self.bulk_concurrency = bulk_concurrency
        self.bulk_attempts = bulk_attempts
        self.embed_batch_size = embed_batch_size
        self.gate_k = gate_k
        self.gate_sample_size = gate_sample_size
        self.min_recall = min_recall
        self.min_ndcg = min_ndcg
        self.gate_tolerance = gate_tolerance
        self.judgments_path = judgments_path
        self.keep_indices = keep_indices
        self.ready_timeout = ready_timeout
        self.index_name: str | None = None
        # Literal values are checked at parse time already; templated ones once rendered.
        self._validate_static()
        if not is_templated(alias):
            check_alias_name(alias)
        self._init_lineage(alias, cluster, emit_asset)

    # -- validation ---------------------------------------------------------------------------

    def _validate_static(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        if self.similarity not in _SIMILARITIES:
            raise ValueError(f"similarity must be one of {', '.join(_SIMILARITIES)}, got {self.similarity!r}")
        if self.index_type not in _INDEX_TYPES:
            raise ValueError(f"index_type must be one of {', '.join(_INDEX_TYPES)}, got {self.index_type!r}")
        if self.keep_indices < 1:
            raise ValueError(f"keep_indices must be >= 1, got {self.keep_indices}")
        if self.replicas < 0:
            raise ValueError(f"replicas must be >= 0, got {self.replicas}")
        self._chunking = ChunkingSpec(self.chunk_size, self.chunk_overlap, self.chunk_unit)  # type: ignore[arg-type]
        self._gate = GateSpec(
            k=self.gate_k,
            sample_size=self.gate_sample_size,
            min_recall=self.min_recall,
            min_ndcg=self.min_ndcg,
            tolerance=self.gate_tolerance,
        )

    def _validate(self, *, rendered: bool) -> None:
        super()._validate(rendered=rendered)
        require_str("input_path", self.input_path)
        require_str("dataset_rev", self.dataset_rev)
        require_str("model", self.model)
        require_str("model_version", self.model_version, optional=True)

    # -- work ---------------------------------------------------------------------------------

    def make_encoder(self) -> Encoder:
        """The encoder chosen by `encoder`: ``local`` (sentence-transformers) or ``triton``."""
        if self.encoder == "local":
            from airflow_provider_llmops.utils.embedding import SentenceTransformerEncoder

            return SentenceTransformerEncoder(
                self.model,
                model_version=self.model_version,
                batch_size=min(self.embed_batch_size, 128),
                **self.encoder_kwargs,
            )
        from airflow_provider_llmops.hooks.triton import TritonHook
        from airflow_provider_llmops.utils.triton_embedding import TritonEmbeddingClient

        return TritonEmbeddingClient(
            TritonHook(self.triton_conn_id),
            self.model,
            model_version=self.model_version or "",
            batch_size=self.embed_batch_size,
            log=self.log,
            **self.encoder_kwargs,
        )

    @cached_property
    def builder(self) -> KnnIndexBuilder:
        from airflow_provider_llmops.utils.es_indexer import KnnIndexBuilder

        self.hook.wait_ready(timeout=self.ready_timeout)
        return KnnIndexBuilder(
            self.hook.get_conn(),
            self.make_encoder(),
            log=self.log,
            base64_vectors=self.hook.capabilities().base64_vectors,
        )

    def _build_request(self, context: Context) -> IndexBuild:
        from airflow_provider_llmops.utils.es_indexer import BulkSpec, IndexBuild, load_judgments

        return IndexBuild(
            alias=self.alias,
            input_path=self.input_path,
            dataset_rev=self.dataset_rev,
            run_id=str(context.get("run_id") or ""),
            id_field=self.id_field,
            text_field=self.text_field,
            metadata_fields=self.metadata_fields,
            chunking=self._chunking,
            index={
                "similarity": self.similarity,
                "index_type": self.index_type,
                "m": self.m,
                "ef_construction": self.ef_construction,
                "text_field": self.text_field,
                "replicas": self.replicas,
                "refresh_interval": self.refresh_interval,
            },
            bulk=BulkSpec(
                max_bytes=self.bulk_max_bytes,
                concurrency=self.bulk_concurrency,
                attempts=self.bulk_attempts,
                embed_batch_size=self.embed_batch_size,
            ),
            gate=self._gate,
            judgments=load_judgments(self.judgments_path) if self.judgments_path else (),
            keep=self.keep_indices,
            cluster=self.cluster_name,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_llmops.exceptions import ElasticsearchGateError

        request = self._build_request(context)
        builder = self.builder
        try:
            version = builder.build(request)
        except ElasticsearchGateError as err:
            context["ti"].xcom_push(key="evaluation", value=err.evaluation)
            raise
        finally:
            self.index_name = builder.index
        self.log.info("Evaluation of %s: %s", version.index, builder.last_evaluation)
        context["ti"].xcom_push(
            key="evaluation", value=builder.last_evaluation.to_xcom() if builder.last_evaluation else {}
        )
        self._emit(context, version.asset_extra())
        return version.to_xcom()

    def on_kill(self) -> None:
        # The bulk threads stop with the process; what is left is an unpublished index.
        builder = self.__dict__.get("builder")
        index = builder.index if builder is not None else None
        if index:
            self.log.warning(
                "Killed while building %s: alias %s was not switched. A rerun continues it (same ids).",
                index,
                self.alias,
            )


class ElasticsearchAliasRollbackOperator(_EsLineage):
    """Point `alias` back at the index it pointed at before (or at `to_index`), in one atomic call.

    Returns ``{"alias", "from_index", "to_index"}`` and emits an event on the alias's Asset.

    Example::

        ElasticsearchAliasRollbackOperator(task_id="rollback_docs", alias="docs")
    """

    template_fields: Sequence[str] = ("alias", "to_index", "cluster", "elasticsearch_conn_id")
    ui_color = "#f4a460"

    def __init__(
        self,
        *,
        alias: str,
        to_index: str | None = None,
        elasticsearch_conn_id: str = "elasticsearch_default",
        cluster: str | None = None,
        emit_asset: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.alias = alias
        self.to_index = to_index
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self.cluster = cluster
        if not is_templated(alias):
            check_alias_name(alias)
        self._init_lineage(alias, cluster, emit_asset)

    def execute(self, context: Context) -> dict[str, Any]:
        old, new = self.hook.rollback_alias(self.alias, self.to_index or None)
        result = {"cluster": self.cluster_name, "alias": self.alias, "from_index": old, "to_index": new}
        self._emit(context, {"index": new, "rolled_back_from": old})
        return result
