"""VectorBlocks: exported views never change, whatever writes follow."""

from __future__ import annotations

import numpy as np

from moss.index.vector_blocks import VectorBlocks


def test_an_export_survives_a_later_smaller_export_and_a_write() -> None:
    """Regression: a second export after deletes lowered the rows guarded by the first one, so
    the next append wrote over what the first export still viewed (found by test_engine's
    state machine)."""
    blocks = VectorBlocks(8)
    blocks.append(np.ones((1, 8), np.float32))
    first = blocks.export()
    blocks.count = 0  # the one row deleted (as DocumentRows does, then shrinks)
    blocks.shrink()
    assert blocks.export().shape == (0, 8)
    blocks.append(np.full((1, 8), 2, np.float32))
    np.testing.assert_array_equal(first, np.ones((1, 8), np.float32))
    np.testing.assert_array_equal(blocks.matrix(), np.full((1, 8), 2, np.float32))


def test_a_first_append_fills_a_fresh_matrix_of_exactly_the_rows_asked() -> None:
    vectors = np.random.default_rng(0).standard_normal((1000, 8), dtype=np.float32)
    blocks = VectorBlocks(8)
    blocks.append(vectors)
    assert blocks.tail.shape == (1000, 8)
    np.testing.assert_array_equal(blocks.matrix(), vectors)
    blocks.append(vectors[:10])  # grows in place with headroom, keeping the rows
    assert blocks.tail.shape[0] >= 1250
    np.testing.assert_array_equal(blocks.matrix()[1000:], vectors[:10])
