"""Deferrable wait for a new version of a DVC-tracked path (see `DvcUpdateSensor`).

The blocking git/DVC work runs in a thread (`asyncio.to_thread`), so the triggerer's event
loop never blocks; the timeout uses `time.monotonic()`. Events are structured:
``{"status": "success", "rev", "sha", "md5"}``, ``{"status": "timeout", ...}`` or
``{"status": "error", "error", "error_type", ...}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_llmops.assets import DEFAULT_CONN_ID


def check_for_update(
    dvc_conn_id: str | None,
    repo: str | None,
    path: str,
    rev: str | None,
    tag_pattern: str | None,
    since_md5: str | None,
) -> dict[str, Any] | None:
    """The current {rev, sha, md5} when its md5 differs from `since_md5`, else None (blocking)."""
    from airflow_provider_llmops.hooks.dvc import DvcHook

    current = DvcHook(dvc_conn_id, repo=repo).current_version(path, rev, tag_pattern)
    if current is None or current["md5"] == since_md5:
        return None
    return current


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
    ) -> None:
        super().__init__()
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
        while True:
            try:
                found = await asyncio.to_thread(
                    check_for_update,
                    self.dvc_conn_id,
                    self.repo,
                    self.path,
                    self.rev,
                    self.tag_pattern,
                    self.since_md5,
                )
            except Exception as err:
                # The hook's messages are already redacted of connection secrets.
                yield TriggerEvent(
                    {"status": "error", "error": str(err), "error_type": type(err).__name__, **self._where()}
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
