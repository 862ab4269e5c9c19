"""File store and snapshot cache hardening: orphaned temp files, failed puts, huge versions,
and the cost of many idle watches."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from moss.errors import IndexNotFoundError, InvalidArgumentError, SnapshotError
from moss.stores import FileStore
from moss.stores.cache import SnapshotCache
from snapshots import snapshot_bytes

P = "proj"

#: Starts an upload (or a cached download) that writes half a snapshot, says so, then hangs.
WRITER = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from snapshots import snapshot_bytes
blob = snapshot_bytes("idx", count=2000)
if sys.argv[1] == "store":
    from moss.stores import FileStore
    def chunks():
        yield blob[: len(blob) // 2]
        print("writing", flush=True)
        time.sleep(600)
        yield blob[len(blob) // 2 :]
    FileStore(sys.argv[2]).put("proj", "idx", chunks())
else:
    from moss.stores.cache import SnapshotCache
    with SnapshotCache(Path(sys.argv[2])).writer("http://h", "proj", "idx", 1) as handle:
        handle.write(blob[: len(blob) // 2])
        handle.flush()
        print("writing", flush=True)
        time.sleep(600)
"""


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.kill()
        process.communicate()


def start_writer(kind: str, root: Path, started: list[subprocess.Popen[str]]) -> int:
    source = WRITER.format(tests=str(Path(__file__).parent))
    process = subprocess.Popen(
        [sys.executable, "-c", source, kind, str(root)], stdout=subprocess.PIPE, text=True
    )
    started.append(process)
    assert process.stdout is not None and process.stdout.readline().strip() == "writing"
    return process.pid


def temp_files(root: Path) -> list[Path]:
    return sorted(root.rglob(".tmp-*"))


def test_uploads_of_killed_writers_are_swept_at_start_up_never_a_live_ones(
    tmp_path: Path, writer: list[subprocess.Popen[str]]
) -> None:
    root = tmp_path / "store"
    pid = start_writer("store", root, writer)
    assert len(temp_files(root)) == 1
    FileStore(root, orphan_age=0)  # the writer lives (in another process): kept
    assert len(temp_files(root)) == 1
    os.kill(pid, signal.SIGKILL)  # as `docker kill`: no clean-up runs
    writer[0].wait()
    FileStore(root, orphan_age=3600)  # younger than the age asked for: kept
    assert len(temp_files(root)) == 1
    store = FileStore(root, orphan_age=0)  # a restart: swept without any push
    assert temp_files(root) == []
    assert store.list(P) == []


