"""Reading versions: a streaming parser that checks every byte as it arrives, for full snapshots
and deltas of every format version (spec in ``docs/snapshot-format.md``).

Internal to :mod:`moss.snapshot` (which re-exports the public names).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import orjson
import xxhash

from ..errors import SnapshotError
from ..index.columns import LazyColumn
from .data import DeltaData, Int8Vectors, SnapshotData, rows_from_v1_blocks
from .documents import (
    INDEX_SECTION,
    Metadata,
    check_ids,
    parse_documents,
    parse_indexed_documents,
)
from .graph import HNSW_SECTIONS, decode_graph
from .header import (
    PREFIX,
    SnapshotHeader,
    check_stable_prefix,
    parse_header,
    parse_prefix,
)
from .ids_index import ID_SECTION

#: The optional sections of an int8 index: its codes, then its per-dimension scales.
INT8_SECTIONS = ("vectors_int8", "vectors_int8_scales")
#: The optional section carrying the keyword (BM25) index, so opening need not rebuild it.
KEYWORDS_SECTION = "keywords"
#: The section of a delta listing the ids it deletes.
DELETED_SECTION = "deleted"


class SnapshotReader:
    """Incremental parser: feed it a version in chunks of any size; it checks as it goes.

    With ``keep_data`` the vectors are copied once, straight into a preallocated array, and
    :meth:`finish` returns :class:`SnapshotData` (a full snapshot) or :class:`DeltaData` (a
    delta). Without it only checksums are computed, so memory stays bounded whatever the size,
    and :meth:`finish` returns the header; the documents section is then checked against its
    checksum but its JSON is not parsed.
    """

    def __init__(
        self,
        *,
        keep_data: bool = True,
        expected_name: str | None = None,
        max_size: int | None = None,
        keep_int8: bool = True,
        lazy_documents: bool = True,
        keep_graph: bool = True,
    ) -> None:
        self._keep_data = keep_data
        # Without keep_graph, hnsw sections are checked but not kept (nor deserialised).
        self._keep_graph = keep_data and keep_graph
        self._graph: npt.NDArray[np.uint8] | None = None
        self._slots = bytearray()
        # Without keep_int8, int8 sections are checked but not kept (an index opened in float32).
        self._keep_int8 = keep_data and keep_int8
        self._int8_codes: npt.NDArray[np.int8] | None = None
        self._int8_bytes: npt.NDArray[np.uint8] | None = None
        self._int8_scales = bytearray()
        self._keywords = bytearray()
        self._deleted = bytearray()
        # With a documents index, texts and metadata are decoded when read (see LazyColumn).
        self._lazy_documents = lazy_documents
        self._documents_index = bytearray()
        self._ids_index = bytearray()
        self._expected_name = expected_name
        self._max_size = max_size
        self._head = bytearray()
        self._header_len = -1
        self._header_digest = 0
        self._header: SnapshotHeader | None = None
        self._regions: list[tuple[str | None, int, str]] = []  # (section or None for padding)
        self._region = 0
        self._region_pos = 0
        self._received = 0
        self._hasher = xxhash.xxh3_64()
        self._vectors: npt.NDArray[np.float32] | None = None
        self._vector_bytes: npt.NDArray[np.uint8] | None = None
        self._documents = bytearray()
        self._error: SnapshotError | None = None

    @property
    def header(self) -> SnapshotHeader | None:
        """The header, as soon as it has been received and checked; else None."""
        return self._header

    @property
    def complete(self) -> bool:
        """Whether every byte the header announces has been received."""
        return self._header is not None and self._region >= len(self._regions)

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Consume the next chunk; raise :class:`SnapshotError` as soon as something is wrong."""
        if self._error is not None:
            raise self._error
        try:
            view = byte_view(chunk)
            self._received += len(view)
            while view:
                view = self._consume(view)
        except SnapshotError as exc:
            self._error = exc  # a failed reader stays failed: later calls re-raise
            raise

    def finish(self) -> SnapshotData | DeltaData | SnapshotHeader:
        """Check the blob was complete; return the data (``keep_data``) or just the header."""
        if self._error is not None:
            raise self._error
        header = self._header
        if header is None or not self.complete:
            expected = f"{header.total_size}" if header else "more"
            self._error = SnapshotError(
                f"snapshot is truncated: got {self._received} bytes, expected {expected}"
            )
            raise self._error
        if not self._keep_data:
            return header
        try:
            return self._delta(header) if header.kind == "delta" else self._full(header)
        except SnapshotError as exc:
            self._error = exc
            raise

    def _full(self, header: SnapshotHeader) -> SnapshotData:
        assert self._vectors is not None  # allocated with the header
        ids, texts, metadata = self._parse_documents(header)
        int8 = None
        if self._int8_codes is not None:
            scales = np.frombuffer(bytes(self._int8_scales), dtype="<f4").astype(np.float32)
            codes = self._int8_codes
            if header.format_version == 1:
                codes = rows_from_v1_blocks(codes.reshape(-1), header.count, header.dimension)
            int8 = Int8Vectors(codes, scales)
        keywords = bytes(self._keywords) if KEYWORDS_SECTION in header.sections else None
        graph = None
        if self._graph is not None:  # every section's checksum was verified: FAISS may read it
            slots = np.frombuffer(bytes(self._slots), dtype=np.uint8)
            graph = decode_graph(self._graph, slots, header.count, header.dimension)
            self._graph = None
        return SnapshotData(header, self._vectors, ids, texts, metadata, int8, keywords, graph)

    def _delta(self, header: SnapshotHeader) -> DeltaData:
        assert self._vectors is not None  # allocated with the header
        ids, texts, metadata = parse_documents(bytes(self._documents), header.count)
        self._documents = bytearray()
        try:
            deleted = orjson.loads(bytes(self._deleted))
        except orjson.JSONDecodeError as exc:
            raise SnapshotError(f"delta 'deleted' section is not valid JSON: {exc}") from exc
        if not isinstance(deleted, list) or len(deleted) != header.deleted_count:
            raise SnapshotError(
                f"delta 'deleted' section must be a JSON list of {header.deleted_count} ids"
            )
        check_ids(deleted)
        both = set(ids).intersection(deleted)
        if both:
            raise SnapshotError(
                f"delta both upserts and deletes id {min(both)!r}: the data is corrupt"
            )
        return DeltaData(header, ids, texts, metadata, self._vectors, deleted)

    def _parse_documents(
        self, header: SnapshotHeader
    ) -> tuple[
        list[str] | LazyColumn[str],
        list[str] | LazyColumn[str],
        list[Metadata] | LazyColumn[Metadata],
    ]:
        raw = bytes(self._documents)
        self._documents = bytearray()
        if self._lazy_documents and INDEX_SECTION in header.sections and header.count:
            ids_index = bytes(self._ids_index) if ID_SECTION in header.sections else None
            return parse_indexed_documents(
                raw, bytes(self._documents_index), header.count, ids_index
            )
        return parse_documents(raw, header.count)

    def _consume(self, view: memoryview) -> memoryview:
        """Consume a prefix of ``view``; return the rest."""
        if self._header is None:
            return self._consume_head(view)
        if self._region >= len(self._regions):
            raise SnapshotError(
                f"snapshot has unexpected bytes after its end ({self._header.total_size} bytes)"
            )
        name, length, _ = self._regions[self._region]
        take = min(len(view), length - self._region_pos)
        part = view[:take]
        if name is None:
            if part != bytes(take):
                raise SnapshotError("snapshot padding is not zero: the data is corrupt")
        else:
            self._store(name, part)
        self._region_pos += take
        self._skip_finished_regions()
        return view[take:]

    def _consume_head(self, view: memoryview) -> memoryview:
        wanted = PREFIX.size if self._header_len < 0 else PREFIX.size + self._header_len
        take = min(len(view), wanted - len(self._head))
        self._head += view[:take]
        if len(self._head) < PREFIX.size:
            check_stable_prefix(self._head)  # fail fast on foreign data
        elif self._header_len < 0:
            _, self._header_len, self._header_digest = parse_prefix(
                self._head, max_size=self._max_size
            )
        if self._header_len >= 0 and len(self._head) == PREFIX.size + self._header_len:
            self._start_body()
        return view[take:]

    def _start_body(self) -> None:
        version = int.from_bytes(self._head[8:12], "little")
        header = parse_header(
            version,
            self._head[PREFIX.size :],
            self._header_digest,
            expected_name=self._expected_name,
        )
        if self._max_size is not None and header.total_size > self._max_size:
            raise SnapshotError(
                f"snapshot is {header.total_size} bytes, over the limit of {self._max_size} bytes"
            )
        position = len(self._head)
        for name, info in header.sections.items():  # in offset order, checked by parse_header
            self._regions.append((None, info.offset - position, ""))
            self._regions.append((name, info.length, info.checksum))
            position = info.offset + info.length
        if self._keep_data:
            vectors = _allocate((header.count, header.dimension), "<f4", "vectors")
            self._vectors = vectors
            self._vector_bytes = vectors.reshape(-1).view(np.uint8)
            if self._keep_int8 and "vectors_int8" in header.sections:
                # Both layouts are count * dimension bytes: the bytes land here as they arrive,
                # and a format-1 (dimension-major) section is reordered once complete.
                codes = _allocate((header.count, header.dimension), "i1", "int8 codes")
                self._int8_codes = codes
                self._int8_bytes = codes.reshape(-1).view(np.uint8)
            if self._keep_graph and HNSW_SECTIONS[0] in header.sections:
                length = header.sections[HNSW_SECTIONS[0]].length
                self._graph = _allocate((length, 1), "u1", "hnsw graph bytes").reshape(-1)
        self._head = bytearray()
        self._header = header
        self._skip_finished_regions()

    def _store(self, name: str, part: memoryview) -> None:
        self._hasher.update(part)
        if not self._keep_data:
            return
        if name == "vectors":
            assert self._vector_bytes is not None  # allocated with the header
            end = self._region_pos + len(part)
            self._vector_bytes[self._region_pos : end] = np.frombuffer(part, dtype=np.uint8)
        elif name == "documents":
            self._documents += part
        elif name == INDEX_SECTION and self._lazy_documents:
            self._documents_index += part
        elif name == ID_SECTION and self._lazy_documents:
            self._ids_index += part
        elif name == "vectors_int8" and self._int8_bytes is not None:
            end = self._region_pos + len(part)
            self._int8_bytes[self._region_pos : end] = np.frombuffer(part, dtype=np.uint8)
        elif name == "vectors_int8_scales" and self._int8_bytes is not None:
            self._int8_scales += part
        elif name == HNSW_SECTIONS[0] and self._graph is not None:
            end = self._region_pos + len(part)
            self._graph[self._region_pos : end] = np.frombuffer(part, dtype=np.uint8)
        elif name == HNSW_SECTIONS[1] and self._graph is not None:
            self._slots += part
        elif name == KEYWORDS_SECTION:
            self._keywords += part
        elif name == DELETED_SECTION:
            self._deleted += part

    def _skip_finished_regions(self) -> None:
        """Close every region that is complete (zero-length ones included)."""
        while self._region < len(self._regions):
            name, length, digest = self._regions[self._region]
            if self._region_pos < length:
                return
            if name is not None:
                self._close_section(name, digest)
            self._region += 1
            self._region_pos = 0

    def _close_section(self, name: str, digest: str) -> None:
        actual = self._hasher.hexdigest()
        self._hasher.reset()
        if actual != digest:
            raise SnapshotError(
                f"checksum mismatch in snapshot section {name!r} (header says {digest}, data "
                f"hashes to {actual}): the data is corrupt; read another version or push again"
            )
        if name == "vectors_int8_scales" and self._int8_bytes is not None:
            scales = np.frombuffer(bytes(self._int8_scales), dtype="<f4")
            if not np.all(np.isfinite(scales)) or not np.all(scales > 0):
                raise SnapshotError(
                    "snapshot int8 scales must be finite and positive: the data is corrupt"
                )


