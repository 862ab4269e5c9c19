"""Worker: add one document per step and push it (a delta, or a compaction when due).

Usage: delta_pusher.py STORE_URL NAME MODE TAG STEPS COMPACT_LENGTH COMPACT_RATIO START_FILE
MODE is ``merge`` or ``plain``. Each step adds ``TAG-<n>`` (n continues from the documents
of this tag already stored), prints ``begin full|delta <n>`` before the push and
``done <version> <n>`` after it. Waits for START_FILE (``-``: start at once) so several
workers push at the same time; exits 1 on any push error (a merge push must never give up).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from moss import DocumentInfo, MossClient, refresh_policy


def main() -> None:
    store, name, mode, tag = sys.argv[1:5]
    steps, start_file = int(sys.argv[5]), sys.argv[8]
    refresh_policy.COMPACT_CHAIN_LENGTH = int(sys.argv[6])
    refresh_policy.COMPACT_CHAIN_RATIO = float(sys.argv[7])
    client = MossClient("proj", store=store)
    session = client.sync.session(name, model_id="custom")
    first = sum(1 for doc in session.get_docs() if doc.id.startswith(f"{tag}-"))
    rng = np.random.default_rng(abs(hash(tag)) % 2**32)
    dimension = session.dimension or 16
    while start_file != "-" and not os.path.exists(start_file):
        time.sleep(0.01)
    for n in range(first, first + steps):
        vector = rng.standard_normal(dimension).astype(np.float32)
        session.add_docs([DocumentInfo(id=f"{tag}-{n}", text=f"{tag} step {n}", embedding=vector)])
        kind = "full" if session.version == 0 or session._core.compact_due() else "delta"
        print(f"begin {kind} {n}", flush=True)
        result = session.push_index(merge=mode == "merge")
        print(f"done {result.version} {n}", flush=True)


if __name__ == "__main__":
    main()
