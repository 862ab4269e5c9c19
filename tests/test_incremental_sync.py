"""Incremental sync (issue 18), session side: pushes send deltas, readers apply them in place,
merge pushes append, compaction and retention, who pushed what, diffs, crash safety.

All on the real file store; the processes are real where the issue says so.
"""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from moss import (
    ConflictError,
    DocumentInfo,
    FileStore,
    IndexDiff,
    MossClient,
    QueryOptions,
    SyncSession,
    refresh_policy,
)
from moss.stores.base import Download
from moss.stores.http import HttpStore
from service import Server, worker_env

WORKERS = Path(__file__).parent / "workers"
P = "proj"


def vectors(count: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)


def docs(ids: range | list[int], dim: int, seed: int = 0, tag: str = "d") -> list[DocumentInfo]:
    ids = list(ids)
    rows = vectors(len(ids), dim, seed)
    return [
        DocumentInfo(
            id=f"{tag}{i}",
            text=f"document {i} about topic {i % 7} code X{i}",
            metadata={"i": i, "topic": i % 7},
            embedding=row,
        )
        for i, row in zip(ids, rows, strict=True)
    ]


class CountingStore(FileStore):
    """A file store that counts the bytes of the chains it hands out (streamed or mapped)."""

    read = 0

    def chain_paths(self, *args: Any, **kwargs: Any) -> Any:
        target, files = super().chain_paths(*args, **kwargs)
        self.read += sum(path.stat().st_size for _, _, path in files)
        return target, files

    def get_chain(self, *args: Any, **kwargs: Any) -> Download:
        download = super().get_chain(*args, **kwargs)
        download.chunks = self._count(download.chunks)
        return download

    def _count(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.read += len(chunk)
            yield chunk


def files(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_size for p in root.rglob("*") if p.is_file()}


def state(session: SyncSession) -> dict[str, tuple[str, Any, bytes]]:
    """Every document's text, metadata and vector bytes (bit-exact comparisons)."""
    found = session.get_docs(include_embeddings=True)
    return {
        d.id: (d.text, d.metadata, np.asarray(d.embedding, dtype=np.float32).tobytes())
        for d in found
    }


def answers(session: SyncSession, dim: int) -> list[list[tuple[str, float]]]:
    """Vector, keyword and blended query results (ids and scores)."""
    out = []
    for seed, text, alpha in ((1, "topic", 1.0), (2, "code X5 topic", 0.0), (3, "X12", 0.5)):
        query = vectors(1, dim, 1000 + seed)[0].tolist()
        found = session.query(text, QueryOptions(top_k=8, embedding=query, alpha=alpha))
        out.append([(d.id, round(d.score, 6)) for d in found.docs])
    return out


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return (tmp_path / "store").as_uri()


def test_a_one_document_push_at_10k_writes_a_small_delta(tmp_path: Path) -> None:
    root = tmp_path / "store"
    client = MossClient(P, store=root.as_uri())
    session = client.sync.session("big", model_id="custom")
    session.add_docs(docs(range(10_000), 384))
    assert session.push_index().version == 1
    full = sum(files(root).values())
    before = files(root)
    session.add_docs(docs([10_000], 384, seed=7))
    assert session.push_index(author="agent", message="one turn").version == 2
    written = {p: s for p, s in files(root).items() if before.get(p) != s}
    delta_bytes = sum(written.values())
    assert 0 < delta_bytes <= 16 * 1024, (delta_bytes, written)
    assert full > 100 * delta_bytes
    [info] = [v for v in client.sync.versions("big") if v.version == 2]
    assert info.kind == "delta" and info.size_bytes == delta_bytes


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_a_refresh_applies_the_delta_in_place_and_equals_a_fresh_open(
    tmp_path: Path, precision: str
) -> None:
    root, dim = tmp_path / "store", 32
    writer = MossClient(P, store=root.as_uri()).sync.session("s", model_id="custom")
    writer.add_docs(docs(range(500), dim))
    writer.push_index()
    counting = CountingStore(root)
    reader = MossClient(P, store=counting).sync.session("s", precision=precision)
    answers(reader, dim)  # builds the reader's keyword index before the refresh
    engine = reader._core.index.engine
    full_read = counting.read

    writer.add_docs(docs([500, 501], dim, seed=3))  # added
    changed = docs([7], dim, seed=5)[0]
    changed.text, changed.metadata = "rewritten X5 code", {"i": -7, "topic": 99}
    writer.add_docs([changed])
    writer.delete_docs(["d9", "d10"])
    assert writer.push_index().version == 2

    counting.read = 0
    assert reader.refresh() is True and reader.version == 2
    assert counting.read <= 16 * 1024 and counting.read * 50 < full_read
    assert reader._core.index.engine is engine  # applied in place, nothing re-decoded
    assert reader.refresh() is False

    fresh = MossClient(P, store=root.as_uri()).sync.session("s", precision=precision)
    assert fresh.version == 2 and reader.precision == fresh.precision == precision
    assert state(reader) == state(fresh) == state(writer)
    assert "d9" not in state(reader) and state(reader)["d7"][0] == "rewritten X5 code"
    assert answers(reader, dim) == answers(fresh, dim)
    assert answers(reader, dim) == answers(writer, dim) or precision == "int8"


def test_local_changes_are_replayed_onto_applied_deltas(store_url: str) -> None:
    dim = 8
    client = MossClient(P, store=store_url)
    writer = client.sync.session("r", model_id="custom")
    writer.add_docs(docs(range(20), dim))
    writer.push_index()
    reader = client.sync.session("r")
    reader.add_docs([DocumentInfo(id="d1", text="mine", embedding=vectors(1, dim, 9)[0])])
    writer.add_docs([DocumentInfo(id="d1", text="theirs", embedding=vectors(1, dim, 8)[0])])
    writer.add_docs(docs([30], dim))
    writer.push_index()
    assert reader.refresh()
    got = {d.id: d.text for d in reader.get_docs()}
    assert got["d1"] == "mine" and "d30" in got and reader.has_unpushed_changes
    assert reader.refresh(discard_changes=True) is False  # nothing newer: nothing dropped
    reader.push_index()
    assert {d.id: d.text for d in client.sync.session("r").get_docs()}["d1"] == "mine"


def test_an_old_session_pushing_a_delta_with_cas_gets_conflict(store_url: str) -> None:
    client = MossClient(P, store=store_url)
    first = client.sync.session("c", model_id="custom")
    first.add_docs(docs(range(5), 8))
    first.push_index()
    old = client.sync.session("c")
    first.add_docs(docs([5], 8))
    first.push_index()
    old.add_docs(docs([6], 8))
    with pytest.raises(ConflictError):
        old.push_index(expected_version=1)
    assert old.version == 1 and old.has_unpushed_changes
    # A plain push replaces (as before deltas): a full snapshot without condition.
    result = old.push_index()
    assert result.version == 3
    assert client.sync.versions("c")[-1].kind == "full"
    assert {d.id for d in client.sync.session("c").get_docs()} == {
        f"d{i}" for i in (0, 1, 2, 3, 4, 6)
    }


def test_a_merge_push_after_others_holds_the_stored_version(store_url: str) -> None:
    client = MossClient(P, store=store_url)
    a = client.sync.session("m", model_id="custom")
    a.add_docs(docs(range(10), 8))
    a.push_index()
    b = client.sync.session("m")
    c = client.sync.session("m")
    b.add_docs(docs([10], 8, tag="b"))
    b.delete_docs(["d0"])
    b.push_index(merge=True)
    c.add_docs([DocumentInfo(id="d0", text="c keeps d0", embedding=vectors(1, 8, 1)[0])])
    c.add_docs(docs([11], 8, tag="c"))
    result = c.push_index(merge=True)
    assert result.version == 3 and c.version == 3 and not c.has_unpushed_changes
    assert [v.kind for v in client.sync.versions("m")] == ["full", "delta", "delta"]
    stored = client.sync.session("m")
    assert state(c) == state(stored)
    assert {"b10", "c11", "d0"} <= set(state(stored)) and result.doc_count == stored.doc_count


def test_merge_pushes_from_processes_append_and_lose_nothing(
    tmp_path: Path, store_url: str
) -> None:
    seed = MossClient(P, store=store_url).sync.session("shared", model_id="custom")
    seed.add_docs(docs(range(50), 16))
    seed.push_index()
    start = tmp_path / "go"
    writers, steps = 4, 15
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKERS / "delta_pusher.py"),
                store_url,
                "shared",
                "merge",
                f"w{w}",
                str(steps),
                "1000",
                "1e9",
                str(start),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=worker_env(),
        )
        for w in range(writers)
    ]
    time.sleep(1.0)
    start.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err  # no ConflictError: merge pushes never give up
        assert out.count("done ") == steps
    final = MossClient(P, store=store_url).sync.session("shared")
    ids = {d.id for d in final.get_docs()}
    assert ids >= {f"w{w}-{n}" for w in range(writers) for n in range(steps)}
    assert final.version == 1 + writers * steps and final.doc_count == 50 + writers * steps
    kinds = [v.kind for v in MossClient(P, store=store_url).sync.versions("shared")]
    assert kinds == ["full"] + ["delta"] * writers * steps  # appended, no compaction