def _allocate(shape: tuple[int, int], dtype: str, what: str) -> npt.NDArray[Any]:
    try:
        # np.empty maps large arrays lazily: a lying header costs memory only as bytes arrive.
        return np.empty(shape, dtype=dtype)
    except MemoryError as exc:
        raise SnapshotError(f"not enough memory for {shape[0]} x {shape[1]} {what}") from exc


def byte_view(chunk: object) -> memoryview:
    """Return ``chunk`` as a flat byte memoryview, without copying when possible."""
    try:
        view = memoryview(chunk)  # type: ignore[arg-type]
    except TypeError as exc:
        raise SnapshotError(
            f"snapshot chunks must be bytes-like, got {type(chunk).__name__}"
        ) from exc
    if view.ndim == 1 and view.format in ("B", "b", "c"):
        return view.cast("B") if view.format != "B" else view
    return memoryview(view.tobytes())


def decode_snapshot(chunks: Iterable[bytes | bytearray | memoryview]) -> SnapshotData | DeltaData:
    """Decode a whole version, full snapshot or delta, from its chunks."""
    reader = SnapshotReader()
    for chunk in chunks:
        reader.feed(chunk)
    data = reader.finish()
    assert not isinstance(data, SnapshotHeader)  # keep_data=True
    return data


def read_header(fileobj: BinaryIO) -> SnapshotHeader:
    """Read and check only the prefix and header of a version's file (for store listings).

    Leaves the file positioned after the header. I/O errors of the file propagate as they are.
    """
    prefix = _read_exact(fileobj, PREFIX.size)
    check_stable_prefix(prefix)  # foreign data says so rather than "truncated"
    if len(prefix) < PREFIX.size:
        raise SnapshotError(f"snapshot is truncated: got {len(prefix)} bytes of its prefix")
    version, header_len, digest = parse_prefix(prefix)
    raw = _read_exact(fileobj, header_len)
    if len(raw) < header_len:
        raise SnapshotError(f"snapshot is truncated: got {len(raw)} of {header_len} header bytes")
    return parse_header(version, raw, digest)


def _read_exact(fileobj: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, fewer only at the end of the file (raw files may return short reads)."""
    parts: list[bytes] = []
    remaining = size
    while remaining:
        part = fileobj.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)
