"""Worker: add distinct documents and push with merge=True, round after round.

Usage: merge_pusher.py STORE_URL PROJECT KEY NAME TAG ROUNDS PER_ROUND START_FILE
Waits for START_FILE so that several workers push at the same time.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from moss import DocumentInfo, MossClient


def main() -> None:
    store, project, key, name, tag = sys.argv[1:6]
    rounds, per_round = int(sys.argv[6]), int(sys.argv[7])
    start_file = sys.argv[8]
    client = MossClient(project, key, store=store)
    session = client.sync.session(name, model_id="custom")
    rng = np.random.default_rng(abs(hash(tag)) % 2**32)
    while not os.path.exists(start_file):
        time.sleep(0.01)
    for round_ in range(rounds):
        vectors = rng.standard_normal((per_round, 8)).astype(np.float32)
        session.sync.add_docs(
            [
                DocumentInfo(
                    id=f"{tag}-{round_}-{i}", text=f"{tag} {round_} {i}", embedding=vectors[i]
                )
                for i in range(per_round)
            ]
        )
        session.sync.push_index(merge=True)
    print(f"{tag} done at version {session.version}", flush=True)


if __name__ == "__main__":
    main()
