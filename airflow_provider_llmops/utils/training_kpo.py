"""The KubernetesPodOperator the training operators run, with three changes found on a real API server.

1. **Logs are polled, not followed.** KubernetesPodOperator follows the container log with one
   streaming request; a stream that the node never closes (a kubelet that lost the container, a
   proxy, kwok in the tests) keeps the task waiting for the read timeout, minutes after the pod
   finished. `PodLogPoller` reads the new lines with plain, bounded requests every
   ``log_poll_interval_s`` and the task notices the end of the pod within one poll.
2. **A failed pod fails the task with its log tail** (and exit code, reason), read before the pod is
   deleted: `TrainingLaunchError` instead of a dump of the pod object.
3. **A pod that cannot start says why**: the start-up timeout names the scheduler's reason
   (``0/3 nodes are available: 3 Insufficient nvidia.com/gpu``) instead of "check the pod events".

The class is built on first use (`training_pod_operator_class`): importing this module loads neither
the kubernetes client nor the cncf operator module.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import math
import re
import time
from collections.abc import Iterator
from typing import Any

from airflow_provider_llmops.exceptions import TrainingLaunchError

__all__ = [
    "LOG_TAIL_LINES",
    "PodLogPoller",
    "explain_forbidden",
    "forbidden_error",
    "pod_failure_summary",
    "training_job_operator_class",
    "training_pod_operator_class",
]

LOG_TAIL_LINES = 40
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _text(response: Any) -> str:
    """The body of a ``_preload_content=False`` response as text.

    (With content preloading, kubernetes-client 36 returns a log as the ``repr`` of its bytes.)
    """
    data = getattr(response, "data", response)
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="backslashreplace")
    return str(data or "")


def forbidden_error(err: BaseException, conn_id: str) -> TrainingLaunchError | None:
    """A clear error for the API server's 403 (RBAC), naming what the identity may not do."""
    if getattr(err, "status", None) != 403:
        return None
    import json

    body = getattr(err, "body", None)
    try:
        message = json.loads(body)["message"] if body else str(err)
    except (ValueError, KeyError, TypeError):
        message = str(body or err)
    return TrainingLaunchError(
        f"Kubernetes refused the request (403 Forbidden): {message}. The identity of connection "
        f"{conn_id!r} lacks a permission the training operators need; grant it the Role in "
        "docker/kubernetes/rbac.yaml (quoted in the README) in this namespace."
    )


@contextlib.contextmanager
def explain_forbidden(conn_id: str) -> Iterator[None]:
    """Turn a 403 from the API server into `forbidden_error`; everything else passes through."""
    try:
        yield
    except Exception as err:
        clear = forbidden_error(err, conn_id)
        if clear is None:
            raise
        raise clear from err


def _timestamp_key(stamp: str) -> tuple[str, int]:
    """Sortable key of an RFC 3339 timestamp with up to nanoseconds (kubelets trim trailing zeros)."""
    if not _TIMESTAMP.match(stamp):
        raise ValueError(f"not an RFC 3339 timestamp: {stamp!r}")
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return whole, int((fraction or "0")[:9].ljust(9, "0"))


