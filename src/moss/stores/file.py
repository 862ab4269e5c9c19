"""The embedded file store: versions of each index as snapshot files in a local directory.

Single-tenant by nature: the project id is only a namespace (a folder) and keys are not
checked; share across users or machines through ``moss serve`` instead. The layout on disk is
described in :mod:`moss.stores.file_layout`. Logic that does I/O step by step (puts, watches)
is written once as a flow (:mod:`moss.flow`); the other async methods run their blocking twin
on a worker thread, so the event loop never waits for the disk.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import time
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from ..atomic_files import DEFAULT_ORPHAN_AGE, sweep_temp_files, temporary_file
from ..errors import IndexNotFoundError, InvalidArgumentError
from ..flow import Flow, Offload, run_async, run_sync
from ..snapshot.codec import SnapshotHeader, SnapshotReader
from ..snapshot.verified_mark import mark_file_verified
from ..types import IndexInfo
from ..validation import validate_name
from . import file_commit
from . import file_layout as layout
from .base import (
    DEFAULT_KEEP_VERSIONS,
    AsyncDownload,
    Chunks,
    Download,
    check_expected_version,
    check_ttl,
    check_version,
)
from .chain import (
    ChainPlan,
    Entry,
    achain_chunks,
    chain_chunks,
    chain_flow,
    check_put_kind,
    check_put_mode,
)
from .chunks import CHUNK_SIZE, AsyncChunks, NextChunk, aiter_sync
from .file_watch import Notifier, Wait

__all__ = ["FileStore", "check_expected_version"]  # (the latter: still imported from here)

#: How often a put also sweeps the whole root (uploads orphaned in indexes nobody pushes to).
_FULL_SWEEP_SECONDS = 3600.0


class FileStore:
    """Keep index versions as files under ``root`` (the zero-setup default store).

    Uploads orphaned by a killed writer (its lock free, untouched for ``orphan_age`` seconds)
    are swept when the store is made, in an index at each put to it, and in the whole root
    hourly.

    Example::

        store = FileStore("~/.moss")
        client = MossClient(store=store)
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        keep_versions: int = DEFAULT_KEEP_VERSIONS,
        max_snapshot_bytes: int | None = None,
        orphan_age: float = DEFAULT_ORPHAN_AGE,
    ) -> None:
        if keep_versions < 1:
            raise InvalidArgumentError(f"keep_versions must be at least 1, got {keep_versions}")
        if not orphan_age >= 0:
            raise InvalidArgumentError(f"orphan_age must be >= 0 seconds, got {orphan_age!r}")
        self.root = Path(root).expanduser().resolve()
        self.keep_versions = keep_versions
        self.max_snapshot_bytes = max_snapshot_bytes
        self.orphan_age = orphan_age
        self.location = self.root.as_uri()
        self.is_local = True
        self._notifier = Notifier(self._index_dir, self.latest_version)
        self._swept_at = 0.0
        self.sweep()

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    def sweep(self) -> int:
        """Remove orphaned uploads in every index of the store; return how many."""
        self._swept_at = time.monotonic()
        projects = self.root / "projects"
        return sum(
            sweep_temp_files(projects / project / index, self.orphan_age)
            for project in layout.listing(projects)
            for index in layout.listing(projects / project)
        )

    # -- paths -----------------------------------------------------------------------------

    def _project_dir(self, project: str) -> Path:
        return (
            self.root / "projects" / layout.encode_name(validate_name(project, what="project id"))
        )

    def _index_dir(self, project: str, name: str) -> Path:
        return self._project_dir(project) / layout.encode_name(validate_name(name))

    # -- writes ----------------------------------------------------------------------------

    def put(
        self,
        project: str,
        name: str,
        chunks: Chunks,
        *,
        expected_version: int | None = None,
        ttl: float | None = None,
        append: bool = False,
    ) -> IndexInfo:
        """Store a snapshot or delta as the next version (see :class:`~moss.stores.base.Store`)."""
        return run_sync(self._put(project, name, chunks, expected_version, ttl, append))

    async def aput(
        self,
        project: str,
        name: str,
        chunks: AsyncChunks,
        *,
        expected_version: int | None = None,
        ttl: float | None = None,
        append: bool = False,
    ) -> IndexInfo:
        """Async twin of :meth:`put`; also accepts an async iterable of chunks."""
        return await run_async(self._put(project, name, chunks, expected_version, ttl, append))

    def _put(
        self,
        project: str,
        name: str,
        chunks: AsyncChunks,
        expected_version: int | None,
        ttl: float | None,
        append: bool,
    ) -> Flow[IndexInfo]:
        check_expected_version(expected_version)
        check_put_mode(expected_version, append)
        ttl = check_ttl(ttl)
        directory = self._index_dir(project, name)
        yield Offload(partial(directory.mkdir, parents=True, exist_ok=True))
        reader = SnapshotReader(
            keep_data=False, expected_name=name, max_size=self.max_snapshot_bytes
        )
        next_chunk = NextChunk(chunks)
        try:
            with temporary_file(directory) as (temp_path, handle):
                while (chunk := (yield next_chunk)) is not None:
                    reader.feed(chunk)
                    yield Offload(partial(handle.write, chunk))
                commit = partial(self._commit, directory, name, reader, handle, temp_path)
                info: IndexInfo = yield Offload(partial(commit, expected_version, ttl, append))
        except BaseException:
            # A failed first put leaves no empty index (or project) directory behind. Called
            # in place (two rmdirs at most): a flow being closed must not yield.
            layout.remove_if_empty(directory)
            raise
        self._notifier.landed(project, name, info.version)
        return info

    def _commit(
        self,
        directory: Path,
        name: str,
        reader: SnapshotReader,
        handle: BinaryIO,
        temp_path: Path,
        expected_version: int | None,
        ttl: float | None,
        append: bool,
    ) -> IndexInfo:
        header = reader.finish()
        assert isinstance(header, SnapshotHeader)
        check_put_kind(name, header.kind, expected_version, append)
        handle.flush()
        os.fsync(handle.fileno())  # the slow part happens before taking the lock
        with layout.locked(directory):
            version = file_commit.publish(
                directory,
                name,
                header,
                temp_path,
                expected_version=expected_version,
                append=append,
                ttl=ttl,
                keep=self.keep_versions,
            )
        # The reader verified every checksum of these bytes: mapped opens need not hash them.
        mark_file_verified(directory / layout.version_file(version, header.kind))
        sweep_temp_files(directory, self.orphan_age)
        if time.monotonic() - self._swept_at > _FULL_SWEEP_SECONDS:
            self.sweep()  # uploads orphaned in indexes nobody pushes to again
        return layout.with_stats(directory, layout.info(name, version, header, header.total_size))

    def _purge_if_expired(self, directory: Path) -> Path:
        """Delete an expired index's versions; cheap (one failed open) when there is no expiry.
        Return the directory."""
        if layout.expired(directory) and directory.is_dir():
            with layout.locked(directory):
                file_commit.purge_if_expired(directory)
        return directory

    def delete(self, project: str, name: str) -> bool:
        """Delete every version of the index; the version counter survives, so numbers are never reused."""
        directory = self._index_dir(project, name)
        if not directory.is_dir():
            return False
        with layout.locked(directory):
            file_commit.purge_if_expired(directory)  # an expired index no longer exists
            return file_commit.remove_versions(directory)

    async def adelete(self, project: str, name: str) -> bool:
        """Async twin of :meth:`delete`."""
        return await asyncio.to_thread(self.delete, project, name)

    # -- reads -----------------------------------------------------------------------------

    def _open(self, project: str, name: str, version: int | None) -> tuple[int, BinaryIO]:
        if version is not None:
            check_version(version)
        directory = self._purge_if_expired(self._index_dir(project, name))
        return layout.open_kept(directory, project, name, version)

    def get(
        self,
        project: str,
        name: str,
        version: int | None = None,
        *,
        if_none_match: int | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> Download:
        """Open the latest (or the given) version for reading; raise if absent. ``chunk_size``:
        the size of each read (a server streaming to many slow clients reads small ones)."""
        if if_none_match is not None:
            check_version(if_none_match, "if_none_match", lowest=0)
        number, handle = self._open(project, name, version)
        if if_none_match is not None and number == if_none_match:
            handle.close()
            return Download(number, iter(()), not_modified=True)
        return Download(number, layout.read_chunks(handle, chunk_size))

    async def aget(
        self,
        project: str,
        name: str,
        version: int | None = None,
        *,
        if_none_match: int | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> AsyncDownload:
        """Async twin of :meth:`get`."""
        get = partial(self.get, if_none_match=if_none_match, chunk_size=chunk_size)
        download = await asyncio.to_thread(get, project, name, version)
        return AsyncDownload(download.version, aiter_sync(download.chunks), download.not_modified)

    def get_chain(
        self,
        project: str,
        name: str,
        *,
        after: int | None = None,
        version: int | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> Download:
        """The chain stream that brings a reader to ``version`` (see :mod:`moss.stores.chain`)."""
        plan, opened = run_sync(self._chain(project, name, after, version, chunk_size))
        return Download(plan.target, chain_chunks(plan, opened), plan.not_modified)

    async def aget_chain(
        self,
        project: str,
        name: str,
        *,
        after: int | None = None,
        version: int | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> AsyncDownload:
        """Async twin of :meth:`get_chain`."""
        plan, opened = await run_async(self._chain(project, name, after, version, chunk_size))
        return AsyncDownload(plan.target, achain_chunks(plan, opened), plan.not_modified)

    def _chain(
        self, project: str, name: str, after: int | None, version: int | None, chunk_size: int
    ) -> Flow[tuple[ChainPlan, list[Any]]]:
        # Planned from the listing and file sizes: no header is read until a frame is sent.
        listing = Offload(partial(self._kept_entries, self._index_dir(project, name)))
        return chain_flow(self, project, name, after, version, listing, chunk_size)

    def _kept_entries(self, directory: Path) -> builtins.list[Entry]:
        return layout.kept_entries(self._purge_if_expired(directory))

    def chain_paths(
        self, project: str, name: str, *, after: int | None = None, version: int | None = None
    ) -> tuple[int, builtins.list[layout.ChainFile]]:
        """The target and the files (version, kind, path) of the chain :meth:`get_chain` would
        send. Files are replaced by rename, never rewritten, so an opened (or mapped) file stays
        as it was; one pruned before it is opened raises ``FileNotFoundError``: ask again."""
        directory = self._index_dir(project, name)
        listing = partial(self._kept_entries, directory)
        return layout.chain_files(directory, listing, project, name, after=after, version=version)

    def latest_version(self, project: str, name: str) -> int:
        """The latest kept version, 0 if none (one directory listing, no file opened)."""
        kept = layout.kept_versions(self._purge_if_expired(self._index_dir(project, name)))
        return kept[-1] if kept else 0

    def watch(self, project: str, name: str, after: int, timeout: float) -> int | None:
        """Wait until a version above ``after`` lands; return it, or None after ``timeout`` s.

        Every watch of the store shares one poll thread (see :mod:`moss.stores.file_watch`).
        """
        return run_sync(self._watch(project, name, after, timeout))

    async def awatch(self, project: str, name: str, after: int, timeout: float) -> int | None:
        """Async twin of :meth:`watch` (waits without blocking the event loop)."""
        return await run_async(self._watch(project, name, after, timeout))

    def _watch(self, project: str, name: str, after: int, timeout: float) -> Flow[int | None]:
        check_version(after, "after", lowest=0)
        self._index_dir(project, name)  # refuses bad names before anything waits
        waiter = self._notifier.add(project, name, after)
        try:
            latest: int = yield Offload(partial(self.latest_version, project, name))
            if latest > after:
                return latest
            if timeout <= 0:
                return None
            version: int | None = yield Wait(waiter, timeout)
            return version
        finally:
            self._notifier.remove(waiter)

    def head(self, project: str, name: str) -> IndexInfo | None:
        """Describe the latest version, or None if the index does not exist."""
        try:
            version, handle = self._open(project, name, None)
        except IndexNotFoundError:
            return None
        with handle:
            info = layout.info_from_file(name, version, handle)
        return layout.with_stats(self._index_dir(project, name), info)

    async def ahead(self, project: str, name: str) -> IndexInfo | None:
        """Async twin of :meth:`head`."""
        return await asyncio.to_thread(self.head, project, name)

    def versions(self, project: str, name: str) -> builtins.list[IndexInfo]:
        """Describe every kept version that can be opened, oldest first."""
        return layout.describe_versions(
            self._purge_if_expired(self._index_dir(project, name)), name
        )

    async def aversions(self, project: str, name: str) -> builtins.list[IndexInfo]:
        """Async twin of :meth:`versions`."""
        return await asyncio.to_thread(self.versions, project, name)

    def list(self, project: str) -> builtins.list[IndexInfo]:
        """Describe the latest version of every index of the project, sorted by name."""
        infos = []
        for entry in layout.listing(self._project_dir(project)):
            name = layout.decode_name(entry)
            if name is None:
                continue
            info = self.head(project, name)
            if info is not None:
                infos.append(info)
        return sorted(infos, key=lambda info: info.name)

    async def alist(self, project: str) -> builtins.list[IndexInfo]:
        """Async twin of :meth:`list`."""
        return await asyncio.to_thread(self.list, project)

    def close(self) -> None:
        """Nothing to release: files are opened per call."""

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
