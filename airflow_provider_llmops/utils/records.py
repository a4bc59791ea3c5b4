"""Typed records that travel between tasks: through XCom and in Asset event extras.

Every arrow of the flow (dataset version, training manifest, model version, index version)
carries one frozen dataclass deriving from `Record`: `to_xcom()` is its JSON-safe dict,
`from_xcom()` reads one back (unknown keys ignored, so older and newer runs interoperate), and
`asset_extra()` is what its Asset event carries (the XCom form minus `ASSET_EXCLUDE`).

Example::

    @dataclass(frozen=True)
    class ModelVersion(Record):
        ASSET_EXCLUDE: ClassVar[tuple[str, ...]] = ("local_path",)
        name: str
        version: int
        local_path: str = ""

    ModelVersion("embedder", 3).to_xcom()  # {"name": "embedder", "version": 3, "local_path": ""}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

__all__ = ["Record"]

_R = TypeVar("_R", bound="Record")


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_xcom()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [_plain(v) for v in items]
    return value


@dataclasses.dataclass(frozen=True)
class Record:
    """Base of the frozen records on the arrows of the flow (see the module docstring)."""

    ASSET_EXCLUDE: ClassVar[tuple[str, ...]] = ()

    def to_xcom(self) -> dict[str, Any]:
        """JSON-safe dict of every field (nested records, tuples and mappings made plain)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def asset_extra(self) -> dict[str, Any]:
        """What the record's Asset event carries: the XCom form minus `ASSET_EXCLUDE`."""
        return {k: v for k, v in self.to_xcom().items() if k not in self.ASSET_EXCLUDE}

    @classmethod
    def from_xcom(cls: type[_R], data: Mapping[str, Any]) -> _R:
        """The record back from its XCom form; keys that are not fields are ignored."""
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        return cls(**{k: v for k, v in data.items() if k in names})
