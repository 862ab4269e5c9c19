"""The on-disk layout of the file store: encoded names, version files, counter, expiry, lock.

Layout (names are base32-encoded, never used raw, so case-insensitive file systems, ``:`` and
``..`` cannot make two names collide or escape the root)::

    <root>/projects/<project>/<index>/
        v000000000007.snap    one immutable file per kept version: a full snapshot,
        v000000000008.delta   or a delta on top of the version before it,
        v000000000009.compact or a compaction (a full snapshot equal to the version before it)
        counter               the highest version assigned before the last delete or expiry
                              (versions are never reused: the next is above it and every file)
        lock                  flock'ed by writers: puts, prunes and deletes are serialised
        expires               unix time after which the index counts as deleted (put with ttl)
        .tmp-<uuid>           uploads in progress (flock'ed by their writer)
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..atomic_files import write_file_atomic
from ..errors import IndexNotFoundError, SnapshotError
from ..snapshot.codec import SnapshotHeader, read_header
from ..types import IndexInfo
from .base import check_version
from .chain import BASE_KINDS, Entry, doc_count, openable, plan_chain, with_chain_stats
from .chunks import CHUNK_SIZE


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


def version_file(version: int, kind: str = "full") -> str:
    """The file name of a version (the number zero-padded so names sort as numbers); the
    suffix says its kind, so listing the directory tells which versions are deltas."""
    return f"v{version:012d}{SUFFIXES[kind]}"


SUFFIXES = {"full": ".snap", "delta": ".delta", "compaction": ".compact"}


def _parse_version_file(file_name: str) -> tuple[int, str] | None:
    for kind, suffix in SUFFIXES.items():
        if file_name.startswith("v") and file_name.endswith(suffix):
            digits = file_name[1 : -len(suffix)]
            if digits.isdigit():
                return int(digits), kind
    return None


def kept_kinds(directory: Path) -> list[tuple[int, str]]:
    """The (version, kind) of every version stored in an index directory, ascending."""
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(parsed for e in entries if (parsed := _parse_version_file(e)) is not None)


def kept_entries(directory: Path) -> list[Entry]:
    """The number, kind and size of every version stored in an index directory, ascending."""
    entries = []
    for version, kind in kept_kinds(directory):
        with contextlib.suppress(FileNotFoundError):  # pruned meanwhile
            size = (directory / version_file(version, kind)).stat().st_size
            entries.append(Entry(version, kind, size))
    return entries


def kept_versions(directory: Path) -> list[int]:
    """The version numbers stored in an index directory, ascending."""
    return [version for version, _ in kept_kinds(directory)]


def open_version(directory: Path, version: int, kind: str | None = None) -> BinaryIO:
    """Open a stored version's file, whatever its kind; ``FileNotFoundError`` if not kept."""
    kinds = tuple(SUFFIXES) if kind is None else (kind,)
    for candidate in kinds:
        try:
            return open(directory / version_file(version, candidate), "rb")
        except FileNotFoundError:
            if candidate == kinds[-1]:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


_OPEN_RETRIES = 10


def open_kept(
    directory: Path, project: str, name: str, version: int | None
) -> tuple[int, BinaryIO]:
    """Open the given (or the latest) kept version; ``IndexNotFoundError`` if it is not kept."""
    if version is not None:
        try:
            return version, open_version(directory, version)
        except FileNotFoundError:
            kept = kept_versions(directory)
            raise IndexNotFoundError(
                f"index {name!r} has no version {version} (kept versions: {kept or 'none'})"
            ) from None
    # The latest version can be pruned between listing and opening: list again.
    for _ in range(_OPEN_RETRIES):
        listed = kept_kinds(directory)
        if not listed:
            break
        with contextlib.suppress(FileNotFoundError):
            return listed[-1][0], open_version(directory, *listed[-1])
    raise IndexNotFoundError(
        f"index {name!r} does not exist in project {project!r}: push it first, or check the name"
    )


#: A file of a chain: its version, kind and path.
ChainFile = tuple[int, str, Path]


