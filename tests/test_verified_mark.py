"""Snapshot files marked verified: the first mapped open (or the file store's write) verifies the
checksums and marks the file; later mapped opens of the unchanged file skip the hash pass, and
any change to the file brings it back."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from moss import FileStore, MossClient, QueryOptions
from moss.errors import SnapshotError
from moss.snapshot import encode_snapshot, header, map_snapshot, mapped
from moss.snapshot.data import SnapshotData
from moss.snapshot.header import PREFIX, parse_prefix
from moss.snapshot.verified_mark import is_marked, mark_file_verified

Matrix = npt.NDArray[np.float32]
COUNT, DIM = 300, 8
ATTRIBUTE = "user.moss.verified"


def vectors() -> Matrix:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((COUNT, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def write_snapshot(path: Path) -> Path:
    _, chunks = encode_snapshot(
        index_name="docs",
        model_id="custom",
        model_artifact="",
        vectors=vectors(),
        ids=[f"d{i}" for i in range(COUNT)],
        texts=[f"text {i}" for i in range(COUNT)],
        metadata=[{"i": i} for i in range(COUNT)],
    )
    path.write_bytes(b"".join(bytes(chunk) for chunk in chunks))
    return path


@pytest.fixture()
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the sections map_snapshot hashes."""
    calls: list[int] = []
    checksum = header.checksum

    def spy(data: memoryview) -> str:
        calls.append(len(data))
        return checksum(data)

    monkeypatch.setattr(mapped, "checksum", spy)
    return calls


@pytest.fixture(autouse=True)
def xattrs_here(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    try:
        os.setxattr(probe, "user.moss.probe", b"1")
    except OSError as exc:  # the CI machine's ext4 has them; say so loudly if one does not
        pytest.fail(f"this file system has no user extended attributes: {exc}")
    probe.unlink()


def opened(path: Path) -> SnapshotData:
    data = map_snapshot(path)
    assert isinstance(data, SnapshotData)
    return data


def test_first_open_verifies_and_marks_later_opens_skip_hashing(
    tmp_path: Path, hashed: list[int]
) -> None:
    path = write_snapshot(tmp_path / "v.snap")
    first = opened(path)
    assert len(hashed) >= 3 and os.getxattr(path, ATTRIBUTE)  # every section, then the mark
    hashed.clear()
    again = opened(path)
    assert hashed == []
    assert np.array_equal(first.vectors, again.vectors)
    assert list(again.ids) == [f"d{i}" for i in range(COUNT)]
    assert again.metadata[7] == {"i": 7} and again.texts[5] == "text 5"


def test_a_changed_file_is_verified_again(tmp_path: Path, hashed: list[int]) -> None:
    path = write_snapshot(tmp_path / "v.snap")
    opened(path)
    data = bytearray(path.read_bytes())
    info = opened(path).header.sections["vectors"]
    before = os.stat(path)
    with open(path, "r+b") as file:  # one float changed in place, same size
        file.seek(info.offset + 5)
        file.write(bytes([data[info.offset + 5] ^ 0x40]))
    # A write within the same timestamp tick as the mark would keep the time the mark names
    # (moss never writes a snapshot in place; see verified_mark): move it on explicitly.
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    hashed.clear()
    with pytest.raises(SnapshotError, match="checksum mismatch in snapshot section 'vectors'"):
        map_snapshot(path)
    assert hashed


def test_a_mark_copied_to_another_file_does_not_hold(tmp_path: Path, hashed: list[int]) -> None:
    path = write_snapshot(tmp_path / "v.snap")
    opened(path)
    copy = tmp_path / "copy.snap"
    shutil.copyfile(path, copy)
    os.setxattr(copy, ATTRIBUTE, os.getxattr(path, ATTRIBUTE))  # another inode
    hashed.clear()
    opened(copy)
    assert hashed
    with open(copy, "rb") as file:
        _, _, digest = parse_prefix(file.read(PREFIX.size))
        assert is_marked(file.fileno(), digest)  # verified, then marked as itself
        assert not is_marked(file.fileno(), digest ^ 1)  # another header never matches
        os.setxattr(copy, ATTRIBUTE, os.getxattr(path, ATTRIBUTE).replace(b"1 ", b"2 ", 1))
        assert not is_marked(file.fileno(), digest)


def test_without_extended_attributes_every_open_verifies(
    tmp_path: Path, hashed: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(*args: object) -> None:
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", unsupported)
    monkeypatch.setattr(os, "getxattr", unsupported)
    path = write_snapshot(tmp_path / "v.snap")
    mark_file_verified(path)  # a no-op, not an error
    mark_file_verified(tmp_path / "deleted meanwhile.snap")  # nothing to mark, no error
    for _ in range(2):
        hashed.clear()
        assert len(opened(path).ids) == COUNT
        assert hashed


async def test_the_file_store_marks_what_it_verified_on_write(
    tmp_path: Path, hashed: list[int]
) -> None:
    client = MossClient("proj", store=FileStore(tmp_path / "store"), cache_dir=tmp_path / "c")
    session = await client.session("docs", model_id="custom")
    await session.add_arrays(
        [f"d{i}" for i in range(COUNT)], [f"text {i}" for i in range(COUNT)], vectors()
    )
    await session.push_index()
    files = [p for p in (tmp_path / "store").rglob("*") if p.is_file() and os.listxattr(p)]
    assert len(files) == 1 and ATTRIBUTE in os.listxattr(files[0])
    hashed.clear()
    assert len(opened(files[0]).ids) == COUNT
    assert hashed == []
    reader = await MossClient(
        "proj", store=FileStore(tmp_path / "store"), cache_dir=tmp_path / "r"
    ).session("docs")
    found = await reader.query("", QueryOptions(embedding=vectors()[4], top_k=1, alpha=1.0))
    assert found.docs[0].id == "d4"
