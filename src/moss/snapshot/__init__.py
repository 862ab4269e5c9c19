"""The snapshot format: one self-describing, checksummed file per stored version (codec only, no I/O policy)."""

from ..index.columns import LazyColumn
from .codec import (
    FORMAT_VERSION,
    INT8_SECTIONS,
    KEYWORDS_SECTION,
    MAX_HEADER_BYTES,
    SectionInfo,
    SnapshotData,
    SnapshotHeader,
    SnapshotReader,
    decode_snapshot,
    encode_snapshot,
    read_header,
)

__all__ = [
    "FORMAT_VERSION",
    "INT8_SECTIONS",
    "KEYWORDS_SECTION",
    "MAX_HEADER_BYTES",
    "LazyColumn",
    "SectionInfo",
    "SnapshotData",
    "SnapshotHeader",
    "SnapshotReader",
    "decode_snapshot",
    "encode_snapshot",
    "read_header",
]
