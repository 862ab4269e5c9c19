"""Tests of the snapshot format: round trips, streaming, limits, and corrupt input of every kind."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moss.errors import InvalidArgumentError, SnapshotError
from moss.snapshot import (
    FORMAT_VERSION,
    MAX_HEADER_BYTES,
    SnapshotData,
    SnapshotHeader,
    SnapshotReader,
    decode_snapshot,
    encode_snapshot,
    read_header,
)

MAGIC = b"MOSSSNAP"
PREFIX_SIZE = 24

METADATA: list[dict[str, Any] | None] = [
    {"s": "text", "i": 7, "big": 2**62, "neg": -(2**63), "f": 1.5, "t": True, "n": None},
    None,
    {"nested": {"list": [1, "two", 3.0, None, False, {"deep": [[]]}], "empty": {}}},
    {"ünïcödé ключ": "值 🚀", "zero": 0, "float_int": 2.0},
    {},
]
IDS = ["a", "b/é", "🚀", "doc:4", "x" * 512]
TEXTS = ["first", "", "emoji 🚀 and CJK 中文", 'line\nbreak\ttab"quote', "last"]


def make_vectors(count: int = 5, dimension: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, dimension)).astype(np.float32)


def encode(vectors: np.ndarray | None = None, **overrides: Any) -> tuple[SnapshotHeader, bytes]:
    vectors = make_vectors() if vectors is None else vectors
    args: dict[str, Any] = {
        "index_name": "notes",
        "model_id": "moss-minilm",
        "model_artifact": "sha256:abc",
        "vectors": vectors,
        "ids": IDS[: len(vectors)],
        "texts": TEXTS[: len(vectors)],
        "metadata": METADATA[: len(vectors)],
        **overrides,
    }
    header, chunks = encode_snapshot(**args)
    return header, b"".join(bytes(chunk) for chunk in chunks)


HEADER, BLOB = encode()


def feed_all(blob: bytes, sizes: list[int] | None = None, **kwargs: Any) -> Any:
    """Feed ``blob`` in chunks of the given sizes (cycled), then finish."""
    reader = SnapshotReader(**kwargs)
    sizes = sizes or [len(blob) or 1]
    position, i = 0, 0
    while position < len(blob):
        size = sizes[i % len(sizes)]
        reader.feed(blob[position : position + size])
        position += size
        i += 1
    return reader.finish()


def align(offset: int) -> int:
    return -(-offset // 64) * 64


HEADER_ROOM = 1024


def assemble(
    sections: list[tuple[str, bytes]],
    *,
    version: int = FORMAT_VERSION,
    mutate: Callable[[dict[str, Any]], None] | None = None,
    **fields: Any,
) -> bytes:
    """Build a blob from the spec alone (independent of the writer), with any header fields.

    The header JSON is padded with spaces to HEADER_ROOM bytes so section offsets do not depend
    on its content, which lets tests change fields freely while the layout stays valid.
    """
    offset = align(PREFIX_SIZE + HEADER_ROOM)
    table, body = {}, b""
    for name, data in sections:
        table[name] = {
            "offset": offset,
            "length": len(data),
            "checksum": xxhash.xxh3_64_hexdigest(data),
        }
        body += bytes(offset - PREFIX_SIZE - HEADER_ROOM - len(body)) + data
        offset = align(offset + len(data))
    header = {
        **({"kind": "full"} if version >= 2 else {}),  # version 1 had no kind
        "index_name": "notes",
        "model_id": "custom",
        "model_artifact": "",
        "dimension": 2,
        "count": 2,
        "created_at": 1700000000.5,
        "checksum_algorithm": "xxh3_64",
        "sections": table,
        **fields,
    }
    if mutate:
        mutate(header)
    raw = orjson.dumps(header).ljust(HEADER_ROOM)
    if len(raw) > HEADER_ROOM:
        raise ValueError("header does not fit in HEADER_ROOM")
    prefix = MAGIC + version.to_bytes(4, "little") + len(raw).to_bytes(4, "little")
    return prefix + xxhash.xxh3_64_intdigest(raw).to_bytes(8, "little") + raw + body


VECTORS_2x2 = np.array([[1.0, -0.0], [3.5, 1e-40]], dtype="<f4").tobytes()


def documents(
    ids: Any = ("a", "b"), texts: Any = ("x", "y"), metadata: Any = (None, {"k": 1})
) -> bytes:
    return orjson.dumps({"ids": list(ids), "texts": list(texts), "metadata": list(metadata)})


def standard(docs: bytes | None = None) -> list[tuple[str, bytes]]:
    return [("vectors", VECTORS_2x2), ("documents", documents() if docs is None else docs)]


def decode_bytes(blob: bytes) -> SnapshotData:
    return decode_snapshot([blob])


# Round trips ------------------------------------------------------------------------------------


def test_round_trip_is_exact() -> None:
    data = decode_bytes(BLOB)
    vectors = make_vectors()
    assert data.vectors.dtype == np.float32
    assert data.vectors.shape == (5, 3)
    assert data.vectors.tobytes() == vectors.tobytes()
    assert data.vectors.flags.writeable and data.vectors.flags.c_contiguous
    assert data.ids == IDS
    assert data.texts == TEXTS
    assert data.metadata == METADATA
    assert type(data.metadata[0]["big"]) is int  # type: ignore[index]
    assert type(data.metadata[3]["float_int"]) is float  # type: ignore[index]
    assert data.header == HEADER


def test_header_describes_the_blob() -> None:
    assert HEADER.format_version == FORMAT_VERSION == 2
    assert (HEADER.index_name, HEADER.model_id, HEADER.model_artifact) == (
        "notes",
        "moss-minilm",
        "sha256:abc",
    )
    assert (HEADER.dimension, HEADER.count) == (3, 5)
    assert HEADER.total_size == len(BLOB)
    assert list(HEADER.sections) == ["vectors", "documents", "documents_index", "ids_index"]
    for info in HEADER.sections.values():
        assert info.offset % 64 == 0
        assert info.checksum == xxhash.xxh3_64_hexdigest(
            BLOB[info.offset : info.offset + info.length]
        )


def test_sections_are_readable_with_numpy_and_json() -> None:
    vec, docs = HEADER.sections["vectors"], HEADER.sections["documents"]
    raw = BLOB[vec.offset : vec.offset + vec.length]
    assert np.array_equal(np.frombuffer(raw, dtype="<f4").reshape(5, 3), make_vectors())
    columns = json.loads(BLOB[docs.offset : docs.offset + docs.length])
    assert columns == {"ids": IDS, "texts": TEXTS, "metadata": METADATA}


def test_vectors_keep_every_bit_pattern() -> None:
    bits = np.array([[0x80000000, 0x00000001, 0x7F7FFFFF, 0x3F800000]], dtype=np.uint32)
    _, blob = encode(bits.view(np.float32))
    assert np.array_equal(decode_bytes(blob).vectors.view(np.uint32), bits)


def test_empty_index() -> None:
    header, blob = encode(np.zeros((0, 384), dtype=np.float32), ids=[], texts=[], metadata=[])
    data = decode_bytes(blob)
    assert header.count == 0 and header.sections["vectors"].length == 0
    assert data.vectors.shape == (0, 384)
    assert (data.ids, data.texts, data.metadata) == ([], [], [])
    assert feed_all(blob, [1]).header == header


def test_encode_streams_vectors_without_copying() -> None:
    vectors = make_vectors(64, 16)
    _, chunks = encode_snapshot(
        index_name="n",
        model_id="m",
        model_artifact="",
        vectors=vectors,
        ids=[str(i) for i in range(64)],
        texts=[""] * 64,
        metadata=[None] * 64,
        chunk_size=1000,
    )
    parts = list(chunks)
    shared = [p for p in parts if np.shares_memory(np.frombuffer(p, dtype=np.uint8), vectors)]
    assert sum(len(p) for p in shared) == vectors.nbytes
    assert all(len(p) <= 1000 for p in parts[1:])
    assert decode_snapshot(parts).vectors.tobytes() == vectors.tobytes()


def test_encode_converts_other_dtypes() -> None:
    vectors = make_vectors().astype(">f8")
    _, blob = encode(vectors)
    assert np.array_equal(decode_bytes(blob).vectors, vectors.astype(np.float32))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"index_name": "bad name"}, "invalid index name"),
        ({"model_id": ""}, "model_id"),
        ({"model_artifact": None}, "model_artifact"),
        ({"vectors": np.zeros(3, np.float32)}, "shape"),
        ({"vectors": np.zeros((5, 0), np.float32)}, "dimensions"),
        ({"vectors": [["x"]]}, "numbers"),
        ({"ids": IDS[:4]}, "5 vectors but 4 ids"),
        ({"ids": ["a", "a", "b", "c", "d"]}, "'a' occurs more than once"),
        ({"ids": ["a", "", "b", "c", "d"]}, "non-empty"),
        ({"ids": ["y" * 513, "b", "c", "d", "e"]}, "exceeds 512 bytes"),
        ({"texts": ["a", 2, "b", "c", "d"]}, "texts must be strings"),
        ({"metadata": [None, [1], None, None, None]}, "JSON object or null"),
        ({"metadata": [None, {1: 2}, None, None, None]}, "JSON"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_encode_refuses_what_readers_would_refuse(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        encode(**overrides)


# Streaming ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 700), min_size=1, max_size=20))
def test_any_chunk_sizes(sizes: list[int]) -> None:
    data = feed_all(BLOB, sizes)
    assert data.header == HEADER
    assert data.vectors.tobytes() == make_vectors().tobytes()
    assert (data.ids, data.texts, data.metadata) == (IDS, TEXTS, METADATA)


def test_one_byte_chunks_and_buffer_types() -> None:
    assert feed_all(BLOB, [1]).ids == IDS
    reader = SnapshotReader()
    half = len(BLOB) // 2
    reader.feed(bytearray(BLOB[:10]))
    reader.feed(memoryview(BLOB)[10:half])
    reader.feed(np.frombuffer(BLOB[half:], dtype=np.uint8))  # type: ignore[arg-type]
    assert reader.finish().ids == IDS  # type: ignore[union-attr]


def test_header_is_available_before_the_data() -> None:
    reader = SnapshotReader()
    reader.feed(BLOB[: HEADER.sections["vectors"].offset - 1])
    assert reader.header == HEADER
    reader2 = SnapshotReader()
    reader2.feed(BLOB[:PREFIX_SIZE])
    assert reader2.header is None


def test_keep_data_false_returns_the_header() -> None:
    assert feed_all(BLOB, [33], keep_data=False) == HEADER


def test_keep_data_false_still_checks_checksums() -> None:
    docs = HEADER.sections["documents"]
    corrupt = bytearray(BLOB)
    corrupt[docs.offset + 3] ^= 1
    with pytest.raises(SnapshotError, match="checksum mismatch in snapshot section 'documents'"):
        feed_all(bytes(corrupt), keep_data=False)


def test_expected_name() -> None:
    reader = SnapshotReader(expected_name="other")
    with pytest.raises(SnapshotError, match="index 'notes', not 'other'"):
        reader.feed(BLOB[: HEADER.sections["vectors"].offset])
    assert feed_all(BLOB, expected_name="notes").header == HEADER


def test_max_size() -> None:
    assert feed_all(BLOB, max_size=len(BLOB)).header == HEADER
    reader = SnapshotReader(max_size=len(BLOB) - 1)
    with pytest.raises(SnapshotError, match=f"snapshot is {len(BLOB)} bytes, over the limit"):
        reader.feed(BLOB[: HEADER.sections["vectors"].offset])  # refused before any data
    with pytest.raises(SnapshotError, match="header alone exceeds"):
        SnapshotReader(max_size=100).feed(BLOB[:PREFIX_SIZE])


def test_failed_reader_stays_failed() -> None:
    reader = SnapshotReader()
    with pytest.raises(SnapshotError, match="magic"):
        reader.feed(b"NOTMOSS!")
    with pytest.raises(SnapshotError, match="magic"):
        reader.feed(BLOB)
    with pytest.raises(SnapshotError, match="magic"):
        reader.finish()


def test_bytes_after_the_end() -> None:
    reader = SnapshotReader()
    reader.feed(BLOB)
    with pytest.raises(SnapshotError, match="after its end"):
        reader.feed(b"\0")


def test_non_bytes_chunk() -> None:
    with pytest.raises(SnapshotError, match="bytes-like, got str"):
        SnapshotReader().feed("MOSSSNAP")  # type: ignore[arg-type]


# read_header ------------------------------------------------------------------------------------


class Trickle(io.RawIOBase):
    """A raw file that returns one byte per read, as raw streams may."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 1))


