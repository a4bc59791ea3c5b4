"""Pull a DVC-tracked path at a rev onto the worker, verifying every byte against DVC's md5.

`DvcPuller` is the multi-step work behind `DvcPullOperator` and the dataset review: resolve the
version, fetch missing objects from the remote into the cache, copy them into a folder beside
the destination while hashing, then swap it in. A marker next to the destination makes a
second pull of the same version a no-op.

Example::

    pulled = DvcPuller(DvcHook("llmops_dvc_default")).pull("data/train", "v2", "/data/train")
    pulled.local_path, pulled.transferred
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from airflow_provider_llmops.exceptions import (
    DvcChecksumError,
    DvcDestinationError,
    DvcError,
    DvcPathNotTrackedError,
    DvcRemoteError,
)
from airflow_provider_llmops.utils.dvc_records import DvcPulled, DvcVersion
from airflow_provider_llmops.utils.progress import TransferProgress

if TYPE_CHECKING:
    from airflow_provider_llmops.hooks.dvc import DvcHook, DvcRepoHandle

__all__ = ["DvcPuller"]

MARKER_SUFFIX = ".dvc-pull.json"
LOCK_SUFFIX = ".dvc-pull.lock"
CHUNK = 4 * 1024 * 1024
DOS2UNIX_CHUNK = 2**20  # dvc_data's fobj_md5 block: text detection and CRLF->LF apply per block
VERIFIED_HASHES = ("md5", "md5-dos2unix")


class DvcPuller:
    """Materialises versions of a DVC project's tracked paths (idempotent, md5-verified).

    :param hook: the project's client.
    """

    def __init__(self, hook: DvcHook) -> None:
        self.hook = hook
        self.log = hook.log

    def pull(self, path: str, rev: str | None, dest: str | os.PathLike[str]) -> DvcPulled:
        """Materialise tracked `path` at `rev` (None: the configured rev) as `dest`.

        `dest` becomes the folder (tracked folder) or the file itself. It must be absent, an
        empty folder, or an earlier pull's result (it has the marker below); anything else raises
        DvcDestinationError before a byte is touched. It may not be the current directory, one
        of its parents, or the project's working copy. Idempotent: a marker next to `dest`
        (``.<name>.dvc-pull.json``) records the md5 and each file's size and mtime; when they
        match the files on disk, nothing is transferred. Every file is checked against its md5.
        """
        target = self._check_dest(dest, path, rev)
        version = self.hook.version(path, rev)
        marker = target.parent / f".{target.name}{MARKER_SUFFIX}"
        self._check_replaceable(target, marker, version)  # before even creating the lock file
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = target.parent / f".{target.name}{LOCK_SUFFIX}"
        with self.hook.lock(lock, f"pull destination {target}", rev=version.rev, rel=version.path):
            self._check_replaceable(target, marker, version)
            transferred = not _marker_matches(marker, target, version)
            if transferred:
                self._fetch_and_materialise(version, target)
            else:
                self.log.info(
                    "%s@%s (%s, md5 %s) already at %s: nothing to transfer",
                    version.path,
                    version.rev,
                    version.sha[:12],
                    version.md5,
                    target,
                )
            _write_marker(marker, version, target)
        return DvcPulled(**dataclasses.asdict(version), local_path=str(target), transferred=transferred)

    def changed_files(self, path: str, old_rev: str, new_rev: str) -> dict[str, list[str]]:
        """Files of `path` added, removed and modified between two revs, from DVC's listings (no data)."""
        old = self.hook.version(path, old_rev)
        new = self.hook.version(path, new_rev)
        if old.md5 == new.md5:
            return {"added": [], "removed": [], "modified": []}
        with self.hook.open_repo() as handle:
            a = dict(self._manifest(handle, old))
            b = dict(self._manifest(handle, new))
        return {
            "added": sorted(k for k in b if k not in a),
            "removed": sorted(k for k in a if k not in b),
            "modified": sorted(k for k in b if k in a and a[k] != b[k]),
        }

    # ------------------------------------------------------------------ steps
    def _fetch_and_materialise(self, version: DvcVersion, target: Path) -> None:
        start = time.monotonic()
        total = int(version.size or 0)
        with self.hook.open_repo() as handle:
            manifest = self._manifest(handle, version)
            odb = handle.cache_odb(version.hash)
            missing = sorted({md5 for _, md5 in manifest if not os.path.exists(odb.oid_to_path(md5))})
            if missing:
                self.log.info(
                    "Fetching %d object(s) of %s@%s from the DVC remote of %s",
                    len(missing),
                    version.path,
                    version.rev,
                    self.hook.repo_label,
                )

                def probe() -> tuple[int, int]:
                    done = [p for p in (Path(odb.oid_to_path(m)) for m in missing) if p.exists()]
                    return len(done), sum(p.stat().st_size for p in done)

                with TransferProgress(
                    self.log, f"fetch {version.path}", len(missing), total, self.hook.progress_interval, probe
                ):
                    self._transfer(handle, missing, version)
            try:
                self._materialise(odb, manifest, target, version, from_remote=bool(missing))
            except DvcChecksumError:
                if missing:
                    raise
                # A corrupted cache object was removed: fetch it once more from the remote.
                self.log.warning(
                    "Cache object of %s corrupted; fetching it again from the remote", version.path
                )
                missing = sorted({m for _, m in manifest if not os.path.exists(odb.oid_to_path(m))})
                self._transfer(handle, missing, version)
                self._materialise(odb, manifest, target, version, from_remote=True)
        self.log.info(
            "Pulled %s@%s (%s, %d files, %.1f MB) to %s in %.1fs",
            version.path,
            version.rev,
            version.sha[:12],
            len(manifest),
            total / 1e6,
            target,
            time.monotonic() - start,
        )

    def _error(self, cls: type[DvcError], message: str, version: DvcVersion) -> DvcError:
        return self.hook.error(cls, message, rev=version.rev, sha=version.sha, path=version.path)

    def _transfer(self, handle: DvcRepoHandle, oids: Sequence[str], version: DvcVersion) -> None:
        """Fetch objects from the remote into the cache; DvcRemoteError when the remote lacks any."""
        from dvc_data.hashfile.hash_info import HashInfo

        self.hook.check_remote(handle, rev=version.rev, path=version.path)
        try:
            result = handle.repo.cloud.pull(
                [HashInfo(version.hash, oid) for oid in oids], remote=handle.remote
            )
        except DvcError:
            raise
        except Exception as err:
            raise self._error(
                DvcRemoteError,
                f"Fetching from the DVC remote failed: {type(err).__name__}: {err}",
                version,
            ) from err
        odb = handle.cache_odb(version.hash)
        absent = [oid for oid in oids if not os.path.exists(odb.oid_to_path(oid))]
        if result.failed or absent:
            raise self._error(
                DvcRemoteError,
                f"The DVC remote lacks {len(result.failed) or len(absent)} object(s) of {version.path!r}. "
                "Run `dvc push` from a copy that has the data, then retry.",
                version,
            )

    def _manifest(self, handle: DvcRepoHandle, version: DvcVersion) -> list[tuple[str, str]]:
        """(relpath, md5) of every file of `version.path`; relpath '' for a single file.

        For a path inside a tracked folder, the part of the folder's listing under that path.
        """
        if not version.tracked:
            return self._listing(handle, version)
        within = version.within
        listing = self._listing(handle, version)
        exact = [("", md5) for rel, md5 in listing if rel == within]
        part = exact or [
            (rel[len(within) + 1 :], md5) for rel, md5 in listing if rel.startswith(within + "/")
        ]
        if not part:
            raise self._error(
                DvcPathNotTrackedError,
                f"{version.tracked!r} is tracked by DVC but holds no {within!r}. Check the path, or pull "
                f"{version.tracked!r} itself.",
                version,
            )
        return part

    def _listing(self, handle: DvcRepoHandle, version: DvcVersion) -> list[tuple[str, str]]:
        """(relpath, md5) of every file of the tracked output; relpath '' for a single file."""
        if not version.is_dir:
            return [("", version.md5)]
        dir_path = Path(handle.cache_odb(version.hash).oid_to_path(version.md5))
        if not dir_path.exists():
            self._transfer(handle, [version.md5], version)
        raw = dir_path.read_bytes()
        # A listing is JSON (no CRLF): its md5 and md5-dos2unix agree. Other hash types are
        # not verified here, so never deleted.
        if version.hash in VERIFIED_HASHES and hashlib.md5(raw).hexdigest() + ".dir" != version.md5:  # noqa: S324
            _remove(dir_path)
            raise self._error(
                DvcChecksumError,
                f"Directory listing {version.md5} is corrupted (md5 mismatch). It was removed from the "
                "cache; if the retry fails the DVC remote copy is corrupted too: re-push it from a good copy.",
                version,
            )
        return sorted((str(e["relpath"]), str(e["md5"])) for e in json.loads(raw))

    def _check_dest(self, dest: str | os.PathLike[str], path: str, rev: str | None) -> Path:
        """`dest` as an absolute path, refusing ones whose replacement would delete too much."""
        if dest is None or not str(dest).strip():
            raise self.hook.error(
                DvcError,
                "No destination given: pass the folder (or file) the data should become.",
                rev=str(rev or ""),
                path=path,
            )
        target = Path(os.path.abspath(dest))
        protected = [Path(os.path.abspath(os.getcwd())), Path.home()]
        if self.hook.is_local_checkout:
            protected.append(Path(self.hook.settings.repo).resolve())
        if target == Path(target.anchor) or any(p == target or target in p.parents for p in protected):
            raise self.hook.error(
                DvcError,
                f"Refusing to materialise the data as {target}: it would replace the current directory, "
                "the home folder or the project itself. Pass a dedicated folder such as ./data/<name>.",
                rev=str(rev or ""),
                path=path,
            )
        return target

    def _check_replaceable(self, target: Path, marker: Path, version: DvcVersion) -> None:
        """Raise DvcDestinationError unless `target` is absent, an empty folder, or ours (marker)."""
        if not os.path.lexists(target):
            return
        if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
            return
        if _read_marker(marker) is not None:
            return
        what = "a non-empty folder" if target.is_dir() and not target.is_symlink() else "a file"
        raise self._error(
            DvcDestinationError,
            f"Refusing to materialise the data as {target}: it is {what} that this provider did not "
            f"write (no pull marker {marker.name} next to it), and pulling would delete it. Nothing was "
            f"changed. Pick a new or empty folder as the destination, or remove {target} yourself if "
            "its contents may go.",
            version,
        )

    def _materialise(
        self, odb: Any, manifest: list[tuple[str, str]], target: Path, version: DvcVersion, from_remote: bool
    ) -> None:
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}"
        _remove(tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with TransferProgress(
                self.log,
                f"checkout {version.path}",
                len(manifest),
                int(version.size or 0),
                self.hook.progress_interval,
            ) as progress:
                bad: list[str] = []
                for rel, md5 in manifest:
                    dst = tmp / rel if rel else tmp
                    src = Path(odb.oid_to_path(md5))
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    digest = _copy_md5(src, dst, progress, version.hash)
                    if digest is not None and digest != md5:
                        _remove(src)  # never leave a bad object in the cache
                        bad.append(rel or PurePosixPath(version.path).name)
                    progress.add(0, 1)
            if bad:
                where = (
                    "the DVC remote's copy is corrupted: re-push it from a good copy "
                    "(`dvc push` where the data is intact), then retry"
                    if from_remote
                    else "the local DVC cache was corrupted; retry to fetch it again"
                )
                shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
                raise self._error(
                    DvcChecksumError,
                    f"Checksum mismatch for {len(bad)} file(s) ({shown}): content differs from the md5 "
                    f"DVC recorded. The bad objects were removed from the cache; {where}.",
                    version,
                )
            _remove(target)
            os.replace(tmp, target)
        finally:
            _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _copy_md5(src: Path, dst: Path, progress: TransferProgress, hash_name: str = "md5") -> str | None:
    """Copy `src` to `dst`; returns its `hash_name` digest, or None for a hash type not verified.

    md5-dos2unix (outputs written by DVC 2, no ``hash`` field) is the md5 of the content with
    CRLF turned into LF for text files, judged per 1 MiB block exactly as dvc_data computes it.
    """
    dos2unix = hash_name == "md5-dos2unix"
    if dos2unix:
        from dvc_data.hashfile.istextfile import DEFAULT_CHUNK_SIZE, istextblock
    digest = hashlib.md5() if hash_name in VERIFIED_HASHES else None  # noqa: S324 - DVC's hash
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(DOS2UNIX_CHUNK if dos2unix else CHUNK):
            if digest is not None:
                if dos2unix and istextblock(chunk[:DEFAULT_CHUNK_SIZE]):
                    digest.update(chunk.replace(b"\r\n", b"\n"))
                else:
                    digest.update(chunk)
            fout.write(chunk)
            progress.add(len(chunk))
    return digest.hexdigest() if digest is not None else None


def _file_stats(target: Path) -> dict[str, list[int]]:
    """{relpath: [size, mtime_ns]} of every file of `target` ('' for a single file); stat only."""
    if not target.is_dir():
        st = target.stat()
        return {"": [st.st_size, st.st_mtime_ns]}
    stats: dict[str, list[int]] = {}
    for root, _, names in os.walk(target):
        for name in names:
            full = os.path.join(root, name)
            st = os.stat(full)
            stats[os.path.relpath(full, target).replace(os.sep, "/")] = [st.st_size, st.st_mtime_ns]
    return stats


def _read_marker(marker: Path) -> dict[str, Any] | None:
    """The pull marker's content, or None when it is absent or not one of ours."""
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or "md5" not in data or "path" not in data:
        return None
    return data


def _marker_matches(marker: Path, target: Path, version: DvcVersion) -> bool:
    data = _read_marker(marker)
    if data is None:
        return False
    if data.get("md5") != version.md5 or data.get("path") != version.path or not target.exists():
        return False
    recorded = data.get("files")
    if not isinstance(recorded, dict):
        return False  # marker of an older version: re-materialise once
    # Count, sizes and mtimes of what is on disk now: a same-size edit changes the mtime.
    return _file_stats(target) == {k: list(v) for k, v in recorded.items()}


def _write_marker(marker: Path, version: DvcVersion, target: Path) -> None:
    data: dict[str, Any] = version.asset_extra()
    data["files"] = _file_stats(target)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, marker)
