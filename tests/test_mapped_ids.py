"""Ids of an opened snapshot stay in its bytes: a lazy column, and the ``ids_index`` table that
finds a row by id hash (checked against the ids before the first lookup) instead of a dict of
every id in every process. Writes go to an overlay; hash collisions, corrupt tables and old
snapshots without the section are handled; processes that map the same file share the ids."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest
import xxhash

from moss.errors import SnapshotError
from moss.index.engine import Engine
from moss.index.id_table import IdColumn, IdRows, hash_id, hash_ids, literal_hashes
from moss.snapshot import decode_snapshot, encode_delta, encode_snapshot, map_snapshot, read_header
from moss.snapshot.data import SnapshotData
from moss.snapshot.documents import array_bounds
from moss.snapshot.ids_index import encode_ids_index

DIM = 4
ODD_IDS = [
    "a", "12345678", "123456789", "sixteen-bytes-id", "ünïcödé", "emoji 🙂", 'quote"inside',
    "back\\slash", "tab\there", "nul\x00byte", "x" * 512, "é" * 256,
]  # fmt: skip


def unit(count: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def blob_of(ids: list[str], seed: int = 0) -> bytes:
    _, chunks = encode_snapshot(
        index_name="notes", model_id="m", model_artifact="", vectors=unit(len(ids), seed),
        ids=ids, texts=[f"text of {i}" for i in ids], metadata=[{"n": n} for n in range(len(ids))],
    )  # fmt: skip
    return b"".join(bytes(chunk) for chunk in chunks)


def mapped(tmp_path: Path, blob: bytes) -> SnapshotData:
    path = tmp_path / f"v{xxhash.xxh3_64_hexdigest(blob)}.snap"
    path.write_bytes(blob)
    data = map_snapshot(path, expected_name="notes")
    assert isinstance(data, SnapshotData)
    return data


def streamed(_: Path, blob: bytes) -> SnapshotData:
    data = decode_snapshot([blob])
    assert isinstance(data, SnapshotData)
    return data


def engine_of(data: SnapshotData) -> Engine:
    return Engine.from_arrays(data.vectors, data.ids, data.texts, data.metadata)


def sections(blob: bytes) -> dict[str, bytes]:
    header = read_header(io.BytesIO(blob))
    return {n: blob[i.offset : i.offset + i.length] for n, i in header.sections.items()}


def rebuild(blob: bytes, **changes: bytes | None) -> bytes:
    """The same snapshot with sections replaced (or dropped: None), laid out and checksummed
    by the spec (a header padded to a fixed room keeps the offsets independent of its text)."""
    fields = json.loads(blob[24 : 24 + int.from_bytes(blob[12:16], "little")])
    parts = {**sections(blob), **changes}
    room, table, body = 4096, {}, b""
    offset = 24 + room
    for name, data in parts.items():
        if data is None:
            continue
        offset = -(-offset // 64) * 64
        body += bytes(offset - 24 - room - len(body)) + data
        table[name] = {
            "offset": offset,
            "length": len(data),
            "checksum": xxhash.xxh3_64_hexdigest(data),
        }
        offset += len(data)
    fields["sections"] = table
    raw = orjson.dumps(fields).ljust(room)
    prefix = (
        blob[:12]
        + len(raw).to_bytes(4, "little")
        + xxhash.xxh3_64_intdigest(raw).to_bytes(8, "little")
    )
    return prefix + raw + body


# The hash, written from the spec (docs/snapshot-format.md) alone -------------------------------

M64 = (1 << 64) - 1


def spec_mix(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def spec_hash(doc_id: str) -> int:
    data = doc_id.encode("utf-8")
    h = spec_mix(len(data))
    for start in range(0, len(data), 8):
        h = spec_mix(h ^ int.from_bytes(data[start : start + 8].ljust(8, b"\0"), "little"))
    return h


def unmix(y: int) -> int:
    """The inverse of spec_mix (each step is a bijection of 64-bit words)."""

    def unshift(z: int, s: int) -> int:
        x = z
        for _ in range(64 // s + 1):
            x = z ^ (x >> s)
        return x

    z = unshift(y, 31)
    z = (z * pow(0x94D049BB133111EB, -1, 1 << 64)) & M64
    z = unshift(z, 27)
    z = (z * pow(0xBF58476D1CE4E5B9, -1, 1 << 64)) & M64
    return (unshift(z, 30) - 0x9E3779B97F4A7C15) & M64


def colliding(target: str) -> str:
    """Another 16-byte id with ``target``'s hash (target must be 16 ASCII bytes)."""
    wanted = unmix(spec_hash(target))
    for n in range(10**6):
        first = f"c{n:07d}".encode()
        h = spec_mix(spec_mix(16) ^ int.from_bytes(first, "little"))
        second = (h ^ wanted).to_bytes(8, "little")
        if all(0x21 <= c <= 0x7E for c in second):
            found = (first + second).decode()
            assert found != target and spec_hash(found) == spec_hash(target)
            return found
    raise AssertionError("no colliding id found")