def test_read_header() -> None:
    f = io.BytesIO(BLOB)
    assert read_header(f) == HEADER
    assert f.tell() < HEADER.sections["vectors"].offset
    assert read_header(Trickle(BLOB)) == HEADER  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "truncated"),
        (BLOB[:20], "truncated"),
        (BLOB[: PREFIX_SIZE + 5], "truncated"),
        (b"PK\x03\x04" + bytes(40), "not a moss snapshot"),
        (BLOB[:30] + b"X" + BLOB[31:], "header checksum mismatch"),
    ],
)
def test_read_header_refuses_bad_files(data: bytes, match: str) -> None:
    with pytest.raises(SnapshotError, match=match):
        read_header(io.BytesIO(data))


# Format evolution -------------------------------------------------------------------------------


def test_future_format_version_names_both_versions() -> None:
    blob = assemble(standard(), version=FORMAT_VERSION + 1)
    reader = SnapshotReader()
    with pytest.raises(SnapshotError, match=r"format version 3 is newer .*format version 2"):
        reader.feed(blob[:12])  # known from the stable prefix alone
    with pytest.raises(SnapshotError, match="newer"):
        read_header(io.BytesIO(MAGIC + (99).to_bytes(4, "little") + b"anything at all"))


def test_format_version_zero_is_refused() -> None:
    with pytest.raises(SnapshotError, match="unknown snapshot format version 0"):
        decode_bytes(assemble(standard(), version=0))


