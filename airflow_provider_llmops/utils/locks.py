"""Exclusive file locks between runs on one worker (pull destinations, working copies, clones).

`flock` locks die with their process, so a crashed run never leaves a stale lock behind.

Example::

    with file_lock(dest.parent / ".train.lock", timeout=600, what="pull destination /data/train"):
        materialise(dest)
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from airflow_provider_llmops.exceptions import LockTimeoutError

__all__ = ["file_lock"]

_log = logging.getLogger(__name__)
_held = threading.local()


@contextlib.contextmanager
def file_lock(
    path: Path,
    *,
    timeout: float | None = None,
    what: str = "",
    error: Callable[[str], Exception] | None = None,
) -> Iterator[None]:
    """Exclusive `flock` on `path`, re-entrant within a thread.

    :param timeout: seconds to wait for another run's lock; None waits for ever.
    :param what: what the lock protects, for the log and the error.
    :param error: builds the exception raised on timeout from its message (default
        `LockTimeoutError`), so a capability raises its own subclass with its own context.
    """
    import fcntl

    key = os.path.abspath(path)
    held: dict[str, int] = _held.__dict__.setdefault("paths", {})
    if held.get(key):
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    with open(path, "a") as fh:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay, logged = 0.05, False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    message = (
                        f"Gave up after {timeout:.0f}s waiting for {what or path}: another run holds "
                        f"its lock ({path}). Retry once that run has finished, or raise lock_timeout "
                        "if it is legitimately long."
                    )
                    raise (error or LockTimeoutError)(message) from None
                if not logged:
                    _log.info("Waiting for %s (lock %s held by another run)", what or path, path)
                    logged = True
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        held[key] = 1
        try:
            yield
        finally:
            held.pop(key, None)
            fcntl.flock(fh, fcntl.LOCK_UN)
