"""The store contract for delta versions and chains, over the file, HTTP and PostgreSQL stores
(the ``store`` fixture of conftest.py): compare-and-swap and appends, model checks, chain plans,
retention, who pushed what, concurrent appends from processes, and SIGKILL mid-put."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from moss.errors import (
    ConflictError,
    IndexNotFoundError,
    InvalidArgumentError,
    ModelMismatchError,
)
from moss.snapshot import ChainReader, DeltaData, SnapshotData, encode_delta, encode_snapshot
from moss.stores import FileStore, Store
from moss.stores.chain import Entry, openable, pruned
from snapshots import snapshot_bytes

P = "proj"
TESTS = Path(__file__).parent


def delta_bytes(
    name: str,
    ids: list[str],
    deleted: tuple[str, ...] = (),
    *,
    dimension: int = 8,
    model_id: str = "custom",
    artifact: str = "",
    author: str | None = None,
    message: str | None = None,
) -> bytes:
    """A delta upserting ``ids`` (random vectors, text naming the id) and deleting ``deleted``."""
    vectors = np.random.default_rng(len(ids)).standard_normal((len(ids), dimension))
    _, chunks = encode_delta(
        index_name=name,
        model_id=model_id,
        model_artifact=artifact,
        dimension=dimension,
        ids=ids,
        texts=[f"text of {i}" for i in ids],
        metadata=[None] * len(ids),
        vectors=vectors.astype(np.float32),
        deleted=list(deleted),
        author=author,
        message=message,
    )
    return b"".join(bytes(chunk) for chunk in chunks)


def read_chain(store: Store, name: str, **kwargs: Any) -> tuple[int, list[tuple[int, str]], Any]:
    """Download a chain: its target, its frames' (version, kind), the download."""
    download = store.get_chain(P, name, **kwargs)
    reader = ChainReader(expected_name=name)
    for chunk in download:
        reader.feed(chunk)
    frames = [
        (version, "delta" if isinstance(data, DeltaData) else "full")
        for version, data in reader.finish()
    ]
    return download.version, frames, download


def state_of(store: Store, name: str, **kwargs: Any) -> set[str]:
    """The ids of the index at a version, rebuilt from its chain."""
    download = store.get_chain(P, name, **kwargs)
    reader = ChainReader(expected_name=name)
    for chunk in download:
        reader.feed(chunk)
    ids: set[str] = set()
    for _, data in reader.finish():
        if isinstance(data, SnapshotData):
            ids = set(data.ids)
        else:
            ids.difference_update(data.deleted)
            ids.update(data.ids)
    return ids


def kinds(store: Store, name: str) -> list[tuple[int, str]]:
    return [(info.version, info.kind) for info in store.versions(P, name)]


def test_delta_compare_and_swap_wins_once(store: Store) -> None:
    store.put(P, "d", [snapshot_bytes("d", count=3)])
    info = store.put(P, "d", [delta_bytes("d", ["new-1"])], expected_version=1)
    assert (info.version, info.kind) == (2, "delta")
    with pytest.raises(ConflictError) as caught:
        store.put(P, "d", [delta_bytes("d", ["new-2"])], expected_version=1)
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    with pytest.raises(ConflictError):
        store.put(P, "missing", [delta_bytes("missing", ["a"])], expected_version=3)
    assert kinds(store, "d") == [(1, "full"), (2, "delta")]
    assert state_of(store, "d") == {"doc-0", "doc-1", "doc-2", "new-1"}


def test_a_delta_needs_a_base_and_append_takes_deltas_only(store: Store) -> None:
    store.put(P, "b", [snapshot_bytes("b")])
    for expected in (None, 0):
        with pytest.raises(InvalidArgumentError, match="needs a base"):
            store.put(P, "b", [delta_bytes("b", ["x"])], expected_version=expected)
    with pytest.raises(InvalidArgumentError, match="full snapshot"):
        store.put(P, "b", [snapshot_bytes("b")], append=True)
    with pytest.raises(InvalidArgumentError, match="expected_version"):
        store.put(P, "b", [delta_bytes("b", ["x"])], append=True, expected_version=1)
    assert kinds(store, "b") == [(1, "full")]