def test_compaction_after_the_threshold_readers_never_notice(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refresh_policy, "COMPACT_CHAIN_LENGTH", 3)
    monkeypatch.setattr(refresh_policy, "COMPACT_CHAIN_RATIO", 1e9)
    client = MossClient(P, store=store_url)
    writer = client.sync.session("k", model_id="custom")
    writer.add_docs(docs(range(100), 8))
    writer.push_index()
    reader = client.sync.session("k")
    for step in range(7):
        writer.add_docs(docs([100 + step], 8, seed=step))
        writer.push_index(merge=step % 2 == 0)
        assert reader.refresh() and state(reader) == state(writer)
    kinds = [v.kind for v in client.sync.versions("k")]
    assert kinds[-5:] == ["delta", "full", "delta", "delta", "delta"]
    assert state(client.sync.session("k")) == state(writer)
    # The size rule: deltas past a quarter of the full snapshot compact too.
    monkeypatch.setattr(refresh_policy, "COMPACT_CHAIN_LENGTH", 64)
    monkeypatch.setattr(refresh_policy, "COMPACT_CHAIN_RATIO", 0.0)
    for extra in range(3):  # (right after a full snapshot the chain is empty: a delta)
        writer.add_docs(docs([200 + extra], 8))
        writer.push_index()
    assert [v.kind for v in client.sync.versions("k")][-3:] == ["full", "delta", "full"]


