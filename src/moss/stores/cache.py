"""A local disk cache of downloaded snapshots, for stores across the network.

Keyed by store location, project, index and version. Versions are immutable and never reused
(also after a delete), so a cached version can never be stale: re-opening an unchanged index
costs one conditional request and no download, and a cached copy lets a session open while
the store is unreachable.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .atomic import DEFAULT_ORPHAN_AGE, commit_file, sweep_temp_files, temporary_file

#: How many versions of each index the cache keeps.
CACHE_KEEP_VERSIONS = 2


def default_cache_dir() -> Path:
    """``MOSS_CACHE_DIR``, else ``$MOSS_HOME/cache``, else ``~/.cache/moss``."""
    if explicit := os.environ.get("MOSS_CACHE_DIR"):
        return Path(explicit).expanduser()
    if home := os.environ.get("MOSS_HOME"):
        return Path(home).expanduser() / "cache"
    return Path.home() / ".cache" / "moss"


class SnapshotCache:
    """Snapshots kept on local disk, one directory per (store, project, index).

    Partial downloads left by a killed client are swept when a cache is made: those untouched
    for ``orphan_age`` seconds whose writer is gone.
    """

    def __init__(self, root: Path | None = None, *, orphan_age: float = DEFAULT_ORPHAN_AGE) -> None:
        self.root = root or default_cache_dir()
        try:
            entries = os.listdir(self.root)
        except (FileNotFoundError, NotADirectoryError):
            entries = []
        for entry in entries:
            sweep_temp_files(self.root / entry, orphan_age)

    def _dir(self, location: str, project: str, name: str) -> Path:
        # Hashing the key keeps untrusted names and URLs out of paths entirely.
        key = hashlib.sha256(f"{location}\0{project}\0{name}".encode()).hexdigest()[:32]
        return self.root / key

    def latest(self, location: str, project: str, name: str) -> int | None:
        """The newest cached version of the index, if any."""
        versions = self._versions(self._dir(location, project, name))
        return versions[-1] if versions else None

    def open(self, location: str, project: str, name: str, version: int) -> BinaryIO | None:
        """Open a cached version for reading, or None if it is not cached."""
        try:
            return open(self._dir(location, project, name) / f"{version}.snap", "rb")
        except FileNotFoundError:
            return None

    def discard(self, location: str, project: str, name: str, version: int) -> None:
        """Remove a cached version (found damaged)."""
        with contextlib.suppress(FileNotFoundError):
            (self._dir(location, project, name) / f"{version}.snap").unlink()

    @contextlib.contextmanager
    def writer(self, location: str, project: str, name: str, version: int) -> Iterator[BinaryIO]:
        """Write a version while it downloads; it becomes visible only if the block succeeds."""
        directory = self._dir(location, project, name)
        directory.mkdir(parents=True, exist_ok=True)
        with temporary_file(directory) as (temp_path, handle):
            yield handle
            # No fsync: a cached copy is verified by its checksums when read and fetched
            # again if a crash left it damaged, so durability would only cost time.
            commit_file(handle, temp_path, directory / f"{version}.snap", durable=False)
        for old in self._versions(directory)[:-CACHE_KEEP_VERSIONS]:
            with contextlib.suppress(FileNotFoundError):
                (directory / f"{old}.snap").unlink()

    @staticmethod
    def _versions(directory: Path) -> list[int]:
        try:
            entries = os.listdir(directory)
        except FileNotFoundError:
            return []
        return sorted(int(e[:-5]) for e in entries if e.endswith(".snap") and e[:-5].isdigit())
