"""Opening a snapshot file by mapping it: the vectors and int8 codes become read-only numpy views
of the file's pages instead of copies, so processes that open the same version share one copy
in the page cache.

Internal to :mod:`moss.snapshot` (which re-exports :func:`map_snapshot`). Every check of the
streaming reader applies (header, layout, zero padding, every section's checksum, the documents
and the graph), so a mapped open is as safe as a decoded one; only the memory differs. The
checksums are verified once per file: a file marked verified and unchanged since
(:mod:`moss.snapshot.verified_mark`) is mapped without hashing or touching its pages.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np

from ..errors import SnapshotError
from ..index.columns import LazyColumn
from .data import DeltaData, Int8Vectors, SnapshotData, rows_from_v1_blocks
from .documents import INDEX_SECTION, Metadata, parse_documents, parse_indexed_documents
from .graph import HNSW_SECTIONS, decode_graph
from .header import PREFIX, SnapshotHeader, checksum, parse_header, parse_prefix
from .ids_index import ID_SECTION
from .reader import KEYWORDS_SECTION, SnapshotReader
from .verified_mark import is_marked, mark_verified


def map_snapshot(
    path: str | os.PathLike[str],
    *,
    expected_name: str | None = None,
    keep_int8: bool = True,
    keep_graph: bool = True,
) -> SnapshotData | DeltaData:
    """Open the version stored in the file at ``path``, mapping its vectors and int8 codes.

    ``SnapshotData.vectors`` (and ``.int8.codes``) are then read-only views of the file: an
    engine adopting them never writes them (new and changed rows go to its own blocks). The
    file must not be modified in place while mapped (stores replace files by renaming, which
    leaves the mapping on the old file). The documents, keyword index and graph are read into
    memory (FAISS keeps its own copy of a graph). A delta is decoded as usual. Raises
    :class:`SnapshotError` if anything is wrong, ``OSError`` if the file cannot be read.
    """
    with open(path, "rb") as file:
        fileno = file.fileno()
        size = os.fstat(fileno).st_size
        if size < PREFIX.size:
            raise SnapshotError(
                f"snapshot is truncated: the file {Path(path).name} has {size} bytes"
            )
        version, header_len, digest = parse_prefix(file.read(PREFIX.size))
        # A file verified before (and unchanged since) is not hashed again, nor its pages
        # touched: a query reads the pages it needs.
        verified = is_marked(fileno, digest)
        # The mapping outlives the file object: the arrays viewing it keep it alive.
        mapped = _map_read_only(fileno, populate=not verified)
        view = memoryview(mapped)
        end = PREFIX.size + header_len
        if size < end:
            raise SnapshotError(f"snapshot is truncated: got {size} bytes, the header needs {end}")
        header = parse_header(
            version, bytes(view[PREFIX.size : end]), digest, expected_name=expected_name
        )
        if header.total_size != size:
            raise SnapshotError(
                f"snapshot file is {size} bytes, but its header says {header.total_size}: "
                "the file is truncated or has bytes after its end"
            )
        _check_body(view, header, end, checksums=not verified)
        if not verified and header.kind != "delta":
            mark_verified(fileno, digest)
    if header.kind == "delta":
        reader = SnapshotReader(expected_name=expected_name)
        reader.feed(view)
        data = reader.finish()
        assert isinstance(data, DeltaData)
        return data
    return _full(mapped, view, header, keep_int8=keep_int8, keep_graph=keep_graph)


def _map_read_only(fileno: int, *, populate: bool) -> mmap.mmap:
    """The whole file mapped read-only; with ``populate`` (on Linux) its page tables are filled
    at once (``MAP_POPULATE``): the checksums read every page anyway, and one populating call
    costs about half of taking each page's fault on first touch (100k x 384: ~13 vs 25-40 ms)."""
    flag = getattr(mmap, "MAP_POPULATE", 0) if populate else 0
    if flag:
        return mmap.mmap(fileno, 0, flags=mmap.MAP_SHARED | flag, prot=mmap.PROT_READ)
    return mmap.mmap(fileno, 0, access=mmap.ACCESS_READ)


def _check_body(
    view: memoryview, header: SnapshotHeader, position: int, *, checksums: bool
) -> None:
    """Zero padding between sections and (if ``checksums``) every section's checksum (the
    layout itself was checked with the header)."""
    for name, info in header.sections.items():  # in offset order
        if any(view[position : info.offset]):
            raise SnapshotError("snapshot padding is not zero: the data is corrupt")
        position = info.offset + info.length
        if not checksums:
            continue
        actual = checksum(view[info.offset : info.offset + info.length])
        if actual != info.checksum:
            raise SnapshotError(
                f"checksum mismatch in snapshot section {name!r} (header says {info.checksum}, "
                f"data hashes to {actual}): the data is corrupt; read another version or push again"
            )


def _full(
    mapped: mmap.mmap,
    view: memoryview,
    header: SnapshotHeader,
    *,
    keep_int8: bool,
    keep_graph: bool,
) -> SnapshotData:
    count, dimension = header.count, header.dimension
    sections = header.sections

    def part(name: str) -> memoryview:
        info = sections[name]
        return view[info.offset : info.offset + info.length]

    def array(name: str, dtype: str, length: int) -> np.ndarray:
        # A read-only view of the mapped pages (the mapping is read-only): no copy.
        return np.frombuffer(mapped, dtype=dtype, count=length, offset=sections[name].offset)

    vectors = array("vectors", "<f4", count * dimension).reshape(count, dimension)
    texts: list[str] | LazyColumn[str]
    metadata: list[Metadata] | LazyColumn[Metadata]
    ids: list[str] | LazyColumn[str]
    if INDEX_SECTION in sections and count:
        # Texts, metadata (and ids, with their index) stay in the mapped pages, decoded as they
        # are read; the offsets and the id table are read from the pages too.
        id_index = part(ID_SECTION) if ID_SECTION in sections else None
        ids, texts, metadata = parse_indexed_documents(
            part("documents"), part(INDEX_SECTION), count, id_index
        )
    else:
        ids, texts, metadata = parse_documents(bytes(part("documents")), count)
    int8 = None
    if keep_int8 and "vectors_int8" in sections:
        scales = np.frombuffer(bytes(part("vectors_int8_scales")), dtype="<f4").astype(np.float32)
        if not np.all(np.isfinite(scales)) or not np.all(scales > 0):
            raise SnapshotError(
                "snapshot int8 scales must be finite and positive: the data is corrupt"
            )
        codes = array("vectors_int8", "i1", count * dimension)
        if header.format_version == 1:
            codes = rows_from_v1_blocks(codes, count, dimension)
        int8 = Int8Vectors(codes.reshape(count, dimension), scales)
    keywords = bytes(part(KEYWORDS_SECTION)) if KEYWORDS_SECTION in sections else None
    graph = None
    if keep_graph and HNSW_SECTIONS[0] in sections:  # checksums verified (now or when marked)
        graph_bytes = array(HNSW_SECTIONS[0], "u1", sections[HNSW_SECTIONS[0]].length)
        slots = np.frombuffer(part(HNSW_SECTIONS[1]), dtype=np.uint8)
        graph = decode_graph(graph_bytes, slots, count, dimension)
    return SnapshotData(header, vectors, ids, texts, metadata, int8, keywords, graph)
