"""Opens from the local file store map the stored files instead of reading them: the engine's
vectors view the file's pages (shared by every process that opens the same version), answers
equal a streamed open's, writes never reach the file, and a file pruned between planning and
mapping is planned again."""

from __future__ import annotations

import hashlib
import mmap
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from moss import FileStore, IndexNotFoundError, MossClient, QueryOptions
from moss.stores.file_layout import ChainFile

P = "proj"
DIM = 16
COUNT = 400
Matrix = npt.NDArray[np.float32]


def mapped(array: Any) -> bool:
    """Whether ``array`` views a memory-mapped file."""
    while array is not None and not isinstance(array, mmap.mmap):
        array = getattr(array, "obj", None) if isinstance(array, memoryview) else array.base
    return array is not None


def unit_vectors(count: int, seed: int) -> Matrix:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


class Streamed:
    """The same file store seen as any other store: the hydrator streams its chains."""

    def __init__(self, store: FileStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def answers(session: Any, queries: Matrix) -> list[list[tuple[str, float]]]:
    out = []
    for query in queries:
        found = session.query("", QueryOptions(top_k=10, alpha=1.0, embedding=query))
        out.append([(doc.id, round(doc.score, 6)) for doc in found.docs])
    return out


def digests(root: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("v*") if p.is_file()}


def maps_its_vectors(session: Any) -> bool:
    """Whether the session's engine searches the stored rows in a mapped file (its base block:
    the rows a delta or a write adds or changes live in blocks of its own)."""
    engine = session._core.index.engine
    return engine is not None and mapped(engine._store.blocks.base)


@pytest.fixture(params=["float32", "int8"])
def precision(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pushed(tmp_path: Path, precision: str) -> Path:
    """A file store holding version 1 (a full snapshot) and 2 (a delta) of index "s"."""
    root = tmp_path / "store"
    client = MossClient(P, store=FileStore(root))
    writer = client.sync.session("s", model_id="custom", precision=precision)
    writer.add_arrays([f"d{i}" for i in range(COUNT)], ["text"] * COUNT, unit_vectors(COUNT, 1))
    writer.push_index()
    writer.add_arrays(["late"], ["late text"], unit_vectors(1, 2))
    writer.delete_docs(["d3"])
    assert writer.push_index().version == 2
    writer.close()
    return root


def test_a_file_store_open_maps_and_equals_a_streamed_open(pushed: Path, precision: str) -> None:
    store = FileStore(pushed)
    opened = MossClient(P, store=store).sync.session("s", precision=precision)
    streamed = MossClient(P, store=Streamed(store)).sync.session("s", precision=precision)
    assert not maps_its_vectors(streamed)
    # Version 1 (no delta appended): int8 sessions map too.
    assert maps_its_vectors(MossClient(P, store=store).sync.session("s", version=1))
    if precision == "float32":  # int8: see test_int8_appends_keep_the_mapping
        assert maps_its_vectors(opened)
    queries = unit_vectors(8, 3)
    assert opened.version == streamed.version == 2 and opened.doc_count == COUNT
    assert answers(opened, queries) == answers(streamed, queries)
    assert opened.sync.get_docs(["late", "d3"]) == streamed.sync.get_docs(["late", "d3"])


def test_writes_after_a_mapped_open_never_reach_the_file(pushed: Path, precision: str) -> None:
    before = digests(pushed)
    session = MossClient(P, store=FileStore(pushed)).sync.session("s", precision=precision)
    assert maps_its_vectors(session) or precision == "int8"
    row = session.sync.get_docs(["d0"], include_embeddings=True)[0].embedding
    row = np.asarray(row, dtype=np.float32)
    session.add_arrays(["d0"], ["rewritten"], -row[None, :])  # an in-place write of a mapped row
    session.add_arrays(["new"], [""], unit_vectors(1, 9))
    session.delete_docs(["d5"])
    found = session.query("", QueryOptions(top_k=1, alpha=1.0, embedding=-row))
    assert found.docs[0].id == "d0"
    assert digests(pushed) == before
    assert maps_its_vectors(session) or precision == "int8"
    again = MossClient(P, store=FileStore(pushed)).sync.session("s", precision=precision)
    assert again.doc_count == COUNT and again.sync.get_docs(["d5"])[0].text == "text"
    assert maps_its_vectors(again) or precision == "int8"


def test_int8_appends_keep_the_mapping(tmp_path: Path) -> None:
    root = tmp_path / "store"
    writer = MossClient(P, store=FileStore(root)).sync.session(
        "s", model_id="custom", precision="int8"
    )
    writer.add_arrays([f"d{i}" for i in range(COUNT)], [""] * COUNT, unit_vectors(COUNT, 1))
    writer.push_index()
    writer.add_arrays(["late"], [""], unit_vectors(1, 2))
    writer.push_index()
    assert maps_its_vectors(MossClient(P, store=FileStore(root)).sync.session("s"))


async def test_an_async_open_maps_too(pushed: Path, precision: str) -> None:
    client = MossClient(P, store=FileStore(pushed))
    session = await client.session("s")
    assert session.version == 2 and (maps_its_vectors(session) or precision == "int8")
    await client.close()


class PruningStore(FileStore):
    """Stores full snapshots right after planning (``prunes`` times), pruning the planned files."""

    prunes = 1

    def chain_paths(self, *args: Any, **kwargs: Any) -> tuple[int, list[ChainFile]]:
        target, files = super().chain_paths(*args, **kwargs)
        if self.prunes:
            self.prunes -= 1
            full = next(path for _, kind, path in files if kind == "full").read_bytes()
            for _ in range(self.keep_versions):
                self.put(P, "s", [full])
            assert not any(path.exists() for _, _, path in files)
        return target, files


def test_a_file_pruned_between_plan_and_map_is_planned_again(pushed: Path) -> None:
    store = PruningStore(pushed, keep_versions=2)
    session = MossClient(P, store=store).sync.session("s")
    assert store.prunes == 0 and session.version == 4  # planned 1..2; both gone when mapped
    assert session.sync.get_docs(["late"]) == [] and session.doc_count == COUNT
    assert maps_its_vectors(session)


def test_pruned_again_after_the_second_plan_the_open_fails(pushed: Path) -> None:
    store = PruningStore(pushed, keep_versions=2)
    store.prunes = 2
    with pytest.raises(IndexNotFoundError):
        MossClient(P, store=store).sync.session("s", must_exist=True)
    assert store.prunes == 0  # planned twice, then gave up (as a streamed chain does)
