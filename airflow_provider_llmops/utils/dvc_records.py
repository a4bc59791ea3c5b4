"""The typed records of the DVC capability: a dataset version, and what a pull or publish did.

Example::

    version = DvcVersion(repo="acme/datasets", path="data/train", rev="v2", sha="ddc1...", md5="ab...dir")
    version.to_xcom()       # {"repo": ..., "path": ..., "rev": "v2", "sha": ..., "md5": ..., ...}
    version.asset_extra()   # the same minus the hash algorithm name
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from airflow_provider_llmops.utils.records import Record

__all__ = ["DvcPublished", "DvcPulled", "DvcPushed", "DvcVersion"]


@dataclass(frozen=True)
class DvcVersion(Record):
    """One version of a DVC-tracked path: where it lives, the rev asked for, the commit, the content md5.

    :param repo: the project's URL or path, without credentials.
    :param path: the tracked path inside the project.
    :param rev: the rev as the user named it (tag, branch, sha, or the sha a date resolved to).
    :param sha: the full commit sha `rev` resolved to.
    :param md5: DVC's content hash (``...dir`` for a folder).
    :param size: bytes in all (None when DVC did not record it).
    :param nfiles: files in all (1 for a single file).
    :param hash: DVC's hash algorithm (``md5``, or ``md5-dos2unix`` for outputs written by DVC 2).
    :param tracked: for a path inside a tracked folder, that folder (whose `md5` and counts these
        are); empty when `path` is tracked itself.
    """

    ASSET_EXCLUDE: ClassVar[tuple[str, ...]] = ("hash",)

    repo: str
    path: str
    rev: str
    sha: str
    md5: str
    size: int | None = None
    nfiles: int | None = None
    hash: str = "md5"
    tracked: str = ""

    @property
    def is_dir(self) -> bool:
        """True when the tracked output is a folder (also for a path inside one)."""
        return self.md5.endswith(".dir")

    @property
    def within(self) -> str:
        """`path` relative to the tracked folder that contains it ('' when `path` is tracked itself)."""
        return self.path[len(self.tracked) + 1 :] if self.tracked else ""

    def at(self, rev: str) -> DvcVersion:
        """The same version labelled with another rev (e.g. the tag a publish created)."""
        return dataclasses.replace(self, rev=rev)


@dataclass(frozen=True)
class DvcPulled(DvcVersion):
    """A version materialised on the worker: `local_path`, and whether bytes had to move."""

    ASSET_EXCLUDE: ClassVar[tuple[str, ...]] = ("hash", "local_path", "transferred")

    local_path: str = ""
    transferred: bool = False


@dataclass(frozen=True)
class DvcPublished(DvcVersion):
    """A version published by `DvcPublisher`; `created` is False for an idempotent rerun."""

    ASSET_EXCLUDE: ClassVar[tuple[str, ...]] = ("hash", "created")

    created: bool = False


@dataclass(frozen=True)
class DvcPushed(Record):
    """What `dvc push` of a working copy sent: the path (None: every output) and the object count."""

    repo: str
    path: str | None
    pushed: int
