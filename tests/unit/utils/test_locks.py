"""File locks between runs: re-entrant in a thread, a clear error after the timeout."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from airflow_provider_llmops.exceptions import LockTimeoutError
from airflow_provider_llmops.utils.locks import file_lock


def _hold(path: str, ready, seconds: float) -> None:
    with file_lock(__import__("pathlib").Path(path), timeout=5):
        ready.set()
        time.sleep(seconds)


def test_lock_is_reentrant_and_times_out_against_another_process(tmp_path):
    lock = tmp_path / "x.lock"
    with file_lock(lock, timeout=1), file_lock(lock, timeout=1):
        pass
    ready = multiprocessing.get_context("spawn").Event()
    holder = multiprocessing.get_context("spawn").Process(target=_hold, args=(str(lock), ready, 3.0))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(LockTimeoutError, match="another run holds its lock") as err:
            with file_lock(lock, timeout=0.2, what="pull destination /data/x"):
                pass
        assert "pull destination /data/x" in str(err.value)
    finally:
        holder.join(30)