def test_the_hash_follows_the_spec() -> None:
    ids = [*ODD_IDS, *(f"d{i}" for i in range(300))]
    want = [spec_hash(i) for i in ids]
    assert [hash_id(i) for i in ids] == want
    assert hash_ids(ids).tolist() == want
    literals = orjson.dumps(ids)  # escaped ids are hashed from their decoded value
    bounds = array_bounds(literals, len(ids)).astype(np.int64)
    assert literal_hashes(literals, bounds, ids.__getitem__).tolist() == want


# Opening and finding rows ----------------------------------------------------------------------


@pytest.mark.parametrize("opener", [mapped, streamed])
def test_ids_stay_lazy_and_every_row_is_found(
    tmp_path: Path, opener: Callable[[Path, bytes], SnapshotData]
) -> None:
    ids = [*ODD_IDS, *(f"d{i}" for i in range(500))]
    data = opener(tmp_path, blob_of(ids))
    assert isinstance(data.ids, IdColumn) and len(data.ids) == len(ids)
    engine = engine_of(data)
    store = engine._store
    assert isinstance(store.ids, IdColumn) and isinstance(store.row_of, IdRows)
    docs = engine.get([*reversed(ids), "absent", "d"])
    assert [d.id for d in docs] == ids[::-1]
    assert [d.metadata for d in docs] == [{"n": n} for n in reversed(range(len(ids)))]
    np.testing.assert_array_equal(engine.vectors_for(ids), data.vectors)
    assert [d.id for d in engine.get([5, None, "d1"])] == ["d1"]  # type: ignore[list-item]
    hits = engine.search(data.vectors[3], 1)
    assert hits[0][0].id == ids[3]
    assert isinstance(store.ids, IdColumn)  # lookups and searches decode single ids only


def test_a_written_id_column_is_adopted_as_a_list(tmp_path: Path) -> None:
    first = engine_of(mapped(tmp_path, blob_of([f"d{i}" for i in range(20)])))
    first.delete(["d3"])  # d19 moves into row 3: the snapshot's table no longer says so
    ids = first._store.ids
    assert isinstance(ids, IdColumn) and not ids.pristine
    second = Engine.from_arrays(first._store.matrix(), ids, list(ids), [None] * 19)
    assert isinstance(second._store.row_of, dict)
    assert [d.id for d in second.get(["d19", "d3"])] == ["d19"]
    np.testing.assert_array_equal(second.vectors_for(["d19"]), first.vectors_for(["d19"]))


def test_mapped_ids_view_the_file(tmp_path: Path) -> None:
    data = mapped(tmp_path, blob_of([f"d{i}" for i in range(50)]))
    assert isinstance(data.ids, IdColumn)
    assert isinstance(data.ids.raw, memoryview) and data.ids.raw.readonly
    assert not data.ids.bounds.flags.owndata and not data.ids.bounds.flags.writeable


def test_writes_after_an_open_match_an_engine_built_by_writes(tmp_path: Path) -> None:
    ids = [*ODD_IDS, *(f"d{i}" for i in range(200))]
    blob = blob_of(ids)
    opened = engine_of(mapped(tmp_path, blob))
    data = streamed(tmp_path, blob)
    built = Engine(DIM)
    built.upsert(ids, list(data.texts), list(data.metadata), data.vectors)
    rng = np.random.default_rng(5)
    seen = set(ids)
    steps: list[tuple[str, list[str]]] = [
        ("delete", [ids[-1], ids[0], "absent"]),  # the last row, then one moved into
        ("upsert", ["new1", ids[5], "new2", ids[5]]),  # new, base, a repeat in the batch
        ("delete", ["new2", ids[6], ids[7]]),
        ("upsert", [ids[0], ids[6]]),  # deleted base ids come back
        ("delete", [ids[0]]),
        ("upsert", [f"bulk{i}" for i in range(40)]),  # many new ids: hashed together
        ("upsert", [*ids[10:60], "bulk3"]),  # many existing ones
        ("delete", ids[100:150]),
    ]
    for op, batch in steps:
        seen.update(batch)
        counts: list[object] = []
        for engine in (opened, built):
            if op == "delete":
                counts.append(engine.delete(batch))
            else:
                vectors = unit(len(batch), seed=len(seen))
                texts, metadata = [f"v{len(seen)}"] * len(batch), [None] * len(batch)
                counts.append(engine.upsert(batch, texts, metadata, vectors))
        assert counts[0] == counts[1]
        everything = sorted(seen)
        assert len(opened) == len(built)
        assert opened.get(everything) == built.get(everything)
        query = unit(1, seed=int(rng.integers(1000)))[0]
        assert [(d.id, round(s, 5)) for d, s in opened.search(query, 8)] == [
            (d.id, round(s, 5)) for d, s in built.search(query, 8)
        ]
    assert isinstance(opened._store.ids, IdColumn)
    assert sorted(d.id for d in opened.get()) == sorted(d.id for d in built.get())


