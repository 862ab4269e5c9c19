"""The store contract: every store keeps versions the same way."""

from __future__ import annotations

import io
import threading
import time

import pytest

from moss.errors import (
    ConflictError,
    IndexNotFoundError,
    InvalidArgumentError,
    SnapshotError,
)
from moss.stores import Store
from snapshots import snapshot_bytes

P = "proj"


def read(
    store: Store, name: str, version: int | None = None, project: str = P
) -> tuple[int, bytes]:
    download = store.get(project, name, version)
    return download.version, b"".join(download)


def test_put_get_round_trip(store: Store) -> None:
    blob = snapshot_bytes("conv-1", count=5)
    info = store.put(P, "conv-1", [blob])
    assert (info.version, info.doc_count, info.dimension, info.model_id) == (1, 5, 8, "custom")
    assert read(store, "conv-1") == (1, blob)
    head = store.head(P, "conv-1")
    assert head is not None and head.version == 1 and head.doc_count == 5


def test_put_accepts_a_file_and_small_chunks(store: Store) -> None:
    blob = snapshot_bytes("a", count=4)
    store.put(P, "a", io.BytesIO(blob))
    store.put(P, "a", [blob[i : i + 7] for i in range(0, len(blob), 7)])
    assert read(store, "a") == (2, blob)


def test_versions_increase_and_are_never_reused(store: Store) -> None:
    for seed in range(3):
        assert store.put(P, "x", [snapshot_bytes("x", seed=seed)]).version == seed + 1
    assert store.delete(P, "x") is True
    assert store.head(P, "x") is None
    with pytest.raises(IndexNotFoundError):
        store.get(P, "x")
    assert store.put(P, "x", [snapshot_bytes("x", seed=9)]).version == 4


def test_old_versions_stay_readable_until_pruned(store: Store) -> None:
    blobs = [snapshot_bytes("v", seed=seed) for seed in range(7)]
    for blob in blobs:
        store.put(P, "v", [blob])
    assert [info.version for info in store.versions(P, "v")] == [3, 4, 5, 6, 7]
    assert read(store, "v", version=4) == (4, blobs[3])
    with pytest.raises(IndexNotFoundError):
        store.get(P, "v", version=1)


def test_expected_version_is_compare_and_swap(store: Store) -> None:
    blob = snapshot_bytes("c")
    assert store.put(P, "c", [blob], expected_version=0).version == 1
    with pytest.raises(ConflictError) as caught:
        store.put(P, "c", [blob], expected_version=0)
    assert (caught.value.expected, caught.value.actual) == (0, 1)
    assert store.put(P, "c", [blob], expected_version=1).version == 2
    with pytest.raises(ConflictError):
        store.put(P, "c", [blob], expected_version=1)
    with pytest.raises(InvalidArgumentError):
        store.put(P, "c", [blob], expected_version=-1)
    assert store.head(P, "c").version == 2  # type: ignore[union-attr]


def test_racing_conditional_puts_have_one_winner(store: Store) -> None:
    store.put(P, "race", [snapshot_bytes("race")])
    outcomes: list[str] = []

    def push(seed: int) -> None:
        try:
            store.put(P, "race", [snapshot_bytes("race", seed=seed)], expected_version=1)
            outcomes.append("won")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=push, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["won"]
    assert store.head(P, "race").version == 2  # type: ignore[union-attr]


