"""The snapshot format: one self-describing, checksummed blob per stored version, a full snapshot
or a delta, and the chain stream of several versions (codec only, no I/O policy)."""

from ..index.columns import LazyColumn
from .chain import ChainReader, encode_frame_prefix
from .codec import (
    DELETED_SECTION,
    FORMAT_VERSION,
    HNSW_SECTIONS,
    INT8_SECTIONS,
    KEYWORDS_SECTION,
    MAX_HEADER_BYTES,
    DeltaData,
    Int8Vectors,
    SectionInfo,
    SnapshotData,
    SnapshotHeader,
    SnapshotReader,
    decode_snapshot,
    encode_delta,
    encode_snapshot,
    read_header,
)
from .mapped import map_snapshot

__all__ = [
    "DELETED_SECTION",
    "FORMAT_VERSION",
    "HNSW_SECTIONS",
    "INT8_SECTIONS",
    "KEYWORDS_SECTION",
    "MAX_HEADER_BYTES",
    "ChainReader",
    "DeltaData",
    "Int8Vectors",
    "LazyColumn",
    "SectionInfo",
    "SnapshotData",
    "SnapshotHeader",
    "SnapshotReader",
    "decode_snapshot",
    "encode_delta",
    "encode_frame_prefix",
    "encode_snapshot",
    "map_snapshot",
    "read_header",
]
