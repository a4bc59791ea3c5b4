"""Retries with exponential backoff and full jitter, for calls to servers that shed load.

Example::

    result = retry_call(
        lambda: client.bulk(body),
        should_retry=lambda err: getattr(err, "status_code", None) in (429, 502, 503, 504),
        attempts=6,
        what="bulk request",
        log=self.log,
    )
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["backoff_delay", "retry_call"]

_T = TypeVar("_T")


def backoff_delay(attempt: int, base_delay: float = 0.5, max_delay: float = 30.0) -> float:
    """Seconds to wait before retry number `attempt` (1-based): uniform in [0, min(max, base * 2**(n-1))]."""
    return random.uniform(0.0, min(max_delay, base_delay * 2 ** max(attempt - 1, 0)))  # noqa: S311


def retry_call(
    fn: Callable[[], _T],
    *,
    should_retry: Callable[[BaseException], bool],
    attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    what: str = "",
    log: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> _T:
    """`fn()`, retried while `should_retry(err)` holds, at most `attempts` calls in all.

    The last error is re-raised unchanged once the attempts are used up, or at once for an error
    `should_retry` refuses.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts!r}")
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as err:
            if attempt == attempts or not should_retry(err):
                raise
            delay = backoff_delay(attempt, base_delay, max_delay)
            if log is not None:
                log.warning(
                    "%s failed (attempt %d of %d): %s: %s; retrying in %.2fs",
                    what or "call",
                    attempt,
                    attempts,
                    type(err).__name__,
                    err,
                    delay,
                )
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
