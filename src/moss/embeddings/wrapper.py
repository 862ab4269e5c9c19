"""Wrap a LangChain or LlamaIndex embedder (or any object with the same methods) as a moss model."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from ..validation import validate_name
from .base import RESERVED_MODEL_IDS, EmbeddingModel, FloatArray, check_texts, normalize_rows

# (sync batch, sync query, async batch, async query) method names of each supported style.
_STYLES = {
    "LangChain": ("embed_documents", "embed_query", "aembed_documents", "aembed_query"),
    "LlamaIndex": (
        "get_text_embedding_batch",
        "get_query_embedding",
        "aget_text_embedding_batch",
        "aget_query_embedding",
    ),
}


class EmbedderModel(EmbeddingModel):
    """Use your own embedder under a model id you choose.

    The embedder is LangChain-style (``embed_documents``, ``embed_query``, optionally
    ``aembed_documents``, ``aembed_query``) or LlamaIndex-style (``get_text_embedding_batch``,
    ``get_query_embedding``, optionally their ``aget_`` twins). Its async methods are awaited
    when present; otherwise the sync ones run in a worker thread. Vectors are checked and
    L2-normalised; the dimension is learned from the first one unless given::

        from langchain_openai import OpenAIEmbeddings
        model = EmbedderModel(OpenAIEmbeddings(), model_id="openai-3-small")
        vectors = model.embed_documents(["hello", "world"])

    Everyone sharing an index must wrap the same embedder under the same ``model_id``.
    Errors the embedder raises reach the caller unchanged.
    """

    artifact_id = ""

    def __init__(self, embedder: object, *, model_id: str, dimension: int | None = None) -> None:
        validate_name(model_id, what="model id")
        if model_id in RESERVED_MODEL_IDS:
            raise InvalidArgumentError(
                f"model id {model_id!r} is reserved for moss's own model; "
                "give your embedder a name of its own, such as 'openai-3-small'"
            )
        self.model_id = model_id
        self.dimension = None
        if dimension is not None:
            self.bind_dimension(dimension)
        self.embedder = embedder
        self._batch, self._query, self._abatch, self._aquery = _methods(embedder)

    def embed_documents(self, texts: Sequence[str]) -> FloatArray:
        """Embed ``texts`` with the embedder: float32 (len(texts), dimension), rows of norm 1."""
        batch = check_texts(texts)
        if not batch:
            return self._empty()
        return self._matrix(self._batch(batch), len(batch))

    def embed_query(self, text: str) -> FloatArray:
        """Embed one query with the embedder: float32 (dimension,), norm 1."""
        check_texts([text])
        return self._vector(self._query(text))

    async def aembed_documents(self, texts: Sequence[str]) -> FloatArray:
        """Embed ``texts`` without blocking the event loop."""
        batch = check_texts(texts)
        if not batch:
            return self._empty()
        if self._abatch is None:
            output = await asyncio.to_thread(self._batch, batch)
        else:
            output = await _await(self._abatch(batch))
        return self._matrix(output, len(batch))

    async def aembed_query(self, text: str) -> FloatArray:
        """Embed one query without blocking the event loop."""
        check_texts([text])
        if self._aquery is None:
            output = await asyncio.to_thread(self._query, text)
        else:
            output = await _await(self._aquery(text))
        return self._vector(output)

    async def aembed_queries(self, texts: Sequence[str]) -> FloatArray:
        """Embed several queries, concurrently when the embedder has an async query method."""
        batch = check_texts(texts)
        if self._aquery is None or not batch:
            return await asyncio.to_thread(self.embed_queries, batch)
        outputs = await asyncio.gather(*(_await(self._aquery(text)) for text in batch))
        return np.stack([self._vector(output) for output in outputs])

    def _empty(self) -> FloatArray:
        return np.empty((0, self.dimension or 0), dtype=np.float32)

    def _matrix(self, output: object, count: int) -> FloatArray:
        matrix = self._array(output)
        if matrix.ndim != 2 or matrix.shape[0] != count or matrix.shape[1] == 0:
            raise InvalidArgumentError(
                f"embedder {self.model_id!r} returned vectors of shape {matrix.shape} for "
                f"{count} texts: expected one non-empty vector per text"
            )
        self.bind_dimension(matrix.shape[1])
        return normalize_rows(matrix)

    def _vector(self, output: object) -> FloatArray:
        vector = self._array(output)
        if vector.ndim != 1 or vector.shape[0] == 0:
            raise InvalidArgumentError(
                f"embedder {self.model_id!r} returned a query vector of shape {vector.shape}: "
                "expected one non-empty list of floats"
            )
        self.bind_dimension(vector.shape[0])
        unit: FloatArray = normalize_rows(vector[None, :])[0]
        return unit

    def _array(self, output: object) -> FloatArray:
        try:
            return np.asarray(output, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"embedder {self.model_id!r} returned something that is not a list of "
                f"float vectors ({type(output).__name__}): {exc}"
            ) from exc


_Method = Callable[..., Any]


def _methods(embedder: object) -> tuple[_Method, _Method, _Method | None, _Method | None]:
    for names in _STYLES.values():
        batch, query, abatch, aquery = (getattr(embedder, name, None) for name in names)
        if callable(batch) and callable(query):
            return (
                batch,
                query,
                abatch if callable(abatch) else None,
                aquery if callable(aquery) else None,
            )
    styles = "; ".join(
        f"{style}: {names[0]}(texts) and {names[1]}(text)" for style, names in _STYLES.items()
    )
    raise InvalidArgumentError(
        f"{type(embedder).__name__} is not an embedder moss can wrap: it needs the methods of "
        f"one of these styles — {styles}"
    )


async def _await(result: object) -> object:
    # Duck-typed embedders may name a method aembed_* yet return the value directly.
    return await result if inspect.isawaitable(result) else result
