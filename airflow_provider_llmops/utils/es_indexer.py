"""The whole kNN index build: read, chunk, embed, bulk load, count check, gate, alias switch, retention.

`KnnIndexBuilder.build` validates everything it can before the first write (alias state, input
records, encoder output shape, an existing index's _meta), then loads the versioned index,
evaluates it, and only when the gate passes points the alias at it in one atomic call.
A failure at any step leaves the alias and the index behind it untouched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_llmops.exceptions import (
    ElasticsearchCompatibilityError,
    ElasticsearchCountMismatchError,
    ElasticsearchGateError,
    ElasticsearchInputError,
)
from airflow_provider_llmops.utils.chunking import ChunkingSpec, chunk_text
from airflow_provider_llmops.utils.embedding import check_vectors
from airflow_provider_llmops.utils.es_bulk import BulkIngester, encode_vectors
from airflow_provider_llmops.utils.es_documents import iter_documents, where
from airflow_provider_llmops.utils.es_eval import (
    Evaluation,
    ExactNeighbours,
    GateSpec,
    Judgment,
    evaluate_index,
    gate,
)
from airflow_provider_llmops.utils.es_index import (
    META_KEY,
    EsIndexManager,
    VectorIndexSpec,
    check_encoder,
    index_name,
)
from airflow_provider_llmops.utils.records import Record

if TYPE_CHECKING:
    import numpy as np
    from elasticsearch import Elasticsearch

    from airflow_provider_llmops.utils.embedding import Encoder

__all__ = ["BulkSpec", "IndexBuild", "IndexVersion", "KnnIndexBuilder", "chunk_id", "load_judgments"]

_MAX_READABLE_ID = 256


def chunk_id(doc_id: str, chunk: int, model_version: str) -> str:
    """Deterministic ``_id`` of a chunk: ``<doc id>#<chunk>@<model version>`` (hashed when too long)."""
    readable = f"{doc_id}#{chunk}@{model_version}"
    if len(readable.encode()) <= _MAX_READABLE_ID:
        return readable
    return hashlib.sha256(readable.encode()).hexdigest()


@dataclass(frozen=True)
class BulkSpec:
    """Bulk load tuning: request size in bytes (and a document cap), requests in flight, retries."""

    max_bytes: int = 5 << 20
    max_docs: int = 2000
    concurrency: int = 4
    attempts: int = 8
    base_delay: float = 0.25
    max_delay: float = 20.0
    embed_batch_size: int = 256


@dataclass(frozen=True)
class IndexBuild:
    """Everything one build needs besides the client and the encoder.

    Example::

        IndexBuild(alias="docs", input_path="/data/docs", dataset_rev="v2", run_id="manual__1",
                   index=dict(similarity="cosine", index_type="int8_hnsw"), keep=3)
    """

    alias: str
    input_path: str
    dataset_rev: str
    run_id: str = ""
    id_field: str = "id"
    text_field: str = "text"
    metadata_fields: Mapping[str, str] = field(default_factory=dict)
    chunking: ChunkingSpec = field(default_factory=ChunkingSpec)
    index: Mapping[str, Any] = field(default_factory=dict)
    bulk: BulkSpec = field(default_factory=BulkSpec)
    gate: GateSpec = field(default_factory=GateSpec)
    judgments: Sequence[Judgment] = ()
    keep: int = 3
    cluster: str = ""


@dataclass(frozen=True)
class IndexVersion(Record):
    """The outcome of a build: the index behind the alias, what is in it and how good it is."""

    ASSET_EXCLUDE: ClassVar[tuple[str, ...]] = ("deleted_indices", "run_id")

    cluster: str
    alias: str
    index: str
    previous_index: str | None
    doc_count: int
    documents: int
    model_name: str
    model_version: str
    dims: int
    similarity: str
    index_type: str
    dataset_rev: str
    run_id: str
    recall: float
    ndcg: float | None
    mrr: float | None
    judged_recall: float | None
    k: int
    switched: bool
    deleted_indices: tuple[str, ...] = ()


