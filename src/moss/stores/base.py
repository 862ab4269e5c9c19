"""The store protocol: where versions of an index live.

A store keeps, per project and index name, a sequence of immutable snapshot versions. Versions
are integers that start at 1 and increase by one per completed push; they are never reused, also
after the index is deleted. A put is atomic: readers see the previous complete version or the new
complete one, never a torn one. Every store offers the same methods twice: blocking (``put``) and
async (``aput``), the sync path doing its I/O natively, never through an event loop.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from ..errors import InvalidArgumentError
from ..types import IndexInfo

#: A snapshot on its way into a store: an iterable of byte chunks, or a readable binary file.
Chunks = Iterable[bytes | memoryview] | BinaryIO

#: How many versions of each index a store keeps unless told otherwise.
DEFAULT_KEEP_VERSIONS = 5

#: The highest version number a store accepts (a signed 64-bit integer, as PostgreSQL keeps it).
MAX_VERSION = 2**63 - 1


def check_version(value: object, what: str = "version", lowest: int = 1) -> int:
    """Refuse a version number that is not an int in ``lowest .. MAX_VERSION``; return it."""
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= MAX_VERSION:
        # Never repr a huge int: past 4300 digits that raises ValueError itself.
        shown = (
            f"an integer of {value.bit_length()} bits"
            if isinstance(value, int) and value.bit_length() > 64
            else repr(value)[:40]
        )
        raise InvalidArgumentError(
            f"{what} must be an integer from {lowest} to {MAX_VERSION}, got {shown}"
        )
    return value


def check_expected_version(expected_version: int | None) -> None:
    """Refuse an ``expected_version`` that is not None or an int in ``0 .. MAX_VERSION``."""
    if expected_version is not None:
        check_version(expected_version, "expected_version (0: only if absent)", lowest=0)


def check_ttl(ttl: float | None) -> float | None:
    """Refuse a ``ttl`` that is not None or a positive finite number of seconds; return it as float."""
    if ttl is None:
        return None
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, (int, float))
        or not math.isfinite(ttl)
        or ttl <= 0
    ):
        raise InvalidArgumentError(
            f"ttl must be None (never expire) or a positive finite number of seconds, got {ttl!r}"
        )
    return float(ttl)


@dataclass
class Download:
    """One stored version on its way out: its number, then its bytes in chunks.

    ``not_modified`` is True (and there are no chunks) when the caller passed
    ``if_none_match`` equal to the latest version: its cached copy is current.
    """

    version: int
    chunks: Iterator[bytes]
    not_modified: bool = False

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def close(self) -> None:
        """Stop reading early and release the underlying file or connection."""
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


@dataclass
class AsyncDownload:
    """Async twin of :class:`Download`."""

    version: int
    chunks: AsyncIterator[bytes]
    not_modified: bool = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks

    async def aclose(self) -> None:
        """Stop reading early and release the underlying file or connection."""
        aclose = getattr(self.chunks, "aclose", None)
        if aclose is not None:
            await aclose()


@runtime_checkable
class Store(Protocol):
    """A place that keeps versions of named indexes, per project."""

    #: A short stable description of where the data lives (for caches and error messages).
    location: str

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
        """Store a snapshot as the next version; ``expected_version`` makes it conditional.

        The snapshot is validated (header, index name, checksums) as it streams in and becomes
        visible only when complete. ``expected_version=0`` means "only if absent". Raises
        ``ConflictError`` when the stored version differs, ``SnapshotError`` for bad bytes.

        ``ttl`` (seconds) makes the index expire that long after this put unless another put
        comes first; ``None`` clears any expiry. An expired index behaves as deleted (its
        version numbers are still never reused) and is purged when next touched.

        ``chunks`` may also be a delta (its header's ``kind``), which applies on top of the
        version before it: it needs ``expected_version=N`` (N >= 1; stored as N+1 only if the
        latest is N) or ``append=True`` (stored after whatever the latest is, atomically;
        ``IndexNotFoundError`` if the index does not exist). A delta whose model or dimension
        differs from the latest version's raises ``ModelMismatchError``.
        """
        ...

    def get(
        self,
        project: str,
        name: str,
        version: int | None = None,
        *,
        if_none_match: int | None = None,
    ) -> Download:
        """Open the latest (or the given) version for reading: its number and its chunks.

        With ``if_none_match=N`` and N the latest version, answer ``not_modified`` without
        reading anything. Raises ``IndexNotFoundError`` at once if it does not exist.
        """
        ...

    def get_chain(
        self, project: str, name: str, *, after: int | None = None, version: int | None = None
    ) -> Download:
        """Open the chain stream (:mod:`moss.snapshot.chain`) that brings a reader to ``version``
        (default: the latest): the deltas after ``after`` when they are all kept and none is
        full, else the newest full snapshot up to ``version`` and the deltas after it.
        ``not_modified`` when ``after`` is the target. See :mod:`moss.stores.chain`."""
        ...

    def watch(self, project: str, name: str, after: int, timeout: float) -> int | None:
        """Wait until the latest version exceeds ``after``; return it, or None after ``timeout`` s."""
        ...

    def head(self, project: str, name: str) -> IndexInfo | None:
        """Describe the latest version, or return None if the index does not exist."""
        ...

    def list(self, project: str) -> builtins.list[IndexInfo]:
        """Describe the latest version of every index of the project, sorted by name."""
        ...

    def versions(self, project: str, name: str) -> builtins.list[IndexInfo]:
        """Describe every kept version of the index, oldest first (empty if it does not exist)."""
        ...

    def delete(self, project: str, name: str) -> bool:
        """Delete every version of the index; return whether it existed."""
        ...

    def close(self) -> None:
        """Release what the store holds (connections, handles)."""
        ...

    async def aput(
        self,
        project: str,
        name: str,
        chunks: Chunks | AsyncIterable[bytes | memoryview],
        *,
        expected_version: int | None = None,
        ttl: float | None = None,
        append: bool = False,
    ) -> IndexInfo:
        """Async twin of :meth:`put`; also accepts an async iterable of chunks."""
        ...

    async def aget(
        self,
        project: str,
        name: str,
        version: int | None = None,
        *,
        if_none_match: int | None = None,
    ) -> AsyncDownload:
        """Async twin of :meth:`get`."""
        ...

    async def aget_chain(
        self, project: str, name: str, *, after: int | None = None, version: int | None = None
    ) -> AsyncDownload:
        """Async twin of :meth:`get_chain`."""
        ...

    async def awatch(self, project: str, name: str, after: int, timeout: float) -> int | None:
        """Async twin of :meth:`watch`."""
        ...

    async def ahead(self, project: str, name: str) -> IndexInfo | None:
        """Async twin of :meth:`head`."""
        ...

    async def alist(self, project: str) -> builtins.list[IndexInfo]:
        """Async twin of :meth:`list`."""
        ...

    async def aversions(self, project: str, name: str) -> builtins.list[IndexInfo]:
        """Async twin of :meth:`versions`."""
        ...

    async def adelete(self, project: str, name: str) -> bool:
        """Async twin of :meth:`delete`."""
        ...

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        ...