def test_colliding_ids_are_told_apart(tmp_path: Path) -> None:
    target = "collision-target"
    other = colliding(target)
    ids = [*(f"d{i}" for i in range(40)), target, "z", other]
    header = sections(blob_of(ids))["ids_index"]
    hashes = np.frombuffer(header, "<u8", count=len(ids), offset=8 * (len(ids) + 1))
    assert len(np.unique(hashes)) == len(ids) - 1  # the table holds the collision
    engine = engine_of(mapped(tmp_path, blob_of(ids)))
    assert [d.id for d in engine.get([other, target])] == [other, target]
    engine.delete([target])
    assert [d.id for d in engine.get([other, target])] == [other]
    engine.upsert([target], ["back"], [None], unit(1))
    assert [d.text for d in engine.get([target, other])] == ["back", f"text of {other}"]


# Damaged tables ---------------------------------------------------------------------------------


def damaged_table(blob: bytes, count: int, edit: Callable[[np.ndarray, np.ndarray], None]) -> bytes:
    table = bytearray(sections(blob)["ids_index"])
    hashes = np.frombuffer(table, "<u8", count=count, offset=8 * (count + 1))
    rows = np.frombuffer(table, "<u4", count=count, offset=16 * count + 8)
    edit(hashes, rows)
    return rebuild(blob, ids_index=bytes(table))


def _set(array: np.ndarray, index: int, value: int) -> None:
    array[index] = value


LOOKUP_DAMAGE = {
    "a hash changed": (lambda h, r: _set(h, -1, int(h[-1]) + 1), "does not match the ids"),
    "hashes out of order": (lambda h, r: _set(h, 0, int(h[-1])), "not sorted"),
    "a row repeated": (lambda h, r: _set(r, 0, int(r[1])), "not a permutation"),
    "a row out of range": (lambda h, r: _set(r, 0, 10**6), "not a permutation"),
}


@pytest.mark.parametrize("opener", [mapped, streamed])
@pytest.mark.parametrize("damage", list(LOOKUP_DAMAGE))
def test_a_table_that_does_not_match_its_ids_fails_the_first_lookup(
    tmp_path: Path, opener: Callable[[Path, bytes], SnapshotData], damage: str
) -> None:
    ids = [f"d{i}" for i in range(30)]
    edit, match = LOOKUP_DAMAGE[damage]
    engine = engine_of(opener(tmp_path, damaged_table(blob_of(ids), len(ids), edit)))
    assert engine.search(unit(1)[0], 3)  # the ids themselves read fine
    for lookup in (
        lambda: engine.get(["d3"]),
        lambda: engine.upsert(["new"], ["t"], [None], unit(1)),
        lambda: engine.delete(["d1"]),
    ):
        with pytest.raises(SnapshotError, match=match):
            lookup()


def test_equal_ids_behind_equal_hashes_are_refused(tmp_path: Path) -> None:
    ids = [f"d{i}" for i in range(20)]
    blob = blob_of(ids)
    parts = sections(blob)
    docs = parts["documents"].replace(b'"d19"', b'"d18"')  # same length: the index still fits
    twice = [*ids[:19], "d18"]
    ids_json = orjson.dumps(twice)
    table = encode_ids_index(ids_json, array_bounds(ids_json, 20), len(b'{"ids":'), twice)
    engine = engine_of(mapped(tmp_path, rebuild(blob, documents=docs, ids_index=table)))
    with pytest.raises(SnapshotError, match="'d18' occurs more than once"):
        engine.get(["d18"])


def shift_first_bound(blob: bytes) -> bytes:
    table = bytearray(sections(blob)["ids_index"])
    table[0] += 1
    return rebuild(blob, ids_index=bytes(table))


def move_second_bound(blob: bytes) -> bytes:
    table = bytearray(sections(blob)["ids_index"])
    table[8] += 1  # the second id now starts inside the first one's quotes
    return rebuild(blob, ids_index=bytes(table))