def test_independent_assembler_agrees_with_the_reader() -> None:
    data = decode_bytes(assemble(standard()))
    assert data.vectors.tobytes() == VECTORS_2x2
    assert data.metadata == [None, {"k": 1}]
    assert data.header.created_at == 1700000000.5


@pytest.mark.parametrize("keep_data", [True, False])
def test_unknown_sections_and_fields_are_tolerated(keep_data: bool) -> None:
    sections = [
        ("keywords", b"future keyword index " * 7),
        ("vectors", VECTORS_2x2),
        ("graph", b""),
        ("documents", documents()),
        ("zz.extra-1", b"\xff" * 65),
    ]
    blob = assemble(sections, future_field={"anything": [1, 2]})
    result = feed_all(blob, [17], keep_data=keep_data)
    header = result.header if keep_data else result
    assert list(header.sections) == ["keywords", "vectors", "graph", "documents", "zz.extra-1"]
    assert header.total_size == len(blob)
    if keep_data:
        assert result.ids == ["a", "b"] and result.vectors.tobytes() == VECTORS_2x2
    corrupt = bytearray(blob)
    corrupt[header.sections["keywords"].offset] ^= 4  # unknown sections are still verified
    with pytest.raises(SnapshotError, match="'keywords'"):
        feed_all(bytes(corrupt), keep_data=keep_data)