class PodLogPoller:
    """Reads a container's new log lines with non-streaming requests; keeps the last lines as the tail.

    Lines are deduplicated by their kubelet timestamp, so overlapping ``sinceSeconds`` windows
    (whole seconds) print nothing twice.
    """

    def __init__(self, client: Any, name: str, namespace: str, container: str, log: Any) -> None:
        self.client = client
        self.name, self.namespace, self.container = name, namespace, container
        self.log = log
        self.tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._last: tuple[str, int] | None = None
        self._last_read = 0.0

    def poll(self) -> int:
        """Print the lines written since the last poll; return how many. API errors propagate."""
        kwargs: dict[str, Any] = {"timestamps": True, "_request_timeout": (30, 60), "_preload_content": False}
        if self._last is not None and self._last_read:
            kwargs["since_seconds"] = max(1, math.ceil(time.time() - self._last_read) + 1)
        read_at = time.time()
        text = self.client.read_namespaced_pod_log(
            self.name, self.namespace, container=self.container, **kwargs
        )
        count = 0
        for raw in _text(text).splitlines():
            stamp, _, line = raw.partition(" ")
            try:
                key = _timestamp_key(stamp)
            except ValueError:  # not a timestamped line: a continuation, print it as it is
                key, line = None, raw
            if key is not None:
                if self._last is not None and key <= self._last:
                    continue
                self._last = key
            self.tail.append(line)
            self.log.info("[%s] %s", self.container, line)
            count += 1
        self._last_read = read_at
        return count

    def read_tail(self) -> list[str]:
        """The last lines of the log (a fresh non-streaming read; the kept tail if that fails)."""
        try:
            text = self.client.read_namespaced_pod_log(
                self.name,
                self.namespace,
                container=self.container,
                tail_lines=LOG_TAIL_LINES,
                _request_timeout=(30, 60),
                _preload_content=False,
            )
            return _text(text).splitlines()
        except Exception:  # the pod is gone or logs are off: what was read already
            return list(self.tail)


def pod_failure_summary(pod: Any, container: str) -> str:
    """``phase Failed, container 'base' exit code 1 (Error: message)`` from a pod object."""
    status = pod.status
    parts = [f"phase {status.phase}"]
    for cs in status.container_statuses or []:
        if cs.name != container or not cs.state or not cs.state.terminated:
            continue
        term = cs.state.terminated
        detail = ": ".join(x for x in (term.reason, term.message) if x)
        parts.append(
            f"container {container!r} exit code {term.exit_code}" + (f" ({detail})" if detail else "")
        )
    if status.reason or status.message:
        parts.append(": ".join(x for x in (status.reason, status.message) if x))
    return ", ".join(parts)


def unschedulable_reason(pod: Any) -> str:
    """The scheduler's message when the pod is not scheduled (``0/3 nodes are available: ...``)."""
    for cond in (pod.status.conditions if pod and pod.status else None) or []:
        if cond.type == "PodScheduled" and cond.status == "False":
            return ": ".join(x for x in (cond.reason, cond.message) if x)
    return ""


