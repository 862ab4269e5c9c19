"""Cross-process guarantees on the file store: crash safety and concurrent pushes."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moss import MossClient

WORKERS = Path(__file__).parent / "workers"
DIM = 384


def worker(script: str, *args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(WORKERS)}
    return subprocess.Popen(
        [sys.executable, str(WORKERS / script), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(process: subprocess.Popen[str], timeout: float = 120) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return out


@pytest.mark.slow
def test_writer_killed_mid_push_leaves_previous_version_intact(tmp_path: Path) -> None:
    sys.path.insert(0, str(WORKERS))
    from check_load import assert_complete

    store = (tmp_path / "store").as_uri()
    finish(worker("push_loop.py", store, "big", 20_000, DIM, 1))  # version 1 exists before any kill
    client = MossClient("proj", store=store)
    index_dir = next((tmp_path / "store" / "projects").glob("*/*"))
    rng = random.Random(7)
    killed_mid_upload = 0
    for _ in range(20):
        before = client.sync.session("big").version
        process = worker("push_loop.py", store, "big", 20_000, DIM, 1000)
        time.sleep(rng.uniform(0.6, 2.0))  # import time, then mostly inside push_index
        process.send_signal(signal.SIGKILL)
        process.communicate()  # reaps it and closes its pipes
        killed_mid_upload += any(p.name.startswith(".tmp-") for p in index_dir.iterdir())
        session = client.sync.session("big")
        assert session.version >= before
        assert_complete(session, DIM)
    # The kills did land inside uploads (a dead writer's temporary file was left behind) ...
    assert killed_mid_upload >= 3, killed_mid_upload
    # ... and the next writer cleans up after dead ones: temporary files do not pile up.
    finish(worker("push_loop.py", store, "big", 20_000, DIM, 1))
    assert not [p for p in index_dir.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.slow
def test_concurrent_pushes_and_loads_see_only_complete_versions(tmp_path: Path) -> None:
    store = (tmp_path / "store").as_uri()
    stop = tmp_path / "stop"
    finish(worker("push_loop.py", store, "shared", 300, 64, 1))
    reader = worker("load_loop.py", store, "shared", 64, stop)
    writers = [worker("push_loop.py", store, "shared", 300, 64, 50) for _ in range(2)]
    for process in writers:
        assert finish(process).strip().endswith("done")
    stop.touch()
    loads = int(finish(reader).split()[-1])
    assert loads > 0
    assert MossClient("proj", store=store).sync.session("shared").version == 101


@pytest.mark.slow
def test_racing_conditional_pushes_have_exactly_one_winner(tmp_path: Path) -> None:
    store = (tmp_path / "store").as_uri()
    finish(worker("push_loop.py", store, "cas", 50, 16, 1))
    writers = [worker("push_loop.py", store, "cas", 50, 16, 50, "expected") for _ in range(2)]
    outcomes = [line.split() for p in writers for line in finish(p).splitlines() if line != "done"]
    wins = collections.Counter(int(expected) for expected, outcome in outcomes if outcome == "won")
    assert all(n == 1 for n in wins.values()), wins  # never two winners for one expected version
    final = MossClient("proj", store=store).sync.session("cas").version
    assert sorted(wins) == list(range(1, final))  # every new version came from exactly one win
    assert len(outcomes) == 100
