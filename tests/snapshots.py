"""Build real snapshots for tests."""

from __future__ import annotations

import numpy as np

from moss.snapshot import encode_snapshot


def snapshot_bytes(
    name: str, count: int = 3, dimension: int = 8, seed: int = 0, model_id: str = "custom"
) -> bytes:
    """Encode a snapshot of ``count`` random normalised vectors with simple documents."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    _, chunks = encode_snapshot(
        index_name=name,
        model_id=model_id,
        model_artifact="",
        vectors=vectors,
        ids=[f"doc-{i}" for i in range(count)],
        texts=[f"text {i} of seed {seed}" for i in range(count)],
        metadata=[{"i": i, "seed": seed} for i in range(count)],
    )
    return b"".join(bytes(chunk) for chunk in chunks)