def test_the_last_five_versions_open_through_deltas_and_compactions(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refresh_policy, "COMPACT_CHAIN_LENGTH", 4)
    monkeypatch.setattr(refresh_policy, "COMPACT_CHAIN_RATIO", 1e9)
    client = MossClient(P, store=store_url)
    writer = client.sync.session("ret", model_id="custom")
    expected: dict[int, set[str]] = {}
    for step in range(12):
        writer.add_docs(docs([step], 8, seed=step))
        if step % 3 == 2:
            writer.delete_docs([f"d{step - 1}"])
        expected[writer.push_index().version] = {d.id for d in writer.get_docs()}
    kept = [v.version for v in client.sync.versions("ret")]
    assert set(range(8, 13)) <= set(kept)
    for number in range(8, 13):
        opened = MossClient(P, store=store_url).sync.session("ret", version=number)
        assert {d.id for d in opened.get_docs()} == expected[number]


def test_author_message_and_versions_round_trip(store_url: str) -> None:
    client = MossClient(P, store=store_url)
    session = client.sync.session("h", model_id="custom")
    session.add_docs(docs(range(3), 8))
    started = time.time()
    session.push_index(author="planner", message="checkpoint 1")
    session.add_docs(docs([3], 8))
    session.push_if_changed(author="coder", message="node: write code")
    assert session.push_if_changed(author="coder") is None
    listed = client.sync.versions("h")
    assert [(v.version, v.kind, v.author, v.message) for v in listed] == [
        (1, "full", "planner", "checkpoint 1"),
        (2, "delta", "coder", "node: write code"),
    ]
    assert all(started - 5 <= v.created_at <= time.time() + 5 for v in listed)


