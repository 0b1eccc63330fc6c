"""Files that are either wholly the old version or wholly the new one, even across a crash.

Every write here checks what the kernel took: `os.write` may write less than asked (a full disk, a
quota, a signal), so `write_all` loops until all is written and raises OSError(ENOSPC) when the kernel
takes nothing, instead of leaving a record cut short behind a success.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

__all__ = ["append_whole", "atomic_write", "fsync_dir", "write_all"]


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of `data` to `fd` (OSError if the kernel will not take them all)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # no error but no progress: a full device on some filesystems
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def append_whole(path: Path, data: bytes) -> None:
    """Append `data` to `path` whole or not at all: a write the disk takes only in part is cut off again."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        start = os.fstat(fd).st_size
        try:
            write_all(fd, data)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, fsync: bool = True, tmp: Path | None = None) -> None:
    """Write `data` to `path` through a temporary file and a rename; OSError on failure.

    With `fsync` the file is flushed to disk before the rename and the directory after it, so the new
    content survives a power loss, not only a process crash. `tmp` defaults to a hidden per-process name
    beside `path`; a single writer (one holding a lock) may name a fixed one.
    """
    tmp = tmp or path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            write_all(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
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