# Refusals of well-formed but invalid snapshots ------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(header: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = header
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return mutate


_DELETE = object()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (_set("checksum_algorithm", "crc32"), "checksum algorithm 'crc32'"),
        (_set("index_name", ".."), "invalid index name"),
        (_set("model_id", ""), "'model_id'"),
        (_set("model_id", 5), "'model_id'"),
        (_set("model_artifact", _DELETE), "'model_artifact'"),
        (_set("dimension", 0), "'dimension'"),
        (_set("dimension", 65537), "'dimension'"),
        (_set("dimension", True), "'dimension'"),
        (_set("dimension", 2.0), "'dimension'"),
        (_set("count", -1), "'count'"),
        (_set("count", 3), "vectors section is 16 bytes; 3 x 2"),
        (_set("created_at", "yesterday"), "'created_at'"),
        (_set("created_at", False), "'created_at'"),
        (_set("sections", {}), "'sections'"),
        (_set("sections", []), "'sections'"),
        (_set("sections.documents", _DELETE), "no 'documents' section"),
        (_set("sections.vectors", _DELETE), "no 'vectors' section"),
        (_set("sections.vectors", [0, 16]), "JSON object"),
        (_set("sections.vectors.offset", 1090), "'vectors' starts at byte 1090"),
        (_set("sections.documents.offset", 1104), "'documents' starts at byte 1104"),
        (_set("sections.documents.offset", 1088), "'documents' starts at byte 1088"),
        (_set("sections.vectors.offset", -64), "'offset'"),
        (_set("sections.documents.offset", 2**63 - 1), "'offset'"),
        (_set("sections.documents.length", 2**41), "'length'"),
        (_set("sections.vectors.checksum", "ABCDEF0123456789"), "16 lowercase hex"),
        (_set("sections.vectors.checksum", 12), "16 lowercase hex"),
        (_set("sections.BAD NAME", {"offset": 0, "length": 0, "checksum": "0" * 16}), "name"),
    ],
)
def test_invalid_headers(mutate: Callable[[dict[str, Any]], None], match: str) -> None:
    with pytest.raises(SnapshotError, match=match):
        decode_bytes(assemble(standard(), mutate=mutate))