async def test_versions_and_diff_async(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refresh_policy, "COMPACT_CHAIN_LENGTH", 2)
    monkeypatch.setattr(refresh_policy, "COMPACT_CHAIN_RATIO", 1e9)
    client = MossClient(P, store=store_url)
    session = await client.session("diff", model_id="custom")
    await session.add_docs(docs(range(5), 8))
    await session.push_index()  # 1 full
    await session.add_docs(docs([5], 8))
    await session.add_docs([DocumentInfo(id="d1", text="edited", embedding=vectors(1, 8, 3)[0])])
    await session.delete_docs(["d2"])
    await session.push_index()  # 2 delta
    await session.delete_docs(["d5"])
    await session.add_docs(docs([6], 8))
    await session.push_index()  # 3 delta
    await session.add_docs(
        [DocumentInfo(id="d3", text="edited too", embedding=vectors(1, 8, 4)[0])]
    )
    await session.push_index()  # 4 full (compaction)
    kinds = [v.kind for v in await client.versions("diff")]
    assert kinds == ["full", "delta", "delta", "full"]
    assert await client.diff("diff", 1, 2) == IndexDiff(1, 2, ["d5"], ["d1"], ["d2"])
    assert await client.diff("diff", 1, 3) == IndexDiff(1, 3, ["d6"], ["d1"], ["d2"])
    assert await client.diff("diff", 2, 4) == IndexDiff(2, 4, ["d6"], ["d3"], ["d5"])
    assert await client.diff("diff", 0, 1) == IndexDiff(0, 1, [f"d{i}" for i in range(5)], [], [])
    assert await client.diff("diff", 3, 3) == IndexDiff(3, 3, [], [], [])
    assert client.sync.diff("diff", 1, 2) == await client.diff("diff", 1, 2)
    with pytest.raises(Exception, match="swap them"):
        await client.diff("diff", 3, 1)


def _run_until_killed(args: list[str], rng: random.Random) -> list[str]:
    """Start a worker, kill it at a random moment once its pushes run; its output lines."""
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=worker_env()
    )
    assert proc.stdout is not None
    lines = []
    while not (line := proc.stdout.readline()).startswith("done "):
        assert line, proc.communicate()[1]
        lines.append(line)
    lines.append(line)
    time.sleep(rng.uniform(0.0, 0.4))
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    return lines + out.splitlines()


def test_sigkill_during_delta_pushes_and_compaction_leaves_the_last_completed_version(
    store_url: str,
) -> None:
    client = MossClient(P, store=store_url)
    base = client.sync.session("crash", model_id="custom")
    base.add_docs(docs(range(5000), 64))
    base.push_index()
    rng = random.Random(18)
    in_full = 0
    worker = [sys.executable, str(WORKERS / "delta_pusher.py"), store_url, "crash", "plain"]
    for _ in range(20):
        lines = _run_until_killed([*worker, "k", "100000", "3", "1e9", "-"], rng)
        done = [line.split() for line in lines if line.startswith("done ")]
        begun = [line.split() for line in lines if line.startswith("begin ")]
        if int(begun[-1][2]) > int(done[-1][2]):  # killed inside a push
            in_full += begun[-1][1] == "full"
        opened = MossClient(P, store=store_url).sync.session("crash")
        last = int(done[-1][1])
        # The push in flight may have completed on the store before the kill: one more (two
        # for a compacting push: its delta, then the compaction).
        slack = 2 if begun[-1][1] == "full" else 1
        assert last <= opened.version <= last + slack, (last, opened.version)
        steps = sorted(int(d.id[2:]) for d in opened.get_docs() if d.id.startswith("k-"))
        assert steps == list(range(len(steps))) and opened.doc_count == 5000 + len(steps)
        for info in client.sync.versions("crash"):  # every kept version opens
            MossClient(P, store=store_url).sync.session("crash", version=info.version)
    assert in_full >= 1, "no kill landed inside a compaction"