def test_append_lands_after_whatever_is_latest(store: Store) -> None:
    store.put(P, "a", [snapshot_bytes("a", count=2)])
    store.put(P, "a", [delta_bytes("a", ["x"])], expected_version=1)  # someone else's version
    blob = delta_bytes("a", ["y"], deleted=("doc-0",))
    assert store.put(P, "a", [blob], append=True).version == 3
    assert store.put(P, "a", [delta_bytes("a", ["z"])], append=True).version == 4
    download = store.get(P, "a", version=3)
    assert b"".join(download) == blob
    assert state_of(store, "a") == {"doc-1", "x", "y", "z"}


def test_append_to_a_missing_or_deleted_index_is_not_found(store: Store) -> None:
    with pytest.raises(IndexNotFoundError):
        store.put(P, "gone", [delta_bytes("gone", ["a"])], append=True)
    store.put(P, "gone", [snapshot_bytes("gone")])
    store.delete(P, "gone")
    with pytest.raises(IndexNotFoundError):
        store.put(P, "gone", [delta_bytes("gone", ["a"])], append=True)
    assert store.head(P, "gone") is None


def test_a_delta_of_another_model_or_dimension_is_refused(store: Store) -> None:
    store.put(P, "m", [snapshot_bytes("m")])
    for blob in (
        delta_bytes("m", ["a"], model_id="other"),
        delta_bytes("m", ["a"], dimension=4),
        delta_bytes("m", ["a"], artifact="sha256:another-file"),
    ):
        with pytest.raises(ModelMismatchError):
            store.put(P, "m", [blob], append=True)
        with pytest.raises(ModelMismatchError):
            store.put(P, "m", [blob], expected_version=1)
    assert kinds(store, "m") == [(1, "full")]


def test_chain_plans(store: Store) -> None:
    store.put(P, "c", [snapshot_bytes("c")])
    for i in range(3):
        store.put(P, "c", [delta_bytes("c", [f"d{i}"])], append=True)
    # Deltas only after a held version; everything from the full snapshot otherwise.
    assert read_chain(store, "c", after=2)[:2] == (4, [(3, "delta"), (4, "delta")])
    assert read_chain(store, "c", after=1, version=3)[:2] == (3, [(2, "delta"), (3, "delta")])
    full_chain = [(1, "full"), (2, "delta"), (3, "delta"), (4, "delta")]
    assert read_chain(store, "c")[:2] == (4, full_chain)
    assert read_chain(store, "c", after=0)[:2] == (4, full_chain)
    assert read_chain(store, "c", after=99)[:2] == (4, full_chain)  # as if not given
    target, frames, download = read_chain(store, "c", after=4)
    assert (target, frames, download.not_modified) == (4, [], True)
    # A full snapshot in between: the reader starts from it.
    store.put(P, "c", [snapshot_bytes("c", seed=5)])
    store.put(P, "c", [delta_bytes("c", ["e"])], append=True)
    assert read_chain(store, "c", after=3)[:2] == (6, [(5, "full"), (6, "delta")])
    assert read_chain(store, "c", after=5)[:2] == (6, [(6, "delta")])
    with pytest.raises(IndexNotFoundError):
        store.get_chain(P, "nope")
    with pytest.raises(IndexNotFoundError):
        store.get_chain(P, "c", version=77)


def test_chain_from_a_pruned_version_starts_at_the_newest_full(store: Store) -> None:
    store.put(P, "p", [snapshot_bytes("p")])
    store.put(P, "p", [delta_bytes("p", ["a"])], append=True)
    store.put(P, "p", [delta_bytes("p", ["b"])], append=True)
    store.put(P, "p", [snapshot_bytes("p", seed=4)])  # version 4, full
    for i in range(5):
        store.put(P, "p", [delta_bytes("p", [f"x{i}"])], append=True)  # versions 5..9
    assert [version for version, _ in kinds(store, "p")] == [4, 5, 6, 7, 8, 9]
    expected = [(4, "full")] + [(v, "delta") for v in range(5, 10)]
    assert read_chain(store, "p", after=2)[:2] == (9, expected)


