"""Worker: push a session over and over, each version's content a function of its doc count.

Usage: push_loop.py STORE_URL NAME BASE_COUNT DIM ROUNDS [expected]
With ``expected``, every push is conditional on the version just loaded, and each outcome is
printed as ``<expected> won|conflict``.
"""

from __future__ import annotations

import sys

import numpy as np

from moss import ConflictError, DocumentInfo, MossClient


def version_docs(count: int, dim: int) -> list[DocumentInfo]:
    """The documents of the state with ``count`` documents (deterministic)."""
    vectors = np.random.default_rng(count).standard_normal((count, dim)).astype(np.float32)
    return [
        DocumentInfo(
            id=f"doc-{i}",
            text=f"text {i} of {count}",
            metadata={"count": count},
            embedding=vectors[i],
        )
        for i in range(count)
    ]


def main() -> None:
    store, name, base, dim, rounds = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    conditional = len(sys.argv) > 6 and sys.argv[6] == "expected"
    client = MossClient("proj", store=store)
    rng = np.random.default_rng()
    if not conditional:
        # Build one state, then spend the rest of the life pushing it: a kill at a random moment
        # then most likely lands inside push_index.
        session = client.sync.session(name, model_id="custom")
        session.sync.delete_docs([doc.id for doc in session.sync.get_docs()])
        session.sync.add_docs(version_docs(base + int(rng.integers(0, 50)), dim))
        for _ in range(rounds):
            session.sync.push_index()
        print("done", flush=True)
        return
    for _ in range(rounds):
        session = client.sync.session(name, model_id="custom")
        count = base + int(rng.integers(0, 50))
        session.sync.delete_docs([doc.id for doc in session.sync.get_docs()])
        session.sync.add_docs(version_docs(count, dim))
        expected = session.version
        try:
            session.sync.push_index(expected_version=expected)
            print(f"{expected} won", flush=True)
        except ConflictError:
            print(f"{expected} conflict", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
