"""A local disk cache of downloaded versions, for stores across the network.

Keyed by store location, project, index and version; each version's blob is kept as the store
sent it, a full snapshot (``N.snap``) or a delta (``N.delta``). Versions are immutable and never
reused (also after a delete), so a cached version can never be stale: re-opening an index costs
one chain request that downloads only the versions after the newest cached one, and a cached
chain lets a session open while the store is unreachable.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..atomic_files import DEFAULT_ORPHAN_AGE, commit_file, sweep_temp_files, temporary_file
from ..cache_dir import default_cache_dir
from ..snapshot.chain import FRAME_PREFIX

#: The kind of a cached version known to be a compaction skipped by a reader (an empty marker:
#: its state equals the version before it).
SKIPPED = "skipped"
_SUFFIX = {"full": ".snap", "delta": ".delta", SKIPPED: ".skipped"}
_KINDS = {suffix: kind for kind, suffix in _SUFFIX.items()}


class SnapshotCache:
    """Versions kept on local disk, one directory per (store, project, index).

    A directory keeps one usable chain: the newest full snapshot and the deltas after it (older
    files are removed when a newer full snapshot lands). Partial downloads left by a killed
    client are swept when a cache is made: those untouched for ``orphan_age`` seconds whose
    writer is gone.
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

    def chain(self, location: str, project: str, name: str) -> list[tuple[int, str]]:
        """The cached chain, oldest first: ``(version, kind)`` from the newest full snapshot
        through the consecutive deltas after it (empty if no full snapshot is cached)."""
        return _usable(_entries(self._dir(location, project, name)))

    def latest(self, location: str, project: str, name: str) -> int | None:
        """The newest version the cache can rebuild, if any."""
        chain = self.chain(location, project, name)
        return chain[-1][0] if chain else None

    def open(self, location: str, project: str, name: str, version: int) -> BinaryIO | None:
        """Open a cached version's blob for reading, or None if it is not cached."""
        directory = self._dir(location, project, name)
        for suffix in (_SUFFIX["full"], _SUFFIX["delta"]):
            with contextlib.suppress(FileNotFoundError):
                return open(directory / f"{version}{suffix}", "rb")
        return None

    def discard(self, location: str, project: str, name: str, version: int) -> None:
        """Remove a cached version (found damaged)."""
        directory = self._dir(location, project, name)
        for suffix in _SUFFIX.values():
            with contextlib.suppress(FileNotFoundError):
                (directory / f"{version}{suffix}").unlink()

    @contextlib.contextmanager
    def writer(
        self, location: str, project: str, name: str, version: int, kind: str = "full"
    ) -> Iterator[BinaryIO]:
        """Write one version while it downloads; it becomes visible only if the block succeeds."""
        directory = self._dir(location, project, name)
        directory.mkdir(parents=True, exist_ok=True)
        with temporary_file(directory) as (temp_path, handle):
            yield handle
            # No fsync: a cached copy is verified by its checksums when read and fetched
            # again if a crash left it damaged, so durability would only cost time.
            commit_file(handle, temp_path, directory / f"{version}{_SUFFIX[kind]}", durable=False)
        self._prune(directory)

    @contextlib.contextmanager
    def chain_writer(self, location: str, project: str, name: str) -> Iterator[FrameTee]:
        """Split a chain stream into its versions as it downloads (feed it every chunk); the
        versions become visible when the block succeeds and :meth:`FrameTee.commit` names their
        kinds."""
        directory = self._dir(location, project, name)
        directory.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            tee = FrameTee(directory, stack)
            yield tee
        self._prune(directory)

    @staticmethod
    def _prune(directory: Path) -> None:
        entries = _entries(directory)
        keep = {version for version, _ in _usable(entries)}
        for version, kind in entries:
            if version not in keep:
                with contextlib.suppress(FileNotFoundError):
                    (directory / f"{version}{_SUFFIX[kind]}").unlink()


class FrameTee:
    """Writes each frame's blob of a chain stream to its own temporary file in the cache."""

    def __init__(self, directory: Path, stack: contextlib.ExitStack) -> None:
        self._directory = directory
        self._stack = stack
        self._prefix = bytearray()
        self._remaining = 0
        self._frames: list[tuple[int, Path, BinaryIO]] = []

    def feed(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk).cast("B")
        while view:
            if self._remaining == 0:
                take = min(len(view), FRAME_PREFIX.size - len(self._prefix))
                self._prefix += view[:take]
                view = view[take:]
                if len(self._prefix) == FRAME_PREFIX.size:
                    version, self._remaining = FRAME_PREFIX.unpack(self._prefix)
                    self._prefix = bytearray()
                    path, handle = self._stack.enter_context(temporary_file(self._directory))
                    self._frames.append((version, path, handle))
                continue
            take = min(len(view), self._remaining)
            self._frames[-1][2].write(view[:take])
            self._remaining -= take
            view = view[take:]

    def commit(self, kinds: dict[int, str], skipped: Iterable[int] = ()) -> None:
        """Make every complete frame visible under its version and kind (from the decoded
        chain), and mark the ``skipped`` versions (compactions a reader need not download)."""
        for version, path, handle in self._frames:
            if version in kinds:
                target = self._directory / f"{version}{_SUFFIX[kinds[version]]}"
                commit_file(handle, path, target, durable=False)
        for version in skipped:
            (self._directory / f"{version}{_SUFFIX[SKIPPED]}").touch()


def _entries(directory: Path) -> list[tuple[int, str]]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found: dict[int, str] = {}
    for entry in names:
        stem, dot, suffix = entry.partition(".")
        if dot and stem.isdigit() and f".{suffix}" in _KINDS:
            found[int(stem)] = _KINDS[f".{suffix}"]
    return sorted(found.items())


def _usable(entries: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The newest full snapshot and the consecutive deltas (or skipped compactions) after it."""
    fulls = [i for i, (_, kind) in enumerate(entries) if kind == "full"]
    if not fulls:
        return []
    chain = [entries[fulls[-1]]]
    for version, kind in entries[fulls[-1] + 1 :]:
        if version != chain[-1][0] + 1:
            break
        chain.append((version, kind))
    return chain