def test_retention_keeps_the_full_snapshot_kept_deltas_need(store: Store) -> None:
    store.put(P, "r", [snapshot_bytes("r")])
    for i in range(7):
        store.put(P, "r", [delta_bytes("r", [f"a{i}"])], append=True)  # versions 2..8
    assert [v for v, _ in kinds(store, "r")] == list(range(1, 9))  # the base stays
    store.put(P, "r", [snapshot_bytes("r", seed=9)])  # 9
    for i in range(5):
        store.put(P, "r", [delta_bytes("r", [f"b{i}"])], append=True)  # 10..14
    assert kinds(store, "r") == [(9, "full")] + [(v, "delta") for v in range(10, 15)]
    for version in range(9, 15):  # each kept version opens
        assert read_chain(store, "r", version=version)[1][0] == (9, "full")
    assert state_of(store, "r", version=11) == {"doc-0", "doc-1", "doc-2", "b0", "b1"}


def test_versions_say_kind_author_message_and_chain(store: Store) -> None:
    full = snapshot_bytes("w", count=4)
    store.put(P, "w", [full])
    first = delta_bytes("w", ["a", "b"], author="planner", message="turn 1")
    info = store.put(P, "w", [first], append=True)
    assert (info.kind, info.author, info.message) == ("delta", "planner", "turn 1")
    assert (info.chain_length, info.chain_bytes, info.base_bytes) == (1, len(first), len(full))
    second = delta_bytes("w", [], deleted=("a",), author="critic")
    store.put(P, "w", [second], expected_version=2)
    infos = store.versions(P, "w")
    assert [(i.kind, i.author, i.message) for i in infos] == [
        ("full", None, None),
        ("delta", "planner", "turn 1"),
        ("delta", "critic", None),
    ]
    assert [(i.chain_length, i.chain_bytes) for i in infos] == [
        (0, 0),
        (1, len(first)),
        (2, len(first) + len(second)),
    ]
    assert {i.base_bytes for i in infos} == {len(full)}
    head = store.head(P, "w")
    assert head is not None and head.version == 3 and head.chain_length == 2
    assert head.size_bytes == len(second) and head.base_bytes == len(full)
    assert [i.name for i in store.list(P)] == ["w"] and store.list(P)[0].kind == "delta"


def test_async_chain_and_append(store: Store) -> None:
    async def main() -> tuple[int, bytes, bool]:
        await store.aput(P, "as", [snapshot_bytes("as")])
        info = await store.aput(P, "as", [delta_bytes("as", ["q"])], append=True)
        download = await store.aget_chain(P, "as", after=1)
        data = b"".join([chunk async for chunk in download])
        current = await store.aget_chain(P, "as", after=2)
        return info.version, data, current.not_modified

    version, data, not_modified = asyncio.run(main())
    reader = ChainReader(expected_name="as")
    reader.feed(data)
    assert version == 2 and not_modified
    assert [(v, type(d).__name__) for v, d in reader.finish()] == [(2, "DeltaData")]


def test_a_frame_pruned_between_planning_and_reading_is_planned_again(tmp_path: Path) -> None:
    class PruningStore(FileStore):
        """Prunes the first version a chain opens, just before opening it."""

        pruned = False

        def get(self, project: str, name: str, version: int | None = None, **kw: Any) -> Any:
            if not self.pruned:
                self.pruned = True
                for seed in range(self.keep_versions):
                    self.put(project, name, [snapshot_bytes(name, seed=seed)])
            return super().get(project, name, version, **kw)

    store = PruningStore(tmp_path / "store", keep_versions=2)
    store.put(P, "g", [snapshot_bytes("g")])
    store.put(P, "g", [delta_bytes("g", ["a"])], append=True)
    target, frames, _ = read_chain(store, "g")  # planned 1..2; both gone when opened
    assert store.pruned and (target, frames) == (4, [(4, "full")])