def test_bad_uploads_store_nothing_and_keep_the_previous_version(store: Store) -> None:
    good = snapshot_bytes("keep", count=3)
    store.put(P, "keep", [good])
    other = snapshot_bytes("other-name")
    with pytest.raises(SnapshotError, match="other-name"):
        store.put(P, "keep", [other])
    with pytest.raises(SnapshotError):
        store.put(P, "keep", [good[: len(good) // 2]])
    flipped = bytearray(good)
    flipped[-5] ^= 0x40
    with pytest.raises(SnapshotError):
        store.put(P, "keep", [bytes(flipped)])
    with pytest.raises(SnapshotError):
        store.put(P, "keep", [b"not a snapshot at all"])
    assert read(store, "keep") == (1, good)
    assert [info.version for info in store.versions(P, "keep")] == [1]


def test_missing_indexes(store: Store) -> None:
    assert store.head(P, "nope") is None
    assert store.versions(P, "nope") == []
    assert store.delete(P, "nope") is False
    assert store.list(P) == []
    with pytest.raises(IndexNotFoundError):
        store.get(P, "nope")


def test_list_is_sorted_and_projects_are_isolated(store: Store) -> None:
    for name in ("b", "a", "Conv:7", "conv:7"):
        store.put(P, name, [snapshot_bytes(name)])
    store.put("other", "secret", [snapshot_bytes("secret")])
    assert [info.name for info in store.list(P)] == ["Conv:7", "a", "b", "conv:7"]
    assert [info.name for info in store.list("other")] == ["secret"]
    assert store.head(P, "secret") is None
    assert store.head("other", "a") is None


def test_names_differing_in_case_are_different_indexes(store: Store) -> None:
    upper, lower = snapshot_bytes("Conv", seed=1), snapshot_bytes("conv", seed=2)
    store.put(P, "Conv", [upper])
    store.put(P, "conv", [lower])
    assert read(store, "Conv")[1] == upper
    assert read(store, "conv")[1] == lower


@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "%2e%2e", "-x", "x" * 129, "é"])
def test_invalid_names_are_refused(store: Store, bad: str) -> None:
    with pytest.raises(InvalidArgumentError):
        store.put(P, bad, [snapshot_bytes("x")])
    with pytest.raises(InvalidArgumentError):
        store.head(P, bad)
    with pytest.raises(InvalidArgumentError):
        store.list(bad)


async def test_async_twins(store: Store) -> None:
    blob = snapshot_bytes("as", count=6)
    info = await store.aput(P, "as", [blob])
    assert info.version == 1

    async def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(blob), 1000):
            yield blob[i : i + 1000]

    assert (await store.aput(P, "as", chunks(), expected_version=1)).version == 2
    download = await store.aget(P, "as")
    assert download.version == 2
    assert b"".join([bytes(chunk) async for chunk in download]) == blob
    assert (await store.ahead(P, "as")).doc_count == 6  # type: ignore[union-attr]
    assert [i.name for i in await store.alist(P)] == ["as"]
    assert [i.version for i in await store.aversions(P, "as")] == [1, 2]
    with pytest.raises(ConflictError):
        await store.aput(P, "as", [blob], expected_version=1)
    assert await store.adelete(P, "as") is True
    with pytest.raises(IndexNotFoundError):
        await store.aget(P, "as")


def test_conditional_get_and_watch(store: Store) -> None:
    blob = snapshot_bytes("w")
    store.put(P, "w", [blob])
    fresh = store.get(P, "w", if_none_match=1)
    assert (fresh.version, fresh.not_modified, b"".join(fresh)) == (1, True, b"")
    changed = store.get(P, "w", if_none_match=0)
    assert (changed.version, changed.not_modified, b"".join(changed)) == (1, False, blob)
    assert store.watch(P, "w", after=0, timeout=1) == 1
    assert store.watch(P, "w", after=1, timeout=0.2) is None
    pusher = threading.Timer(0.2, lambda: store.put(P, "w", [blob]))
    pusher.start()
    assert store.watch(P, "w", after=1, timeout=10) == 2
    pusher.join()


async def test_async_conditional_get_and_watch(store: Store) -> None:
    blob = snapshot_bytes("aw")
    await store.aput(P, "aw", [blob])
    fresh = await store.aget(P, "aw", if_none_match=1)
    assert fresh.not_modified
    assert await store.awatch(P, "aw", after=0, timeout=1) == 1
    assert await store.awatch(P, "aw", after=1, timeout=0.2) is None


def test_ttl_expires_the_index_and_a_put_without_ttl_clears_it(store: Store) -> None:
    blob = snapshot_bytes("ttl")
    store.put(P, "keep", [snapshot_bytes("keep")])
    assert store.put(P, "ttl", [blob], ttl=0.3).version == 1
    head = store.head(P, "ttl")
    assert head is not None and head.version == 1
    time.sleep(0.6)
    assert store.head(P, "ttl") is None
    with pytest.raises(IndexNotFoundError):
        store.get(P, "ttl")
    with pytest.raises(IndexNotFoundError):
        store.get(P, "ttl", version=1)
    assert [info.name for info in store.list(P)] == ["keep"]
    assert store.versions(P, "ttl") == []
    assert store.delete(P, "ttl") is False
    # Numbers are never reused; a put without ttl clears the one set before it.
    assert store.put(P, "ttl", [blob], expected_version=0, ttl=0.3).version == 2
    assert store.put(P, "ttl", [blob]).version == 3
    time.sleep(0.6)
    assert read(store, "ttl") == (3, blob)
    with pytest.raises(InvalidArgumentError):
        store.put(P, "ttl", [blob], ttl=0)
    with pytest.raises(InvalidArgumentError):
        store.put(P, "ttl", [blob], ttl=float("inf"))


@pytest.mark.parametrize("bad", [10**300, 2**63, -1])
async def test_huge_or_negative_versions_are_invalid_arguments(store: Store, bad: int) -> None:
    store.put(P, "n", [snapshot_bytes("n")])
    with pytest.raises(InvalidArgumentError):
        store.get(P, "n", bad)
    with pytest.raises(InvalidArgumentError):
        await store.aget(P, "n", bad)
    with pytest.raises(InvalidArgumentError):
        store.put(P, "n", [snapshot_bytes("n")], expected_version=bad)
    with pytest.raises(InvalidArgumentError):
        await store.awatch(P, "n", bad, 0)
    assert store.head(P, "n") is not None and store.head(P, "n").version == 1  # type: ignore[union-attr]
