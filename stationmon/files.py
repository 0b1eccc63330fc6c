"""Files that are either wholly the old version or wholly the new one, even across a crash."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["atomic_write", "fsync_dir"]


def atomic_write(path: Path, data: bytes, *, fsync: bool = True, tmp: Path | None = None) -> None:
    """Write `data` to `path` through a temporary file and a rename; OSError on failure.

    With `fsync` the file is flushed to disk before the rename and the directory after it, so the new
    content survives a power loss, not only a process crash. `tmp` defaults to a hidden per-process name
    beside `path`; a single writer (one holding a lock) may name a fixed one.
    """
    tmp = tmp or path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Flush a directory's entries to disk: a new or renamed file survives a power cut only then."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