def chain_files(
    directory: Path,
    entries: Callable[[], list[Entry]],
    project: str,
    name: str,
    *,
    after: int | None,
    version: int | None,
) -> tuple[int, list[ChainFile]]:
    """The target version and the files of the chain :func:`moss.stores.chain.plan_chain`
    plans from ``entries()`` (no frames: ``after`` is current, or only compactions lie
    between). A plan that finds a version it builds on pruned meanwhile is made once more."""
    if after is not None:
        check_version(after, "after", lowest=0)
    if version is not None:
        check_version(version)
    try:
        plan = plan_chain(project, name, entries(), after=after, version=version)
    except IndexNotFoundError:
        plan = plan_chain(project, name, entries(), after=after, version=version)
    files = [(e.version, e.kind, directory / version_file(e.version, e.kind)) for e in plan.frames]
    return plan.target, files


def read_counter(directory: Path) -> int:
    """The highest version ever assigned in the directory (0 if none)."""
    try:
        return int((directory / "counter").read_text("ascii"))
    except (FileNotFoundError, ValueError):
        return 0


def write_counter(directory: Path, version: int) -> None:
    write_file_atomic(directory / "counter", str(version).encode("ascii"))


def expired(directory: Path) -> bool:
    """Whether the index's ``expires`` time has passed (no file: it never expires)."""
    try:
        expires = float((directory / "expires").read_text("ascii"))
    except (FileNotFoundError, ValueError):
        return False
    return time.time() >= expires


def set_expiry(directory: Path, ttl: float | None) -> None:
    """Expire the index ``ttl`` seconds from now (None: never)."""
    if ttl is None:
        with contextlib.suppress(FileNotFoundError):
            (directory / "expires").unlink()
    else:
        write_file_atomic(directory / "expires", repr(time.time() + ttl).encode("ascii"))


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the index's writer lock."""
    # flock locks belong to the open file description, so they exclude other processes and
    # other threads of this process alike; the kernel drops them if the holder dies.
    with open(directory / "lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def read_chunks(handle: BinaryIO, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The chunks of an open version file; closes it at the end (or when closed early)."""
    with handle:
        while block := handle.read(chunk_size):
            yield block


def describe_versions(directory: Path, name: str) -> list[IndexInfo]:
    """Describe every kept version of an index directory that can be opened, oldest first."""
    infos = []
    for entry in openable(kept_entries(directory)):
        try:
            with open_version(directory, entry.version, entry.kind) as handle:
                infos.append(info_from_file(name, entry.version, handle))
        except FileNotFoundError:
            continue  # pruned meanwhile
    return with_chain_stats(infos)


def info_from_file(name: str, version: int, handle: BinaryIO) -> IndexInfo:
    """Describe a stored version from its header."""
    try:
        header = read_header(handle)
    except SnapshotError as exc:
        raise SnapshotError(
            f"stored version {version} of index {name!r} is unreadable: {exc}"
        ) from exc
    return info(name, version, header, os.fstat(handle.fileno()).st_size)


def info(name: str, version: int, header: SnapshotHeader, size: int) -> IndexInfo:
    """Describe a version from its header and size (without chain statistics)."""
    return IndexInfo(
        name=name,
        version=version,
        model_id=header.model_id,
        dimension=header.dimension,
        doc_count=doc_count(header),
        size_bytes=size,
        created_at=header.created_at,
        kind=header.kind,
        author=header.author,
        message=header.message,
    )


def with_stats(directory: Path, described: IndexInfo) -> IndexInfo:
    """Add the chain statistics of a version: the deltas back to the newest full snapshot at or
    before it (from the listing and their sizes; no file opened)."""
    length = chain_bytes = base_bytes = 0
    for version, kind in reversed(kept_kinds(directory)):
        if version > described.version:
            continue
        try:
            size = (directory / version_file(version, kind)).stat().st_size
        except FileNotFoundError:
            break  # pruned meanwhile: the statistics describe what is left
        if kind in BASE_KINDS:
            base_bytes = size
            break
        length, chain_bytes = length + 1, chain_bytes + size
    return dataclasses.replace(
        described, chain_length=length, chain_bytes=chain_bytes, base_bytes=base_bytes
    )


def listing(directory: Path) -> list[str]:
    """The entries of a directory (none if it is absent)."""
    try:
        return os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []


def remove_if_empty(directory: Path) -> None:
    """Remove an index directory a failed put made, and its project's if that is empty too."""
    for path in (directory, directory.parent):
        try:
            path.rmdir()
        except OSError:
            return  # not empty: another writer, or versions, live there
