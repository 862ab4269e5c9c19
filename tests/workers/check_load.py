"""Check that a loaded session is one complete version written by push_loop.py."""

from __future__ import annotations

import numpy as np

from moss import Session


def assert_complete(session: Session, dim: int) -> int:
    """Raise AssertionError unless every document matches the version its count names."""
    docs = session.sync.get_docs(include_embeddings=True)
    count = len(docs)
    assert count == session.doc_count
    assert count > 0
    expected = np.random.default_rng(count).standard_normal((count, dim)).astype(np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    by_id = {doc.id: doc for doc in docs}
    for i in (0, count // 2, count - 1):
        doc = by_id[f"doc-{i}"]
        assert doc.metadata == {"count": count}, doc.metadata
        assert doc.text == f"text {i} of {count}"
        assert np.allclose(np.asarray(doc.embedding), expected[i], atol=1e-6)
    return count
