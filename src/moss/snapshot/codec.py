"""The snapshot format: one immutable, self-describing blob per index version, streamed both ways.
A version is a full snapshot (the whole index) or a delta (changes since a base version).

Layout (spec in ``docs/snapshot-format.md``)::

    magic b"MOSSSNAP" | format version u32 | header length u32 | header xxh3_64 u64
    header JSON | zero padding to 64 | section | padding | section | ...

Writing::

    header, chunks = encode_snapshot(index_name="notes", model_id="moss-minilm",
                                     model_artifact=sha256, vectors=vectors,
                                     ids=ids, texts=texts, metadata=metadata)
    store.put(project, "notes", chunks)

Reading, whatever the chunk sizes::

    reader = SnapshotReader(expected_name="notes")
    for chunk in store.get(project, "notes"):
        reader.feed(chunk)
    data = reader.finish()   # SnapshotData, or DeltaData for a delta

Every failure to read is a :class:`~moss.errors.SnapshotError`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
import orjson
import xxhash

from ..errors import InvalidArgumentError, SnapshotError
from ..index.columns import LazyColumn
from ..index.hnsw import HnswParams, parse_params
from ..validation import validate_name
from .data import DeltaData, Int8Vectors, SnapshotData, int8_arrays
from .documents import INDEX_SECTION, Metadata, check_ids, encode_documents
from .graph import HNSW_SECTIONS, graph_sections
from .header import (
    FORMAT_VERSION,
    MAX_AUTHOR_BYTES,
    MAX_COUNT,
    MAX_DIMENSION,
    MAX_HEADER_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_MODEL_FIELD,
    SnapshotHeader,
    align,
    build_header,
    checksum,
)
from .ids_index import ID_SECTION
from .reader import (
    DELETED_SECTION,
    INT8_SECTIONS,
    KEYWORDS_SECTION,
    SnapshotReader,
    decode_snapshot,
    read_header,
)
from .sections import SectionInfo

__all__ = [
    "FORMAT_VERSION",
    "HNSW_SECTIONS",
    "MAX_HEADER_BYTES",
    "DELETED_SECTION",
    "DeltaData",
    "Int8Vectors",
    "SectionInfo",
    "SnapshotData",
    "SnapshotHeader",
    "SnapshotReader",
    "INT8_SECTIONS",
    "KEYWORDS_SECTION",
    "LazyColumn",
    "decode_snapshot",
    "encode_delta",
    "encode_snapshot",
    "read_header",
]

_Chunks = Iterator[bytes | memoryview]
_Sections = list[tuple[str, list[memoryview]]]


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
    int8: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    keywords: bytes | None = None,
    author: str | None = None,
    message: str | None = None,
    index: str = "flat",
    hnsw: HnswParams | dict[str, object] | None = None,
    graph: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    kind: str = "full",
) -> tuple[SnapshotHeader, _Chunks]:
    """Encode a full index version; return its header (total size included) and its chunks.

    The vectors are streamed as memoryview slices of the array, not copied (unless they are not
    C-contiguous little-endian float32 already): do not modify the array in place until the
    chunks are consumed, or readers will see a checksum mismatch. The documents section is
    encoded once, up front. ``int8`` = ``(codes, scales)``, row-major (count, dimension) int8
    codes of the same vectors and their per-dimension scales (``Engine.export_all``), adds the
    optional int8 sections, so readers open the index in int8 without quantising it again;
    ``keywords`` (``moss.snapshot.keywords.encode_keywords``) adds the keyword-index section, so
    readers need not rebuild it. ``author`` and ``message`` are optional free text stored in the
    header. ``index="hnsw"`` with its ``hnsw`` parameters records the index kind in the header,
    and ``graph`` (``Engine.export_all().graph``: FAISS's serialisation and the slot map) adds
    the graph sections, so readers need not rebuild it. ``kind="compaction"`` marks a full
    snapshot whose state equals the version before it (readers holding that one skip it). Raises :class:`InvalidArgumentError`
    for inputs the format cannot hold.
    """
    array, fields = _common(index_name, model_id, model_artifact, vectors, chunk_size)
    count, dimension = array.shape
    if kind not in ("full", "compaction"):
        raise InvalidArgumentError(f"kind must be 'full' or 'compaction', got {kind!r}")
    if index not in ("flat", "hnsw"):
        raise InvalidArgumentError(f"index must be 'flat' or 'hnsw', got {index!r}")
    params = parse_params(hnsw) if index == "hnsw" else None
    if graph is not None and params is None:
        raise InvalidArgumentError("a graph is stored only with index='hnsw'")
    documents, offsets, ids_index = encode_documents(count, ids, texts, metadata)
    sections: _Sections = [
        ("vectors", [byte_memory(array)]),
        ("documents", [memoryview(documents)]),
    ]
    if offsets:
        sections.append((INDEX_SECTION, [memoryview(offsets)]))
        sections.append((ID_SECTION, [memoryview(ids_index)]))
    if int8 is not None:
        codes, scales = int8_arrays(int8, count, dimension)
        sections.append(("vectors_int8", [byte_memory(codes)]))
        sections.append(("vectors_int8_scales", [byte_memory(scales)]))
    if keywords:
        sections.append((KEYWORDS_SECTION, [memoryview(keywords)]))
    if graph is not None:
        sections.extend((name, [byte_memory(part)]) for name, part in graph_sections(graph, count))
    return _encode(sections, chunk_size, fields, array.shape, kind, author, message, hnsw=params)


def encode_delta(
    *,
    index_name: str,
    model_id: str,
    model_artifact: str,
    dimension: int,
    ids: Sequence[str],
    texts: Sequence[str],
    metadata: Sequence[Metadata],
    vectors: npt.ArrayLike,
    deleted: Sequence[str],
    author: str | None = None,
    message: str | None = None,
    chunk_size: int = 8 << 20,
    total_count: int | None = None,
) -> tuple[SnapshotHeader, _Chunks]:
    """Encode a delta: the documents upserted since a base version and the ids deleted.

    ``vectors`` has one row of ``dimension`` float32 per upserted id (zero rows is fine);
    ``deleted`` ids are unique and none is also upserted. Returns the header and the chunks,
    like :func:`encode_snapshot`; ``total_count`` (optional) records the index's document count
    after the delta, as the pusher knows it, so listings need not replay the chain. Raises :class:`InvalidArgumentError` for inputs the format
    cannot hold.
    """
    if type(dimension) is not int or not 1 <= dimension <= MAX_DIMENSION:
        raise InvalidArgumentError(f"dimension must be an integer in 1..{MAX_DIMENSION}")
    if np.size(vectors) == 0:  # no upserts: any empty shape means zero rows of this dimension
        vectors = np.zeros((0, dimension), dtype=np.float32)
    array, fields = _common(index_name, model_id, model_artifact, vectors, chunk_size)
    count = array.shape[0]
    if array.shape[1] != dimension:
        raise InvalidArgumentError(
            f"delta vectors have dimension {array.shape[1]}, not {dimension}: embed the "
            "upserted documents with the index's model"
        )
    documents, _, _ = encode_documents(count, ids, texts, metadata, indexed=False)
    removed = list(deleted)
    try:
        check_ids(removed)
    except SnapshotError as exc:
        raise InvalidArgumentError(str(exc).replace("snapshot document", "deleted", 1)) from None
    both = set(removed).intersection(ids)
    if both:
        raise InvalidArgumentError(
            f"id {min(both)!r} is both upserted and deleted: a delta does one or the other"
        )
    sections: _Sections = [
        ("vectors", [byte_memory(array)]),
        ("documents", [memoryview(documents)]),
        (DELETED_SECTION, [memoryview(orjson.dumps(removed))]),
    ]
    if total_count is not None and (type(total_count) is not int or total_count > MAX_COUNT):
        raise InvalidArgumentError(f"total_count must be an integer in 0..{MAX_COUNT}")
    return _encode(
        sections,
        chunk_size,
        fields,
        array.shape,
        "delta",
        author,
        message,
        len(removed),
        total_count=total_count,
    )


def _common(
    index_name: str,
    model_id: str,
    model_artifact: str,
    vectors: npt.ArrayLike,
    chunk_size: int,
) -> tuple[npt.NDArray[np.float32], dict[str, str]]:
    """Check the arguments shared by both kinds; return the vectors and the header fields."""
    validate_name(index_name)
    _check_model_field("model_id", model_id, allow_empty=False)
    _check_model_field("model_artifact", model_artifact, allow_empty=True)
    if chunk_size < 1:
        raise InvalidArgumentError(
            f"chunk_size must be a positive number of bytes, got {chunk_size}"
        )
    array = _vectors_array(vectors)
    return array, {"index_name": index_name, "model_id": model_id, "model_artifact": model_artifact}


def _encode(
    sections: _Sections,
    chunk_size: int,
    fields: dict[str, str],
    shape: tuple[int, ...],
    kind: str,
    author: str | None,
    message: str | None,
    deleted_count: int = 0,
    hnsw: HnswParams | None = None,
    total_count: int | None = None,
) -> tuple[SnapshotHeader, _Chunks]:
    header, head = build_header(
        **fields,
        dimension=shape[1],
        count=shape[0],
        created_at=time.time(),
        sections=[(name, sum(map(len, parts)), _checksum_parts(parts)) for name, parts in sections],
        kind=kind,
        author=_check_text_field("author", author, MAX_AUTHOR_BYTES),
        message=_check_text_field("message", message, MAX_MESSAGE_BYTES),
        deleted_count=deleted_count,
        index_kind="flat" if hnsw is None else "hnsw",
        hnsw=hnsw,
        total_count=total_count,
    )
    return header, _chunks(head, [parts for _, parts in sections], chunk_size)


def _checksum_parts(parts: list[memoryview]) -> str:
    if len(parts) == 1:
        return checksum(parts[0])
    hasher = xxhash.xxh3_64()
    for part in parts:
        hasher.update(part)
    return hasher.hexdigest()


def _chunks(head: bytes, sections: list[list[memoryview]], chunk_size: int) -> _Chunks:
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


def _check_text_field(key: str, value: object, limit: int) -> str | None:
    """Writer-side check of ``author`` / ``message``: None, or a string within ``limit`` bytes."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value.encode("utf-8", "surrogatepass")) > limit:
        raise InvalidArgumentError(f"{key} must be a string of at most {limit} UTF-8 bytes")
    return value or None


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


def byte_memory(array: npt.NDArray[np.generic]) -> memoryview:
    """The bytes of a C-contiguous array, without copying."""
    return memoryview(array.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
