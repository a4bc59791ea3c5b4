"""Versioned kNN indices behind an alias: mapping, names, compatibility guard, alias switch, retention, rollback.

Readers query an alias. Each build writes a new physical index named from idempotency keys
only (``<alias>-<dataset rev>-<model version>``, `index_name`), so a rerun or retry of the same
build writes the same index, and a new dataset rev or model gives a new one. The index's
mapping ``_meta`` records what built it (model, dims, similarity, dataset rev, run, chunking),
which the compatibility guard checks before any write or search.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.exceptions import (
    ElasticsearchAliasError,
    ElasticsearchCompatibilityError,
)

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    from airflow_provider_llmops.utils.embedding import Encoder

__all__ = [
    "INDEX_TYPES",
    "SIMILARITIES",
    "EsIndexManager",
    "VectorIndexSpec",
    "build_mapping",
    "check_compatible",
    "index_name",
    "sanitize_index_part",
]

SIMILARITIES = ("cosine", "dot_product", "l2_norm", "max_inner_product")
INDEX_TYPES = ("hnsw", "int8_hnsw", "int4_hnsw", "bbq_hnsw", "flat", "int8_flat", "int4_flat", "bbq_flat")
_HNSW_TYPES = {"hnsw", "int8_hnsw", "int4_hnsw", "bbq_hnsw"}
_FIELD_TYPES = {"keyword", "text", "long", "integer", "double", "float", "boolean", "date"}
META_KEY = "llmops"
# What the guard compares, in the order it reports mismatches.
GUARDED = ("model_name", "model_version", "dims", "similarity")
_MAX_INDEX_BYTES = 255


@dataclass(frozen=True)
class VectorIndexSpec:
    """The shape of a kNN index: vector field, similarity, ANN structure, text and metadata fields.

    `index_type`: ``hnsw`` (float32 graph), ``int8_hnsw`` / ``int4_hnsw`` / ``bbq_hnsw``
    (quantized graphs, 4x / 8x / 32x smaller), ``flat`` variants (brute force). `m` and
    `ef_construction` tune the HNSW graph. `metadata_fields` maps a source field to its ES type
    (``keyword`` for filters). `replicas` and `refresh_interval` are the settings once loaded.

    Example::

        VectorIndexSpec(dims=384, similarity="cosine", index_type="int8_hnsw", m=16, ef_construction=100,
                        metadata_fields={"lang": "keyword", "year": "integer"})
    """

    dims: int
    similarity: str = "cosine"
    index_type: str = "hnsw"
    m: int | None = None
    ef_construction: int | None = None
    vector_field: str = "embedding"
    text_field: str = "text"
    metadata_fields: Mapping[str, str] = field(default_factory=dict)
    shards: int = 1
    replicas: int = 1
    refresh_interval: str = "1s"

    def __post_init__(self) -> None:
        if not isinstance(self.dims, int) or not 1 <= self.dims <= 4096:
            raise ValueError(f"dims must be an integer in 1..4096, got {self.dims!r}")
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {', '.join(SIMILARITIES)}; got {self.similarity!r}")
        if self.index_type not in INDEX_TYPES:
            raise ValueError(f"index_type must be one of {', '.join(INDEX_TYPES)}; got {self.index_type!r}")
        if self.index_type not in _HNSW_TYPES and (self.m is not None or self.ef_construction is not None):
            raise ValueError(f"m and ef_construction apply to HNSW index types only, not {self.index_type!r}")
        if self.m is not None and not 2 <= self.m <= 512:
            raise ValueError(f"m must be in 2..512, got {self.m}")
        if self.ef_construction is not None and not 1 <= self.ef_construction <= 3200:
            raise ValueError(f"ef_construction must be in 1..3200, got {self.ef_construction}")
        if self.index_type.startswith("int4") and self.dims % 2:
            raise ValueError(f"{self.index_type} needs an even number of dims, got {self.dims}")
        if self.index_type.startswith("bbq") and self.dims < 64:
            raise ValueError(f"{self.index_type} needs at least 64 dims, got {self.dims}")
        reserved = {self.vector_field, self.text_field, "doc_id", "chunk"}
        for name, kind in self.metadata_fields.items():
            if name in reserved:
                raise ValueError(f"metadata field {name!r} clashes with a field the indexer writes")
            if kind not in _FIELD_TYPES:
                raise ValueError(
                    f"metadata field {name!r}: type must be one of {', '.join(sorted(_FIELD_TYPES))}, got {kind!r}"
                )

    def index_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"type": self.index_type}
        if self.m is not None:
            options["m"] = self.m
        if self.ef_construction is not None:
            options["ef_construction"] = self.ef_construction
        return options

    def fingerprint(self) -> str:
        """12-hex hash of everything that shapes the stored documents (not replicas/refresh)."""
        shape = {
            "dims": self.dims,
            "similarity": self.similarity,
            "index_options": self.index_options(),
            "vector_field": self.vector_field,
            "text_field": self.text_field,
            "metadata_fields": dict(sorted(self.metadata_fields.items())),
        }
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:12]


def build_mapping(spec: VectorIndexSpec, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The index ``mappings``: dense_vector, BM25 text, doc_id/chunk, metadata fields and ``_meta``.

    ``dynamic: strict``: a document with an unexpected field is refused (the bulk report names
    it) instead of silently growing the mapping.
    """
    properties: dict[str, Any] = {
        spec.vector_field: {
            "type": "dense_vector",
            "dims": spec.dims,
            "index": True,
            "similarity": spec.similarity,
            "index_options": spec.index_options(),
        },
        spec.text_field: {"type": "text"},  # BM25 is the default similarity of text fields
        "doc_id": {"type": "keyword"},
        "chunk": {"type": "integer"},
    }
    for name, kind in sorted(spec.metadata_fields.items()):
        properties[name] = {"type": kind}
    return {"dynamic": "strict", "_meta": {META_KEY: dict(meta)}, "properties": properties}