class CountingHttp(HttpStore):
    """An HttpStore that counts the bytes its chain downloads hand out."""

    read = 0

    def get_chain(self, *args: Any, **kwargs: Any) -> Download:
        download = super().get_chain(*args, **kwargs)
        download.chunks = self._count(download.chunks)
        return download

    def _count(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.read += len(chunk)
            yield chunk


def test_reopening_through_moss_serve_downloads_only_newer_versions(tmp_path: Path) -> None:
    key = "incremental-sync-key-0123456789"
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(Server(tmp_path / "server", keys={P: key}))
        writer = stack.enter_context(MossClient(P, key, store=server.url, cache_dir=tmp_path / "w"))
        counting = CountingHttp(server.url, project_key=key)
        stack.callback(counting.close)
        session = writer.sync.session("conv", model_id="custom")
        session.add_docs(docs(range(2000), 32))
        session.push_index()
        reader = MossClient(P, key, store=counting, cache_dir=tmp_path / "rc")
        first = reader.sync.session("conv")
        full = counting.read
        assert first.doc_count == 2000 and full > 200_000
        again = reader.sync.session("conv")  # unchanged: the cached chain, nothing downloaded
        assert (again.version, counting.read) == (1, full)
        session.add_docs(docs([2000], 32, seed=1))
        session.push_index(author="w", message="one more")
        third = reader.sync.session("conv")  # only the delta after the cached version
        assert third.version == 2 and 0 < counting.read - full <= 16 * 1024
        assert state(third) == state(session)
        before = counting.read
        assert first.refresh() and counting.read - before <= 16 * 1024
        assert state(first) == state(session)
        server.stop()
        down = HttpStore(server.url, project_key=key, retries=0)
        stack.callback(down.close)
        offline = MossClient(P, key, store=down, cache_dir=tmp_path / "rc")
        stale = offline.sync.session("conv")  # the cached chain opens while the server is down
        assert stale.stale and stale.version == 2 and state(stale) == state(session)
        assert first.refresh() is False  # down: the session keeps what it holds


def test_a_refresh_across_several_deltas_applies_each_ids_last_operation(store_url: str) -> None:
    client = MossClient(P, store=store_url)
    writer = client.sync.session("many", model_id="custom")
    writer.add_docs(docs(range(10), 8))
    writer.push_index()
    reader = client.sync.session("many")
    writer.delete_docs(["d1", "d2"])
    writer.add_docs(docs([20], 8, seed=1))
    writer.push_index()
    writer.add_docs(docs([1], 8, seed=2))  # deleted, then back
    writer.delete_docs(["d20"])  # added, then gone
    writer.push_index()
    writer.add_docs(docs([20, 3], 8, seed=3))  # back again; d3 replaced twice
    writer.add_docs([DocumentInfo(id="d3", text="last", embedding=vectors(1, 8, 5)[0])])
    writer.push_index()
    assert reader.refresh() and reader.version == 4
    assert state(reader) == state(writer) == state(client.sync.session("many"))
    assert "d2" not in state(reader) and state(reader)["d3"][0] == "last"


def test_merge_pushes_of_a_new_session_and_into_a_deleted_index_never_give_up(
    store_url: str,
) -> None:
    client = MossClient(P, store=store_url)
    first, second = (client.sync.session("n", model_id="custom") for _ in range(2))
    first.add_docs(docs([1], 8))
    second.add_docs(docs([2], 8))
    first.push_index()
    # A session that never loaded a version: its whole log is appended after version 1.
    result = second.push_index(merge=True)
    assert (result.version, result.doc_count, second.doc_count) == (2, 2, 2)
    assert [v.kind for v in client.sync.versions("n")] == ["full", "delta"]
    client.sync.delete_index("n")
    second.add_docs(docs([3], 8))
    result = second.push_index(merge=True)  # the index is gone: pushed whole, as new
    assert result.version == 3 and client.sync.versions("n")[-1].kind == "full"
    assert {d.id for d in client.sync.session("n").get_docs()} == {"d1", "d2", "d3"}


def test_listings_report_the_index_size_after_a_delta(store_url: str) -> None:
    client = MossClient(P, store=store_url)
    session = client.sync.session("size", model_id="custom")
    session.add_docs(docs(range(40), 8))
    session.push_index()
    session.add_docs(docs([40, 41], 8, seed=1))
    session.delete_docs(["d0", "d1", "d2"])
    session.push_index()
    [info] = client.sync.list_indexes()
    assert (info.version, info.kind, info.doc_count) == (2, "delta", 39)
    assert [v.doc_count for v in client.sync.versions("size")] == [40, 39]


class RacingStore(FileStore):
    """A file store where another writer creates the index just before a put that expects it
    absent (the race of two agents' first merge pushes)."""

    racing = True

    def put(self, project: str, name: str, chunks: Any, **kwargs: Any) -> Any:
        if self.racing and kwargs.get("expected_version") == 0:
            self.racing = False
            rival = MossClient(project, store=FileStore(self.root)).sync.session(
                name, model_id="custom"
            )
            rival.add_docs(docs([99], 8, tag="rival"))
            rival.push_index()
        return super().put(project, name, chunks, **kwargs)


@pytest.mark.parametrize("deleted_first", [False, True])
def test_a_merge_push_losing_the_creation_race_appends(tmp_path: Path, deleted_first: bool) -> None:
    store = RacingStore(tmp_path / "store")
    client = MossClient(P, store=store)
    session = client.sync.session("race", model_id="custom")
    session.add_docs(docs([1], 8))
    if deleted_first:  # the session held a version; the index was deleted under it
        store.racing = False
        session.push_index()
        client.sync.delete_index("race")
        store.racing = True
        session.add_docs(docs([2], 8))
    result = session.push_index(merge=True)
    stored = MossClient(P, store=FileStore(tmp_path / "store")).sync.session("race")
    # Appended after the rival's version: its changes since the last push (what the delete
    # removed stays removed), and the session then holds the stored state.
    mine = "d2" if deleted_first else "d1"
    assert set(state(stored)) == {"rival99", mine} and state(stored) == state(session)
    assert result.version == stored.version and client.sync.versions("race")[-1].kind == "delta"


def test_a_reader_refreshes_past_a_compaction_reading_only_deltas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refresh_policy, "COMPACT_CHAIN_LENGTH", 3)
    monkeypatch.setattr(refresh_policy, "COMPACT_CHAIN_RATIO", 1e9)
    monkeypatch.setattr(refresh_policy, "COMPACT_IN_PLACE_BYTES", 0)
    counting = CountingStore(tmp_path / "store")
    writer = MossClient(P, store=(tmp_path / "store").as_uri()).sync.session("t", model_id="custom")
    writer.add_docs(docs(range(3000), 32))
    writer.push_index()
    reader = MossClient(P, store=counting).sync.session("t")
    full = counting.read
    for step in range(4):  # 2, 3, 4 deltas; then 5 a delta and 6 its compaction
        writer.add_docs(docs([3000 + step], 32, seed=step))
        writer.push_index(merge=step % 2 == 1)
        before = counting.read
        assert reader.refresh() and state(reader) == state(writer)
        assert 0 < counting.read - before <= 16 * 1024, "a refresh downloaded more than a delta"
    versions = MossClient(P, store=counting).sync.versions("t")
    assert [v.kind for v in versions][-3:] == ["delta", "delta", "compaction"]
    assert reader.version == writer.version == 6  # adopted the compaction, nothing to apply
    writer.add_docs(docs([4000], 32, seed=9))
    writer.push_index()  # 7, a delta after the compaction
    before = counting.read
    assert reader.refresh() and reader.version == 7 and state(reader) == state(writer)
    assert counting.read - before <= 16 * 1024
    before = counting.read
    cold = MossClient(P, store=counting).sync.session("t")  # the compaction and one delta
    assert state(cold) == state(writer) and full <= counting.read - before <= full + 16 * 1024
    assert counting.read < 3 * full


