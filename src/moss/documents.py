"""Turn user documents into validated columns and a vector matrix (shared by sync and async paths)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from .embeddings import EmbeddingModel, normalize_rows
from .embeddings.progress import CHUNK_TEXTS, progress_reporter
from .errors import InvalidArgumentError
from .flow import Flow, Io
from .index.gc_pause import gc_paused
from .types import DocumentInfo, QueryOptions
from .validation import (
    MAX_BATCH,
    validate_alpha,
    validate_batch,
    validate_doc_id,
    validate_metadata,
    validate_text,
    validate_top_k,
    validate_vector,
)

Matrix = npt.NDArray[np.float32]
#: Finds the ``(ids[i], texts[i])`` pairs already stored: their positions and stored vectors.
Unchanged = Callable[[Sequence[str], Sequence[str]], "tuple[list[int], Matrix | None]"]

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


@dataclass
class EmbedPlan:
    """What a batch really embeds: stored vectors of unchanged texts are reused, repeated texts
    embedded once."""

    texts: list[str]  # distinct texts to embed
    rows: list[int]  # batch rows that take an embedded vector ...
    which: list[int]  # ... the one of texts[which[i]]
    reused_rows: list[int]  # batch rows whose id already holds this text
    reused: npt.NDArray[np.float32] | None  # ... and their stored vectors


def plan_embedding(prepared: PreparedDocs, unchanged: Unchanged) -> EmbedPlan:
    """Which texts of ``prepared`` need the model (``unchanged`` finds stored, identical texts)."""
    missing = prepared.missing_rows
    all_ids, all_texts = prepared.ids, prepared.texts
    positions, reused = unchanged([all_ids[r] for r in missing], [all_texts[r] for r in missing])
    skip = set(positions)
    distinct: dict[str, int] = {}
    rows: list[int] = []
    which: list[int] = []
    for i, row in enumerate(missing):
        if i not in skip:
            rows.append(row)
            which.append(distinct.setdefault(all_texts[row], len(distinct)))
    return EmbedPlan(list(distinct), rows, which, [missing[i] for i in positions], reused)


def embed_texts(model: EmbeddingModel, texts: list[str], progress: object) -> Flow[Matrix]:
    """Embed ``texts`` (blocking or awaited), in chunks when progress is reported."""
    reporter = progress_reporter(progress, len(texts))
    if reporter is None:
        whole: Matrix = yield Io(
            lambda: model.embed_documents(texts), lambda: model.aembed_documents(texts)
        )
        return whole
    # Length-sorted chunks keep the padding per model batch as low as one big call would.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    parts: list[Matrix] = []
    try:
        for start in range(0, len(order), CHUNK_TEXTS):
            chunk = [texts[i] for i in order[start : start + CHUNK_TEXTS]]
            part = yield Io(
                partial(model.embed_documents, chunk), partial(model.aembed_documents, chunk)
            )
            parts.append(part)
            reporter.advance(len(chunk), len(texts))
    finally:
        reporter.close()
    out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
    out[order] = np.concatenate(parts)
    return out


def assemble_vectors(
    prepared: PreparedDocs, plan: EmbedPlan, embedded: Matrix | None, dimension: int
) -> Matrix:
    """Merge brought, reused and freshly embedded vectors into one (n, dimension) matrix in
    batch order."""
    if prepared.given_vectors is not None and not prepared.missing_rows:
        return prepared.given_vectors
    identity = len(plan.rows) == len(plan.texts)  # no repeated texts
    if embedded is not None and identity and len(plan.rows) == len(prepared.ids):
        return embedded
    matrix = np.empty((len(prepared.ids), dimension), dtype=np.float32)
    if prepared.given_vectors is not None:
        matrix[prepared.given_rows] = prepared.given_vectors
    if plan.reused is not None:
        matrix[plan.reused_rows] = plan.reused
    if embedded is not None:
        matrix[plan.rows] = embedded if identity else embedded[plan.which]
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


@dataclass
class Columns:
    """A validated columnar batch for ``add_arrays``: unique ids, texts, metadata, unit vectors."""

    ids: list[str]
    texts: list[str]
    metadata: list[dict[str, Any] | None]
    vectors: Matrix


# Squared norms this close to 1 are taken as normalised already (cosines then err by < 1e-5),
# so a unit-vector matrix is passed on without a normalised copy of it.
_UNIT_TOLERANCE = 1e-5
# Strings checked per join in the ASCII fast path (bounds the joined string's size).
_JOIN_CHUNK = 8192


def prepare_columns(
    ids: object, texts: object, vectors: object, metadata: object, dimension: int | None
) -> Columns:
    """Validate ``add_arrays`` columns as columns (no per-document objects); raise
    InvalidArgumentError naming the first bad value."""
    id_list = _string_column(ids, "ids")
    count = len(id_list)
    if count > MAX_BATCH:
        raise InvalidArgumentError(
            f"a batch holds at most {MAX_BATCH} documents, got {count}: split it into smaller batches"
        )
    text_list = _string_column(texts, "texts")
    if len(text_list) != count:
        raise InvalidArgumentError(f"got {count} ids and {len(text_list)} texts: pass one per id")
    if not _fast_strings(id_list, 128):
        for doc_id in id_list:
            validate_doc_id(doc_id)
    if len(set(id_list)) != count:
        seen: set[str] = set()
        first = next(doc_id for doc_id in id_list if doc_id in seen or seen.add(doc_id))  # type: ignore[func-returns-value]
        raise InvalidArgumentError(f"ids must be unique: {first!r} appears more than once")
    if not _fast_strings(text_list, _FAST_TEXT_CHARS, allow_empty=True):
        for doc_id, text in zip(id_list, text_list, strict=True):
            validate_text(text, doc_id)
    return Columns(
        id_list,
        text_list,
        _metadata_column(metadata, id_list),
        _unit_matrix(vectors, count, dimension),
    )


def _string_column(values: object, what: str) -> list[str]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise InvalidArgumentError(f"{what} must be a list of str, got {type(values).__name__}")
    column: list[str] = values if type(values) is list else list(values)
    if column and set(map(type, column)) != {str}:
        bad = next(i for i, value in enumerate(column) if type(value) is not str)
        raise InvalidArgumentError(
            f"{what} must be str; {what}[{bad}] is {type(column[bad]).__name__}"
        )
    return column


def _fast_strings(values: list[str], max_chars: int, *, allow_empty: bool = False) -> bool:
    """True if every value is ASCII and 1..max_chars long (0 allowed with ``allow_empty``):
    then it passes every check, found with C-level loops only."""
    if not values:
        return True
    if max(map(len, values)) > max_chars or (not allow_empty and min(map(len, values)) == 0):
        return False
    return all(
        "".join(values[i : i + _JOIN_CHUNK]).isascii() for i in range(0, len(values), _JOIN_CHUNK)
    )


def _metadata_column(metadata: object, ids: list[str]) -> list[dict[str, Any] | None]:
    if metadata is None:
        return [None] * len(ids)
    if not isinstance(metadata, Sequence) or isinstance(metadata, (str, bytes)):
        raise InvalidArgumentError(
            f"metadata must be None or a list of dicts (one per id), got {type(metadata).__name__}"
        )
    if len(metadata) != len(ids):
        raise InvalidArgumentError(
            f"got {len(ids)} ids and {len(metadata)} metadata entries: pass one per id (or None)"
        )
    return [validate_metadata(value, doc_id) for value, doc_id in zip(metadata, ids, strict=True)]


def _unit_matrix(vectors: object, count: int, dimension: int | None) -> Matrix:
    try:
        matrix = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"vectors must be a matrix of numbers: {exc}") from exc
    expected = f"({count}, {dimension if dimension is not None else 'dimension'})"
    if matrix.ndim != 2 or matrix.shape[0] != count or matrix.shape[1] == 0:
        raise InvalidArgumentError(f"vectors must have shape {expected}, got {matrix.shape}")
    if dimension is not None and matrix.shape[1] != dimension:
        raise InvalidArgumentError(
            f"vectors must have shape {expected} (this index's dimension), got {matrix.shape}"
        )
    # Checked in chunks so no matrix-sized temporary is made; NaN and inf fail the test too.
    for start in range(0, count, 1 << 16):
        chunk = matrix[start : start + (1 << 16)]
        squared = np.einsum("ij,ij->i", chunk, chunk)
        if not (np.abs(squared - 1.0) <= _UNIT_TOLERANCE).all():
            # Not unit vectors: normalise a copy (the caller's matrix is never changed); this
            # names the first zero or non-finite row.
            return normalize_rows(matrix, copy=True)
    return matrix
