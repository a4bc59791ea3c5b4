"""Progress lines for long work: done/total, rate and ETA, at a steady pace.

`ProgressLogger` is advanced by the caller (documents indexed, steps trained, requests sent);
`TransferProgress` reports files and bytes from a background thread, optionally by probing what
has arrived on disk, for transfers that run inside a library without callbacks (DVC fetch/push).

Example::

    with ProgressLogger(log, "bulk index", total=len(docs), unit="docs") as progress:
        for batch in batches:
            send(batch)
            progress.advance(len(batch))
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["NewFilesProbe", "ProgressLogger", "TransferProgress", "format_eta", "tree_size"]


def format_eta(seconds: float | None) -> str:
    """``ETA 1m05s`` / ``ETA 42s``; ``ETA unknown`` when it cannot be estimated."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "ETA unknown"
    seconds = round(seconds)
    if seconds >= 3600:
        return f"ETA {seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"ETA {seconds // 60}m{seconds % 60:02d}s"
    return f"ETA {seconds}s"


class ProgressLogger:
    """Logs ``what: done/total unit (pct), rate unit/s, ETA`` at most every `interval` seconds.

    :param log: a logger (``self.log`` of a task or hook).
    :param what: what is being done, e.g. ``"bulk index my-index"``.
    :param total: how many units in all; None when unknown (no percentage or ETA then).
    :param unit: the unit's name in the log line.
    :param interval: seconds between two lines; the final line is always written.
    """

    def __init__(
        self, log: Any, what: str, total: float | None, *, unit: str = "items", interval: float = 5.0
    ) -> None:
        self.log = log
        self.what = what
        self.total = total
        self.unit = unit
        self.interval = interval
        self.done = 0.0
        self._start = time.monotonic()
        self._last = self._start

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start

    @property
    def rate(self) -> float:
        """Units per second since the start."""
        return self.done / max(self.elapsed, 1e-9)

    def advance(self, n: float = 1) -> None:
        """Count `n` more units; log when `interval` seconds passed since the last line."""
        self.done += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._line(final=False)

    def finish(self) -> None:
        """Write the final line (count, rate and elapsed time)."""
        self._line(final=True)

    def _line(self, final: bool) -> None:
        rate = self.rate
        if self.total:
            pct = f" ({100.0 * self.done / self.total:.1f}%)"
            shown = f"{self.done:g}/{self.total:g}"
        else:
            pct, shown = "", f"{self.done:g}"
        if final:
            tail = f"done in {self.elapsed:.1f}s"
        elif self.total and rate > 0:
            tail = format_eta((self.total - self.done) / rate)
        else:
            tail = format_eta(None)
        self.log.info("%s: %s %s%s, %.1f %s/s, %s", self.what, shown, self.unit, pct, rate, self.unit, tail)

    def __enter__(self) -> ProgressLogger:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.finish()


class TransferProgress:
    """Logs files and bytes done, rate and ETA every `interval` seconds from a thread.

    Counts come from `add()` calls, or from `probe()` returning (files, bytes) when given: a
    watcher over the folder being filled, for transfers that run without callbacks.

    Example::

        with TransferProgress(log, "fetch data/train", nfiles, nbytes, 5.0, probe) as progress:
            fetch()
    """

    def __init__(
        self,
        log: Any,
        what: str,
        total_files: int,
        total_bytes: int,
        interval: float,
        probe: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        self.log = log
        self.what = what
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.interval = interval
        self.probe = probe
        self.files = 0
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmops-progress", daemon=True)
        self._start = time.monotonic()

    def add(self, nbytes: int, files: int = 0) -> None:
        self.bytes += nbytes
        self.files += files

    def _report(self, final: bool = False) -> None:
        files, nbytes = self.probe() if self.probe else (self.files, self.bytes)
        elapsed = max(time.monotonic() - self._start, 1e-6)
        rate = nbytes / elapsed
        if final:
            eta = "done"
        elif rate > 0 and self.total_bytes > nbytes:
            eta = format_eta((self.total_bytes - nbytes) / rate)
        else:
            eta = format_eta(None)
        self.log.info(
            "%s: %d/%d files, %.1f/%.1f MB, %.1f MB/s, %.0fs elapsed, %s",
            self.what,
            min(files, self.total_files) if self.total_files else files,
            self.total_files,
            nbytes / 1e6,
            self.total_bytes / 1e6,
            rate / 1e6,
            elapsed,
            eta,
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):
                self._report()

    def __enter__(self) -> TransferProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if exc[0] is None:
            self._report(final=True)


class NewFilesProbe:
    """Probe for `TransferProgress`: files written since creation under object-store shard folders.

    Looks at the two-character shard folders (``xx/``) of each root and lists only those whose
    mtime moved, so a big, old cache or remote costs a few hundred stat calls per report.
    """

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = list(dict.fromkeys(roots))
        self.since = time.time_ns() - 1_000_000_000  # 1s slack for coarse file system clocks

    def __call__(self) -> tuple[int, int]:
        files = nbytes = 0
        for root in self.roots:
            try:
                shards = [e for e in os.scandir(root) if len(e.name) == 2 and e.is_dir()]
            except OSError:
                continue
            for shard in shards:
                with contextlib.suppress(OSError):
                    if shard.stat().st_mtime_ns < self.since:
                        continue
                    for entry in os.scandir(shard.path):
                        st = entry.stat()
                        if st.st_mtime_ns >= self.since and entry.is_file():
                            files += 1
                            nbytes += st.st_size
        return files, nbytes


def tree_size(path: Path) -> tuple[int, int]:
    """(files, bytes) under `path` (or of the file)."""
    if not path.is_dir():
        return 1, path.stat().st_size
    files = nbytes = 0
    for root, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                nbytes += os.stat(os.path.join(root, name)).st_size
                files += 1
    return files, nbytes
