"""Atomic (and by default durable) file writes: the one helper every file moss writes uses.

A new file is written under a temporary name in the directory of its target, flushed and
fsync'ed, then renamed over the target, and the directory is fsync'ed. ``rename`` within one
directory is atomic on POSIX, so a reader opens either the old file or the complete new one;
the fsyncs make the new file survive a power loss once the call returns (safetensors stops at
the rename; moss does not).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".tmp-"

#: Temporary files whose writer is gone (its flock is free) are swept once untouched this long
#: (seconds). No age is needed for safety: a writer that finds its new file swept before it
#: locked it makes another one (see :func:`temporary_file`).
DEFAULT_ORPHAN_AGE = 0.0


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry change (a rename, a new or removed file) to disk."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def temporary_file(directory: Path) -> Iterator[tuple[Path, BinaryIO]]:
    """Open a new temporary file in ``directory``; it is removed unless it was renamed away.

    The writer holds an flock on it while it lives: the kernel drops the lock when the writer
    dies, which tells :func:`sweep_temp_files` the file is orphaned (pids say nothing: in a
    container the server is pid 1 after every restart).
    """
    path, handle = _locked_new_file(directory)
    try:
        yield path, handle
    finally:
        handle.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _locked_new_file(directory: Path) -> tuple[Path, BinaryIO]:
    """Create a temporary file and take its lock, making another if a sweep removed it first."""
    while True:
        path = directory / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        try:
            handle = open(path, "xb")  # noqa: SIM115 - closed by the caller, after it commits or fails
        except FileNotFoundError:
            # A failed put removed the directory (it was empty) after our caller made it.
            directory.mkdir(parents=True, exist_ok=True)
            continue
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        # Between the create and the lock a sweep may have seen a free lock and removed the
        # file: once locked, the name must still be ours, or the rename would find nothing.
        try:
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                return path, handle
        except FileNotFoundError:
            pass
        handle.close()


def commit_file(handle: BinaryIO, temp_path: Path, target: Path, *, durable: bool = True) -> None:
    """Make a fully written temporary file atomically visible as ``target``.

    ``durable=False`` skips the fsyncs: only for copies that can be fetched again and are
    verified when read (the snapshot cache).
    """
    handle.flush()
    if durable:
        os.fsync(handle.fileno())
    os.rename(temp_path, target)
    if durable:
        fsync_dir(target.parent)


def write_file_atomic(target: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``target`` with ``data`` atomically (and durably unless ``durable=False``: see
    :func:`commit_file`)."""
    with temporary_file(target.parent) as (temp_path, handle):
        handle.write(data)
        commit_file(handle, temp_path, target, durable=durable)


def sweep_temp_files(directory: Path, max_age: float) -> int:
    """Remove the orphaned temporary files in ``directory``; return how many.

    Orphaned: no live writer holds its lock (in this process or another one) and it is untouched
    for ``max_age`` seconds.
    """
    try:
        entries = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    removed = 0
    cutoff = time.time() - max_age
    for entry in entries:
        if entry.startswith(TEMP_PREFIX):
            removed += _remove_if_orphaned(directory / entry, cutoff)
    return removed


def _remove_if_orphaned(path: Path, cutoff: float) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False  # gone meanwhile (committed or swept by another process)
    try:
        if os.fstat(fd).st_mtime > cutoff:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer holds it
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return True
    finally:
        os.close(fd)
