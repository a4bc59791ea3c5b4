"""Attach a record to the task's Asset event: one way for every operator of the provider.

An operator declares either the Asset itself (known at parse time) or an AssetAlias (the Asset
is only known once the task runs: a templated name, a project read from a connection, a mapped
task). `emit_event` covers both.

Example::

    emit_event(context, version.asset_extra(), asset=self.asset, alias=self.asset_alias,
               resolve=lambda: dvc_asset(self.hook.settings.repo, self.path))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Asset, AssetAlias, Context

__all__ = ["emit_event"]


def emit_event(
    context: Context,
    extra: dict[str, Any],
    *,
    asset: Asset | None,
    alias: AssetAlias | None,
    resolve: Callable[[], Asset],
) -> None:
    """Put `extra` on the event of `asset`; without one, add `resolve()` (the Asset this run produced) to `alias`."""
    events = context.get("outlet_events")
    if events is None:
        return
    if asset is not None:
        events[asset].extra = extra
    elif alias is not None:
        events[alias].add(resolve(), extra=extra)
