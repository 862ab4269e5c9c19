"""moss.index.mmr: the one MMR both adapters use (selection, tie-break, validation)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import moss.index.mmr
from moss import InvalidArgumentError
from moss.embeddings import normalize_rows
from moss.index.mmr import mmr_select


def unit(rows: list[list[float]]) -> np.ndarray:
    return normalize_rows(np.asarray(rows, dtype=np.float32))


def test_docstring_example_holds() -> None:
    assert doctest.testmod(moss.index.mmr).failed == 0


def test_first_pick_is_most_similar_then_diversity_wins() -> None:
    query = unit([[1.0, 0.0]])[0]
    candidates = unit([[0.9, 0.1], [1.0, 0.0], [0.95, 0.05], [0.0, 1.0]])
    assert mmr_select(query, candidates, k=2, lambda_mult=0.3) == [1, 3]
    # lambda 1 is plain similarity ranking.
    assert mmr_select(query, candidates, k=4, lambda_mult=1.0) == [1, 2, 0, 3]


def test_equal_scores_go_to_the_lower_index() -> None:
    query = unit([[1.0, 0.0]])[0]
    # Rows 1 and 2 are the same vector, rows 0 and 3 too: the lower index must win each tie.
    candidates = unit([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert mmr_select(query, candidates, k=4, lambda_mult=0.5) == [1, 0, 2, 3]
    assert mmr_select(query, candidates, k=4, lambda_mult=0.0) == [1, 0, 2, 3]


def test_matches_langchain_reference_selection() -> None:
    from langchain_core.vectorstores.utils import maximal_marginal_relevance

    rng = np.random.default_rng(7)
    for _ in range(20):
        candidates = normalize_rows(rng.standard_normal((30, 8)).astype(np.float32))
        query = normalize_rows(rng.standard_normal((1, 8)).astype(np.float32))[0]
        expected = maximal_marginal_relevance(query, list(candidates), lambda_mult=0.3, k=6)
        assert mmr_select(query, candidates, k=6, lambda_mult=0.3) == expected


def test_k_larger_than_candidates_and_empty() -> None:
    query = unit([[1.0, 0.0]])[0]
    assert mmr_select(query, unit([[1.0, 0.0], [0.0, 1.0]]), k=10) == [0, 1]
    assert mmr_select(query, np.empty((0, 2), dtype=np.float32), k=3) == []


@pytest.mark.parametrize(
    ("k", "lambda_mult"),
    [(0, 0.5), (-1, 0.5), (True, 0.5), (2.0, 0.5), (2, 1.5), (2, -0.1), (2, "x")],
)
def test_bad_arguments_are_refused(k: object, lambda_mult: object) -> None:
    query = unit([[1.0, 0.0]])[0]
    with pytest.raises(InvalidArgumentError):
        mmr_select(query, unit([[1.0, 0.0]]), k=k, lambda_mult=lambda_mult)  # type: ignore[arg-type]


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="shape"):
        mmr_select(np.ones(3, dtype=np.float32), np.ones((2, 2), dtype=np.float32), k=1)