def compaction_bytes(name: str, seed: int = 0) -> bytes:
    """A full snapshot marked as a compaction (a full snapshot equal to the version before)."""
    _, chunks = encode_snapshot(
        index_name=name,
        model_id="custom",
        model_artifact="",
        vectors=np.random.default_rng(seed).standard_normal((3, 8)).astype(np.float32),
        ids=[f"doc-{i}" for i in range(3)],
        texts=["a", "b", "c"],
        metadata=[None] * 3,
        kind="compaction",
    )
    return b"".join(bytes(chunk) for chunk in chunks)


def test_readers_holding_the_version_before_a_compaction_skip_it(store: Store) -> None:
    store.put(P, "k", [snapshot_bytes("k")])
    store.put(P, "k", [delta_bytes("k", ["a"])], expected_version=1)
    store.put(P, "k", [delta_bytes("k", ["b"])], expected_version=2)
    for wrong in ({}, {"append": True}, {"expected_version": 0}):
        with pytest.raises(InvalidArgumentError, match="compaction"):
            store.put(P, "k", [compaction_bytes("k")], **wrong)
    with pytest.raises(ConflictError):
        store.put(P, "k", [compaction_bytes("k")], expected_version=2)
    info = store.put(P, "k", [compaction_bytes("k")], expected_version=3)
    assert (info.version, info.kind, info.chain_length) == (4, "compaction", 0)
    store.put(P, "k", [delta_bytes("k", ["c"])], append=True)
    stored = [(1, "full"), (2, "delta"), (3, "delta"), (4, "compaction"), (5, "delta")]
    assert kinds(store, "k") == stored
    # Holding 3 (what the compaction equals) or older: only deltas, the compaction skipped.
    assert read_chain(store, "k", after=3)[:2] == (5, [(5, "delta")])
    assert read_chain(store, "k", after=2)[:2] == (5, [(3, "delta"), (5, "delta")])
    target, frames, download = read_chain(store, "k", after=3, version=4)
    assert (target, frames, download.not_modified) == (4, [], False)  # adopt 4, read nothing
    # Cold opens start from the compaction.
    assert read_chain(store, "k")[:2] == (5, [(4, "full"), (5, "delta")])
    assert read_chain(store, "k", version=3)[1][0] == (1, "full")
    head = store.head(P, "k")
    assert head is not None and (head.chain_length, head.base_bytes) == (1, info.size_bytes)
    # Retention keeps what openers need: the compaction is the base of the newest versions.
    for i in range(5):
        store.put(P, "k", [delta_bytes("k", [f"x{i}"])], append=True)  # 6..10
    assert kinds(store, "k") == [(4, "compaction")] + [(v, "delta") for v in range(5, 11)]
    assert read_chain(store, "k", version=6)[1][0] == (4, "full")


def test_pruning_newest_first_keeps_every_remaining_version_openable() -> None:
    """A prune killed after any unlink leaves only versions that open (it used to remove the
    oldest first, leaving deltas whose full base was gone)."""
    rng = np.random.default_rng(18)
    for _ in range(200):
        kinds_ = ["full"] + [
            str(rng.choice(["full", "delta", "delta", "compaction"])) for _ in range(20)
        ]
        entries = [Entry(v, kind, 1) for v, kind in enumerate(kinds_, start=1)]
        kept = list(entries)
        for version in pruned(entries, int(rng.integers(1, 8))):
            kept = [entry for entry in kept if entry.version != version]
            assert openable(kept) == kept, (kinds_, version)