def test_header_must_be_a_json_object() -> None:
    raw = b"[1, 2]"
    prefix = MAGIC + (1).to_bytes(4, "little") + len(raw).to_bytes(4, "little")
    blob = prefix + xxhash.xxh3_64_intdigest(raw).to_bytes(8, "little") + raw
    with pytest.raises(SnapshotError, match="not a JSON object"):
        decode_bytes(blob)


def test_header_length_is_capped() -> None:
    prefix = MAGIC + (1).to_bytes(4, "little") + (MAX_HEADER_BYTES + 1).to_bytes(4, "little")
    with pytest.raises(SnapshotError, match="over the limit"):
        SnapshotReader().feed(prefix + bytes(8))


@pytest.mark.parametrize(
    ("docs", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b'"\\ud800"', "not valid JSON"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b"[" * 2000 + b"]" * 2000, "depth limit"),
        (documents(ids=["a"]), "'ids' must be a list of 2"),
        (documents(texts=["a", "b", "c"]), "'texts' must be a list of 2"),
        (b'{"ids": ["a", "b"], "texts": ["x", "y"]}', "'metadata'"),
        (documents(ids=["a", "a"]), "'a' occurs more than once"),
        (documents(ids=["a", 2]), "2 is not a non-empty string"),
        (documents(ids=["a", ""]), "non-empty string"),
        (documents(texts=["a", None]), "texts must be strings"),
        (documents(metadata=[None, "tag"]), "JSON object or null, got str"),
    ],
)
def test_invalid_documents(docs: bytes, match: str) -> None:
    blob = assemble(standard(docs))
    with pytest.raises(SnapshotError, match=match):
        decode_bytes(blob)
    assert feed_all(blob, keep_data=False).count == 2  # framing is fine: only JSON is wrong


def test_nonzero_padding_is_refused() -> None:
    blob = bytearray(assemble(standard()))
    blob[PREFIX_SIZE + HEADER_ROOM + 1] = 1
    with pytest.raises(SnapshotError, match="padding is not zero"):
        decode_bytes(bytes(blob))


# Corrupt input of every kind: SnapshotError and nothing else ----------------------------------


def _decode_both_ways(blob: bytes) -> None:
    """Decode with and without keep_data; each must raise SnapshotError."""
    for keep_data in (True, False):
        with pytest.raises(SnapshotError):
            feed_all(blob, [97], keep_data=keep_data)


def test_every_truncation_is_refused() -> None:
    for length in range(len(BLOB)):
        with pytest.raises(SnapshotError):
            decode_bytes(BLOB[:length])


def test_every_single_bit_flip_is_refused() -> None:
    for position in range(len(BLOB)):
        for bit in range(8):
            corrupt = bytearray(BLOB)
            corrupt[position] ^= 1 << bit
            with pytest.raises(SnapshotError):
                decode_bytes(bytes(corrupt))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_changed_byte_is_refused(data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(BLOB) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != BLOB[position]))
    corrupt = bytearray(BLOB)
    corrupt[position] = value
    _decode_both_ways(bytes(corrupt))


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda b: MAGIC + b),
        st.binary(max_size=300).map(lambda b: MAGIC + b"\x01\x00\x00\x00" + b),
        st.binary(max_size=300).map(lambda b: BLOB[:PREFIX_SIZE] + b),
    )
)
def test_random_bytes_are_refused(blob: bytes) -> None:
    _decode_both_ways(blob)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
HEADER_PATHS = [
    "index_name", "model_id", "model_artifact", "dimension", "count", "created_at",
    "checksum_algorithm", "sections", "sections.vectors", "sections.documents",
    "sections.vectors.offset", "sections.vectors.length", "sections.documents.offset",
    "sections.documents.length", "sections.documents.checksum", "extra",
]  # fmt: skip


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(HEADER_PATHS), JSON_VALUES)
def test_any_header_field_value_is_accepted_or_refused_cleanly(path: str, value: Any) -> None:
    try:
        blob = assemble(standard(), mutate=_set(path, value))
    except (TypeError, ValueError):  # too long for HEADER_ROOM or not serialisable: skip
        return
    for keep_data in (True, False):
        with contextlib.suppress(SnapshotError):
            feed_all(blob, [50], keep_data=keep_data)


