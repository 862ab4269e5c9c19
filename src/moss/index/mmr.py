"""Maximal marginal relevance: the one MMR every adapter uses, so they pick the same documents."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..errors import InvalidArgumentError

__all__ = ["mmr_select"]


def mmr_select(
    query: npt.NDArray[np.floating],
    candidates: npt.NDArray[np.floating],
    k: int,
    lambda_mult: float = 0.5,
) -> list[int]:
    """Indices of up to ``k`` rows of ``candidates`` chosen by MMR, in the order chosen.

    ``query`` (d,) and the rows of ``candidates`` (n, d) are unit vectors, so a dot product is
    the cosine similarity. The first pick is the candidate most similar to the query; each later
    pick maximises ``lambda_mult * sim(query, c) - (1 - lambda_mult) * max(sim(c, picked))``:
    1 ranks by similarity alone, 0 by novelty alone. On equal scores the lower index wins, so
    passing candidates in their original rank order keeps the better-ranked one.

    >>> import numpy as np
    >>> rows = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> mmr_select(np.array([1.0, 0.0]), rows, k=2, lambda_mult=0.3)
    [0, 2]
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
    if isinstance(lambda_mult, bool) or not isinstance(lambda_mult, (int, float, np.floating)):
        raise InvalidArgumentError(f"lambda_mult must be a number from 0 to 1, got {lambda_mult!r}")
    if not 0.0 <= lambda_mult <= 1.0:
        raise InvalidArgumentError(f"lambda_mult must be from 0 to 1, got {lambda_mult}")
    vector = np.asarray(query, dtype=np.float64)
    matrix = np.asarray(candidates, dtype=np.float64)
    if (
        vector.ndim != 1
        or matrix.ndim != 2
        or (matrix.shape[0] and matrix.shape[1] != vector.shape[0])
    ):
        raise InvalidArgumentError(
            f"MMR needs a query of shape (d,) and candidates of shape (n, d), "
            f"got {vector.shape} and {matrix.shape}"
        )
    count = min(int(k), matrix.shape[0])
    if count == 0:
        return []
    # float64, so that rounding does not split scores that are equal in float32 (np.argmax takes
    # the first maximum: that is the lower-index tie-break).
    similarity = matrix @ vector
    picked = [int(np.argmax(similarity))]
    redundancy = matrix @ matrix[picked[0]]
    available = np.ones(matrix.shape[0], dtype=bool)
    available[picked[0]] = False
    while len(picked) < count:
        score = lambda_mult * similarity - (1.0 - lambda_mult) * redundancy
        score[~available] = -np.inf
        best = int(np.argmax(score))
        picked.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, matrix @ matrix[best])
    return picked
