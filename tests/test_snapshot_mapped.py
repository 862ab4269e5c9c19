"""map_snapshot: a version's file opened by mapping it, with every check of the streaming reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moss.errors import SnapshotError
from moss.index.engine import Engine
from moss.snapshot import decode_snapshot, encode_delta, encode_snapshot, map_snapshot
from moss.snapshot.data import DeltaData, SnapshotData

DIM = 8


def write(path: Path, count: int = 300, *, int8: bool = False) -> bytes:
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    engine = Engine(DIM, precision="int8" if int8 else "float32")
    engine.upsert(
        [f"d{i}" for i in range(count)], ["t"] * count, [{"i": i} for i in range(count)], vectors
    )
    export = engine.export_all()
    _, chunks = encode_snapshot(
        index_name="notes", model_id="m", model_artifact="", vectors=export.vectors,
        ids=export.ids, texts=export.texts, metadata=export.metadata, int8=export.int8,
    )  # fmt: skip
    blob = b"".join(bytes(chunk) for chunk in chunks)
    path.write_bytes(blob)
    return blob


@pytest.mark.parametrize("int8", [False, True])
def test_mapped_equals_decoded_and_writes_never_reach_the_file(tmp_path: Path, int8: bool) -> None:
    path = tmp_path / "v.snap"
    blob = write(path, int8=int8)
    mapped, decoded = map_snapshot(path, expected_name="notes"), decode_snapshot([blob])
    assert isinstance(mapped, SnapshotData) and isinstance(decoded, SnapshotData)
    assert np.array_equal(mapped.vectors, decoded.vectors) and not mapped.vectors.flags.writeable
    assert mapped.ids == decoded.ids and list(mapped.metadata) == list(decoded.metadata)
    assert mapped.precision == decoded.precision == ("int8" if int8 else "float32")
    engine = Engine.from_arrays(
        mapped.vectors, mapped.ids, mapped.texts, mapped.metadata,
        precision=mapped.precision, int8=mapped.int8,
    )  # fmt: skip
    query = mapped.vectors[7].copy()
    assert engine.search(query, 1)[0][0].id == "d7"
    engine.upsert(["d7"], ["new"], [None], -query[None, :])  # an in-place write of a mapped row
    engine.delete(["d0", "d1"])
    engine.upsert(["x"], ["x"], [None], query[None, :])
    assert engine.search(query, 1)[0][0].id == "x"
    assert path.read_bytes() == blob and np.array_equal(mapped.vectors, decoded.vectors)


def test_every_damage_is_a_snapshot_error(tmp_path: Path) -> None:
    path = tmp_path / "v.snap"
    blob = write(path)
    header = decode_snapshot([blob]).header
    documents = header.sections["documents"]
    ends = [info.offset + info.length for info in header.sections.values()]
    starts = [info.offset for info in header.sections.values()][1:]
    padding = next(end for end, start in zip(ends, starts, strict=False) if start > end)
    cases = {
        "truncated": blob[:-1],
        "after its end": blob + b"\0",
        "padding": blob[:padding] + b"\1" + blob[padding + 1 :],
        "checksum mismatch in snapshot section 'documents'": bytearray(blob),
        "header": blob[:40] + bytes([blob[40] ^ 1]) + blob[41:],
        "magic": b"NOTASNAP" + blob[8:],
    }
    damaged = cases["checksum mismatch in snapshot section 'documents'"]
    assert isinstance(damaged, bytearray)
    damaged[documents.offset + 3] ^= 0x20
    for message, data in cases.items():
        path.write_bytes(bytes(data))
        with pytest.raises(SnapshotError, match=message):
            map_snapshot(path)
    path.write_bytes(blob)
    with pytest.raises(SnapshotError, match="not 'other'"):
        map_snapshot(path, expected_name="other")
    path.write_bytes(b"MOSS")
    with pytest.raises(SnapshotError, match="truncated"):
        map_snapshot(path)


def test_a_delta_file_is_decoded(tmp_path: Path) -> None:
    _, chunks = encode_delta(
        index_name="notes", model_id="m", model_artifact="", dimension=DIM, ids=["a"],
        texts=["t"], metadata=[None], vectors=np.ones((1, DIM), np.float32), deleted=["b"],
    )  # fmt: skip
    path = tmp_path / "d.snap"
    path.write_bytes(b"".join(bytes(chunk) for chunk in chunks))
    data = map_snapshot(path)
    assert isinstance(data, DeltaData) and data.ids == ["a"] and data.deleted == ["b"]
