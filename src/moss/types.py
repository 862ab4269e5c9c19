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
    ``custom`` sessions, whatever ``alpha``); ``filter`` restricts candidates before ranking, on
    both sides; ``min_score`` drops results whose cosine similarity is lower, also in keyword
    and blended queries.

    ``alpha`` blends the two rankings: ``1.0`` vector only (no keyword work at all), ``0.0``
    keyword only (BM25), in between a weighted Reciprocal Rank Fusion of both; the default 0.4
    blends. Whatever the
    ranking, a result's ``score`` is its cosine similarity to the query; the fused value is
    ``fused_score``.

    ``ef_search`` raises (or lowers) the HNSW search breadth of an ``index="hnsw"`` session for
    this query (None: the index's own ``ef_search``, which by default grows with the index);
    flat sessions ignore it.
    """

    top_k: int = 5
    embedding: Vector | None = None
    filter: dict[str, Any] | None = None
    min_score: float | None = None
    #: Measured on SciFact's train split (benchmarks/bench_quality.py): nDCG@10 0.716 at 0.4,
    #: against 0.660 vector only and 0.695 keyword only.
    alpha: float = 0.4
    #: HNSW candidates explored per query (a positive int), None for the index's setting.
    ef_search: int | None = None


@dataclass
class ResultDocument:
    """One result of a query; ``score`` is the cosine similarity to the query, higher is better.

    ``score`` is the cosine whatever the ranking, also for keyword-only results. With
    ``alpha < 1`` results are ordered by ``fused_score``, the weighted Reciprocal Rank Fusion
    value ``alpha / (60 + vector_rank) + (1 - alpha) / (60 + keyword_rank)`` (a side where the
    document is not a candidate adds nothing); it is None for vector-only queries.
    ``index_name`` names the index the document came from (useful with ``query_multi_index``).
    """

    id: str
    text: str
    metadata: Metadata | None
    score: float
    fused_score: float | None = None
    index_name: str | None = None


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
    """A stored version of an index, as ``list_indexes`` and ``inspect`` report it.

    For a delta version, ``doc_count`` is the count its header records: the pusher's count
    after the change when the header carries one (``total_count``), else the number of
    documents the delta upserts; ``size_bytes`` is the delta's own size.
    """

    name: str
    version: int
    model_id: str
    dimension: int
    doc_count: int
    size_bytes: int
    created_at: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    #: ``"full"`` (a whole snapshot), ``"delta"`` (changes on top of the version before) or
    #: ``"compaction"`` (a whole snapshot equal to the version before, pushed to keep chains short).
    kind: str = "full"
    #: Who pushed the version and why (optional free text written by the pusher), or None.
    author: str | None = None
    message: str | None = None
    #: Deltas since the newest full snapshot up to this version, their total size in bytes,
    #: and the size of that full snapshot (pushers compact when the chain grows too long).
    chain_length: int = 0
    chain_bytes: int = 0
    base_bytes: int = 0


@dataclass(frozen=True)
class IndexDiff:
    """The document ids that differ between two versions of an index."""

    from_version: int
    to_version: int
    added: list[str]
    changed: list[str]
    deleted: list[str]
