"""Exact ranking of a candidate set: top-k by cosine similarity, and maximal marginal relevance.

Used when moss's own search cannot run the request as it stands: a filter part only this package
evaluates, a restriction to node ids, or MMR. Vectors come from the session already normalised,
so a dot product is the cosine similarity, computed as the engine computes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from moss import InvalidArgumentError
from moss.embeddings import normalize_rows

__all__ = ["Ranked", "mmr", "top_k", "unit_vector"]

Matrix = npt.NDArray[np.float32]
#: (ids, cosine similarities), best first.
Ranked = tuple[list[str], list[float]]

DEFAULT_MMR_THRESHOLD = 0.5


def unit_vector(vector: Sequence[float] | npt.ArrayLike, dimension: int | None) -> Matrix:
    """``vector`` as a float32 unit vector of the session's dimension."""
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or (dimension is not None and array.shape[0] != dimension):
        raise InvalidArgumentError(
            f"the query embedding has shape {array.shape}, but the session holds "
            f"{dimension}-dimensional vectors: embed the query with the session's model"
        )
    unit: Matrix = normalize_rows(array[None, :])[0]
    return unit


def _scores(vectors: Matrix, query: Matrix) -> Matrix:
    # Rounding can put a product of unit vectors a hair outside [-1, 1].
    scores: Matrix = np.clip(vectors @ query, -1.0, 1.0)
    return scores


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidArgumentError(f"similarity_top_k must be a positive integer, got {k!r}")
    return k


def top_k(ids: Sequence[str], vectors: Matrix, query: Matrix, k: int) -> Ranked:
    """The ``k`` most similar candidates; equal scores are ordered by id, as the engine does."""
    _check_k(k)
    if not ids:
        return [], []
    scores = _scores(vectors, query).tolist()
    ranked = sorted(zip(scores, ids, strict=True), key=lambda pair: (-pair[0], pair[1]))[:k]
    return [doc_id for _, doc_id in ranked], [score for score, _ in ranked]


def mmr(
    ids: Sequence[str], vectors: Matrix, query: Matrix, k: int, threshold: float | None
) -> Ranked:
    """Pick ``k`` candidates by maximal marginal relevance; report their cosine similarities.

    Each pick maximises ``threshold * sim(query, d) - (1 - threshold) * max(sim(d, s))`` over
    the picks ``s`` so far (the first pick is the most similar): 1 ranks by similarity alone,
    0 by diversity alone. Equal values go to the smaller id.
    """
    _check_k(k)
    lam = DEFAULT_MMR_THRESHOLD if threshold is None else threshold
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not 0 <= lam <= 1:
        raise InvalidArgumentError(f"mmr_threshold must be a number in [0, 1], got {threshold!r}")
    if not ids:
        return [], []
    # Sorting by id first makes argmax (first maximum) break ties by id.
    order = sorted(range(len(ids)), key=ids.__getitem__)
    ordered_ids = [ids[i] for i in order]
    matrix = vectors[order]
    relevance = _scores(matrix, query).astype(np.float64)
    redundancy = np.full(len(ordered_ids), -np.inf)
    available = np.ones(len(ordered_ids), dtype=bool)
    picked: list[int] = []
    for _ in range(min(k, len(ordered_ids))):
        # The first pick is the most relevant; later ones trade relevance for novelty.
        value = lam * relevance - (1 - lam) * redundancy if picked else relevance.copy()
        value[~available] = -np.inf
        best = int(np.argmax(value))
        picked.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, matrix @ matrix[best])
    return [ordered_ids[i] for i in picked], [float(relevance[i]) for i in picked]
