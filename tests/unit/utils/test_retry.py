"""Retries with exponential backoff and jitter; transient-error counting for polls."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_llmops.utils.polling import TransientErrors
from airflow_provider_llmops.utils.retry import backoff_delay, retry_call


def test_backoff_delay_is_capped_and_grows():
    assert all(0.0 <= backoff_delay(n, 0.5, 4.0) <= min(4.0, 0.5 * 2 ** (n - 1)) for n in range(1, 10))


def test_retry_call_retries_only_what_should_be_retried():
    calls: list[int] = []
    sleeps: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("reset")
        return "ok"

    assert (
        retry_call(flaky, should_retry=lambda e: isinstance(e, ConnectionError), sleep=sleeps.append) == "ok"
    )
    assert len(calls) == 3 and len(sleeps) == 2
    with pytest.raises(ValueError, match="bad input"):
        retry_call(lambda: (_ for _ in ()).throw(ValueError("bad input")), should_retry=lambda e: False)


def test_retry_call_gives_up_with_the_last_error():
    sleeps: list[float] = []

    def down() -> None:
        raise ConnectionError(f"attempt {len(sleeps) + 1}")

    with pytest.raises(ConnectionError, match="attempt 4"):
        retry_call(down, should_retry=lambda e: True, attempts=4, sleep=sleeps.append)
    assert len(sleeps) == 3


def test_transient_errors_reraise_the_limit_th_failure_in_a_row():
    errors = TransientErrors(3, logging.getLogger("test.poll"))
    errors.failed(OSError("1"), "x")
    errors.ok()
    errors.failed(OSError("2"), "x")
    errors.failed(OSError("3"), "x")
    with pytest.raises(OSError, match="4"):
        errors.failed(OSError("4"), "x")
    with pytest.raises(ValueError, match=">= 1"):
        TransientErrors(0, None)
