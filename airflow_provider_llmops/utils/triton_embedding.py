"""`TritonEmbeddingClient`: the `Encoder` protocol over a Triton-served embedding model.

It reads the model's signature from the server once (input ``TEXT`` BYTES, output
``EMBEDDING`` FP32 ``[dims]``; names configurable), pins the version it resolved (the served
one unless given) so a deploy in the middle of a long run cannot mix two models' vectors, and
encodes in batches with bounded concurrency, retrying transient errors (server unreachable,
503/overloaded, unavailable) with jittered exponential backoff, logging progress with rate and
ETA. A response with an unexpected shape or dtype fails at once with both named.

Example::

    encoder = TritonEmbeddingClient(TritonHook("llmops_triton_default"), "minilm", batch_size=64, concurrency=4)
    encoder.dims, encoder.model_version   # 384, "3"
    vectors = encoder.encode(["first text", "second text"])  # (2, 384) float32, L2-normalised
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.exceptions import (
    TritonConnectionError,
    TritonEmbeddingError,
    TritonInferenceError,
)
from airflow_provider_llmops.utils.progress import ProgressLogger
from airflow_provider_llmops.utils.retry import retry_call

if TYPE_CHECKING:
    import numpy

    from airflow_provider_llmops.hooks.triton import TritonHook

__all__ = ["TritonEmbeddingClient", "is_transient"]

_TRANSIENT_MARKERS = (
    "unavailable",
    "overload",
    "503",
    "502",
    "504",
    "timed out",
    "timeout",
    "connection reset",
)


def is_transient(err: BaseException) -> bool:
    """True for errors worth retrying: unreachable server, 5xx/unavailable, timeouts."""
    if isinstance(err, TritonConnectionError):
        return True
    if isinstance(err, TritonInferenceError):
        text = (err.server_message or str(err)).lower()
        return any(marker in text for marker in _TRANSIENT_MARKERS)
    return isinstance(err, (TimeoutError, ConnectionError))


class TritonEmbeddingClient:
    """Encode texts with a Triton embedding model (see the module docstring); implements `Encoder`."""

    def __init__(
        self,
        hook: TritonHook,
        model_name: str,
        *,
        model_version: str | int = "",
        batch_size: int = 64,
        concurrency: int = 4,
        attempts: int = 5,
        base_delay: float = 0.5,
        input_name: str = "TEXT",
        output_name: str = "EMBEDDING",
        protocol: str = "http",
        log: Any = None,
        progress_interval: float = 10.0,
    ) -> None:
        if batch_size < 1 or concurrency < 1 or attempts < 1:
            raise ValueError(
                f"batch_size, concurrency and attempts must be >= 1, got {batch_size}, {concurrency}, {attempts}"
            )
        self.hook = hook
        self.model_name = model_name
        self._requested_version = str(model_version)
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.attempts = attempts
        self.base_delay = base_delay
        self.input_name = input_name
        self.output_name = output_name
        self.protocol = protocol
        self.log = log or logging.getLogger(__name__)
        self.progress_interval = progress_interval

    @cached_property
    def _resolved(self) -> tuple[str, int, bool, int]:
        version = self._requested_version
        if not version:
            loaded = self.hook.loaded_versions(self.model_name)
            if not loaded:
                raise TritonEmbeddingError(
                    f"Model {self.model_name!r} has no READY version on Triton at {self.hook.base_url}; "
                    "deploy it first (TritonDeployOperator) or pass model_version."
                )
            version = str(max(loaded))
        meta = self.hook.model_metadata(self.model_name, version)
        inputs = {t["name"]: t for t in meta.get("inputs", [])}
        outputs = {t["name"]: t for t in meta.get("outputs", [])}
        where = f"model {self.model_name!r} v{version}"
        if self.input_name not in inputs or inputs[self.input_name].get("datatype") != "BYTES":
            raise TritonEmbeddingError(
                f"{where} has inputs {_io(inputs)}; an embedding model needs a BYTES input {self.input_name!r}."
            )
        out = outputs.get(self.output_name)
        if out is None or out.get("datatype") != "FP32" or not out.get("shape") or int(out["shape"][-1]) < 1:
            raise TritonEmbeddingError(
                f"{where} has outputs {_io(outputs)}; an embedding model needs an FP32 output "
                f"{self.output_name!r} with a fixed last dimension."
            )
        config = self.hook.model_config(self.model_name, version)
        params = config.get("parameters", {}) or {}
        normalized = (
            str((params.get("llmops_normalized") or {}).get("string_value", "true")).lower() == "true"
        )
        # A request larger than the model's max_batch_size is refused by the server; 0 means no batching.
        max_batch = int(config.get("max_batch_size") or 0)
        return version, int(out["shape"][-1]), normalized, max_batch

    @property
    def model_version(self) -> str:
        return self._resolved[0]

    @property
    def dims(self) -> int:
        return self._resolved[1]

    @property
    def normalized(self) -> bool:
        return self._resolved[2]

    @property
    def request_size(self) -> int:
        """Texts per request: `batch_size`, capped at the model's ``max_batch_size``."""
        max_batch = self._resolved[3]
        return min(self.batch_size, max_batch) if max_batch > 0 else self.batch_size

    def _encode_batch(self, texts: Sequence[str]) -> numpy.ndarray:
        import numpy as np

        array = np.array([t.encode("utf-8") for t in texts], dtype=object).reshape(-1, 1)

        def call() -> numpy.ndarray:
            result = self.hook.infer(
                self.model_name,
                {self.input_name: array},
                [self.output_name],
                model_version=self.model_version,
                protocol=self.protocol,
            )
            return result[self.output_name]

        vectors = retry_call(
            call,
            should_retry=is_transient,
            attempts=self.attempts,
            base_delay=self.base_delay,
            what=f"embedding {len(texts)} texts with {self.model_name!r}",
            log=self.log,
        )
        if vectors.shape != (len(texts), self.dims) or vectors.dtype != np.float32:
            raise TritonEmbeddingError(
                f"Model {self.model_name!r} v{self.model_version} returned {self.output_name} with shape "
                f"{list(vectors.shape)} and dtype {vectors.dtype} for {len(texts)} texts; expected "
                f"[{len(texts)}, {self.dims}] float32. Next: check the model's config (dims) and that the "
                "deployed version is an embedding model."
            )
        return vectors

    def encode(self, texts: Sequence[str]) -> numpy.ndarray:
        """Vectors of ``texts``, shape ``(len(texts), dims)``, float32, in input order."""
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not one string")
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        size = self.request_size
        if size < self.batch_size:
            self.log.info(
                "Sending %d texts per request (model %s max_batch_size), not batch_size=%d",
                size,
                self.model_name,
                self.batch_size,
            )
        chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
        with ProgressLogger(
            self.log,
            f"embed with {self.model_name} v{self.model_version}",
            len(texts),
            unit="texts",
            interval=self.progress_interval,
        ) as progress:
            if self.concurrency == 1 or len(chunks) == 1:
                parts = []
                for chunk in chunks:
                    parts.append(self._encode_batch(chunk))
                    progress.advance(len(chunk))
            else:
                with ThreadPoolExecutor(max_workers=min(self.concurrency, len(chunks))) as pool:
                    futures = [pool.submit(self._encode_batch, chunk) for chunk in chunks]
                    parts = []
                    for chunk, future in zip(chunks, futures, strict=True):
                        parts.append(future.result())
                        progress.advance(len(chunk))
        return np.concatenate(parts)


def _io(tensors: dict[str, Any]) -> list[str]:
    return [f"{name} {t.get('datatype')}{t.get('shape')}" for name, t in tensors.items()]
