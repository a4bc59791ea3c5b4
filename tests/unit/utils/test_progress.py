"""Progress lines: done/total, rate and ETA."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_llmops.utils.progress import ProgressLogger, format_eta


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "ETA unknown"), (-1, "ETA unknown"), (42.4, "ETA 42s"), (65, "ETA 1m05s"), (3725, "ETA 1h02m")],
)
def test_format_eta(seconds, text):
    assert format_eta(seconds) == text


def test_progress_logs_rate_eta_and_a_final_line(caplog):
    log = logging.getLogger("test.progress")
    with caplog.at_level(logging.INFO, "test.progress"):
        with ProgressLogger(log, "index docs", total=10, unit="docs", interval=0.0) as progress:
            progress.advance(4)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("index docs: 4/10 docs (40.0%), ") and "docs/s, ETA" in lines[0]
    assert lines[-1].startswith("index docs: 4/10 docs (40.0%)") and "done in" in lines[-1]


def test_progress_without_total_has_no_eta(caplog):
    log = logging.getLogger("test.progress")
    with caplog.at_level(logging.INFO, "test.progress"):
        progress = ProgressLogger(log, "stream", total=None, interval=0.0)
        progress.advance(3)
    assert "stream: 3 items, " in caplog.records[0].getMessage()
    assert "ETA unknown" in caplog.records[0].getMessage()
