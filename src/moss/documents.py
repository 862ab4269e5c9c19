"""Turn user documents into validated columns and a vector matrix (shared by sync and async paths)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .embeddings import EmbeddingModel, normalize_rows
from .errors import InvalidArgumentError
from .index.gc_pause import gc_paused
from .types import DocumentInfo, QueryOptions
from .validation import (
    validate_alpha,
    validate_batch,
    validate_doc_id,
    validate_metadata,
    validate_text,
    validate_top_k,
    validate_vector,
)

# ASCII texts up to this many characters are within every size limit.
_FAST_TEXT_CHARS = 1 << 18


@dataclass
class PreparedDocs:
    """A validated batch: columns, the vectors the user brought, and which texts still need embedding."""

    ids: list[str]
    texts: list[str]
    metadata: list[dict[str, Any] | None]
    given_rows: list[int]
    given_vectors: npt.NDArray[np.float32] | None
    missing_rows: list[int]

    @property
    def texts_to_embed(self) -> list[str]:
        """The texts of documents that came without a vector."""
        return [self.texts[i] for i in self.missing_rows]


def prepare_docs(docs: object, model: EmbeddingModel, dimension: int | None) -> PreparedDocs:
    """Validate a batch of documents; raise InvalidArgumentError naming the first bad one."""
    with gc_paused():  # builds only acyclic lists: spare the collector's full-heap walks
        return _prepare_docs(docs, model, dimension)


def _prepare_docs(docs: object, model: EmbeddingModel, dimension: int | None) -> PreparedDocs:
    batch = validate_batch(docs)
    ids: list[str] = []
    texts: list[str] = []
    metadata: list[dict[str, Any] | None] = []
    given_rows: list[int] = []
    given: list[Any] = []
    missing_rows: list[int] = []
    for row, doc in enumerate(batch):
        if not isinstance(doc, DocumentInfo):
            raise InvalidArgumentError(
                f"documents must be DocumentInfo(id=..., text=...), got {type(doc).__name__} at position {row}"
            )
        doc_id = doc.id
        # Inline fast paths for short ASCII ids and texts; the validators handle the rest.
        if type(doc_id) is not str or not 0 < len(doc_id) <= 128 or not doc_id.isascii():
            doc_id = validate_doc_id(doc_id)
        text = doc.text
        if type(text) is not str or len(text) > _FAST_TEXT_CHARS or not text.isascii():
            text = validate_text(text, doc_id)
        ids.append(doc_id)
        texts.append(text)
        metadata.append(None if doc.metadata is None else validate_metadata(doc.metadata, doc_id))
        if doc.embedding is None:
            missing_rows.append(row)
        else:
            given_rows.append(row)
            given.append(doc.embedding)
    if missing_rows and model.requires_vectors:
        raise InvalidArgumentError(
            f"document {ids[missing_rows[0]]!r} has no embedding, and model {model.model_id!r} "
            "does not embed text: pass DocumentInfo(..., embedding=[...]) for every document"
        )
    return PreparedDocs(
        ids=ids,
        texts=texts,
        metadata=metadata,
        given_rows=given_rows,
        given_vectors=_stack_vectors(given, [ids[i] for i in given_rows], dimension),
        missing_rows=missing_rows,
    )


def _stack_vectors(
    vectors: list[Any], ids: list[str], dimension: int | None
) -> npt.NDArray[np.float32] | None:
    """Stack the given vectors into one normalised matrix, checking them all at once."""
    if not vectors:
        return None
    try:
        matrix = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError):
        matrix = None
    if (
        matrix is None
        or matrix.ndim != 2
        or (dimension is not None and matrix.shape[1] != dimension)
        or not np.isfinite(matrix).all()
    ):
        # Find the culprit to name it; this path only runs for bad input.
        expected = dimension if dimension is not None else _first_length(vectors)
        for doc_id, vector in zip(ids, vectors, strict=False):
            validate_vector(vector, expected, f"embedding of document {doc_id!r}")
        raise InvalidArgumentError("embeddings must all have the same number of dimensions")
    # asarray of a list always builds a new matrix: it is ours to normalise in place.
    return normalize_rows(matrix, copy=False)


def _first_length(vectors: list[Any]) -> int | None:
    try:
        return len(vectors[0])
    except TypeError:
        return None


def assemble_vectors(
    prepared: PreparedDocs, embedded: npt.NDArray[np.float32] | None, dimension: int
) -> npt.NDArray[np.float32]:
    """Merge brought and freshly embedded vectors into one (n, dimension) matrix in batch order."""
    if prepared.given_vectors is not None and not prepared.missing_rows:
        return prepared.given_vectors
    if embedded is not None and not prepared.given_rows:
        return embedded
    matrix = np.empty((len(prepared.ids), dimension), dtype=np.float32)
    if prepared.given_vectors is not None:
        matrix[prepared.given_rows] = prepared.given_vectors
    if embedded is not None:
        matrix[prepared.missing_rows] = embedded
    return matrix


def check_query_options(text: object, options: object) -> QueryOptions:
    """Check a query's text and options (None: the defaults); return the options."""
    options = options if options is not None else QueryOptions()
    if not isinstance(options, QueryOptions):
        raise InvalidArgumentError(f"options must be QueryOptions, got {type(options).__name__}")
    if not isinstance(text, str):
        raise InvalidArgumentError(f"query text must be a str, got {type(text).__name__}")
    if options.embedding is None and not text.strip():
        raise InvalidArgumentError(
            "the query text is empty: pass the text to search for, or a query vector in "
            "QueryOptions(embedding=[...])"
        )
    validate_top_k(options.top_k)
    validate_alpha(options.alpha)
    if options.min_score is not None and not isinstance(options.min_score, (int, float)):
        raise InvalidArgumentError(f"min_score must be a number, got {options.min_score!r}")
    return options