def test_a_live_upload_in_the_same_process_is_never_swept(tmp_path: Path) -> None:
    root = tmp_path / "store"
    blob = snapshot_bytes("idx", count=2000)
    halfway, go_on = threading.Event(), threading.Event()

    def chunks() -> Iterator[bytes]:
        yield blob[: len(blob) // 2]
        halfway.set()
        go_on.wait(30)
        yield blob[len(blob) // 2 :]

    store = FileStore(root, orphan_age=0)
    result: list[int] = []
    pusher = threading.Thread(target=lambda: result.append(store.put(P, "idx", chunks()).version))
    pusher.start()
    assert halfway.wait(30)
    assert FileStore(root, orphan_age=0).sweep() == 0
    assert len(temp_files(root)) == 1
    go_on.set()
    pusher.join(30)
    assert result == [1] and temp_files(root) == []


def test_a_sweep_between_create_and_lock_costs_the_writer_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep that sees a new upload before its writer locked it removes it: the writer notices
    and makes another, and the put lands (the server restart race, without any age guard)."""
    import fcntl

    from moss import atomic_files as atomic

    root = tmp_path / "store"
    store = FileStore(root)
    real_flock = fcntl.flock
    swept: list[int] = []

    def flock_after_a_sweep(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_EX and not swept:
            swept.append(store.sweep())  # lands in the instant between open() and flock()
        real_flock(fd, operation)

    monkeypatch.setattr(atomic.fcntl, "flock", flock_after_a_sweep)
    assert store.put(P, "idx", [snapshot_bytes("idx", count=50)]).version == 1
    assert swept == [1]  # the sweep did remove the writer's first file
    assert temp_files(root) == []
    assert [info.version for info in store.versions(P, "idx")] == [1]


def test_partial_downloads_of_killed_clients_are_swept_from_the_cache(
    tmp_path: Path, writer: list[subprocess.Popen[str]]
) -> None:
    root = tmp_path / "cache"
    pid = start_writer("cache", root, writer)
    SnapshotCache(root, orphan_age=0)  # the client lives: kept
    assert len(temp_files(root)) == 1
    os.kill(pid, signal.SIGKILL)
    writer[0].wait()
    SnapshotCache(root, orphan_age=3600)  # younger than the age asked for: kept
    assert len(temp_files(root)) == 1
    SnapshotCache(root, orphan_age=0)
    assert temp_files(root) == []


def test_a_failed_put_leaves_no_index_directory(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    with pytest.raises(SnapshotError):
        store.put(P, "idx", [b"not a snapshot at all"])
    assert list((tmp_path / "store").rglob("*")) in ([], [tmp_path / "store" / "projects"])
    store.put(P, "other", [snapshot_bytes("other")])
    with pytest.raises(SnapshotError):
        store.put(P, "idx", [snapshot_bytes("wrong-name")])
    assert [info.name for info in store.list(P)] == ["other"]
    assert len(list(store._project_dir(P).iterdir())) == 1


@pytest.mark.parametrize("bad", [10**300, -(10**300), 2**63, -1, True, "3"])
def test_huge_or_negative_versions_are_invalid_arguments(tmp_path: Path, bad: object) -> None:
    store = FileStore(tmp_path / "store")
    store.put(P, "idx", [snapshot_bytes("idx")])
    calls = [
        lambda: store.get(P, "idx", bad),  # type: ignore[arg-type]
        lambda: store.get(P, "idx", if_none_match=bad),  # type: ignore[arg-type]
        lambda: store.put(P, "idx", [snapshot_bytes("idx")], expected_version=bad),  # type: ignore[arg-type]
        lambda: store.watch(P, "idx", bad, 0),  # type: ignore[arg-type]
        lambda: asyncio.run(store.aget(P, "idx", bad)),  # type: ignore[arg-type]
        lambda: asyncio.run(store.awatch(P, "idx", bad, 0)),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentError, match="integer from"):
            call()
    with pytest.raises(IndexNotFoundError):  # the largest valid version: merely absent
        store.get(P, "idx", 2**63 - 1)


def test_many_idle_watches_share_one_cheap_poll_and_wake_only_their_index(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "store")
    store.put(P, "hot", [snapshot_bytes("hot")])
    woke: list[str] = []

    async def watch(name: str) -> None:
        if await store.awatch(P, name, 1 if name == "hot" else 0, 30) is not None:
            woke.append(name)

    async def main() -> float:
        tasks = [asyncio.create_task(watch(f"idle-{i}")) for i in range(400)]
        tasks.append(asyncio.create_task(watch("hot")))
        await asyncio.sleep(0.5)  # every watch is waiting
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(3)
        share = (time.process_time() - cpu) / (time.monotonic() - wall)
        await asyncio.to_thread(_push_from_another_process, tmp_path / "store")
        await asyncio.wait_for(_until(lambda: woke == ["hot"]), 5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return share

    share = asyncio.run(main())
    assert share < 0.2, f"400 idle watches used {share:.2f} of a core"
    assert woke == ["hot"]


def _push_from_another_process(root: Path) -> None:
    source = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from snapshots import snapshot_bytes\nfrom moss.stores import FileStore\n"
        f"FileStore({str(root)!r}).put('proj', 'hot', [snapshot_bytes('hot', seed=1)])\n"
    )
    subprocess.run([sys.executable, "-c", source], check=True, timeout=60)


async def _until(condition: object) -> None:
    while not condition():  # type: ignore[operator]
        await asyncio.sleep(0.01)
