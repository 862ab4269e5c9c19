"""LocalIndex: engine, keyword index and change log change together; merge pushes under load."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from moss import DocumentInfo, MossClient, QueryOptions
from moss.index.engine import Engine
from moss.index.local import Changes, LocalIndex

DIM = 8


def vectors(*seeds: int) -> npt.NDArray[np.float32]:
    rows = np.random.default_rng(list(seeds)).standard_normal((len(seeds), DIM))
    unit: npt.NDArray[np.float32] = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(
        np.float32
    )
    return unit


def test_writes_keep_both_indexes_and_the_change_log_together() -> None:
    index = LocalIndex()
    assert index.upsert(
        ["a", "b"], ["red apple", "green pear"], [None, {"k": 1}], vectors(1, 2)
    ) == (2, 0)
    index.build_keywords()
    assert index.delete(["a", "zzz"]) == 1
    keywords = index.keywords
    assert keywords is not None and set(keywords.scores("apple pear")) == {"b"}
    changes = index.changes()
    assert "a" in changes.deletes and changes.ids == ["b"] and changes.metadata == [{"k": 1}]
    assert changes.vectors is not None and np.allclose(changes.vectors, vectors(1, 2)[1:])


def test_apply_is_one_batch_and_adopt_replays_local_changes() -> None:
    index = LocalIndex()
    index.apply(Changes(["a", "b"], ["one", "two"], [None, None], vectors(1, 2), deletes=["b"]))
    assert [d.id for d in index.get(None, None, None)[0]] == ["a"]
    assert index.has_changes
    newer = Engine(DIM)
    newer.upsert(["a", "c"], ["old one", "three"], [None, None], vectors(3, 4))
    index.adopt(newer, None, discard_changes=False)
    docs = {d.id: d.text for d in index.get(None, None, None)[0]}
    assert docs == {"a": "one", "c": "three"}  # the local change wins; b stays deleted
    assert index.has_changes  # replayed changes are still unpushed
    state = index.export(DIM, lambda keywords, ids: b"")
    index.pushed(state.mutations)
    assert not index.has_changes


def test_a_push_during_a_write_keeps_the_write_unpushed() -> None:
    index = LocalIndex()
    index.upsert(["a"], ["one"], [None], vectors(1))
    state = index.export(DIM, lambda keywords, ids: b"")
    index.upsert(["b"], ["two"], [None], vectors(2))  # lands while the push streams
    index.pushed(state.mutations)
    assert index.has_changes


@pytest.mark.slow
def test_twenty_concurrent_merge_writers_lose_no_turn(tmp_path: Path) -> None:
    store, writers, rounds = (tmp_path / "store").as_uri(), 20, 10
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(tag: int) -> None:
        try:
            session = MossClient("proj", store=store).sync.session("m", model_id="custom")
            start.wait()
            for r in range(rounds):
                v = vectors(tag, r)[0]
                session.add_docs([DocumentInfo(id=f"{tag}-{r}", text="t", embedding=v)])
                session.push_index(merge=True)
        except BaseException as exc:  # reported below, with the writer's traceback
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(tag,)) for tag in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
    final = MossClient("proj", store=store).sync.session("m")
    assert {d.id for d in final.get_docs()} == {
        f"{t}-{r}" for t in range(writers) for r in range(rounds)
    }
    # 20 writers x 10 rounds: the old linear back-off gave up after 20 attempts here.
    assert final.version >= writers * rounds
    assert final.query("t", QueryOptions(top_k=1, embedding=vectors(0, 0)[0].tolist())).docs