def load_judgments(path: str) -> list[Judgment]:
    """Judgments from JSONL: ``{"query": "...", "relevant": ["doc-1", ...]}`` or ``{"doc-1": 2, ...}``."""
    from airflow_provider_llmops.utils.tabular import iter_records

    judgments = []
    for number, record in enumerate(iter_records(path), start=1):
        query, relevant = record.get("query"), record.get("relevant")
        if not isinstance(query, str) or not query.strip() or not relevant:
            raise ElasticsearchInputError(
                f"{path}, record {number}: a judgment needs a non-empty 'query' and 'relevant' "
                "(a list of document ids, or an object id -> relevance grade).",
                path=path,
                line=number,
            )
        graded = (
            {str(k): float(v) for k, v in relevant.items()}
            if isinstance(relevant, Mapping)
            else {str(d): 1.0 for d in relevant}
        )
        judgments.append(Judgment(query, graded))
    return judgments


@dataclass(frozen=True)
class _Scan:
    documents: int
    chunks: int
    samples: list[str]


class KnnIndexBuilder:
    """Builds a versioned kNN index for an alias and switches the alias when the gate passes.

    Example::

        builder = KnnIndexBuilder(hook.get_conn(), encoder, log=log, base64_vectors=True)
        version = builder.build(IndexBuild(alias="docs", input_path="/data", dataset_rev="v2"))
        version.index, version.recall, version.switched
    """

    def __init__(
        self,
        client: Elasticsearch,
        encoder: Encoder,
        *,
        log: logging.Logger | Any = None,
        base64_vectors: bool = True,
    ) -> None:
        self.client = client
        self.encoder = encoder
        self.log = log or logging.getLogger(__name__)
        self.base64_vectors = base64_vectors
        self.manager = EsIndexManager(client, log=self.log)
        self.index: str | None = None  # set before the first write, for on_kill and errors
        self.last_evaluation: Evaluation | None = None

    # -- steps ------------------------------------------------------------------------------

    def _chunks(self, build: IndexBuild) -> Iterator[tuple[Any, Any]]:
        for doc in iter_documents(
            build.input_path,
            id_field=build.id_field,
            text_field=build.text_field,
            metadata_fields=list(build.metadata_fields),
        ):
            for chunk in chunk_text(doc.text, build.chunking, token_spans=self._token_spans(build)):
                yield doc, chunk

    def _token_spans(self, build: IndexBuild) -> Any:
        if build.chunking.unit != "tokens":
            return None
        spans = getattr(self.encoder, "token_spans", None)
        return spans() if callable(spans) else None

    def _scan(self, build: IndexBuild) -> _Scan:
        """First pass, no side effects: validate every record, count chunks, pick sample queries."""
        seen: dict[str, str] = {}
        rng = random.Random(f"{build.alias}|{build.dataset_rev}")  # noqa: S311 - a sample, not a secret
        samples: list[str] = []
        chunks = 0
        for doc, chunk in self._chunks(build):
            if chunk.number == 0:
                if doc.id in seen:
                    place, line = where(Path(doc.path), doc.record)
                    raise ElasticsearchInputError(
                        f"{place}: document id {doc.id!r} was already used at {seen[doc.id]}; ids must be "
                        "unique (they make the index idempotent).",
                        path=doc.path,
                        line=line,
                    )
                seen[doc.id] = f"{doc.path}, record {doc.record}"
            chunks += 1
            # Reservoir sampling: a uniform, reproducible sample of chunk texts as gate queries.
            if len(samples) < build.gate.sample_size:
                samples.append(chunk.text)
            else:
                slot = rng.randrange(chunks)
                if slot < build.gate.sample_size:
                    samples[slot] = chunk.text
        if not chunks:
            raise ElasticsearchInputError(
                f"No documents with text under {build.input_path!r}: nothing to index. The alias "
                f"{build.alias!r} was left as it is.",
                path=build.input_path,
            )
        return _Scan(documents=len(seen), chunks=chunks, samples=samples)

    def _meta(self, build: IndexBuild, spec: VectorIndexSpec) -> dict[str, Any]:
        return {
            "alias": build.alias,
            "model_name": self.encoder.model_name,
            "model_version": self.encoder.model_version,
            "dims": spec.dims,
            "similarity": spec.similarity,
            "index_type": spec.index_type,
            "normalized": bool(self.encoder.normalized),
            "dataset_rev": build.dataset_rev,
            "run_id": build.run_id,
            "chunking": build.chunking.key(),
            "fingerprint": spec.fingerprint(),
            "vector_field": spec.vector_field,
            "text_field": spec.text_field,
        }

    def _check_existing(self, index: str, meta: Mapping[str, Any]) -> None:
        """A rerun may reuse its index; an index of that name built differently is refused."""
        existing = self.manager.meta(index)
        check_encoder({META_KEY: existing} if existing else {}, index, self.encoder, meta["similarity"])
        for key in ("dataset_rev", "chunking", "fingerprint"):
            if existing.get(key) != meta[key]:
                raise ElasticsearchCompatibilityError(
                    f"Index {index!r} exists with {key} {existing.get(key)!r}, but this build has "
                    f"{meta[key]!r}. Index names come from alias, dataset rev and model version only; "
                    "delete that index (it is not behind the alias) or change one of those keys.",
                    mismatches={key: (existing.get(key), meta[key])},
                    index=index,
                )

    def _sources(
        self, build: IndexBuild, spec: VectorIndexSpec, exact: ExactNeighbours
    ) -> Iterator[tuple[str, bytes]]:
        batch: list[tuple[Any, Any]] = []
        size = build.bulk.embed_batch_size

        def flush() -> Iterator[tuple[str, bytes]]:
            vectors = check_vectors(self.encoder, self.encoder.encode([c.text for _, c in batch]), len(batch))
            ids = [chunk_id(doc.id, chunk.number, self.encoder.model_version) for doc, chunk in batch]
            exact.add(ids, vectors)
            for (doc, chunk), cid, packed in zip(
                batch, ids, encode_vectors(vectors, self.base64_vectors), strict=True
            ):
                source = {
                    spec.text_field: chunk.text,
                    spec.vector_field: packed,
                    "doc_id": doc.id,
                    "chunk": chunk.number,
                    **doc.metadata,
                }
                yield cid, json.dumps(source, separators=(",", ":"), default=str).encode()

        for item in self._chunks(build):
            batch.append(item)
            if len(batch) >= size:
                yield from flush()
                batch = []
        if batch:
            yield from flush()

    # -- the build --------------------------------------------------------------------------

    def build(self, build: IndexBuild) -> IndexVersion:
        alias = build.alias
        current = self.manager.alias_target(alias)  # refuses a concrete index / several indices
        scan = self._scan(build)
        self.log.info(
            "Input %s: %d documents, %d chunks (%s); alias %s currently -> %s",
            build.input_path,
            scan.documents,
            scan.chunks,
            build.chunking.key(),
            alias,
            current or "nothing",
        )
        max_tokens = int(getattr(self.encoder, "max_seq_length", 0) or 0)
        if build.chunking.unit == "tokens" and max_tokens and build.chunking.size > max_tokens:
            self.log.warning(
                "chunk_size %d tokens exceeds the model's max_seq_length %d: the encoder truncates each "
                "chunk, so their ends are not embedded. Use chunk_size <= %d.",
                build.chunking.size,
                max_tokens,
                max_tokens,
            )
        # Embedding the sample queries first also checks the encoder's output before any write.
        query_vectors = check_vectors(self.encoder, self.encoder.encode(scan.samples), len(scan.samples))
        judgment_vectors: np.ndarray | None = None
        if build.judgments:
            texts = [j.query for j in build.judgments]
            judgment_vectors = check_vectors(self.encoder, self.encoder.encode(texts), len(texts))
        spec = VectorIndexSpec(
            dims=self.encoder.dims,
            metadata_fields=dict(build.metadata_fields),
            **{k: v for k, v in build.index.items() if k not in ("dims", "metadata_fields")},
        )
        meta = self._meta(build, spec)
        target = index_name(alias, build.dataset_rev, self.encoder.model_version)
        self.index = target
        if self.manager.exists(target):
            self._check_existing(target, meta)
            self.log.info("Index %s exists (a rerun of this build): documents are overwritten by id", target)
        live = target == current
        if not live:
            self.manager.create_index(target, spec, meta)

        exact = ExactNeighbours(query_vectors, build.gate.k, spec.similarity)
        ingester = BulkIngester(
            self.client,
            target,
            max_bytes=build.bulk.max_bytes,
            max_docs=build.bulk.max_docs,
            concurrency=build.bulk.concurrency,
            attempts=build.bulk.attempts,
            base_delay=build.bulk.base_delay,
            max_delay=build.bulk.max_delay,
            log=self.log,
        )
        if live:
            # Readers query this index right now: keep its refresh and replicas as they are.
            ingester.ingest(self._sources(build, spec, exact), total=scan.chunks)
        else:
            with self.manager.load_settings(target, spec):
                ingester.ingest(self._sources(build, spec, exact), total=scan.chunks)
        self.client.indices.refresh(index=target)
        count = self.manager.count(target)
        if count != scan.chunks:
            raise ElasticsearchCountMismatchError(
                f"Index {target} holds {count} documents after the load, expected {scan.chunks} "
                f"({scan.documents} input documents). "
                + (
                    "It has more: documents from an earlier, different load remain; delete the index and rerun."
                    if count > scan.chunks
                    else "Some documents are missing although every bulk item reported success."
                ),
                index=target,
                alias=alias,
            )

        evaluation = evaluate_index(
            self.client,
            target,
            spec=build.gate,
            vector_field=spec.vector_field,
            query_vectors=query_vectors,
            exact_ids=exact.ids(),
            judgments=build.judgments,
            judgment_vectors=judgment_vectors,
        )
        self.last_evaluation = evaluation
        self.manager.update_meta(target, evaluation=evaluation.to_xcom(), doc_count=count)
        previous_eval = None
        if current and current != target:
            previous_eval = self.manager.meta(current).get("evaluation")
        verdict = gate(evaluation, build.gate, previous_eval)
        self.log.info(
            "Gate for %s: %s; recall@%d %.3f over %d queries%s%s",
            target,
            "PASSED" if verdict.passed else "FAILED",
            evaluation.k,
            evaluation.recall,
            evaluation.queries,
            ""
            if evaluation.ndcg is None
            else f", judged recall {evaluation.judged_recall:.3f} MRR {evaluation.mrr:.3f} nDCG {evaluation.ndcg:.3f}",
            f"; current index {current}: {previous_eval}" if previous_eval else "",
        )
        if not verdict.passed:
            raise ElasticsearchGateError(
                f"Index {target} failed the quality gate: {'; '.join(verdict.reasons)}. Alias {alias!r} "
                f"still points at {current or 'nothing'}; the new index is kept for inspection.",
                evaluation=evaluation.to_xcom(),
                index=target,
                alias=alias,
            )
        switched = False
        previous = current
        if current != target:
            self.manager.update_meta(target, previous_index=current)
            self.manager.switch_alias(alias, target, current)
            switched = True
        else:
            previous = self.manager.meta(target).get("previous_index")
        deleted = self.manager.retain(alias, build.keep, protect=tuple(i for i in (target, previous) if i))
        return IndexVersion(
            cluster=build.cluster,
            alias=alias,
            index=target,
            previous_index=previous,
            doc_count=count,
            documents=scan.documents,
            model_name=self.encoder.model_name,
            model_version=self.encoder.model_version,
            dims=spec.dims,
            similarity=spec.similarity,
            index_type=spec.index_type,
            dataset_rev=build.dataset_rev,
            run_id=build.run_id,
            recall=evaluation.recall,
            ndcg=evaluation.ndcg,
            mrr=evaluation.mrr,
            judged_recall=evaluation.judged_recall,
            k=evaluation.k,
            switched=switched,
            deleted_indices=tuple(deleted),
        )
