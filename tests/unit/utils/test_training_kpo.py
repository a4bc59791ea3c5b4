"""The pieces of the training pod operator that need no cluster: log polling and error texts."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from airflow_provider_llmops.utils.training_kpo import (
    PodLogPoller,
    _timestamp_key,
    forbidden_error,
    pod_failure_summary,
)


class _Logs:
    """Answers read_namespaced_pod_log like the API server: every line so far, as raw bytes."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.calls: list[dict] = []

    def read_namespaced_pod_log(self, name, namespace, **kwargs):
        self.calls.append(kwargs)
        return SimpleNamespace(data="".join(f"{line}\n" for line in self.lines).encode())


def test_timestamps_with_trimmed_nanoseconds_sort_by_time():
    assert _timestamp_key("2026-12-02T05:44:47.4Z") > _timestamp_key("2026-12-02T05:44:47.39Z")
    assert _timestamp_key("2026-12-02T05:44:48Z") > _timestamp_key("2026-12-02T05:44:47.999999999Z")


def test_poller_prints_each_line_once_and_keeps_the_tail():
    logs = _Logs()
    poller = PodLogPoller(logs, "p", "ns", "base", logging.getLogger("test"))
    logs.lines = ["2026-12-02T05:44:47.1Z step 1", "2026-12-02T05:44:47.2Z step 2"]
    assert poller.poll() == 2
    logs.lines += ["2026-12-02T05:44:48Z step 3", "Traceback (a line without a timestamp)"]
    assert poller.poll() == 2  # the overlapping window's old lines are skipped
    assert list(poller.tail) == ["step 1", "step 2", "step 3", "Traceback (a line without a timestamp)"]
    assert all(call["_preload_content"] is False for call in logs.calls)
    assert "since_seconds" in logs.calls[-1]


def test_failure_summary_names_the_exit_code():
    term = SimpleNamespace(exit_code=3, reason="Error", message=None)
    status = SimpleNamespace(
        phase="Failed",
        reason=None,
        message=None,
        container_statuses=[SimpleNamespace(name="base", state=SimpleNamespace(terminated=term))],
    )
    assert pod_failure_summary(SimpleNamespace(status=status), "base") == (
        "phase Failed, container 'base' exit code 3 (Error)"
    )


def test_forbidden_error_quotes_the_api_servers_reason():
    err = SimpleNamespace(status=403, body='{"message": "pods is forbidden: User \\"u\\" cannot create"}')
    clear = forbidden_error(err, "kubernetes_default")  # type: ignore[arg-type]
    assert clear is not None
    assert 'pods is forbidden: User "u" cannot create' in str(clear)
    assert "docker/kubernetes/rbac.yaml" in str(clear)
    assert forbidden_error(SimpleNamespace(status=404), "x") is None  # type: ignore[arg-type]
