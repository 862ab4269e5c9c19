"""The public value types: documents in, query options, results out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

#: A JSON object: metadata values are strings, numbers, booleans, null, lists and nested objects.
Metadata = dict[str, Any]
#: A vector as the user gives it: a list of floats or a 1-d numpy array.
Vector = list[float] | tuple[float, ...] | npt.NDArray[np.floating[Any]]


@dataclass
class DocumentInfo:
    """A document to add, or one read back with ``get_docs``.

    ``embedding`` is optional for the built-in model (moss embeds ``text``) and required for
    ``custom`` sessions, which bring their own vectors.
    """

    id: str
    text: str
    metadata: Metadata | None = None
    embedding: Vector | None = None


@dataclass
class QueryOptions:
    """How to run a query.

    ``top_k`` results at most; ``embedding`` replaces embedding the query text (required for
    ``custom`` sessions); ``filter`` restricts candidates before ranking; ``min_score`` drops
    results whose cosine similarity is lower; ``alpha`` blends vector (1.0) and keyword (0.0)
    ranking.
    """

    top_k: int = 5
    embedding: Vector | None = None
    filter: dict[str, Any] | None = None
    min_score: float | None = None
    alpha: float = 1.0


@dataclass
class ResultDocument:
    """One result of a query; ``score`` is the cosine similarity to the query, higher is better."""

    id: str
    text: str
    metadata: Metadata | None
    score: float


@dataclass
class SearchResult:
    """The answer to a query: the ranked documents and how long the search took."""

    docs: list[ResultDocument]
    query: str
    index_name: str
    time_taken_ms: float


@dataclass(frozen=True)
class PushResult:
    """What a completed ``push_index`` stored: the new version and its document count."""

    index_name: str
    version: int
    doc_count: int


@dataclass(frozen=True)
class AddResult:
    """What ``add_docs`` changed: new ids added and existing ids replaced."""

    added: int
    updated: int


@dataclass(frozen=True)
class IndexInfo:
    """A stored version of an index, as ``list_indexes`` and ``inspect`` report it."""

    name: str
    version: int
    model_id: str
    dimension: int
    doc_count: int
    size_bytes: int
    created_at: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