_INVALID = re.compile(r"[^a-z0-9._-]+")


def sanitize_index_part(text: str) -> str:
    """Lowercase, and every run of characters Elasticsearch refuses in index names becomes ``_``."""
    return _INVALID.sub("_", str(text).lower()).strip("_.") or "_"


def index_name(alias: str, dataset_rev: str, model_version: str) -> str:
    """``<alias>-<dataset rev>-<model version>``, made a valid index name; never the wall clock.

    Too long a name (over 255 bytes) is cut and ends in a hash of the full one, so distinct keys
    keep distinct names.
    """
    parts = [sanitize_index_part(p) for p in (alias, dataset_rev, model_version)]
    name = "-".join(parts).lstrip("-_+")
    if len(name.encode()) > _MAX_INDEX_BYTES:
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        name = name[: _MAX_INDEX_BYTES - 13] + "-" + digest
    return name


def check_compatible(
    meta: Mapping[str, Any],
    *,
    index: str,
    model_name: str,
    model_version: str,
    dims: int,
    similarity: str | None = None,
) -> None:
    """Raise ElasticsearchCompatibilityError when the index's ``_meta`` names another model, dims or similarity.

    An index without this provider's ``_meta`` is refused too: nobody can tell which model its
    vectors came from.
    """
    own = meta.get(META_KEY)
    if not isinstance(own, Mapping):
        raise ElasticsearchCompatibilityError(
            f"Index {index!r} has no {META_KEY} _meta, so the model that built its vectors is unknown; "
            "refusing to mix vectors. Build a new index with this provider.",
            mismatches={},
            index=index,
        )
    wanted: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "dims": dims}
    if similarity is not None:
        wanted["similarity"] = similarity
    mismatches = {k: (own.get(k), wanted[k]) for k in GUARDED if k in wanted and own.get(k) != wanted[k]}
    if mismatches:
        said = "; ".join(
            f"{k}: index has {a!r}, encoder in use has {b!r}" for k, (a, b) in mismatches.items()
        )
        raise ElasticsearchCompatibilityError(
            f"Index {index!r} was built with a different embedding set-up ({said}). Its vectors are not "
            "comparable with this encoder's: query it with the model that built it, or build a new index "
            "(a new model version gets a new index name).",
            mismatches=mismatches,
            index=index,
        )


