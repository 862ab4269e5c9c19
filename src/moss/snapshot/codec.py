"""The snapshot format: one immutable, self-describing blob per index version, streamed both ways.

Layout (spec in ``docs/snapshot-format.md``)::

    magic b"MOSSSNAP" | format version u32 | header length u32 | header xxh3_64 u64
    header JSON | zero padding to 64 | vectors (float32 LE) | padding | documents (JSON)
    [| padding | vectors_int8 (int8 codes) | padding | vectors_int8_scales (float32 LE)]

Writing::

    header, chunks = encode_snapshot(index_name="notes", model_id="moss-minilm",
                                     model_artifact=sha256, vectors=vectors,
                                     ids=ids, texts=texts, metadata=metadata)
    store.put(project, "notes", chunks)

Reading, whatever the chunk sizes::

    reader = SnapshotReader(expected_name="notes")
    for chunk in store.get(project, "notes"):
        reader.feed(chunk)
    data = reader.finish()

Every failure to read is a :class:`~moss.errors.SnapshotError`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import xxhash

from ..errors import InvalidArgumentError, SnapshotError
from ..index.columns import LazyColumn
from ..index.quantize import BLOCK, Int8Codes, block_widths
from ..validation import validate_name
from .documents import (
    INDEX_SECTION,
    Metadata,
    encode_documents,
    parse_documents,
    parse_indexed_documents,
)
from .header import (
    FORMAT_VERSION,
    MAX_DIMENSION,
    MAX_HEADER_BYTES,
    MAX_MODEL_FIELD,
    PREFIX,
    SectionInfo,
    SnapshotHeader,
    align,
    build_header,
    check_stable_prefix,
    checksum,
    parse_header,
    parse_prefix,
)

__all__ = [
    "FORMAT_VERSION",
    "MAX_HEADER_BYTES",
    "SectionInfo",
    "SnapshotData",
    "SnapshotHeader",
    "SnapshotReader",
    "INT8_SECTIONS",
    "LazyColumn",
    "decode_snapshot",
    "encode_snapshot",
    "read_header",
]


#: The optional sections of an int8 index: its codes, then its per-dimension scales.
INT8_SECTIONS = ("vectors_int8", "vectors_int8_scales")
#: The optional section carrying the keyword (BM25) index, so opening need not rebuild it.
KEYWORDS_SECTION = "keywords"


@dataclass
class SnapshotData:
    """A decoded snapshot: its header, an owned writeable (count, dimension) float32 array,
    the documents as three parallel columns, and the int8 codes if the index stores them.

    Texts and metadata are lists, or :class:`LazyColumn` views decoded as they are read when
    the snapshot has a ``documents_index`` section.
    """

    header: SnapshotHeader
    vectors: npt.NDArray[np.float32]
    ids: list[str]
    texts: list[str] | LazyColumn[str]
    metadata: list[Metadata] | LazyColumn[Metadata]
    int8: Int8Codes | None = None
    keywords: bytes | None = None

    @property
    def precision(self) -> str:
        """``"int8"`` if the snapshot holds int8 codes, else ``"float32"``."""
        return "float32" if self.int8 is None else "int8"


def encode_snapshot(
    *,
    index_name: str,
    model_id: str,
    model_artifact: str,
    vectors: npt.ArrayLike,
    ids: Sequence[str],
    texts: Sequence[str],
    metadata: Sequence[Metadata],
    chunk_size: int = 8 << 20,
    int8: Int8Codes | None = None,
    keywords: bytes | None = None,
) -> tuple[SnapshotHeader, Iterator[bytes | memoryview]]:
    """Encode an index version; return its header (total size included) and its byte chunks.

    The vectors are streamed as memoryview slices of the array, not copied (unless they are not
    C-contiguous little-endian float32 already): do not modify the array in place until the
    chunks are consumed, or readers will see a checksum mismatch. The documents section is
    encoded once, up front. ``int8`` codes of the same vectors (``Engine.export_all``) add the
    optional int8 sections, so readers open the index in int8 without quantising it again;
    ``keywords`` (``moss.keyword_io.encode_keywords``) adds the optional keyword-index section,
    so readers need not rebuild it. Raises :class:`InvalidArgumentError` for inputs the format cannot hold.
    """
    validate_name(index_name)
    _check_model_field("model_id", model_id, allow_empty=False)
    _check_model_field("model_artifact", model_artifact, allow_empty=True)
    if chunk_size < 1:
        raise InvalidArgumentError(
            f"chunk_size must be a positive number of bytes, got {chunk_size}"
        )
    array = _vectors_array(vectors)
    count, dimension = array.shape
    vector_bytes = memoryview(array.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
    documents, index = encode_documents(count, ids, texts, metadata)
    sections: list[tuple[str, list[memoryview]]] = [
        ("vectors", [vector_bytes]),
        ("documents", [memoryview(documents)]),
    ]
    if index:
        sections.append((INDEX_SECTION, [memoryview(index)]))
    if int8 is not None:
        int8.check(count, dimension)
        scales = np.ascontiguousarray(int8.scales, dtype="<f4")
        blocks = [_byte_view(block.reshape(-1).view(np.uint8)) for block in int8.blocks]
        sections.append(("vectors_int8", blocks))
        sections.append(("vectors_int8_scales", [_byte_view(scales.view(np.uint8))]))
    if keywords:
        sections.append((KEYWORDS_SECTION, [memoryview(keywords)]))
    header, head = build_header(
        index_name=index_name,
        model_id=model_id,
        model_artifact=model_artifact,
        dimension=dimension,
        count=count,
        created_at=time.time(),
        sections=[(name, sum(map(len, parts)), _checksum_parts(parts)) for name, parts in sections],
    )
    return header, _chunks(head, [parts for _, parts in sections], chunk_size)


def _checksum_parts(parts: list[memoryview]) -> str:
    if len(parts) == 1:
        return checksum(parts[0])
    hasher = xxhash.xxh3_64()
    for part in parts:
        hasher.update(part)
    return hasher.hexdigest()


def _chunks(
    head: bytes, sections: list[list[memoryview]], chunk_size: int
) -> Iterator[bytes | memoryview]:
    yield head
    for index, parts in enumerate(sections):
        for data in parts:
            for start in range(0, len(data), chunk_size):
                yield data[start : start + chunk_size]
        if index < len(sections) - 1:
            length = sum(map(len, parts))
            padding = align(length) - length
            if padding:
                yield bytes(padding)


def _check_model_field(name: str, value: object, *, allow_empty: bool) -> None:
    if not isinstance(value, str) or len(value) > MAX_MODEL_FIELD or not (value or allow_empty):
        raise InvalidArgumentError(
            f"{name} must be a string of at most {MAX_MODEL_FIELD} characters, got {value!r}"
        )


def _vectors_array(vectors: npt.ArrayLike) -> npt.NDArray[np.float32]:
    try:
        array = np.ascontiguousarray(vectors, dtype="<f4")
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"vectors must be a 2-d array of numbers: {exc}") from exc
    if array.ndim != 2 or not 1 <= array.shape[1] <= MAX_DIMENSION:
        raise InvalidArgumentError(
            f"vectors must be a (count, dimension) array with 1..{MAX_DIMENSION} dimensions, "
            f"got shape {array.shape}"
        )
    return array


class SnapshotReader:
    """Incremental parser: feed it the blob in chunks of any size; it checks as it goes.

    With ``keep_data`` the vectors are copied once, straight into a preallocated array, and
    :meth:`finish` returns :class:`SnapshotData`. Without it only checksums are computed, so
    memory stays bounded whatever the size, and :meth:`finish` returns the header; the documents
    section is then checked against its checksum but its JSON is not parsed.
    """

    def __init__(
        self,
        *,
        keep_data: bool = True,
        expected_name: str | None = None,
        max_size: int | None = None,
        keep_int8: bool = True,
        lazy_documents: bool = True,
    ) -> None:
        self._keep_data = keep_data
        # Without keep_int8, int8 sections are checked but not kept (an index opened in float32).
        self._keep_int8 = keep_data and keep_int8
        self._int8_blocks: list[npt.NDArray[np.int8]] = []
        self._int8_bytes: list[npt.NDArray[np.uint8]] = []
        self._int8_scales = bytearray()
        self._keywords = bytearray()
        # With a documents index, texts and metadata are decoded when read (see LazyColumn).
        self._lazy_documents = lazy_documents
        self._documents_index = bytearray()
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

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Consume the next chunk; raise :class:`SnapshotError` as soon as something is wrong."""
        if self._error is not None:
            raise self._error
        try:
            view = _byte_view(chunk)
            self._received += len(view)
            while view:
                view = self._consume(view)
        except SnapshotError as exc:
            self._error = exc  # a failed reader stays failed: later calls re-raise
            raise

    def finish(self) -> SnapshotData | SnapshotHeader:
        """Check the blob was complete; return the data (``keep_data``) or just the header."""
        if self._error is not None:
            raise self._error
        header = self._header
        if header is None or self._region < len(self._regions):
            expected = f"{header.total_size}" if header else "more"
            self._error = SnapshotError(
                f"snapshot is truncated: got {self._received} bytes, expected {expected}"
            )
            raise self._error
        if not self._keep_data:
            return header
        assert self._vectors is not None  # allocated with the header
        ids, texts, metadata = self._parse_documents(header)
        int8 = None
        if self._keep_int8 and "vectors_int8" in header.sections:
            scales = np.frombuffer(bytes(self._int8_scales), dtype="<f4").astype(np.float32)
            int8 = Int8Codes(blocks=self._int8_blocks, scales=scales, count=header.count)
        keywords = bytes(self._keywords) if KEYWORDS_SECTION in header.sections else None
        return SnapshotData(header, self._vectors, ids, texts, metadata, int8, keywords)

    def _parse_documents(
        self, header: SnapshotHeader
    ) -> tuple[list[str], list[str] | LazyColumn[str], list[Metadata] | LazyColumn[Metadata]]:
        raw = bytes(self._documents)
        self._documents = bytearray()
        try:
            if self._lazy_documents and INDEX_SECTION in header.sections and header.count:
                return parse_indexed_documents(raw, bytes(self._documents_index), header.count)
            return parse_documents(raw, header.count)
        except SnapshotError as exc:
            self._error = exc
            raise

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
            self._allocate(header)
            if self._keep_int8 and "vectors_int8" in header.sections:
                self._allocate_int8(header)
        self._head = bytearray()
        self._header = header
        self._skip_finished_regions()

    def _allocate(self, header: SnapshotHeader) -> None:
        try:
            # np.empty maps large arrays lazily: a lying header costs memory only as bytes arrive.
            self._vectors = np.empty((header.count, header.dimension), dtype="<f4")
        except MemoryError as exc:
            raise SnapshotError(
                f"not enough memory for {header.count} x {header.dimension} vectors"
            ) from exc
        self._vector_bytes = self._vectors.reshape(-1).view(np.uint8)

    def _allocate_int8(self, header: SnapshotHeader) -> None:
        try:
            self._int8_blocks = [
                np.empty((header.dimension, width), dtype=np.int8)
                for width in block_widths(header.count)
            ]
        except MemoryError as exc:
            raise SnapshotError(f"not enough memory for {header.count} int8 codes") from exc
        self._int8_bytes = [block.reshape(-1).view(np.uint8) for block in self._int8_blocks]

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
        elif name == "vectors_int8" and self._keep_int8:
            self._store_int8(part)
        elif name == "vectors_int8_scales" and self._keep_int8:
            self._int8_scales += part
        elif name == KEYWORDS_SECTION:
            self._keywords += part

    def _store_int8(self, part: memoryview) -> None:
        """Copy ``part`` into the blocks: every block but the last holds BLOCK x dimension bytes."""
        assert self._header is not None
        block_bytes = BLOCK * self._header.dimension
        position = self._region_pos
        while part:
            block, offset = divmod(position, block_bytes)
            target = self._int8_bytes[block]
            take = min(len(part), len(target) - offset)
            target[offset : offset + take] = np.frombuffer(part[:take], dtype=np.uint8)
            part = part[take:]
            position += take

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
        if name == "vectors_int8_scales" and self._keep_int8:
            scales = np.frombuffer(bytes(self._int8_scales), dtype="<f4")
            if not np.all(np.isfinite(scales)) or not np.all(scales > 0):
                raise SnapshotError(
                    "snapshot int8 scales must be finite and positive: the data is corrupt"
                )


def _byte_view(chunk: object) -> memoryview:
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


def decode_snapshot(chunks: Iterable[bytes | bytearray | memoryview]) -> SnapshotData:
    """Decode a whole snapshot from its chunks."""
    reader = SnapshotReader()
    for chunk in chunks:
        reader.feed(chunk)
    data = reader.finish()
    assert isinstance(data, SnapshotData)  # keep_data=True
    return data


def read_header(fileobj: BinaryIO) -> SnapshotHeader:
    """Read and check only the prefix and header of a snapshot file (for store listings).

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
