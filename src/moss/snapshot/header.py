"""The fixed prefix and JSON header of a snapshot: building them, and checking them byte by byte.

Internal to :mod:`moss.snapshot` (which re-exports the public names). The layout is specified in
``docs/snapshot-format.md``; every rule enforced here is stated there.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from typing import Any

import orjson
import xxhash

from ..errors import InvalidArgumentError, SnapshotError
from ..index.hnsw import HnswParams
from ..validation import validate_name
from .graph import check_graph_sections, index_field, parse_index_field
from .sections import SectionInfo

MAGIC = b"MOSSSNAP"
FORMAT_VERSION = 2
#: Every format version this reader opens (1: full snapshots with dimension-major int8 blocks).
READABLE_VERSIONS = (1, 2)
KINDS = ("full", "delta", "compaction")
#: magic, format version u32, header length u32, xxh3_64 of the header JSON u64 (little-endian).
PREFIX = struct.Struct("<8sIIQ")
#: The part of the prefix every format version keeps, so any reader can name a newer version.
STABLE_PREFIX_SIZE = 12
ALIGNMENT = 64
MAX_HEADER_BYTES = 16 << 20
MAX_DIMENSION = 65_536
MAX_COUNT = 1 << 31
MAX_SECTION_BYTES = 1 << 40
MAX_SECTIONS = 64
MAX_MODEL_FIELD = 1024
MAX_AUTHOR_BYTES = 256
MAX_MESSAGE_BYTES = 4096
CHECKSUM_ALGORITHM = "xxh3_64"
REQUIRED_SECTIONS = {"full": ("vectors", "documents"), "delta": ("vectors", "documents", "deleted")}
REQUIRED_SECTIONS["compaction"] = REQUIRED_SECTIONS["full"]
#: Sections only a full snapshot may carry (a delta's readers re-quantise and re-tokenise).
FULL_ONLY_SECTIONS: tuple[str, ...] = ("vectors_int8", "vectors_int8_scales", "keywords")
FULL_ONLY_SECTIONS += ("documents_index", "ids_index", "hnsw_graph", "hnsw_slots")

_CHECKSUM_PATTERN = re.compile(r"[0-9a-f]{16}")
_SECTION_NAME_PATTERN = re.compile(r"[a-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class SnapshotHeader:
    """What a snapshot says about itself, known before its data is read."""

    format_version: int
    index_name: str
    model_id: str
    model_artifact: str
    dimension: int
    count: int
    created_at: float
    sections: dict[str, SectionInfo]
    #: Offset of the end of the last section: the exact size of the blob in bytes.
    total_size: int
    #: ``"full"`` (a whole index), ``"delta"`` (changes since a base version) or
    #: ``"compaction"`` (a whole index equal to the version before it).
    kind: str = "full"
    #: Who wrote the version and why (optional, free text), or None.
    author: str | None = None
    message: str | None = None
    #: The number of ids a delta deletes (0 for a full snapshot).
    deleted_count: int = 0
    #: How the index searches: ``"flat"`` (exact) or ``"hnsw"`` with these parameters.
    index_kind: str = "flat"
    hnsw: HnswParams | None = None
    #: A delta's count of documents in the index after it, as its pusher saw it (or None).
    total_count: int | None = None


def align(offset: int) -> int:
    """Round ``offset`` up to the next multiple of :data:`ALIGNMENT`."""
    return -(-offset // ALIGNMENT) * ALIGNMENT


def checksum(data: bytes | bytearray | memoryview) -> str:
    """Return the section checksum of ``data``: xxh3_64 as 16 lowercase hex digits."""
    return xxhash.xxh3_64_hexdigest(data)


def build_header(
    *,
    index_name: str,
    model_id: str,
    model_artifact: str,
    dimension: int,
    count: int,
    created_at: float,
    sections: list[tuple[str, int, str]],
    kind: str = "full",
    author: str | None = None,
    message: str | None = None,
    deleted_count: int = 0,
    index_kind: str = "flat",
    hnsw: HnswParams | None = None,
    total_count: int | None = None,
) -> tuple[SnapshotHeader, bytes]:
    """Lay out ``sections`` (name, length, checksum) in order; return the header and the bytes
    that precede the first section (prefix, header JSON, zero padding)."""
    first = align(PREFIX.size)
    while True:
        # Offsets are printed inside the header, so its length depends on them: iterate until the
        # first offset is stable (it only grows, so this ends after a step or two).
        infos = _place(sections, first)
        fields: dict[str, Any] = {
            "kind": kind,
            "index_name": index_name,
            "model_id": model_id,
            "model_artifact": model_artifact,
            "dimension": dimension,
            "count": count,
            "created_at": created_at,
            "checksum_algorithm": CHECKSUM_ALGORITHM,
            "sections": {
                name: {"offset": i.offset, "length": i.length, "checksum": i.checksum}
                for name, i in infos.items()
            },
        }
        if kind == "delta":
            fields["deleted_count"] = deleted_count
            fields.update({} if total_count is None else {"total_count": total_count})
        index = index_field(index_kind, hnsw)
        if index is not None:
            fields["index"] = index
        fields.update(
            (key, value) for key, value in (("author", author), ("message", message)) if value
        )
        raw = orjson.dumps(fields)
        needed = align(PREFIX.size + len(raw))
        if needed == first:
            break
        first = needed
    if len(raw) > MAX_HEADER_BYTES:
        raise InvalidArgumentError(f"snapshot header is {len(raw)} bytes, over {MAX_HEADER_BYTES}")
    prefix = PREFIX.pack(MAGIC, FORMAT_VERSION, len(raw), xxhash.xxh3_64_intdigest(raw))
    head = prefix + raw + bytes(first - PREFIX.size - len(raw))
    last = max(infos.values(), key=lambda i: i.offset + i.length)
    header = SnapshotHeader(
        format_version=FORMAT_VERSION,
        index_name=index_name,
        model_id=model_id,
        model_artifact=model_artifact,
        dimension=dimension,
        count=count,
        created_at=created_at,
        sections=infos,
        total_size=last.offset + last.length,
        kind=kind,
        author=author or None,
        message=message or None,
        deleted_count=deleted_count,
        index_kind="hnsw" if index is not None else "flat",
        hnsw=hnsw if index is not None else None,
        total_count=total_count if kind == "delta" else None,
    )
    return header, head


def _place(sections: list[tuple[str, int, str]], first: int) -> dict[str, SectionInfo]:
    infos: dict[str, SectionInfo] = {}
    offset = first
    for name, length, digest in sections:
        infos[name] = SectionInfo(offset=offset, length=length, checksum=digest)
        offset = align(offset + length)
    return infos


def check_stable_prefix(data: bytes | bytearray) -> None:
    """Check the magic (or as much of it as ``data`` holds) and, once present, the version."""
    if not MAGIC.startswith(bytes(data[: len(MAGIC)])):
        raise SnapshotError(
            "not a moss snapshot: the data does not start with the magic bytes b'MOSSSNAP'"
        )
    if len(data) >= STABLE_PREFIX_SIZE:
        (version,) = struct.unpack_from("<I", data, len(MAGIC))
        if version > FORMAT_VERSION:
            raise SnapshotError(
                f"snapshot format version {version} is newer than this moss reads "
                f"(format version {FORMAT_VERSION}): upgrade moss-sessions to open it"
            )
        if version not in READABLE_VERSIONS:
            raise SnapshotError(f"unknown snapshot format version {version}: the data is corrupt")


def parse_prefix(data: bytes | bytearray, *, max_size: int | None = None) -> tuple[int, int, int]:
    """Return (format version, header length, header checksum) from the first PREFIX.size bytes."""
    check_stable_prefix(data)
    _, version, header_len, header_digest = PREFIX.unpack_from(data)
    if header_len > MAX_HEADER_BYTES:
        raise SnapshotError(
            f"snapshot header claims {header_len} bytes, over the limit of {MAX_HEADER_BYTES}: "
            "the data is corrupt"
        )
    if max_size is not None and PREFIX.size + header_len > max_size:
        raise SnapshotError(f"snapshot header alone exceeds the size limit of {max_size} bytes")
    return version, header_len, header_digest


def parse_header(
    version: int, raw: bytes | bytearray, digest: int, *, expected_name: str | None = None
) -> SnapshotHeader:
    """Check the header JSON against its checksum and every rule of the format; return it."""
    if xxhash.xxh3_64_intdigest(raw) != digest:
        raise SnapshotError("snapshot header checksum mismatch: the header is corrupt")
    try:
        fields = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"snapshot header is not valid JSON: {exc}") from exc
    if not isinstance(fields, dict):
        raise SnapshotError("snapshot header is not a JSON object")
    algorithm = fields.get("checksum_algorithm")
    if algorithm != CHECKSUM_ALGORITHM:
        raise SnapshotError(
            f"snapshot uses checksum algorithm {algorithm!r}; "
            f"this moss knows only {CHECKSUM_ALGORITHM!r}"
        )
    try:
        name = validate_name(fields.get("index_name"))
    except InvalidArgumentError as exc:
        raise SnapshotError(f"snapshot header has an invalid index name: {exc}") from exc
    if expected_name is not None and name != expected_name:
        raise SnapshotError(
            f"snapshot is of index {name!r}, not {expected_name!r}: push it under its own name"
        )
    kind = _kind_field(fields, version)
    dimension = _int_field(fields, "dimension", 1, MAX_DIMENSION)
    count = _int_field(fields, "count", 0, MAX_COUNT)
    deleted_count = _int_field(fields, "deleted_count", 0, MAX_COUNT) if kind == "delta" else 0
    total = "total_count" in fields and kind == "delta"
    total_count = _int_field(fields, "total_count", 0, MAX_COUNT) if total else None
    sections, total_size = _parse_sections(fields.get("sections"), PREFIX.size + len(raw), kind)
    vectors = sections["vectors"]
    if vectors.length != count * dimension * 4:
        raise SnapshotError(
            f"vectors section is {vectors.length} bytes; {count} x {dimension} float32 "
            f"need {count * dimension * 4}: the header is inconsistent"
        )
    _check_int8_sections(sections, count, dimension)
    index_kind, hnsw = parse_index_field(fields.get("index"))
    check_graph_sections(sections, index_kind, count)
    return SnapshotHeader(
        format_version=version,
        index_name=name,
        model_id=_str_field(fields, "model_id", allow_empty=False),
        model_artifact=_str_field(fields, "model_artifact", allow_empty=True),
        dimension=dimension,
        count=count,
        created_at=_time_field(fields),
        sections=sections,
        total_size=total_size,
        kind=kind,
        author=_optional_text(fields, "author", MAX_AUTHOR_BYTES),
        message=_optional_text(fields, "message", MAX_MESSAGE_BYTES),
        deleted_count=deleted_count,
        index_kind=index_kind,
        hnsw=hnsw,
        total_count=total_count,
    )


def _kind_field(fields: dict[str, Any], version: int) -> str:
    """Format version 1 knew only full snapshots; from version 2 on, ``kind`` says which."""
    if version == 1:
        # Every later version writes "kind": a header with one and a prefix saying 1 is a
        # corrupt prefix, and reading it by version 1's layout would misread its int8 blocks.
        if "kind" in fields:
            raise SnapshotError(
                "snapshot prefix says format version 1 but its header is of a later version: "
                "the data is corrupt"
            )
        return "full"
    kind = fields.get("kind")
    if kind not in KINDS:
        raise SnapshotError(
            f"snapshot header field 'kind' must be one of {', '.join(map(repr, KINDS))}"
        )
    assert isinstance(kind, str)
    return kind


def _optional_text(fields: dict[str, Any], key: str, limit: int) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value.encode("utf-8", "surrogatepass")) > limit:
        raise SnapshotError(
            f"snapshot header field {key!r} must be a string of at most {limit} UTF-8 bytes"
        )
    return value or None


def _check_int8_sections(sections: dict[str, SectionInfo], count: int, dimension: int) -> None:
    """The int8 sections come as a pair, each of its exact size (docs/snapshot-format.md)."""
    codes, scales = sections.get("vectors_int8"), sections.get("vectors_int8_scales")
    if codes is None and scales is None:
        return
    if codes is None or scales is None:
        raise SnapshotError(
            "snapshot has only one of the sections 'vectors_int8' and 'vectors_int8_scales': "
            "the header is inconsistent"
        )
    if codes.length != count * dimension or scales.length != dimension * 4:
        raise SnapshotError(
            f"int8 sections are {codes.length} and {scales.length} bytes; {count} x {dimension} "
            f"codes and {dimension} float32 scales need {count * dimension} and "
            f"{dimension * 4}: the header is inconsistent"
        )


def _int_field(fields: dict[str, Any], key: str, low: int, high: int) -> int:
    value = fields.get(key)
    if type(value) is not int or not low <= value <= high:
        raise SnapshotError(f"snapshot header field {key!r} must be an integer in {low}..{high}")
    return value


def _str_field(fields: dict[str, Any], key: str, *, allow_empty: bool) -> str:
    value = fields.get(key)
    if not isinstance(value, str) or len(value) > MAX_MODEL_FIELD or not (value or allow_empty):
        raise SnapshotError(
            f"snapshot header field {key!r} must be a string of at most "
            f"{MAX_MODEL_FIELD} characters"
        )
    return value


def _time_field(fields: dict[str, Any]) -> float:
    value = fields.get("created_at")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise SnapshotError("snapshot header field 'created_at' must be a finite number")
    return float(value)


def _parse_sections(
    value: object, header_end: int, kind: str
) -> tuple[dict[str, SectionInfo], int]:
    """Check the section table; return it (in offset order) and the total size of the blob."""
    if not isinstance(value, dict) or not 0 < len(value) <= MAX_SECTIONS:
        raise SnapshotError(f"snapshot header 'sections' must be an object of 1..{MAX_SECTIONS}")
    infos = {name: _section(name, entry) for name, entry in value.items()}
    for name in REQUIRED_SECTIONS[kind]:
        if name not in infos:
            raise SnapshotError(f"snapshot has no {name!r} section")
    if kind == "delta":
        extra = sorted(set(FULL_ONLY_SECTIONS) & set(infos))
        if extra:
            raise SnapshotError(
                f"a delta carries no {extra[0]!r} section (only full snapshots do): "
                "the header is inconsistent"
            )
    ordered = dict(sorted(infos.items(), key=lambda item: item[1].offset))
    # No holes, no overlaps: each section starts at the first aligned offset after the previous
    # one, so the whole layout is determined by the lengths and every padding byte is known.
    expected = align(header_end)
    for name, info in ordered.items():
        if info.offset != expected:
            raise SnapshotError(
                f"section {name!r} starts at byte {info.offset}, but the format places it at "
                f"{expected} (sections are {ALIGNMENT}-byte aligned and back to back)"
            )
        end = info.offset + info.length
        expected = align(end)
    return ordered, end


def _section(name: str, entry: object) -> SectionInfo:
    if not _SECTION_NAME_PATTERN.fullmatch(name):
        raise SnapshotError(f"snapshot section name {name[:80]!r} is invalid")
    if not isinstance(entry, dict):
        raise SnapshotError(f"section {name!r} must be described by a JSON object")
    digest = entry.get("checksum")
    if not isinstance(digest, str) or not _CHECKSUM_PATTERN.fullmatch(digest):
        raise SnapshotError(f"section {name!r} checksum must be 16 lowercase hex digits")
    return SectionInfo(
        offset=_section_int(name, entry, "offset"),
        length=_section_int(name, entry, "length"),
        checksum=digest,
    )


def _section_int(name: str, entry: dict[str, Any], key: str) -> int:
    value = entry.get(key)
    if type(value) is not int or not 0 <= value <= MAX_SECTION_BYTES:
        raise SnapshotError(
            f"section {name!r} field {key!r} must be an integer in 0..{MAX_SECTION_BYTES}"
        )
    return value
