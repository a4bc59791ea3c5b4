"""Polls that must survive a flaky network: count transient failures in a row.

Example::

    errors = TransientErrors(limit=3, log=self.log)
    try:
        found = poll()
        errors.ok()
    except TRANSIENT as err:
        errors.failed(err, "data/train")  # warns; re-raises the 3rd failure in a row
"""

from __future__ import annotations

from typing import Any

__all__ = ["TransientErrors"]


class TransientErrors:
    """Counts consecutive transient poll failures; re-raises the last one when there are too many."""

    def __init__(self, limit: int, log: Any) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"the transient error limit must be an int >= 1, got {limit!r}")
        self.limit = limit
        self.count = 0
        self.log = log

    def ok(self) -> None:
        self.count = 0

    def failed(self, err: BaseException, what: str) -> None:
        """Warn about `err`; re-raise it when it is the `limit`-th transient failure in a row."""
        self.count += 1
        if self.count >= self.limit:
            raise err
        self.log.warning(
            "Polling %s failed (%d of %d tolerated in a row), retrying at the next poll: %s: %s",
            what,
            self.count,
            self.limit - 1,
            type(err).__name__,
            err,
        )