def check_encoder(
    meta: Mapping[str, Any], index: str, encoder: Encoder, similarity: str | None = None
) -> None:
    """`check_compatible` with the encoder's name, version and dims."""
    check_compatible(
        meta,
        index=index,
        model_name=encoder.model_name,
        model_version=encoder.model_version,
        dims=encoder.dims,
        similarity=similarity,
    )


class EsIndexManager:
    """Multi-step index management on one client: create, load settings, alias switch, retention, rollback.

    Example::

        manager = EsIndexManager(hook.get_conn(), log=log)
        current = manager.alias_target("docs")                 # None on the first build
        manager.create_index("docs-v2-abc", spec, meta)
        with manager.load_settings("docs-v2-abc", spec):
            ...                                                # bulk load
        manager.switch_alias("docs", "docs-v2-abc", current)  # one atomic _aliases call
        manager.retain("docs", keep=3)
    """

    def __init__(self, client: Elasticsearch, log: logging.Logger | Any = None) -> None:
        self.client = client
        self.log = log or logging.getLogger(__name__)

    # -- reading ----------------------------------------------------------------------------

    def alias_target(self, alias: str) -> str | None:
        """The one index `alias` points at, or None when it does not exist.

        Raises ElasticsearchAliasError when `alias` is a concrete index or points at several.
        """
        client = self.client
        is_alias = bool(client.indices.exists_alias(name=alias))
        if not is_alias and client.indices.exists(index=alias):
            raise ElasticsearchAliasError(
                f"{alias!r} is a concrete index, not an alias, so readers cannot be switched atomically. "
                "Pick another alias name, or reindex that index elsewhere and delete it first.",
                alias=alias,
            )
        if not is_alias:
            return None
        indices = sorted(client.indices.get_alias(name=alias).body)
        if len(indices) != 1:
            raise ElasticsearchAliasError(
                f"Alias {alias!r} points at {len(indices)} indices ({', '.join(indices)}); a kNN alias "
                "must point at exactly one so that readers see one consistent index. Point it at one "
                "(POST _aliases) and rerun.",
                alias=alias,
            )
        return indices[0]

    def exists(self, index: str) -> bool:
        return bool(self.client.indices.exists(index=index))

    def meta(self, index: str) -> dict[str, Any]:
        """This provider's part of the index ``_meta`` (empty when absent)."""
        mapping = self.client.indices.get_mapping(index=index).body
        return dict(next(iter(mapping.values()))["mappings"].get("_meta", {}).get(META_KEY, {}))

    def update_meta(self, index: str, **values: Any) -> None:
        """Merge `values` into the index's ``_meta`` (a mapping update; documents untouched)."""
        merged = {**self.meta(index), **values}
        self.client.indices.put_mapping(index=index, meta={META_KEY: merged})

    def managed_indices(self, alias: str) -> list[tuple[str, int]]:
        """(index, creation ms) of the indices built for `alias` by this provider, oldest first."""
        resp = self.client.indices.get(
            index=f"{sanitize_index_part(alias)}-*", expand_wildcards="open,closed", ignore_unavailable=True
        )
        found = []
        for name, body in resp.body.items():
            meta = body.get("mappings", {}).get("_meta", {}).get(META_KEY, {})
            if meta.get("alias") == alias:
                created = int(body.get("settings", {}).get("index", {}).get("creation_date", 0))
                found.append((name, created))
        return sorted(found, key=lambda item: (item[1], item[0]))

    def count(self, index: str) -> int:
        return int(self.client.count(index=index)["count"])

    # -- writing ----------------------------------------------------------------------------

    def create_index(self, index: str, spec: VectorIndexSpec, meta: Mapping[str, Any]) -> bool:
        """Create `index` with the load-time settings; False when it exists already (left as it is)."""
        from elasticsearch import BadRequestError

        try:
            self.client.indices.create(
                index=index,
                mappings=build_mapping(spec, meta),
                settings={
                    "number_of_shards": spec.shards,
                    "number_of_replicas": 0,
                    "refresh_interval": "-1",
                },
            )
        except BadRequestError as err:
            if err.error == "resource_already_exists_exception":
                return False
            raise
        self.log.info(
            "Created index %s (%s, %s, dims %d)", index, spec.index_type, spec.similarity, spec.dims
        )
        return True

    @contextlib.contextmanager
    def load_settings(self, index: str, spec: VectorIndexSpec) -> Iterator[None]:
        """Fast-load settings while loading; then the spec's settings, also when the load fails.

        Refresh off, no replicas, and the translog fsynced in the background instead of on every
        bulk request: a crash during the load can lose acknowledged documents, which the count
        check after the load catches, and a rerun (same ids) repairs.
        """
        self.client.indices.put_settings(
            index=index,
            settings={
                "index": {"refresh_interval": "-1", "number_of_replicas": 0, "translog.durability": "async"}
            },
        )
        try:
            yield
        finally:
            self.client.indices.put_settings(
                index=index,
                settings={
                    "index": {
                        "refresh_interval": spec.refresh_interval,
                        "number_of_replicas": spec.replicas,
                        "translog.durability": "request",
                    }
                },
            )
            self.client.indices.flush(index=index)

    def switch_alias(self, alias: str, new_index: str, old_index: str | None) -> None:
        """Point `alias` at `new_index` only, in one atomic ``_aliases`` call.

        ``must_exist`` on the removal makes the call fail (and change nothing) when somebody
        moved the alias meanwhile.
        """
        actions: list[dict[str, Any]] = []
        if old_index and old_index != new_index:
            actions.append({"remove": {"index": old_index, "alias": alias, "must_exist": True}})
        actions.append({"add": {"index": new_index, "alias": alias, "is_write_index": True}})
        self.client.indices.update_aliases(actions=actions)
        self.log.info("Alias %s -> %s (was %s)", alias, new_index, old_index or "absent")

    def retain(self, alias: str, keep: int, protect: tuple[str, ...] = ()) -> list[str]:
        """Delete the oldest managed indices of `alias` beyond the newest `keep`; return those deleted.

        The index behind the alias and those in `protect` are never deleted.
        """
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        current = self.alias_target(alias)
        managed = [name for name, _ in self.managed_indices(alias)]
        keepers = set(managed[-keep:]) | set(protect) | ({current} if current else set())
        doomed = [name for name in managed if name not in keepers]
        if doomed:
            self.client.indices.delete(index=",".join(doomed))
            self.log.info("Retention (keep %d) for %s: deleted %s", keep, alias, ", ".join(doomed))
        return doomed

    def rollback(self, alias: str, to_index: str | None = None) -> tuple[str, str]:
        """Point `alias` back at `to_index`, else at the index it pointed at before; return (old, new).

        "Before" is the ``previous_index`` recorded at the last switch, else the newest managed
        index older than the current one.
        """
        current = self.alias_target(alias)
        if current is None:
            raise ElasticsearchAliasError(
                f"Alias {alias!r} does not exist; nothing to roll back.", alias=alias
            )
        target = to_index or self.meta(current).get("previous_index")
        if not target:
            older = [name for name, _ in self.managed_indices(alias)]
            older = older[: older.index(current)] if current in older else []
            target = older[-1] if older else None
        if not target:
            raise ElasticsearchAliasError(
                f"Alias {alias!r} points at {current!r} and no earlier index is known to roll back to. "
                "Pass to_index explicitly.",
                alias=alias,
                index=current,
            )
        if target == current:
            raise ElasticsearchAliasError(f"Alias {alias!r} already points at {target!r}.", alias=alias)
        if not self.exists(target):
            raise ElasticsearchAliasError(
                f"Cannot roll {alias!r} back to {target!r}: that index no longer exists (retention keeps "
                "the last few only). Pass to_index with an index that exists.",
                alias=alias,
                index=target,
            )
        self.switch_alias(alias, target, current)
        return current, target
