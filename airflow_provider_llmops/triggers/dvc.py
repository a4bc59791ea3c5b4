"""Deferrable wait for a new version of a DVC-tracked path (see `DvcUpdateSensor`).

The blocking git/DVC work runs in a thread (`asyncio.to_thread`), so the triggerer's event
loop never blocks; the timeout uses `time.monotonic()`. Events are structured:
``{"status": "success", "rev", "sha", "md5"}``, ``{"status": "timeout", ...}`` or
``{"status": "error", "error", "error_type", ...}``.

A week-long wait must survive a flaky network: a poll that fails with a transient error
(`TRANSIENT_ERRORS`: the git origin or DVC remote unreachable, a git command failing or
timing out, an OS error) is logged as a warning and retried at the next poll; only
`max_transient_errors` failures in a row end the wait with an error event. Any other error
(a rev that does not exist, a bad connection) ends it at once. A poll that finds the path
untracked logs a warning each time, so a misspelled path does not wait silently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_llmops.assets.dvc import DEFAULT_CONN_ID
from airflow_provider_llmops.exceptions import DvcCommandError, DvcRemoteError
from airflow_provider_llmops.utils.dvc_checks import check_path, check_repo
from airflow_provider_llmops.utils.polling import TransientErrors

# Errors a later poll may not see again: retried up to `max_transient_errors` times in a row.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (DvcRemoteError, DvcCommandError, OSError)
DEFAULT_MAX_TRANSIENT_ERRORS = 3

_log = logging.getLogger(__name__)


def check_for_update(
    dvc_conn_id: str | None,
    repo: str | None,
    path: str,
    rev: str | None,
    tag_pattern: str | None,
    since_md5: str | None,
    log: Any = None,
    *,
    subdir: str | None = None,
) -> dict[str, Any] | None:
    """The current {rev, sha, md5} when its md5 differs from `since_md5`, else None (blocking).

    Logs a warning when `path` is not tracked at the watched rev (or no tag matches yet).
    """
    from airflow_provider_llmops.hooks.dvc import DvcHook

    version = DvcHook(dvc_conn_id, repo=repo, subdir=subdir).current_version(path, rev, tag_pattern)
    if version is None:
        where = (
            f"the newest tag matching {tag_pattern!r}"
            if tag_pattern
            else f"rev {rev or '(connection rev)'!r}"
        )
        (log or _log).warning(
            "%r is not tracked at %s (or no such tag yet): still waiting. If this persists, check "
            "the path (a misspelled path waits until the timeout) and `dvc add`/push it.",
            path,
            where,
        )
        return None
    if version.md5 == since_md5:
        return None
    return {"rev": version.rev, "sha": version.sha, "md5": version.md5}


def _check_max_transient_errors(value: Any) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"max_transient_errors must be an int >= 1, got {value!r}")


class DvcUpdateTrigger(BaseTrigger):
    """Polls the project until `path` at `rev` (or the newest `tag_pattern` tag) has a new md5."""

    def __init__(
        self,
        *,
        path: str,
        since_md5: str | None,
        rev: str | None = None,
        tag_pattern: str | None = None,
        dvc_conn_id: str | None = DEFAULT_CONN_ID,
        repo: str | None = None,
        poke_interval: float = 60.0,
        timeout: float | None = None,
        max_transient_errors: int = DEFAULT_MAX_TRANSIENT_ERRORS,
        subdir: str | None = None,
    ) -> None:
        super().__init__()
        check_path(path)
        check_repo(repo)
        _check_max_transient_errors(max_transient_errors)
        self.max_transient_errors = max_transient_errors
        self.subdir = subdir
        self.path = path
        self.since_md5 = since_md5
        self.rev = rev
        self.tag_pattern = tag_pattern
        self.dvc_conn_id = dvc_conn_id
        self.repo = repo
        self.poke_interval = float(poke_interval)
        self.timeout = float(timeout) if timeout is not None else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "path": self.path,
                "since_md5": self.since_md5,
                "rev": self.rev,
                "tag_pattern": self.tag_pattern,
                "dvc_conn_id": self.dvc_conn_id,
                "repo": self.repo,
                "poke_interval": self.poke_interval,
                "timeout": self.timeout,
                "max_transient_errors": self.max_transient_errors,
                # New kwargs appear only when set, so triggers serialized by older versions match.
                **({"subdir": self.subdir} if self.subdir else {}),
            },
        )

    def _where(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rev": self.rev,
            "tag_pattern": self.tag_pattern,
            "since_md5": self.since_md5,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = time.monotonic() + self.timeout if self.timeout is not None else None
        errors = TransientErrors(self.max_transient_errors, self.log)
        while True:
            try:
                try:
                    found = await asyncio.to_thread(
                        check_for_update,
                        self.dvc_conn_id,
                        self.repo,
                        self.path,
                        self.rev,
                        self.tag_pattern,
                        self.since_md5,
                        self.log,
                        subdir=self.subdir,
                    )
                    errors.ok()
                except TRANSIENT_ERRORS as err:
                    errors.failed(err, repr(self.path))
                    found = None
            except Exception as err:
                # The hook's messages are already redacted of connection secrets.
                yield TriggerEvent(
                    {
                        "status": "error",
                        "error": str(err),
                        "error_type": type(err).__name__,
                        "failed_polls": max(errors.count, 1),
                        **self._where(),
                    }
                )
                return
            if found is not None:
                self.log.info("New version of %s: %s (md5 %s)", self.path, found["sha"][:12], found["md5"])
                yield TriggerEvent({"status": "success", **found, "path": self.path})
                return
            if deadline is not None and time.monotonic() >= deadline:
                yield TriggerEvent({"status": "timeout", "timeout": self.timeout, **self._where()})
                return
            sleep = self.poke_interval
            if deadline is not None:
                sleep = max(0.0, min(sleep, deadline - time.monotonic()))
            await asyncio.sleep(sleep)
