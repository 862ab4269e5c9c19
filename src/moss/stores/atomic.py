"""Durable, atomic file writes: the one helper every file-backed store uses.

A new file is written under a temporary name in the directory of its target, flushed and
fsync'ed, then renamed over the target, and the directory is fsync'ed. ``rename`` within one
directory is atomic on POSIX, so a reader opens either the old file or the complete new one;
the fsyncs make the new file survive a power loss once the call returns (safetensors stops at
the rename; moss does not).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".tmp-"


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry change (a rename, a new or removed file) to disk."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def temporary_file(directory: Path) -> Iterator[tuple[Path, BinaryIO]]:
    """Open a new temporary file in ``directory``; it is removed unless it was renamed away."""
    path = directory / f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    handle = open(path, "xb")  # noqa: SIM115 - closed below, after the caller commits or fails
    try:
        yield path, handle
    finally:
        handle.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


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


def write_file_atomic(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data`` atomically and durably."""
    with temporary_file(target.parent) as (temp_path, handle):
        handle.write(data)
        commit_file(handle, temp_path, target)
