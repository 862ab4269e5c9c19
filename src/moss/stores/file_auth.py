"""The projects-and-keys record of a file store: ``<root>/auth/records``, replaced atomically.

The file holds the version on its first line and the document after it, so one atomic rename
publishes both together. Writers serialise on an flock of ``<root>/auth/lock``; readers take no
lock (they see the old file or the new one) and reuse their last read while the file's identity
(inode, size, mtime) is unchanged, so a server checks keys with one ``stat`` per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..atomic_files import write_file_atomic
from ..errors import ConflictError, InvalidArgumentError

_FileId = tuple[int, int, int]


class FileAuthRecords:
    """:class:`~moss.stores.auth.AuthRecords` kept under a file store's root directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.directory = Path(root).expanduser().resolve() / "auth"
        self._path = self.directory / "records"
        self._cached: tuple[_FileId, int, bytes] | None = None
        self._cache_lock = threading.Lock()

    def read_auth(self) -> tuple[int, bytes | None]:
        """Return the record's version (0 if never written) and its bytes (None if absent)."""
        try:
            stat = os.stat(self._path)
        except FileNotFoundError:
            return 0, None
        identity = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._cache_lock:
            cached = self._cached
        if cached is not None and cached[0] == identity:
            return cached[1], cached[2]
        try:
            with open(self._path, "rb") as handle:
                identity = _identity(handle)
                raw = handle.read()
        except FileNotFoundError:
            return 0, None
        version, data = _parse(raw, self._path)
        with self._cache_lock:
            self._cached = (identity, version, data)
        return version, data

    async def aread_auth(self) -> tuple[int, bytes | None]:
        """Async twin of :meth:`read_auth`."""
        return await asyncio.to_thread(self.read_auth)

    def write_auth(self, data: bytes, *, expected_version: int) -> int:
        """Replace the record if still at ``expected_version``; return the new version."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._locked():
            current, _ = self.read_auth()
            if current != expected_version:
                raise ConflictError(
                    f"the projects-and-keys record is at version {current}, not {expected_version}",
                    expected=expected_version,
                    actual=current,
                )
            version = current + 1
            write_file_atomic(self._path, b"%d\n" % version + data)
        return version

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.directory / "lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _identity(handle: BinaryIO) -> _FileId:
    stat = os.fstat(handle.fileno())
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _parse(raw: bytes, path: Path) -> tuple[int, bytes]:
    first, newline, data = raw.partition(b"\n")
    if not newline or not first.isdigit():
        raise InvalidArgumentError(
            f"{path} is not a moss projects-and-keys record: restore it from a backup"
        )
    return int(first), data