def test_versions_list_only_versions_that_open(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    store.put(P, "o", [snapshot_bytes("o")])
    for i in range(3):
        store.put(P, "o", [delta_bytes("o", [f"a{i}"])], append=True)
    store.put(P, "o", [snapshot_bytes("o", seed=1)])
    store.put(P, "o", [delta_bytes("o", ["b"])], append=True)
    # What a prune killed by an older moss left: the base of versions 2..4 removed.
    next((tmp_path / "store").rglob("v000000000001.snap")).unlink()
    assert [info.version for info in store.versions(P, "o")] == [5, 6]
    for info in store.versions(P, "o"):
        read_chain(store, "o", version=info.version)


def test_file_reads_take_the_chunk_size_asked(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    blob = snapshot_bytes("s", count=500, dimension=64)
    store.put(P, "s", [blob])
    store.put(P, "s", [delta_bytes("s", ["a"], dimension=64)], append=True)
    small = store.get(P, "s", 1, chunk_size=4096)
    assert max(len(chunk) for chunk in small) == 4096
    chain = store.get_chain(P, "s", chunk_size=4096)
    pieces = list(chain)
    assert b"".join(pieces)[16 : 16 + len(blob)] == blob
    assert max(len(piece) for piece in pieces) == 4096
    assert len(next(iter(store.get(P, "s", 1)))) == len(blob)  # local reads: one large chunk


def test_http_puts_wait_out_a_busy_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """429 with Retry-After (the project's upload slots are taken): the put waits and sends its
    body again (kept while sent, so even a generator's chunks can be resent)."""
    import base64
    import socket
    import threading

    from moss.stores.http import io
    from service import Server

    monkeypatch.setattr(io, "RETRY_AFTER_MAX", 1.0)  # the server asks for 5 s
    key = "busy-server-key-0123456789abcdef"
    env = {"MOSS_SERVE_MAX_UPLOADS_PER_PROJECT": "1"}
    with Server(tmp_path / "server", keys={P: key}, env=env) as server:
        store = server.store(key)
        store.put(P, "busy", [snapshot_bytes("busy")])
        auth = base64.b64encode(f"{P}:{key}".encode()).decode()
        stalled = socket.create_connection(("127.0.0.1", server.port))
        stalled.sendall(
            f"PUT /v1/indexes/busy HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
            "Content-Length: 100000\r\n\r\n".encode()
            + b"MOSSSNAP"
        )
        time.sleep(0.3)
        threading.Timer(0.5, stalled.close).start()  # the slot frees after the first refusal
        blob = delta_bytes("busy", ["late"])
        started = time.monotonic()
        info = store.put(
            P, "busy", (blob[i : i + 100] for i in range(0, len(blob), 100)), append=True
        )
        assert info.version == 2 and time.monotonic() - started >= 0.5
        assert state_of(store, "busy") == {"doc-0", "doc-1", "doc-2", "late"}
        store.close()


# -- other processes ---------------------------------------------------------------------------

_WORKER = """
import sys, time
sys.path.insert(0, {tests!r})
from test_store_deltas import delta_bytes
from moss.stores import open_store
store = open_store({location!r}, project_key={key!r})
versions = []
print("ready", flush=True)
sys.stdin.readline()
for i in range({count}):
    blob = delta_bytes({name!r}, [f"w{worker}-{{i}}"])
    versions.append(store.put("proj", {name!r}, [blob], append=True).version)
print(" ".join(map(str, versions)), flush=True)
"""

_SLOW_PUT = """
import sys, time
sys.path.insert(0, {tests!r})
from test_store_deltas import delta_bytes
from moss.stores import open_store
store = open_store({location!r}, project_key={key!r})
blob = delta_bytes({name!r}, [f"slow-{{i}}" for i in range(3000)])
def chunks():
    for start in range(0, len(blob), 4096):
        if start == 4096:
            print("started", flush=True)
        yield blob[start:start + 4096]
        time.sleep({pause})
store.put("proj", {name!r}, chunks(), append=True)
print("done", flush=True)
"""


def _key() -> str:
    from service import CONTRACT_KEY

    return str(CONTRACT_KEY)


def _spawn(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent / "src")])},
    )