@settings(max_examples=150, deadline=None)
@given(JSON_VALUES)
def test_any_documents_json_is_accepted_or_refused_cleanly(value: Any) -> None:
    blob = assemble(standard(orjson.dumps(value)))
    with contextlib.suppress(SnapshotError):
        decode_bytes(blob)


# int8 sections and older snapshots ----------------------------------------------------------

# A format-1 snapshot written before the int8 sections existed (2 documents, dimension 2).
GOLDEN_V1 = (
    "TU9TU1NOQVABAAAAKwEAAPLdtMr0WSWSeyJpbmRleF9uYW1lIjoiZ29sZGVuIiwibW9kZWxfaWQiOiJjdXN0b20iLCJt"
    "b2RlbF9hcnRpZmFjdCI6IiIsImRpbWVuc2lvbiI6MiwiY291bnQiOjIsImNyZWF0ZWRfYXQiOjE3OTU2MjM4NDEuODY3"
    "NTM3NywiY2hlY2tzdW1fYWxnb3JpdGhtIjoieHhoM182NCIsInNlY3Rpb25zIjp7InZlY3RvcnMiOnsib2Zmc2V0Ijoz"
    "ODQsImxlbmd0aCI6MTYsImNoZWNrc3VtIjoiM2VmYzUzMjViYjBlOTI3ZSJ9LCJkb2N1bWVudHMiOnsib2Zmc2V0Ijo0"
    "NDgsImxlbmd0aCI6NzAsImNoZWNrc3VtIjoiOTlkZjdmN2NlZTdlMDk2NCJ9fX0AAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAmpkZP83MTD8AAIA/AAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAHsiaWRzIjpbImEiLCJiIl0sInRleHRzIjpbImZpcnN0Iiwi"
    "c2Vjb25kIl0sIm1ldGFkYXRhIjpbeyJrIjoxfSxudWxsXX0="
)


def test_snapshots_written_before_int8_still_open_in_either_precision() -> None:
    import base64

    from moss.index.engine import Engine

    data = decode_bytes(base64.b64decode(GOLDEN_V1))
    assert data.precision == "float32" and data.int8 is None
    assert data.ids == ["a", "b"] and data.metadata == [{"k": 1}, None]
    assert np.allclose(data.vectors, [[0.6, 0.8], [1.0, 0.0]])
    engine = Engine.from_arrays(
        data.vectors, data.ids, data.texts, data.metadata, precision="int8", int8=data.int8
    )
    assert engine.precision == "int8"  # quantised on open
    assert [doc.id for doc, _ in engine.search(np.array([1.0, 0.0], np.float32), 2)] == ["b", "a"]


def int8_snapshot(count: int, dimension: int = 2, seed: int = 0) -> tuple[Any, bytes]:
    from moss.index.quantize import Int8Index

    vectors = make_vectors(count, dimension, seed)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    codes = Int8Index.build(vectors).export()
    _, chunks = encode_snapshot(
        index_name="notes",
        model_id="custom",
        model_artifact="",
        vectors=vectors,
        ids=[f"d{i}" for i in range(count)],
        texts=["t"] * count,
        metadata=[None] * count,
        int8=codes,
    )
    return codes, b"".join(bytes(chunk) for chunk in chunks)


@pytest.mark.parametrize("sizes", [[1 << 20], [7919], [1, 64, 100_003]])
def test_int8_sections_round_trip_across_blocks(sizes: list[int]) -> None:
    from moss.snapshot.data import V1_INT8_BLOCK as BLOCK

    codes, blob = int8_snapshot(BLOCK + 5)
    data = feed_all(blob, sizes)
    assert data.precision == "int8"
    assert data.int8.codes.shape == (BLOCK + 5, 2) and data.int8.codes.dtype == np.int8
    assert np.array_equal(data.int8.codes, codes.codes)
    assert np.array_equal(data.int8.scales, codes.scales)
    assert list(data.header.sections) == [
        "vectors",
        "documents",
        "documents_index",
        "ids_index",
        "vectors_int8",
        "vectors_int8_scales",
    ]


def test_int8_sections_are_checked_but_not_kept_when_not_wanted() -> None:
    _, blob = int8_snapshot(10)
    assert feed_all(blob, keep_int8=False).int8 is None
    header = feed_all(blob, keep_data=False)
    corrupt = bytearray(blob)
    corrupt[header.sections["vectors_int8"].offset + 3] ^= 1
    with pytest.raises(SnapshotError, match="'vectors_int8'"):
        feed_all(bytes(corrupt), keep_int8=False)


