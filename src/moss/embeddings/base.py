"""The interface every embedding model implements, and the vector helpers they share."""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..errors import InvalidArgumentError

FloatArray = npt.NDArray[np.float32]

MINILM_MODEL_ID = "moss-minilm"
CUSTOM_MODEL_ID = "custom"
#: Ids moss gives its own models; a wrapped embedder may not take them.
RESERVED_MODEL_IDS = (MINILM_MODEL_ID, CUSTOM_MODEL_ID)

# Rows normalised per step, so the temporaries stay small for million-row matrices.
_NORMALIZE_CHUNK = 1 << 16
# Guards every model's first bind_dimension; binding happens once per model, so one lock is enough.
_DIMENSION_LOCK = threading.Lock()


class EmbeddingModel(ABC):
    """A model that turns texts into L2-normalised float32 vectors.

    ``model_id`` is the name users see and compare; ``artifact_id`` identifies the exact model
    files (``"sha256:<hex>"`` for ``moss-minilm``, ``""`` when moss cannot know it).
    ``dimension`` is None only while a custom or wrapped model has not produced a vector yet.
    """

    model_id: str
    artifact_id: str = ""
    dimension: int | None = None
    #: True when documents and queries must carry their own vectors (the ``custom`` model).
    requires_vectors: bool = False

    @abstractmethod
    def embed_documents(self, texts: Sequence[str]) -> FloatArray:
        """Embed ``texts`` as a float32 matrix of shape (len(texts), dimension), rows of norm 1."""

    @abstractmethod
    def embed_query(self, text: str) -> FloatArray:
        """Embed one query as a float32 vector of shape (dimension,) and norm 1."""

    def embed_queries(self, texts: Sequence[str]) -> FloatArray:
        """Embed several queries as a float32 matrix (len(texts), dimension), rows of norm 1.

        Each row is what :meth:`embed_query` gives; models that can run queries as one batch
        override this.
        """
        texts = check_texts(texts)
        if not texts:
            return np.empty((0, self.dimension or 0), dtype=np.float32)
        return np.stack([self.embed_query(text) for text in texts])

    async def aembed_documents(self, texts: Sequence[str]) -> FloatArray:
        """Embed ``texts`` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_queries(self, texts: Sequence[str]) -> FloatArray:
        """Embed several queries in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.embed_queries, texts)

    async def aembed_query(self, text: str) -> FloatArray:
        """Embed one query in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.embed_query, text)

    def bind_dimension(self, dimension: int) -> int:
        """Fix the dimension if still unknown; refuse a different one once it is known."""
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
            raise InvalidArgumentError(f"a dimension is a positive integer, got {dimension!r}")
        # Two threads may learn the dimension at once; exactly one wins, the other is checked.
        with _DIMENSION_LOCK:
            if self.dimension is None:
                self.dimension = dimension
        if self.dimension != dimension:
            raise InvalidArgumentError(
                f"model {self.model_id!r} produces {self.dimension}-dimensional vectors, "
                f"got {dimension}: every vector of one index must have the same dimension"
            )
        return dimension

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r}, dimension={self.dimension!r})"


def check_texts(texts: object) -> list[str]:
    """Return ``texts`` as a list of str, refusing a bare string or non-str items."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise InvalidArgumentError(
            f"pass texts as a list of str, got {type(texts).__name__}; for one text use embed_query"
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidArgumentError(f"text {i} must be a str, got {type(text).__name__}")
    return list(texts)


def normalize_rows(matrix: npt.ArrayLike, *, copy: bool = True) -> FloatArray:
    """Return ``matrix`` as a float32 matrix whose rows have L2 norm 1.

    With ``copy=False`` a float32 input is normalised in place. Raises InvalidArgumentError
    for a matrix that is not 2-d or has a zero or non-finite row.
    """
    try:
        out = np.array(matrix, dtype=np.float32, copy=copy or None)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"vectors must be numbers: {exc}") from exc
    if out.ndim != 2:
        raise InvalidArgumentError(f"expected a 2-d matrix of vectors, got shape {out.shape}")
    for start in range(0, out.shape[0], _NORMALIZE_CHUNK):
        _normalize_in_place(out[start : start + _NORMALIZE_CHUNK], start)
    return out


# Rows whose squared norm is in this range normalise directly in float32; others (tiny, huge,
# zero or non-finite) take the careful path.
_SAFE_MIN, _SAFE_MAX = 1e-30, 1e30


def _normalize_in_place(rows: FloatArray, offset: int) -> None:
    squared = np.einsum("ij,ij->i", rows, rows)
    safe = (squared > _SAFE_MIN) & (squared < _SAFE_MAX)
    if not safe.all():
        _normalize_careful(rows, np.flatnonzero(~safe), offset)
        squared = np.einsum("ij,ij->i", rows, rows)
    rows /= np.sqrt(squared)[:, None]


def _normalize_careful(rows: FloatArray, which: npt.NDArray[np.intp], offset: int) -> None:
    # Dividing by the largest magnitude first keeps the sum of squares inside float32 range,
    # so tiny (1e-30) and huge (1e30) but valid vectors normalise instead of failing.
    subset = rows[which]
    scale = np.max(np.abs(subset), axis=1) if subset.shape[1] else np.zeros(len(which), np.float32)
    bad = ~np.isfinite(scale)
    if bad.any():
        raise InvalidArgumentError(
            f"vector {offset + int(which[np.argmax(bad)])} contains NaN or infinite values"
        )
    zero = scale == 0
    if zero.any():
        raise InvalidArgumentError(
            f"vector {offset + int(which[np.argmax(zero)])} is all zeros and has no direction; "
            "cosine similarity needs a non-zero vector"
        )
    subset /= scale[:, None]
    rows[which] = subset
