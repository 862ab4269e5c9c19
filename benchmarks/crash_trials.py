"""Kill a writer with SIGKILL at random points of push_index, many times; check every survivor.

Run: .venv/bin/python benchmarks/crash_trials.py [--trials 200] [--docs 20000]

The CI test (tests/test_processes.py) runs 20 trials; this script runs as many as you like and
reports how many kills landed mid-push (a temporary upload was left behind) and whether every
load afterwards was one complete version.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKERS = Path(__file__).resolve().parent.parent / "tests" / "workers"
sys.path.insert(0, str(WORKERS))

from check_load import assert_complete  # noqa: E402

from moss import MossClient  # noqa: E402

DIM = 384


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--docs", type=int, default=20_000)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(WORKERS)}
    push_loop = [sys.executable, str(WORKERS / "push_loop.py")]
    with tempfile.TemporaryDirectory() as temp:
        store = Path(temp, "store").as_uri()
        subprocess.run(
            [*push_loop, store, "big", str(args.docs), str(DIM), "1"], env=env, check=True
        )
        client = MossClient("proj", store=store)
        index_dir = next(Path(temp, "store", "projects").glob("*/*"))
        rng = random.Random(1)
        mid_push = advanced = 0
        for trial in range(args.trials):
            before = client.sync.session("big").version
            writer = subprocess.Popen(
                [*push_loop, store, "big", str(args.docs), str(DIM), "1000"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(rng.uniform(0.6, 2.0))
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            mid_push += any(p.name.startswith(".tmp-") for p in index_dir.iterdir())
            session = client.sync.session("big")
            assert_complete(session, DIM)
            advanced += session.version > before
            print(f"trial {trial + 1}: version {session.version}, {session.doc_count} docs intact")
    print(
        f"{args.trials} kills: every load complete; {mid_push} landed mid-upload "
        f"(temporary file left), {advanced} after at least one more version completed"
    )


if __name__ == "__main__":
    main()