def test_encode_refuses_codes_of_other_vectors() -> None:
    codes, _ = int8_snapshot(10)
    with pytest.raises(InvalidArgumentError, match="int8 codes do not fit"):
        encode(make_vectors(5, 2), int8=codes)


CODES_2x2 = bytes([10, 127, 0, 3])  # row-major: vector 0 is (10, 127), vector 1 is (0, 3)
SCALES_2 = np.array([127.0, 2.5], dtype="<f4").tobytes()


def test_int8_sections_from_the_spec_alone() -> None:
    sections = [*standard(), ("vectors_int8", CODES_2x2), ("vectors_int8_scales", SCALES_2)]
    data = decode_bytes(assemble(sections))
    assert data.int8 is not None
    assert data.int8.codes.tolist() == [[10, 127], [0, 3]]
    assert data.int8.scales.tolist() == [127.0, 2.5]


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ([("vectors_int8", CODES_2x2)], "only one of the sections"),
        ([("vectors_int8_scales", SCALES_2)], "only one of the sections"),
        ([("vectors_int8", CODES_2x2[:3]), ("vectors_int8_scales", SCALES_2)], "int8 sections"),
        ([("vectors_int8", CODES_2x2), ("vectors_int8_scales", SCALES_2 + b"\0" * 4)], "int8"),
        (
            [
                ("vectors_int8", CODES_2x2),
                ("vectors_int8_scales", np.array([1, 0], "<f4").tobytes()),
            ],
            "finite and positive",
        ),
        (
            [
                ("vectors_int8", CODES_2x2),
                ("vectors_int8_scales", np.array([1, np.nan], "<f4").tobytes()),
            ],
            "finite and positive",
        ),
    ],
)
def test_inconsistent_int8_sections_are_refused(extra: list[tuple[str, bytes]], match: str) -> None:
    with pytest.raises(SnapshotError, match=match):
        decode_bytes(assemble([*standard(), *extra]))


# Lazy documents (the documents_index section) -------------------------------------------------


def test_documents_are_decoded_lazily_and_equal_the_eager_parse() -> None:
    from moss.snapshot import LazyColumn

    lazy = decode_bytes(BLOB)
    eager = feed_all(BLOB, lazy_documents=False)
    assert isinstance(lazy.texts, LazyColumn) and isinstance(lazy.metadata, LazyColumn)
    assert type(eager.texts) is list and type(eager.metadata) is list
    assert lazy.ids == eager.ids == IDS
    assert [lazy.texts[i] for i in range(len(IDS))] == TEXTS == eager.texts
    assert [lazy.metadata[i] for i in range(len(IDS))] == METADATA
    assert lazy.texts[-1] == TEXTS[-1] and lazy.metadata[1:3] == METADATA[1:3]
    assert lazy.texts.materialize() == TEXTS and list(lazy.metadata) == METADATA
    with pytest.raises(IndexError):
        lazy.texts[len(IDS)]


def test_engine_reads_writes_and_exports_lazy_documents() -> None:
    from moss.index.engine import Engine

    data = decode_bytes(BLOB)
    engine = Engine.from_arrays(data.vectors, data.ids, data.texts, data.metadata)
    for doc, _ in engine.search(np.array([0.6, 0.0, 0.8], np.float32), 5):
        row = IDS.index(doc.id)
        assert (doc.text, doc.metadata) == (TEXTS[row], METADATA[row])
    assert [doc.text for doc in engine.get([IDS[1], IDS[4]])] == [TEXTS[1], TEXTS[4]]
    assert [doc.id for doc in engine.get(filter={"zero": 0})] == [IDS[3]]
    engine.upsert(["new"], ["added"], [{"k": 1}], np.ones((1, 3), np.float32) / np.sqrt(3))
    engine.delete([IDS[0]])
    _, ids, texts, metadata = engine.export()
    assert sorted(zip(ids, texts, map(str, metadata), strict=True)) == sorted(
        zip(
            [*IDS[1:], "new"],
            [*TEXTS[1:], "added"],
            map(str, [*METADATA[1:], {"k": 1}]),
            strict=True,
        )
    )


