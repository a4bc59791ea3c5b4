"""Bulk indexing that survives an overloaded or flaky cluster, and never succeeds partially in silence.

What elasticsearch-py's helpers leave to the caller, done here:

- requests are sized by bytes (and a document cap), several are in flight at once;
- a request that fails with 429/502/503/504, a dropped connection or a timeout is retried
  with exponential backoff and full jitter; so is each *item* a successful request reports as
  429/502/503/504 (only those items are resent);
- documents carry deterministic ids and use the ``index`` op, so a resent request or a rerun
  overwrites instead of duplicating;
- items that still fail after the last attempt, or fail for good (a mapping error), are all
  collected and raised as one `ElasticsearchBulkError`.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.exceptions import ElasticsearchBulkError
from airflow_provider_llmops.utils.progress import ProgressLogger
from airflow_provider_llmops.utils.retry import backoff_delay

if TYPE_CHECKING:
    import numpy as np
    from elasticsearch import Elasticsearch

__all__ = ["RETRY_STATUS", "BulkIngester", "BulkStats", "encode_vector", "encode_vectors"]

RETRY_STATUS = frozenset({429, 502, 503, 504})
# Only what the outcome needs: keeps the response of a 10 MB request small.
_FILTER_PATH = "errors,items.*._id,items.*.status,items.*.error.type,items.*.error.reason"
_MAX_REPORTED = 20


def encode_vectors(vectors: np.ndarray, base64_packed: bool = True) -> list[Any]:
    """Each row as the server wants it: base64 of big-endian float32 (compact), else a float list."""
    import numpy as np

    if not base64_packed:
        return vectors.astype(np.float32).tolist()
    big_endian = np.ascontiguousarray(vectors, dtype=">f4")
    row_bytes = big_endian.shape[1] * 4
    raw = big_endian.tobytes()
    return [base64.b64encode(raw[i : i + row_bytes]).decode("ascii") for i in range(0, len(raw), row_bytes)]


def encode_vector(vector: np.ndarray, base64_packed: bool = True) -> Any:
    return encode_vectors(vector.reshape(1, -1), base64_packed)[0]


@dataclass
class BulkStats:
    """What a load did: documents indexed, failed items, retries, bytes sent."""

    indexed: int = 0
    requests: int = 0
    request_retries: int = 0
    item_retries: int = 0
    bytes_sent: int = 0
    failed: list[tuple[str, int, str]] = field(default_factory=list)


class _Fatal(Exception):
    """A request error that no retry can fix (400 on the whole request, 401, 403, 404)."""


class BulkIngester:
    """Send ``(id, source)`` pairs to one index with byte-sized, concurrent, retried bulk requests.

    `source` is the document as a dict, or already-serialised JSON bytes. Use `ingest` once per
    load; it raises ElasticsearchBulkError listing every item that finally failed.

    Example::

        ingester = BulkIngester(client, "docs-v2-abc", max_bytes=4 << 20, concurrency=4, log=log)
        stats = ingester.ingest(((doc["id"], doc) for doc in docs), total=len(docs))
        stats.indexed  # == len(docs), or an exception was raised
    """

    def __init__(
        self,
        client: Elasticsearch,
        index: str,
        *,
        max_bytes: int = 5 << 20,
        max_docs: int = 2000,
        concurrency: int = 4,
        attempts: int = 8,
        base_delay: float = 0.25,
        max_delay: float = 20.0,
        request_timeout: float = 120.0,
        log: logging.Logger | Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_bytes < 1024:
            raise ValueError(f"max_bytes must be >= 1024, got {max_bytes}")
        if max_docs < 1 or concurrency < 1 or attempts < 1:
            raise ValueError("max_docs, concurrency and attempts must be >= 1")
        self.index = index
        self.max_bytes = max_bytes
        self.max_docs = max_docs
        self.concurrency = concurrency
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.log = log or logging.getLogger(__name__)
        self._sleep = sleep
        # Retries are ours (with backoff); the transport's own would resend at once.
        self._client = client.options(max_retries=0, request_timeout=request_timeout)
        self._lock = threading.Lock()
        self._stats = BulkStats()

    # -- batching ---------------------------------------------------------------------------

    def _batches(self, docs: Iterable[tuple[str, Any]]) -> Iterator[list[tuple[str, bytes]]]:
        batch: list[tuple[str, bytes]] = []
        size = 0
        for doc_id, source in docs:
            line = self._line(doc_id, source)
            if batch and (size + len(line) > self.max_bytes or len(batch) >= self.max_docs):
                yield batch
                batch, size = [], 0
            batch.append((doc_id, line))
            size += len(line)
        if batch:
            yield batch

    @staticmethod
    def _line(doc_id: str, source: Any) -> bytes:
        body = source if isinstance(source, bytes) else json.dumps(source, separators=(",", ":")).encode()
        return b'{"index":{"_id":' + json.dumps(doc_id).encode() + b"}}\n" + body + b"\n"

    # -- sending ----------------------------------------------------------------------------

    def _retryable(self, err: BaseException) -> bool:
        from elasticsearch import ApiError, ConnectionError, ConnectionTimeout

        if isinstance(err, (ConnectionError, ConnectionTimeout)):
            return True
        return isinstance(err, ApiError) and err.meta.status in RETRY_STATUS

    def _post(self, body: bytes) -> dict[str, Any]:
        """One bulk request, retried as a whole on 429/5xx and connection errors."""
        from elasticsearch import ApiError, TransportError

        for attempt in range(1, self.attempts + 1):
            try:
                with self._lock:
                    self._stats.requests += 1
                    self._stats.bytes_sent += len(body)
                resp = self._client.bulk(index=self.index, operations=body, filter_path=_FILTER_PATH)  # type: ignore[arg-type]
                return dict(resp.body)
            except (ApiError, TransportError) as err:
                if not self._retryable(err):
                    raise _Fatal(
                        f"bulk request to {self.index} refused: {type(err).__name__}: {err}"
                    ) from err
                if attempt == self.attempts:
                    raise
                delay = backoff_delay(attempt, self.base_delay, self.max_delay)
                with self._lock:
                    self._stats.request_retries += 1
                self.log.warning(
                    "bulk request to %s failed (attempt %d of %d): %s; retrying in %.2fs",
                    self.index,
                    attempt,
                    self.attempts,
                    _short(err),
                    delay,
                )
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, batch: Sequence[tuple[str, bytes]]) -> tuple[int, list[tuple[str, int, str]]]:
        """Send one batch until every item is indexed or failed for good: (indexed, failures)."""
        from elasticsearch import ApiError, TransportError

        pending = list(batch)
        indexed = 0
        failures: list[tuple[str, int, str]] = []
        for attempt in range(1, self.attempts + 1):
            try:
                resp = self._post(b"".join(line for _, line in pending))
            except (ApiError, TransportError) as err:
                reason = f"request failed after {self.attempts} attempts: {_short(err)}"
                return indexed, failures + [(doc_id, _status(err), reason) for doc_id, _ in pending]
            items = resp.get("items", [])
            retry: list[tuple[str, bytes]] = []
            if len(items) != len(pending):
                # A proxy or a server bug answered for other documents: resend all of them.
                self.log.warning(
                    "bulk response has %d items for %d documents; resending", len(items), len(pending)
                )
                retry = pending
            else:
                for (doc_id, line), item in zip(pending, items, strict=True):
                    outcome = next(iter(item.values()))
                    status = int(outcome.get("status", 0))
                    if status < 300:
                        indexed += 1
                    elif status in RETRY_STATUS:
                        retry.append((doc_id, line))
                    else:
                        error = outcome.get("error") or {}
                        failures.append(
                            (doc_id, status, f"{error.get('type', '')}: {error.get('reason', '')}")
                        )
            if not retry:
                return indexed, failures
            if attempt == self.attempts:
                return indexed, failures + [
                    (doc_id, 429, f"still rejected after {self.attempts} attempts") for doc_id, _ in retry
                ]
            with self._lock:
                self._stats.item_retries += len(retry)
            delay = backoff_delay(attempt, self.base_delay, self.max_delay)
            self.log.warning(
                "%d of %d items rejected by %s (429/5xx); resending them in %.2fs",
                len(retry),
                len(pending),
                self.index,
                delay,
            )
            self._sleep(delay)
            pending = retry
        raise AssertionError("unreachable")  # pragma: no cover

    def ingest(self, docs: Iterable[tuple[str, Any]], total: int | None = None) -> BulkStats:
        """Index every document of `docs`; return the stats, or raise ElasticsearchBulkError."""
        self._stats = BulkStats()
        failed: list[tuple[str, int, str]] = []
        in_flight: set[Future[tuple[int, list[tuple[str, int, str]]]]] = set()
        progress = ProgressLogger(self.log, f"bulk index {self.index}", total, unit="docs")

        def collect(done: Iterable[Future[tuple[int, list[tuple[str, int, str]]]]]) -> None:
            for future in done:
                ok, bad = future.result()
                self._stats.indexed += ok
                failed.extend(bad)
                progress.advance(ok + len(bad))

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="llmops-bulk") as pool:
            try:
                for batch in self._batches(docs):
                    if len(in_flight) >= self.concurrency * 2:
                        done, in_flight = _wait_some(in_flight)
                        collect(done)
                    in_flight.add(pool.submit(self._send, batch))
                done, _ = wait(in_flight)
                in_flight = set()
                collect(done)
            except _Fatal as err:
                for future in in_flight:
                    future.cancel()
                raise ElasticsearchBulkError(str(err), failed=failed, index=self.index) from err
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise
        progress.finish()
        self._stats.failed = failed
        if failed:
            shown = "; ".join(
                f"{doc_id}: HTTP {status} {reason}" for doc_id, status, reason in failed[:_MAX_REPORTED]
            )
            more = f" (and {len(failed) - _MAX_REPORTED} more)" if len(failed) > _MAX_REPORTED else ""
            raise ElasticsearchBulkError(
                f"{len(failed)} of {self._stats.indexed + len(failed)} documents could not be indexed into "
                f"{self.index}: {shown}{more}. The alias was not switched; fix the cause and rerun "
                "(ids are deterministic, so a rerun overwrites instead of duplicating).",
                failed=failed,
                index=self.index,
            )
        self.log.info(
            "Indexed %d documents into %s in %d requests (%d request retries, %d item retries, %.1f MB)",
            self._stats.indexed,
            self.index,
            self._stats.requests,
            self._stats.request_retries,
            self._stats.item_retries,
            self._stats.bytes_sent / 1e6,
        )
        return self._stats


def _wait_some(futures: set[Future[Any]]) -> tuple[set[Future[Any]], set[Future[Any]]]:
    done, rest = wait(futures, return_when=FIRST_COMPLETED)
    return set(done), set(rest)


def _status(err: BaseException) -> int:
    meta = getattr(err, "meta", None)
    return int(getattr(meta, "status", 0) or 0)


def _short(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}"
    return text if len(text) < 300 else text[:297] + "..."
