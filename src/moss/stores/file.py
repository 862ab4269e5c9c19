"""The embedded file store: versions of each index as snapshot files in a local directory.

Single-tenant by nature: the project id is only a namespace (a folder) and keys are not
checked; share across users or machines through ``moss serve`` instead.

Layout (names are base32-encoded, never used raw, so case-insensitive file systems, ``:`` and
``..`` cannot make two names collide or escape the root)::

    <root>/projects/<project>/<index>/
        v000000000007.snap    one immutable file per kept version
        counter               the highest version ever assigned (survives deletes)
        lock                  flock'ed by writers: puts, prunes and deletes are serialised
        expires               unix time after which the index counts as deleted (put with ttl)
        .tmp-<pid>-<uuid>     uploads in progress
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import ConflictError, IndexNotFoundError, InvalidArgumentError, SnapshotError
from ..snapshot.codec import SnapshotHeader, SnapshotReader, read_header
from ..types import IndexInfo
from ..validation import validate_name
from .atomic import TEMP_PREFIX, commit_file, temporary_file, write_file_atomic
from .base import DEFAULT_KEEP_VERSIONS, AsyncDownload, Chunks, Download, check_ttl
from .chunks import CHUNK_SIZE, AsyncChunks, aiter_chunks, aiter_sync, iter_chunks

_OPEN_RETRIES = 10
_WATCH_POLL_SECONDS = 0.05


def encode_name(name: str) -> str:
    """Encode a validated name as a portable, case-insensitive-safe file name."""
    return base64.b32encode(name.encode("ascii")).decode("ascii").rstrip("=").lower()


def decode_name(encoded: str) -> str | None:
    """Invert :func:`encode_name`; None for entries that are not encoded names."""
    padded = encoded.upper() + "=" * (-len(encoded) % 8)
    try:
        return base64.b32decode(padded).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None


def _version_file(version: int) -> str:
    return f"v{version:012d}.snap"


def _parse_version_file(file_name: str) -> int | None:
    if file_name.startswith("v") and file_name.endswith(".snap") and len(file_name) == 18:
        digits = file_name[1:13]
        if digits.isdigit():
            return int(digits)
    return None


def check_expected_version(expected_version: int | None) -> None:
    """Refuse an ``expected_version`` that is not None or a non-negative int."""
    if expected_version is not None and (
        isinstance(expected_version, bool)
        or not isinstance(expected_version, int)
        or expected_version < 0
    ):
        raise InvalidArgumentError(
            f"expected_version must be None or an integer >= 0 (0: only if absent), got {expected_version!r}"
        )


class FileStore:
    """Keep index versions as files under ``root`` (the zero-setup default store).

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
    ) -> None:
        if keep_versions < 1:
            raise InvalidArgumentError(f"keep_versions must be at least 1, got {keep_versions}")
        self.root = Path(root).expanduser().resolve()
        self.keep_versions = keep_versions
        self.max_snapshot_bytes = max_snapshot_bytes
        self.location = self.root.as_uri()
        self.is_local = True

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    # -- paths -----------------------------------------------------------------------------

    def _project_dir(self, project: str) -> Path:
        return self.root / "projects" / encode_name(validate_name(project, what="project id"))

    def _index_dir(self, project: str, name: str) -> Path:
        return self._project_dir(project) / encode_name(validate_name(name))

    @staticmethod
    def _kept_versions(directory: Path) -> list[int]:
        try:
            entries = os.listdir(directory)
        except FileNotFoundError:
            return []
        return sorted(v for e in entries if (v := _parse_version_file(e)) is not None)

    @staticmethod
    def _read_counter(directory: Path) -> int:
        try:
            return int((directory / "counter").read_text("ascii"))
        except (FileNotFoundError, ValueError):
            return 0

    @staticmethod
    def _expired(directory: Path) -> bool:
        """Whether the index's ``expires`` time has passed (no file: it never expires)."""
        try:
            expires = float((directory / "expires").read_text("ascii"))
        except (FileNotFoundError, ValueError):
            return False
        return time.time() >= expires

    def _purge_if_expired(self, directory: Path) -> None:
        """Delete an expired index's versions; cheap (one failed open) when there is no expiry."""
        if self._expired(directory) and directory.is_dir():
            with self._locked(directory):
                self._purge_locked(directory)

    def _purge_locked(self, directory: Path) -> None:
        # Checked again under the lock: a put may have renewed or cleared the expiry meanwhile.
        if self._expired(directory):
            self._remove_versions(directory, self._kept_versions(directory))

    def _remove_versions(self, directory: Path, kept: list[int]) -> None:
        """Remove every kept version and the expiry; keep the counter so numbers are never reused."""
        if kept:
            counter = max(kept[-1], self._read_counter(directory))
            write_file_atomic(directory / "counter", str(counter).encode("ascii"))
        for version in kept:
            with contextlib.suppress(FileNotFoundError):
                (directory / _version_file(version)).unlink()
        with contextlib.suppress(FileNotFoundError):
            (directory / "expires").unlink()

    @staticmethod
    def _set_expiry(directory: Path, ttl: float | None) -> None:
        if ttl is None:
            with contextlib.suppress(FileNotFoundError):
                (directory / "expires").unlink()
        else:
            write_file_atomic(directory / "expires", repr(time.time() + ttl).encode("ascii"))

    @contextlib.contextmanager
    def _locked(self, directory: Path) -> Iterator[None]:
        # flock locks belong to the open file description, so they exclude other processes and
        # other threads of this process alike; the kernel drops them if the holder dies.
        with open(directory / "lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    # -- writes ----------------------------------------------------------------------------

    def put(
        self,
        project: str,
        name: str,
        chunks: Chunks,
        *,
        expected_version: int | None = None,
        ttl: float | None = None,
    ) -> IndexInfo:
        """Store a snapshot as the next version (see :class:`~moss.stores.base.Store`)."""
        check_expected_version(expected_version)
        ttl = check_ttl(ttl)
        directory = self._index_dir(project, name)
        directory.mkdir(parents=True, exist_ok=True)
        reader = SnapshotReader(
            keep_data=False, expected_name=name, max_size=self.max_snapshot_bytes
        )
        with temporary_file(directory) as (temp_path, handle):
            for chunk in iter_chunks(chunks):
                reader.feed(chunk)
                handle.write(chunk)
            return self._commit(directory, name, reader, handle, temp_path, expected_version, ttl)

    async def aput(
        self,
        project: str,
        name: str,
        chunks: AsyncChunks,
        *,
        expected_version: int | None = None,
        ttl: float | None = None,
    ) -> IndexInfo:
        """Async twin of :meth:`put`; also accepts an async iterable of chunks."""
        check_expected_version(expected_version)
        ttl = check_ttl(ttl)
        directory = self._index_dir(project, name)
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        reader = SnapshotReader(
            keep_data=False, expected_name=name, max_size=self.max_snapshot_bytes
        )
        with temporary_file(directory) as (temp_path, handle):
            async for chunk in aiter_chunks(chunks):
                reader.feed(chunk)
                await asyncio.to_thread(handle.write, chunk)
            return await asyncio.to_thread(
                self._commit, directory, name, reader, handle, temp_path, expected_version, ttl
            )

    def _commit(
        self,
        directory: Path,
        name: str,
        reader: SnapshotReader,
        handle: BinaryIO,
        temp_path: Path,
        expected_version: int | None,
        ttl: float | None,
    ) -> IndexInfo:
        header = reader.finish()
        assert isinstance(header, SnapshotHeader)
        handle.flush()
        os.fsync(handle.fileno())  # the slow part happens before taking the lock
        with self._locked(directory):
            self._purge_locked(directory)  # an expired index counts as absent
            kept = self._kept_versions(directory)
            current = kept[-1] if kept else 0
            if expected_version is not None and current != expected_version:
                raise ConflictError(
                    f"index {name!r} is at version {current}, not the expected {expected_version}: "
                    "reload it (client.session or session.refresh) and push again",
                    expected=expected_version,
                    actual=current,
                )
            version = max(current, self._read_counter(directory)) + 1
            # Before the version appears: whoever sees the new version also sees its expiry.
            self._set_expiry(directory, ttl)
            commit_file(handle, temp_path, directory / _version_file(version))
            write_file_atomic(directory / "counter", str(version).encode("ascii"))
            self._prune(directory, [*kept, version])
            self._remove_orphaned_uploads(directory)
        return _info(name, version, header, header.total_size)

    def _prune(self, directory: Path, kept: list[int]) -> None:
        # A reader that already opened an old version keeps reading it: unlinking an open file
        # on POSIX frees it only when the last handle closes.
        for version in kept[: -self.keep_versions]:
            with contextlib.suppress(FileNotFoundError):
                (directory / _version_file(version)).unlink()

    @staticmethod
    def _remove_orphaned_uploads(directory: Path) -> None:
        """Remove temporary files of writers that died mid-upload."""
        for entry in os.listdir(directory):
            if not entry.startswith(TEMP_PREFIX):
                continue
            pid_text = entry[len(TEMP_PREFIX) :].split("-", 1)[0]
            if pid_text.isdigit() and not _process_alive(int(pid_text)):
                with contextlib.suppress(FileNotFoundError):
                    (directory / entry).unlink()

    def delete(self, project: str, name: str) -> bool:
        """Delete every version of the index; the version counter survives, so numbers are never reused."""
        directory = self._index_dir(project, name)
        if not directory.is_dir():
            return False
        with self._locked(directory):
            self._purge_locked(directory)  # an expired index no longer exists
            kept = self._kept_versions(directory)
            if not kept:
                return False
            self._remove_versions(directory, kept)
        return True

    async def adelete(self, project: str, name: str) -> bool:
        """Async twin of :meth:`delete`."""
        return await asyncio.to_thread(self.delete, project, name)

    # -- reads -----------------------------------------------------------------------------

    def _open(self, project: str, name: str, version: int | None) -> tuple[int, BinaryIO]:
        directory = self._index_dir(project, name)
        self._purge_if_expired(directory)
        if version is not None:
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise InvalidArgumentError(f"version must be an integer >= 1, got {version!r}")
            try:
                return version, open(directory / _version_file(version), "rb")
            except FileNotFoundError:
                kept = self._kept_versions(directory)
                raise IndexNotFoundError(
                    f"index {name!r} has no version {version} (kept versions: {kept or 'none'})"
                ) from None
        # The latest version can be pruned between listing and opening: list again.
        for _ in range(_OPEN_RETRIES):
            kept = self._kept_versions(directory)
            if not kept:
                break
            with contextlib.suppress(FileNotFoundError):
                return kept[-1], open(directory / _version_file(kept[-1]), "rb")
        raise IndexNotFoundError(
            f"index {name!r} does not exist in project {project!r}: push it first, or check the name"
        )

    def get(
        self,
        project: str,
        name: str,
        version: int | None = None,
        *,
        if_none_match: int | None = None,
    ) -> Download:
        """Open the latest (or the given) version for reading; raise if absent."""
        number, handle = self._open(project, name, version)
        if if_none_match is not None and number == if_none_match:
            handle.close()
            return Download(number, iter(()), not_modified=True)
        return Download(number, _read_chunks(handle))

    async def aget(
        self,
        project: str,
        name: str,
        version: int | None = None,
        *,
        if_none_match: int | None = None,
    ) -> AsyncDownload:
        """Async twin of :meth:`get`."""
        download = await asyncio.to_thread(
            self.get, project, name, version, if_none_match=if_none_match
        )
        return AsyncDownload(download.version, aiter_sync(download.chunks), download.not_modified)

    def latest_version(self, project: str, name: str) -> int:
        """The latest kept version, 0 if none (one directory listing, no file opened)."""
        directory = self._index_dir(project, name)
        self._purge_if_expired(directory)
        kept = self._kept_versions(directory)
        return kept[-1] if kept else 0

    def watch(self, project: str, name: str, after: int, timeout: float) -> int | None:
        """Poll the index directory until a version above ``after`` lands, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            latest = self.latest_version(project, name)
            if latest > after:
                return latest
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(_WATCH_POLL_SECONDS, remaining))

    async def awatch(self, project: str, name: str, after: int, timeout: float) -> int | None:
        """Async twin of :meth:`watch` (polls without blocking the event loop)."""
        deadline = time.monotonic() + timeout
        while True:
            latest = await asyncio.to_thread(self.latest_version, project, name)
            if latest > after:
                return latest
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            await asyncio.sleep(min(_WATCH_POLL_SECONDS, remaining))

    def head(self, project: str, name: str) -> IndexInfo | None:
        """Describe the latest version, or None if the index does not exist."""
        try:
            version, handle = self._open(project, name, None)
        except IndexNotFoundError:
            return None
        with handle:
            return _info_from_file(name, version, handle)

    async def ahead(self, project: str, name: str) -> IndexInfo | None:
        """Async twin of :meth:`head`."""
        return await asyncio.to_thread(self.head, project, name)

    def versions(self, project: str, name: str) -> builtins.list[IndexInfo]:
        """Describe every kept version, oldest first."""
        directory = self._index_dir(project, name)
        self._purge_if_expired(directory)
        infos = []
        for version in self._kept_versions(directory):
            try:
                with open(directory / _version_file(version), "rb") as handle:
                    infos.append(_info_from_file(name, version, handle))
            except FileNotFoundError:
                continue  # pruned meanwhile
        return infos

    async def aversions(self, project: str, name: str) -> builtins.list[IndexInfo]:
        """Async twin of :meth:`versions`."""
        return await asyncio.to_thread(self.versions, project, name)

    def list(self, project: str) -> builtins.list[IndexInfo]:
        """Describe the latest version of every index of the project, sorted by name."""
        project_dir = self._project_dir(project)
        try:
            entries = os.listdir(project_dir)
        except FileNotFoundError:
            return []
        infos = []
        for entry in entries:
            name = decode_name(entry)
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
        """Nothing to release: files are opened per call."""


def _read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while block := handle.read(CHUNK_SIZE):
            yield block


def _info_from_file(name: str, version: int, handle: BinaryIO) -> IndexInfo:
    try:
        header = read_header(handle)
    except SnapshotError as exc:
        raise SnapshotError(
            f"stored version {version} of index {name!r} is unreadable: {exc}"
        ) from exc
    return _info(name, version, header, os.fstat(handle.fileno()).st_size)


def _info(name: str, version: int, header: SnapshotHeader, size: int) -> IndexInfo:
    return IndexInfo(
        name=name,
        version=version,
        model_id=header.model_id,
        dimension=header.dimension,
        doc_count=header.count,
        size_bytes=size,
        created_at=header.created_at,
    )


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