def indexed(texts: list[bytes], metadata: list[bytes]) -> tuple[bytes, list[int]]:
    """A documents section built by hand, and its index (as a list of offsets)."""
    ids = b'["a","b"]'
    head = b'{"ids":' + ids + b',"texts":['
    middle = b'],"metadata":['
    raw = head + b",".join(texts) + middle + b",".join(metadata) + b"]}"
    bounds_t = [len(head)]
    for value in texts:
        bounds_t.append(bounds_t[-1] + len(value) + 1)
    bounds_m = [bounds_t[-1] + len(middle) - 1]
    for value in metadata:
        bounds_m.append(bounds_m[-1] + len(value) + 1)
    return raw, [7, 7 + len(ids), *bounds_t, *bounds_m]


def with_index(raw: bytes, index: list[int]) -> bytes:
    offsets = np.array(index, dtype="<u8").tobytes()
    return assemble([("vectors", VECTORS_2x2), ("documents", raw), ("documents_index", offsets)])


def test_hand_built_index_is_read() -> None:
    raw, index = indexed([b'"x"', b'"y,]"'], [b"null", b'{"k":[1,2]}'])
    data = decode_bytes(with_index(raw, index))
    assert data.ids == ["a", "b"]
    assert (data.texts[1], data.metadata[1]) == ("y,]", {"k": [1, 2]})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda ix: ix[:-1], "holds 7 offsets"),
        (lambda ix: [*ix[:-1], 10_000], "outside its section"),
        (lambda ix: [ix[0], ix[1], ix[2] + 1, *ix[3:]], "does not match"),
        (lambda ix: [ix[0], ix[1], ix[2], ix[2], *ix[4:]], "overlapping"),
        (lambda ix: [ix[1], ix[0], *ix[2:]], "ids range"),
    ],
)
def test_inconsistent_documents_index_is_refused(
    change: Callable[[list[int]], list[int]], match: str
) -> None:
    raw, index = indexed([b'"x"', b'"y"'], [b"null", b"{}"])
    with pytest.raises(SnapshotError, match=match):
        decode_bytes(with_index(raw, change(index)))


def test_a_lazy_value_of_the_wrong_type_is_refused_when_read() -> None:
    raw, index = indexed([b'"x"', b"17"], [b"[]", b"{}"])
    data = decode_bytes(with_index(raw, index))
    assert data.texts[0] == "x"
    with pytest.raises(SnapshotError, match="texts must be strings"):
        data.texts[1]
    with pytest.raises(SnapshotError, match="metadata must be a JSON object"):
        data.metadata[0]
    with pytest.raises(SnapshotError, match="texts must be strings"):
        data.texts.materialize()


# Format version 1 (spec: docs/snapshot-format.md, "Format version 1") ------------------------


def test_v1_int8_sections_are_dimension_major_and_read_as_rows() -> None:
    sections = [*standard(), ("vectors_int8", CODES_2x2), ("vectors_int8_scales", SCALES_2)]
    data = decode_bytes(assemble(sections, version=1))
    assert data.header.format_version == 1 and data.header.kind == "full"
    assert data.int8.codes.tolist() == [[10, 0], [127, 3]]  # dimension 0 was (10, 127)


def test_v1_int8_blocks_of_65536_documents_become_rows() -> None:
    from moss.snapshot.data import V1_INT8_BLOCK, rows_from_v1_blocks

    count, dimension = V1_INT8_BLOCK + 3, 2
    rows = np.random.default_rng(1).integers(-127, 128, (count, dimension)).astype(np.int8)
    blocks = [rows[:V1_INT8_BLOCK].T.copy(), rows[V1_INT8_BLOCK:].T.copy()]
    flat = np.concatenate([block.reshape(-1) for block in blocks])
    assert np.array_equal(rows_from_v1_blocks(flat, count, dimension), rows)


def test_v1_is_full_without_kind_and_v2_requires_it() -> None:
    assert decode_bytes(assemble(standard(), version=1)).header.kind == "full"
    # A later header behind a prefix saying 1 is a corrupt prefix (read as version 1, its int8
    # blocks would be misread): found by test_any_changed_byte_is_refused.
    with pytest.raises(SnapshotError, match="prefix says format version 1"):
        decode_bytes(assemble(standard(), version=1, kind="full"))
    with pytest.raises(SnapshotError, match="'kind'"):
        decode_bytes(assemble(standard(), mutate=_set("kind", _DELETE)))
    with pytest.raises(SnapshotError, match="'kind'"):
        decode_bytes(assemble(standard(), kind="patch"))