def test_concurrent_appends_from_processes_all_land(store: Store) -> None:
    store.put(P, "many", [snapshot_bytes("many", count=1)])
    workers, count = 4, 6
    processes = [
        _spawn(
            _WORKER.format(
                tests=str(TESTS),
                location=store.location,
                key=_key(),
                name="many",
                count=count,
                worker=w,
            )
        )
        for w in range(workers)
    ]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    for process in processes:  # start together
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    landed: list[int] = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        landed += [int(v) for v in out.split()]
    assert sorted(landed) == list(range(2, 2 + workers * count))
    expected = {"doc-0"} | {f"w{w}-{i}" for w in range(workers) for i in range(count)}
    assert state_of(store, "many") == expected


def test_sigkill_during_a_delta_put_leaves_the_last_version_openable(store: Store) -> None:
    store.put(P, "k", [snapshot_bytes("k", count=2)])
    store.put(P, "k", [delta_bytes("k", ["before"])], append=True)
    rng = np.random.default_rng(7)
    for _ in range(3):
        latest = store.head(P, "k")
        assert latest is not None
        process = _spawn(
            _SLOW_PUT.format(
                tests=str(TESTS), location=store.location, key=_key(), name="k", pause=0.002
            )
        )
        assert process.stdout is not None and process.stdout.readline().strip() == "started"
        time.sleep(float(rng.uniform(0.0, 0.05)))
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)  # reaps it and closes its pipes
        head = store.head(P, "k")
        assert head is not None and head.version in (latest.version, latest.version + 1)
        ids = state_of(store, "k")
        assert {"doc-0", "doc-1", "before"} <= ids
        assert len(ids) in (3, 3 + 3000)  # all of the killed delta or none of it


# -- PostgreSQL: the schema migration that added the delta columns -----------------------------


def test_postgres_schema_2_upgrades_to_3_and_keeps_old_versions(
    request: pytest.FixtureRequest,
) -> None:
    import psycopg

    from moss.stores.postgres import SCHEMA_VERSION, PostgresStore
    from moss.stores.postgres.sql import Statements, parse_url
    from pg import shared_cluster

    assert SCHEMA_VERSION == 3
    url = shared_cluster(request.config).fresh_url()
    target = parse_url(url)
    sql = Statements(target.schema)
    blob = snapshot_bytes("old", count=2)
    with psycopg.connect(target.conninfo, autocommit=True) as conn:  # what moss 2 created
        conn.execute(sql.create_schema)
        conn.execute(sql.create_version_table)
        for steps in sql.migrations[:2]:
            for step in steps:
                conn.execute(step)
        conn.execute(sql.set_schema_version, (2,))
        schema = target.schema
        conn.execute(f"INSERT INTO {schema}.indexes VALUES ('proj', 'old', 1, 1, NULL)")
        conn.execute(
            f"INSERT INTO {schema}.versions VALUES ('proj', 'old', 1, 77, 'custom', 8, 2, %s, 1.5)",
            (len(blob),),
        )
        conn.execute(f"INSERT INTO {schema}.chunks VALUES (77, 1, %s)", (blob,))
    strict = PostgresStore(url, auto_upgrade=False)
    with pytest.raises(InvalidArgumentError, match="moss db upgrade"):
        strict.head(P, "old")
    assert strict.upgrade() == (2, 3)
    head = strict.head(P, "old")
    assert head is not None and (head.kind, head.author, head.doc_count) == ("full", None, 2)
    assert b"".join(strict.get(P, "old")) == blob
    # The old row has no model artifact recorded: a delta is checked on model id and dimension.
    assert strict.put(P, "old", [delta_bytes("old", ["n"])], append=True).version == 2
    with pytest.raises(ModelMismatchError):
        strict.put(P, "old", [delta_bytes("old", ["n"], dimension=4)], append=True)
    assert kinds(strict, "old") == [(1, "full"), (2, "delta")]
    assert state_of(strict, "old") == {"doc-0", "doc-1", "n"}
    strict.close()
