"""The chain stream: several versions of one index in one response, each a full snapshot or a
delta, framed so a reader knows where each ends (spec in ``docs/snapshot-format.md``).

Writing (a store serving "everything after version 4")::

    for version, size, chunks in versions:
        yield encode_frame_prefix(version, size)
        yield from chunks

Reading, whatever the chunk sizes::

    reader = ChainReader(expected_name="notes", on_header=check_model)
    for chunk in response:
        reader.feed(chunk)
    for version, data in reader.finish():   # SnapshotData or DeltaData, oldest first
        ...
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from ..errors import InvalidArgumentError, SnapshotError
from .data import DeltaData, SnapshotData
from .header import PREFIX, SnapshotHeader
from .reader import SnapshotReader, byte_view

__all__ = ["FRAME_PREFIX", "MAX_FRAME_BYTES", "ChainReader", "encode_frame_prefix"]

#: uint64 version, uint64 length of the blob that follows (little-endian).
FRAME_PREFIX = struct.Struct("<QQ")
#: The largest blob a frame may announce (1 TiB), whatever the caller's own limits.
MAX_FRAME_BYTES = 1 << 40
_MAX_VERSION = (1 << 63) - 1
_HEADER_STEP = 1 << 16

HeaderCheck = Callable[[int, SnapshotHeader], None]


def encode_frame_prefix(version: int, size: int) -> bytes:
    """The 16 bytes that precede a blob of ``size`` bytes holding ``version`` in a chain."""
    if type(version) is not int or not 1 <= version <= _MAX_VERSION:
        raise InvalidArgumentError(f"version must be an integer in 1..2^63-1, got {version!r}")
    if type(size) is not int or not PREFIX.size <= size <= MAX_FRAME_BYTES:
        raise InvalidArgumentError(
            f"a version's blob is {PREFIX.size}..{MAX_FRAME_BYTES} bytes, got {size!r}"
        )
    return FRAME_PREFIX.pack(version, size)


class ChainReader:
    """Incremental parser of a chain: feed it chunks of any size; it checks as it goes.

    Each frame's blob is parsed by a :class:`SnapshotReader` (with ``expected_name``,
    ``keep_int8``, ``lazy_documents``) as its bytes arrive, and decoded as soon as it ends.
    ``on_header(version, header)`` is called once per frame as soon as its header is known
    (before its data), so a caller can refuse a version early; what it raises propagates.
    ``max_size`` caps the whole stream. Every malformed stream raises :class:`SnapshotError`.
    """

    def __init__(
        self,
        *,
        expected_name: str | None = None,
        max_size: int | None = None,
        on_header: HeaderCheck | None = None,
        keep_int8: bool = True,
        lazy_documents: bool = True,
    ) -> None:
        self._expected_name = expected_name
        self._max_size = max_size
        self._on_header = on_header
        self._keep_int8 = keep_int8
        self._lazy_documents = lazy_documents
        self._prefix = bytearray()
        self._version = 0  # of the current frame, or of the last one between frames
        self._remaining = 0  # bytes of the current frame's blob still to come
        self._reader: SnapshotReader | None = None
        self._checked = False  # whether on_header has seen the current frame's header
        self._received = 0
        self._done: list[tuple[int, SnapshotData | DeltaData]] = []
        self._error: SnapshotError | None = None

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Consume the next chunk; raise :class:`SnapshotError` as soon as something is wrong."""
        if self._error is not None:
            raise self._error
        try:
            view = byte_view(chunk)
            self._received += len(view)
            if self._max_size is not None and self._received > self._max_size:
                raise SnapshotError(
                    f"version chain exceeds the size limit of {self._max_size} bytes"
                )
            while view:
                view = self._consume(view)
        except SnapshotError as exc:
            self._error = exc  # a failed reader stays failed: later calls re-raise
            raise
        except BaseException as exc:  # on_header refused a version: stay failed, raise it as is
            self._error = SnapshotError(f"version chain reading stopped: {exc}")
            raise

    def finish(self) -> list[tuple[int, SnapshotData | DeltaData]]:
        """Check the stream ended between frames; return ``(version, data)`` oldest first."""
        if self._error is not None:
            raise self._error
        if self._reader is not None or self._prefix:
            self._error = SnapshotError(
                f"version chain is truncated: got {self._received} bytes, the last frame "
                f"(version {self._version}) is incomplete"
            )
            raise self._error
        return self._done

    def _consume(self, view: memoryview) -> memoryview:
        if self._reader is None:
            take = min(len(view), FRAME_PREFIX.size - len(self._prefix))
            self._prefix += view[:take]
            if len(self._prefix) == FRAME_PREFIX.size:
                self._start_frame()
            return view[take:]
        take = min(len(view), self._remaining)
        if not self._checked:
            # Until the header is known, feed small steps, so on_header can refuse the version
            # before a large chunk's data is copied.
            take = min(take, _HEADER_STEP)
        self._reader.feed(view[:take])
        self._remaining -= take
        header = self._reader.header
        if header is not None and not self._checked:
            self._checked = True
            if self._on_header is not None:
                self._on_header(self._version, header)
        if self._remaining == 0:
            self._end_frame()
        return view[take:]

    def _start_frame(self) -> None:
        version, size = FRAME_PREFIX.unpack(self._prefix)
        self._prefix = bytearray()
        if not 1 <= version <= _MAX_VERSION or version <= self._version:
            raise SnapshotError(
                f"version chain frame says version {version} after version {self._version}: "
                "versions must be positive and strictly increasing"
            )
        limit = MAX_FRAME_BYTES if self._max_size is None else min(self._max_size, MAX_FRAME_BYTES)
        if not PREFIX.size <= size <= limit:
            raise SnapshotError(
                f"version chain frame of version {version} claims {size} bytes, outside "
                f"{PREFIX.size}..{limit}: the stream is corrupt"
            )
        self._version, self._remaining, self._checked = version, size, False
        self._reader = SnapshotReader(
            expected_name=self._expected_name,
            max_size=size,
            keep_int8=self._keep_int8,
            lazy_documents=self._lazy_documents,
        )

    def _end_frame(self) -> None:
        assert self._reader is not None
        reader, self._reader = self._reader, None
        if not reader.complete:
            raise SnapshotError(
                f"version chain frame of version {self._version} ends before its blob does: "
                "the stream is corrupt"
            )
        data = reader.finish()
        assert not isinstance(data, SnapshotHeader)  # keep_data=True
        self._done.append((self._version, data))