OPEN_DAMAGE: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "a short section": (
        lambda b: rebuild(b, ids_index=sections(b)["ids_index"][:-4]),
        "ids index is .* bytes",
    ),
    "a bound off the list": (shift_first_bound, "does not match the ids list"),
    "a bound inside an id": (move_second_bound, "does not match the ids list"),
    "a flipped byte": (
        lambda b: b[:-1] + bytes([b[-1] ^ 1]),  # the last section: ids_index, checksum kept
        "checksum mismatch in snapshot section 'ids_index'",
    ),
}


@pytest.mark.parametrize("opener", [mapped, streamed])
@pytest.mark.parametrize("damage", list(OPEN_DAMAGE))
def test_a_malformed_section_is_refused_at_open(
    tmp_path: Path, opener: Callable[[Path, bytes], SnapshotData], damage: str
) -> None:
    blob = blob_of([f"d{i}" for i in range(30)])
    assert list(read_header(io.BytesIO(blob)).sections)[-1] == "ids_index"
    edit, match = OPEN_DAMAGE[damage]
    with pytest.raises(SnapshotError, match=match):
        opener(tmp_path, edit(blob))


def test_snapshots_without_the_section_still_open(tmp_path: Path) -> None:
    ids = [*ODD_IDS, *(f"d{i}" for i in range(100))]
    old = rebuild(blob_of(ids), ids_index=None)
    for opener in (mapped, streamed):
        data = opener(tmp_path, old)
        assert type(data.ids) is list and data.ids == ids
        engine = engine_of(data)
        assert isinstance(engine._store.row_of, dict)
        assert [d.id for d in engine.get(ids[::-1])] == ids[::-1]


def test_a_delta_never_carries_the_section() -> None:
    _, chunks = encode_delta(
        index_name="notes", model_id="m", model_artifact="", dimension=DIM, ids=["a"],
        texts=["t"], metadata=[None], vectors=unit(1), deleted=[],
    )  # fmt: skip
    delta = b"".join(bytes(chunk) for chunk in chunks)
    assert "ids_index" not in sections(delta)
    with pytest.raises(SnapshotError, match="a delta carries no 'ids_index'"):
        decode_snapshot([rebuild(delta, ids_index=sections(blob_of(["a"]))["ids_index"])])


# Processes that map the same file ---------------------------------------------------------------

_CHILD = r"""
import json, sys
import numpy as np
from moss.index.engine import Engine
from moss.snapshot import map_snapshot

def anonymous():
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Anonymous:"):
            return int(line.split()[1]) * 1024

query = np.ones(8, np.float32) / 8 ** 0.5
before = anonymous()
data = map_snapshot(sys.argv[1])
engine = Engine.from_arrays(data.vectors, data.ids, data.texts, data.metadata)
engine.search(query, 10)
engine.get(["document-0000123"])
engine.upsert(["fresh"], ["t"], [None], query[None, :])
print(json.dumps({"grown": anonymous() - before, "found": len(engine.get(["document-0000123"]))}))
sys.stdout.flush()
sys.stdin.read()  # hold the mapping until the parent has every report
"""


def open_in_processes(path: Path, processes: int) -> list[dict[str, int]]:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        reports = [json.loads(child.stdout.readline()) for child in children if child.stdout]
    finally:
        for child in children:
            child.communicate("")
    assert all(child.returncode == 0 for child in children)
    return reports


def test_processes_that_map_one_snapshot_hold_no_copy_of_its_ids(tmp_path: Path) -> None:
    count = 200_000
    ids = [f"document-{i:07d}" for i in range(count)]
    vectors = np.ones((count, 8), np.float32) / 8**0.5
    _, chunks = encode_snapshot(
        index_name="big", model_id="m", model_artifact="", vectors=vectors, ids=ids,
        texts=[""] * count, metadata=[None] * count,
    )  # fmt: skip
    blob = b"".join(bytes(chunk) for chunk in chunks)
    path, old = tmp_path / "new.snap", tmp_path / "old.snap"
    path.write_bytes(blob)
    old.write_bytes(rebuild(blob, ids_index=None))
    # A list and a dict of 200k ids cost ~40 MB of Python objects in each process; the id table
    # stays in the shared pages, so each process grows by little more than the first lookup's
    # passing arrays (hashes of every id, checked once).
    for report in open_in_processes(path, 3):
        assert report["found"] == 1 and report["grown"] < 12 << 20, report
    (without,) = open_in_processes(old, 1)
    assert without["found"] == 1 and without["grown"] > 30 << 20, without
