"""Deltas and the version chain: round trips, the header fields of format version 2, and corrupt
input of every kind (truncation, bit flips, lying lengths): SnapshotError, never another error."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from moss.errors import InvalidArgumentError, SnapshotError
from moss.snapshot import (
    ChainReader,
    DeltaData,
    SnapshotData,
    SnapshotHeader,
    SnapshotReader,
    decode_snapshot,
    encode_delta,
    encode_frame_prefix,
    encode_snapshot,
    read_header,
)

MODEL = {"model_id": "moss-minilm", "model_artifact": "sha256:abc"}


def vectors(count: int, dimension: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, dimension)).astype(np.float32)


def delta(**overrides: Any) -> tuple[SnapshotHeader, bytes]:
    args: dict[str, Any] = {
        "index_name": "notes",
        **MODEL,
        "dimension": 3,
        "ids": ["a", "b/é"],
        "texts": ["first", "second 🚀"],
        "metadata": [{"page": 1}, None],
        "vectors": vectors(2),
        "deleted": ["gone", "also-gone"],
        **overrides,
    }
    header, chunks = encode_delta(**args)
    return header, b"".join(bytes(chunk) for chunk in chunks)


def full(count: int = 3, seed: int = 0, **overrides: Any) -> bytes:
    _, chunks = encode_snapshot(
        index_name="notes",
        **MODEL,
        vectors=vectors(count, seed=seed),
        ids=[f"d{i}" for i in range(count)],
        texts=[f"text {i}" for i in range(count)],
        metadata=[{"i": i} for i in range(count)],
        **overrides,
    )
    return b"".join(bytes(chunk) for chunk in chunks)


HEADER, BLOB = delta(author="ana", message="fix typos")


def same(first: Any, second: Any) -> bool:
    """Decoded versions are equal: every field, arrays by value, columns as lists."""
    if type(first) is not type(second):
        return False
    for name in vars(first):
        a, b = getattr(first, name), getattr(second, name)
        if isinstance(a, np.ndarray):
            if not np.array_equal(a, b):
                return False
        elif name in ("texts", "metadata"):
            if list(a) != list(b):
                return False
        elif a != b:
            return False
    return True


def feed(blob: bytes, size: int = 97, **kwargs: Any) -> Any:
    reader = SnapshotReader(**kwargs)
    for start in range(0, len(blob), size):
        reader.feed(blob[start : start + size])
    return reader.finish()


# Round trips ------------------------------------------------------------------------------------


def test_delta_round_trip() -> None:
    data = decode_snapshot([BLOB])
    assert isinstance(data, DeltaData)
    assert data.ids == ["a", "b/é"] and data.texts == ["first", "second 🚀"]
    assert data.metadata == [{"page": 1}, None] and data.deleted == ["gone", "also-gone"]
    assert data.vectors.dtype == np.float32 and np.array_equal(data.vectors, vectors(2))
    header = data.header
    assert header == HEADER and header.format_version == 2
    assert (header.kind, header.author, header.message) == ("delta", "ana", "fix typos")
    assert (header.count, header.deleted_count, header.total_size) == (2, 2, len(BLOB))
    assert list(header.sections) == ["vectors", "documents", "deleted"]
    assert same(feed(BLOB, 1), data)
    assert feed(BLOB, keep_data=False) == HEADER
    assert read_header(io.BytesIO(BLOB)) == HEADER


@pytest.mark.parametrize(("upserts", "deleted"), [(0, ["x"]), (0, []), (3, []), (1, ["y", "z"])])
def test_deltas_of_any_shape(upserts: int, deleted: list[str]) -> None:
    ids = [f"u{i}" for i in range(upserts)]
    header, blob = delta(
        ids=ids, texts=["t"] * upserts, metadata=[None] * upserts,
        vectors=vectors(upserts) if upserts else [], deleted=deleted,
    )  # fmt: skip
    data = decode_snapshot([blob])
    assert isinstance(data, DeltaData) and data.header == header
    assert data.ids == ids and data.deleted == deleted and data.vectors.shape == (upserts, 3)
    assert header.author is None and header.message is None


def test_full_snapshots_carry_author_and_message() -> None:
    data = decode_snapshot([full(author="bo", message="nightly import")])
    assert isinstance(data, SnapshotData)
    assert (data.header.kind, data.header.author, data.header.message) == (
        "full",
        "bo",
        "nightly import",
    )
    plain = decode_snapshot([full()])
    assert plain.header.author is None and plain.header.message is None


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"deleted": ["a"]}, "both upserted and deleted"),
        ({"deleted": ["x", "x"]}, "occurs more than once"),
        ({"deleted": [""]}, "non-empty string"),
        ({"deleted": ["x" * 513]}, "exceeds 512 bytes"),
        ({"dimension": 4}, "dimension 3, not 4"),
        ({"dimension": 0}, "dimension must be"),
        ({"ids": ["a", "a"]}, "more than once"),
        ({"texts": ["one"]}, "2 vectors but 1 texts"),
        ({"author": "é" * 129}, "author must be a string of at most 256"),
        ({"message": "m" * 4097}, "message must be a string of at most 4096"),
        ({"author": 5}, "author must be"),
        ({"index_name": ".."}, "name"),
    ],
)
def test_encode_delta_refuses_what_readers_would_refuse(
    overrides: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        delta(**overrides)


def test_longest_author_and_message_are_accepted() -> None:
    header, blob = delta(author="é" * 128, message="m" * 4096)
    assert decode_snapshot([blob]).header == header


# Deltas from the spec alone -------------------------------------------------------------------

ROOM = 6144


def assemble(
    sections: list[tuple[str, bytes]], mutate: Callable[[dict[str, Any]], None] | None = None
) -> bytes:
    """A delta built from docs/snapshot-format.md alone (header padded to ROOM bytes)."""
    offset = -(-(24 + ROOM) // 64) * 64
    table, body = {}, b""
    for name, data in sections:
        table[name] = {"offset": offset, "length": len(data),
                       "checksum": xxhash.xxh3_64_hexdigest(data)}  # fmt: skip
        body += bytes(offset - 24 - ROOM - len(body)) + data
        offset = -(-(offset + len(data)) // 64) * 64
    header: dict[str, Any] = {
        "kind": "delta", "index_name": "notes", "model_id": "m", "model_artifact": "",
        "dimension": 2, "count": 1, "deleted_count": 1, "created_at": 1.5,
        "checksum_algorithm": "xxh3_64", "sections": table,
    }  # fmt: skip
    if mutate:
        mutate(header)
    raw = orjson.dumps(header).ljust(ROOM)
    prefix = b"MOSSSNAP" + (2).to_bytes(4, "little") + len(raw).to_bytes(4, "little")
    return prefix + xxhash.xxh3_64_intdigest(raw).to_bytes(8, "little") + raw + body


VECTOR = np.array([[0.6, 0.8]], "<f4").tobytes()
DOCS = orjson.dumps({"ids": ["a"], "texts": ["x"], "metadata": [None]})


def spec(deleted: bytes = b'["b"]', *extra: tuple[str, bytes]) -> list[tuple[str, bytes]]:
    return [("vectors", VECTOR), ("documents", DOCS), ("deleted", deleted), *extra]


def test_a_delta_from_the_spec_alone() -> None:
    data = decode_snapshot([assemble(spec())])
    assert isinstance(data, DeltaData)
    assert data.ids == ["a"] and data.deleted == ["b"]
    assert data.vectors.tobytes() == VECTOR


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(header: dict[str, Any]) -> None:
        if value is None:
            del header[key]
        else:
            header[key] = value

    return mutate


@pytest.mark.parametrize(
    ("sections", "mutate", "match"),
    [
        (spec(b'["a"]'), None, "both upserts and deletes id 'a'"),
        (spec(b'["b", "b"]'), _set("deleted_count", 2), "more than once"),
        (spec(b'["b"]'), _set("deleted_count", 2), "list of 2 ids"),
        (spec(b'{"b": 1}'), None, "JSON list of 1 ids"),
        (spec(b"[1]"), None, "not a non-empty string"),
        (spec(b"[not json"), None, "not valid JSON"),
        (spec(), _set("deleted_count", None), "'deleted_count'"),
        (spec(), _set("deleted_count", -1), "'deleted_count'"),
        (spec()[:2], None, "no 'deleted' section"),
        (spec(b'["b"]', ("keywords", b"k")), None, "no 'keywords' section"),
        (spec(b'["b"]', ("vectors_int8", b"ab")), None, "no 'vectors_int8' section"),
        (spec(b'["b"]', ("documents_index", b"")), None, "no 'documents_index' section"),
        (spec(), _set("author", 7), "'author'"),
        (spec(), _set("message", "m" * 4097), "'message'"),
        (spec(), _set("kind", "Delta"), "'kind'"),
    ],
)
def test_invalid_deltas(
    sections: list[tuple[str, bytes]],
    mutate: Callable[[dict[str, Any]], None] | None,
    match: str,
) -> None:
    blob = assemble(sections, mutate)
    with pytest.raises(SnapshotError, match=match):
        decode_snapshot([blob])
    if "section" in match or "'" in match[:2]:
        return
    assert feed(blob, keep_data=False).kind == "delta"  # framing is fine: only content is wrong


def test_a_full_header_makes_deleted_an_unknown_section() -> None:
    data = decode_snapshot([assemble(spec(), _set("kind", "full"))])
    assert isinstance(data, SnapshotData) and data.ids == ["a"]


# Corrupt deltas: SnapshotError and nothing else -------------------------------------------------


def test_every_truncation_of_a_delta_is_refused() -> None:
    for length in range(len(BLOB)):
        for keep_data in (True, False):
            with pytest.raises(SnapshotError):
                feed(BLOB[:length], keep_data=keep_data)


def test_every_bit_flip_of_a_delta_is_refused() -> None:
    for position in range(len(BLOB)):
        for bit in range(8):
            corrupt = bytearray(BLOB)
            corrupt[position] ^= 1 << bit
            with pytest.raises(SnapshotError):
                decode_snapshot([bytes(corrupt)])


# The chain stream -------------------------------------------------------------------------------


def frame(version: int, blob: bytes) -> bytes:
    return encode_frame_prefix(version, len(blob)) + blob


CHAIN_PARTS = [(3, full()), (4, BLOB), (9, delta(deleted=["d0"], message="m")[1])]
CHAIN = b"".join(frame(version, blob) for version, blob in CHAIN_PARTS)


def read_chain(stream: bytes, sizes: list[int] | None = None, **kwargs: Any) -> Any:
    reader = ChainReader(**kwargs)
    sizes = sizes or [len(stream) or 1]
    position, i = 0, 0
    while position < len(stream):
        reader.feed(stream[position : position + sizes[i % len(sizes)]])
        position += sizes[i % len(sizes)]
        i += 1
    return reader.finish()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 900), min_size=1, max_size=8))
def test_chain_round_trip_in_any_chunks(sizes: list[int]) -> None:
    seen: list[tuple[int, str]] = []
    result = read_chain(CHAIN, sizes, on_header=lambda v, h: seen.append((v, h.kind)))
    assert [version for version, _ in result] == [3, 4, 9]
    assert seen == [(3, "full"), (4, "delta"), (9, "delta")]
    first, second, third = (data for _, data in result)
    assert isinstance(first, SnapshotData) and first.ids == ["d0", "d1", "d2"]
    assert isinstance(second, DeltaData) and same(second, decode_snapshot([BLOB]))
    assert isinstance(third, DeltaData) and third.deleted == ["d0"]


def test_empty_chain_is_empty() -> None:
    assert read_chain(b"") == []


def test_header_check_runs_before_the_data_and_its_error_propagates() -> None:
    class WrongModel(Exception):
        pass

    def refuse(version: int, header: SnapshotHeader) -> None:
        if version == 4:
            raise WrongModel(header.model_id)

    reader = ChainReader(on_header=refuse)
    first = len(frame(3, CHAIN_PARTS[0][1]))
    reader.feed(CHAIN[:first])
    with pytest.raises(WrongModel):
        reader.feed(CHAIN[first : first + 16 + HEADER.sections["vectors"].offset])
    with pytest.raises(SnapshotError, match="stopped"):
        reader.finish()
    # In one chunk too: the check runs before the frame's data is decoded.
    big = frame(3, full(20_000))
    seen: list[int] = []

    def refuse_all(version: int, header: SnapshotHeader) -> None:
        seen.append(version)
        raise WrongModel(header.model_id)

    one = ChainReader(on_header=refuse_all)
    with pytest.raises(WrongModel):
        one.feed(big)
    assert seen == [3] and one._reader is not None
    assert one._reader._received < len(big) // 2  # refused before most of the data arrived


def _reframed(version: int, blob: bytes, size: int) -> bytes:
    return version.to_bytes(8, "little") + size.to_bytes(8, "little") + blob


@pytest.mark.parametrize(
    ("stream", "match"),
    [
        (frame(4, BLOB) + frame(4, BLOB), "strictly increasing"),
        (frame(5, BLOB) + frame(4, BLOB), "strictly increasing"),
        (_reframed(0, BLOB, len(BLOB)), "strictly increasing"),
        (_reframed(2**63, BLOB, len(BLOB)), "strictly increasing"),
        (_reframed(1, BLOB, len(BLOB) - 1), "over the limit of"),
        (_reframed(1, BLOB + b"\0", len(BLOB) + 1), "after its end"),
        (_reframed(1, BLOB, 2**64 - 1), "claims"),
        (_reframed(1, BLOB, 23), "claims"),
        (frame(1, BLOB) + b"\x02", "truncated"),
        (frame(1, BLOB)[:-1], "truncated"),
        (b"MOSSSNAP" + bytes(8) + BLOB, "claims 0 bytes"),
    ],
)
def test_malformed_chains(stream: bytes, match: str) -> None:
    with pytest.raises(SnapshotError, match=match):
        read_chain(stream, [13])


def test_chain_size_limit_and_expected_name() -> None:
    with pytest.raises(SnapshotError, match="size limit"):
        read_chain(CHAIN, max_size=len(CHAIN) - 1)
    assert len(read_chain(CHAIN, max_size=len(CHAIN))) == 3
    with pytest.raises(SnapshotError, match="not 'other'"):
        read_chain(CHAIN, expected_name="other")


def test_every_truncation_of_a_chain_is_refused() -> None:
    ends = {0}
    for _, blob in CHAIN_PARTS:
        ends.add(max(ends) + 16 + len(blob))
    for length in range(len(CHAIN)):
        if length in ends:
            assert len(read_chain(CHAIN[:length])) == sorted(ends).index(length)
        else:
            with pytest.raises(SnapshotError):
                read_chain(CHAIN[:length], [101])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_changed_byte_of_a_chain_is_refused(data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(CHAIN) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != CHAIN[position]))
    corrupt = bytearray(CHAIN)
    corrupt[position] = value
    try:
        result = read_chain(bytes(corrupt), [data.draw(st.integers(1, 500))])
    except SnapshotError:
        return
    # Only a version number may change undetected, if it stays strictly increasing.
    assert all(same(a, b) for (_, a), (_, b) in zip(result, read_chain(CHAIN), strict=True))
    assert any(start <= position < start + 8 for start in _frame_starts())


def _frame_starts() -> list[int]:
    starts, position = [], 0
    for _, blob in CHAIN_PARTS:
        starts.append(position)
        position += 16 + len(blob)
    return starts


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(min_size=1, max_size=200),
        st.binary(max_size=200).map(lambda b: CHAIN[:16] + b),
        st.binary(max_size=200).map(lambda b: CHAIN[:40] + b),
    )
)
def test_random_chains_are_refused(stream: bytes) -> None:
    with pytest.raises(SnapshotError):
        read_chain(stream, [7])


def test_frame_prefix_refuses_impossible_frames() -> None:
    for version, size in ((0, 100), (True, 100), (1, 23), (1, 2**41), (2**63, 100)):
        with pytest.raises(InvalidArgumentError):
            encode_frame_prefix(version, size)