def test_a_cached_reader_through_moss_serve_skips_a_compaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refresh_policy, "COMPACT_CHAIN_LENGTH", 2)
    monkeypatch.setattr(refresh_policy, "COMPACT_CHAIN_RATIO", 1e9)
    monkeypatch.setattr(refresh_policy, "COMPACT_IN_PLACE_BYTES", 0)
    key = "compaction-skip-key-0123456789ab"
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(Server(tmp_path / "server", keys={P: key}))
        writer = stack.enter_context(MossClient(P, key, store=server.url, cache_dir=tmp_path / "w"))
        counting = CountingHttp(server.url, project_key=key)
        stack.callback(counting.close)
        session = writer.sync.session("cs", model_id="custom")
        session.add_docs(docs(range(2000), 32))
        session.push_index()
        reader = MossClient(P, key, store=counting, cache_dir=tmp_path / "rc")
        reader.sync.session("cs")
        full = counting.read
        for step in range(3):  # versions 2, 3, then 4 and its compaction 5
            session.add_docs(docs([2000 + step], 32, seed=step))
            session.push_index()
        kinds = [v.kind for v in writer.sync.versions("cs")]
        assert kinds == ["full", "delta", "delta", "delta", "compaction"]
        again = reader.sync.session("cs")  # the deltas after the cached version 1 only
        assert again.version == 5 and state(again) == state(session)
        assert 0 < counting.read - full <= 16 * 1024
        before = counting.read
        third = reader.sync.session("cs")  # the cache knows 5 equals 4: nothing downloaded
        assert (third.version, counting.read) == (5, before) and state(third) == state(session)