@functools.cache
def training_pod_operator_class() -> type:  # noqa: C901 - one class, its overrides nested
    """KubernetesPodOperator with polled logs, failure log tails and start-up reasons (see module doc)."""
    import kubernetes.client
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.cncf.kubernetes.utils.pod_manager import container_is_running

    class TrainingPodOperator(KubernetesPodOperator):  # type: ignore[misc]
        def __init__(self, *, log_poll_interval_s: float = 10.0, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.log_poll_interval_s = log_poll_interval_s
            self.log_poller: PodLogPoller | None = None
            self.start_failure: TrainingLaunchError | None = None

        def _poller(self, pod: Any) -> PodLogPoller:
            if self.log_poller is None or self.log_poller.name != pod.metadata.name:
                self.log_poller = PodLogPoller(
                    self.client, pod.metadata.name, pod.metadata.namespace, self.base_container_name, self.log
                )
            return self.log_poller

        def await_pod_start(self, pod: Any) -> Any:
            try:
                return super().await_pod_start(pod)
            except Exception as err:
                if type(err).__name__ not in ("PodLaunchFailedException", "PodLaunchTimeoutException"):
                    raise
                try:
                    remote = self.pod_manager.read_pod(pod)
                except Exception:
                    remote = None
                reason = unschedulable_reason(remote)
                where = f"{pod.metadata.namespace}/{pod.metadata.name}"
                within = f"training pod {where} did not start within {self.startup_timeout_seconds}s"
                self.start_failure = TrainingLaunchError(
                    f"{within}: unschedulable: {reason}. Ask for fewer GPUs (resources.gpus_per_node) or "
                    "check node_selector, tolerations and the nodes' nvidia.com/gpu capacity."
                    if reason
                    else f"{within}: {err}"
                )
                raise self.start_failure from err

        def await_pod_completion(self, pod: Any) -> None:  # type: ignore[override]
            if not self.get_logs:
                return super().await_pod_completion(pod)
            poller = self._poller(pod)
            try:
                while True:
                    remote = self.pod_manager.read_pod(pod)
                    poller.poll()
                    if not container_is_running(pod=remote, container_name=self.base_container_name):
                        break
                    time.sleep(self.log_poll_interval_s)
                poller.poll()  # what the container wrote in its last moments
            except kubernetes.client.exceptions.ApiException as exc:
                self._handle_api_exception(exc, pod)

        def cleanup(self, pod: Any, remote_pod: Any, *args: Any, **kwargs: Any) -> Any:
            phase = getattr(getattr(remote_pod, "status", None), "phase", None)
            if self._killed or not remote_pod or phase == "Succeeded":
                return super().cleanup(pod, remote_pod, *args, **kwargs)
            if self.start_failure is not None:  # the pod never ran: delete it, keep the start error
                with contextlib.suppress(Exception):
                    super().cleanup(pod, remote_pod, *args, **kwargs)
                return None
            tail = self._poller(remote_pod).read_tail()  # before the pod (and its log) is deleted
            try:
                return super().cleanup(pod, remote_pod, *args, **kwargs)
            except Exception as err:
                if type(err).__name__ == "AirflowSkipException":
                    raise
                where = f"{remote_pod.metadata.namespace}/{remote_pod.metadata.name}"
                log = "\n".join(f"  {line}" for line in tail) or "  (no log)"
                raise TrainingLaunchError(
                    f"training pod {where} failed: {pod_failure_summary(remote_pod, self.base_container_name)}. "
                    f"Last {len(tail)} log lines:\n{log}"
                ) from err

    return TrainingPodOperator


@functools.cache
def training_job_operator_class() -> type:
    """KubernetesJobOperator that waits for all of the Job's pods to exist before watching them.

    The cncf operator lists the pods a few times back to back right after creating the Job; against
    a real controller-manager (which creates the pods a moment later) it finds none and fails with
    "No pods running with labels ...". This one polls (every ``job_poll_interval``, up to
    ``startup_timeout_seconds``) until ``parallelism`` pods are there.
    """
    from airflow.providers.cncf.kubernetes.operators.job import KubernetesJobOperator

    class TrainingJobOperator(KubernetesJobOperator):  # type: ignore[misc]
        def get_pods(self, pod_request_obj: Any, context: Any, *, exclude_checked: bool = True) -> Any:
            selector = self._build_find_pod_label_selector(context, exclude_checked=exclude_checked)
            namespace = pod_request_obj.metadata.namespace
            job_name = self.job.metadata.name if self.job is not None else pod_request_obj.metadata.name
            deadline = time.monotonic() + self.startup_timeout_seconds
            while True:
                if self._killed:
                    raise TrainingLaunchError(f"the task was killed while Job {namespace}/{job_name} started")
                # Raises (404) when the Job is gone, e.g. deleted by on_kill or by a person.
                self.job_client.read_namespaced_job(name=job_name, namespace=namespace)
                found = self.client.list_namespaced_pod(namespace=namespace, label_selector=selector).items
                if len(found) >= self.parallelism or time.monotonic() > deadline:
                    break
                time.sleep(min(self.job_poll_interval, 2.0))
            if len(found) < self.parallelism:
                raise TrainingLaunchError(
                    f"Job {namespace}/{job_name} has {len(found)} of "
                    f"{self.parallelism} pods after {self.startup_timeout_seconds}s; check the Job's events "
                    "(quota, admission webhooks, Kueue admission)"
                )
            return super().get_pods(pod_request_obj, context, exclude_checked=exclude_checked)

    return TrainingJobOperator
