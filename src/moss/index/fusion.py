"""Hybrid ranking: gather vector and keyword candidates, blend them by weighted Reciprocal Rank Fusion.

``alpha`` weighs the two rankings: a document's fused value is

    alpha / (RRF_K + vector_rank) + (1 - alpha) / (RRF_K + keyword_rank)

with 1-based ranks, a side where the document is not a candidate adding nothing. Each side
ranks its own ``candidate_depth(top_k)`` best documents, after the filter (so both sides rank
only matching documents) and after ``min_score`` (which always means cosine similarity: keyword
candidates get their cosine computed from the stored vectors). Ranks, not raw scores, are
blended because cosine and BM25 live on unrelated scales (Cormack et al. 2009).

The same code ranks one session or several (``query_multi_index``): candidates are keyed by
(index name, document id) and each side's ranking is merged across indexes by its own score.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..types import ResultDocument
from .engine import Engine, StoredDoc
from .filters import compile_filter
from .keyword import KeywordIndex

__all__ = [
    "RRF_K",
    "Candidates",
    "Hit",
    "candidate_depth",
    "gather",
    "gather_many",
    "merge_rankings",
    "rank",
    "to_results",
    "weighted_rrf",
]

#: The RRF constant: 60, as in the paper and in most engines (Elasticsearch, OpenSearch).
RRF_K = 60
#: Each side ranks this many times ``top_k`` candidates (at least _MIN_DEPTH).
DEPTH_FACTOR = 4
_MIN_DEPTH = 20


@dataclass(frozen=True)
class Hit:
    """A candidate: which index, the document, its cosine, and the score its side ranked it by."""

    index_name: str
    doc: StoredDoc
    cosine: float
    rank_score: float  # cosine on the vector side, BM25 on the keyword side

    @property
    def key(self) -> tuple[str, str]:
        return self.index_name, self.doc.id


@dataclass
class Candidates:
    """Both sides' rankings, best first."""

    vector: list[Hit]
    keyword: list[Hit]


def candidate_depth(top_k: int) -> int:
    """How many candidates each side ranks for a blended query of ``top_k``."""
    return max(DEPTH_FACTOR * top_k, _MIN_DEPTH)


def gather(
    index_name: str,
    engine: Engine,
    keywords: KeywordIndex | None,
    lock: threading.Lock,
    vector: npt.NDArray[np.float32],
    text: str,
    *,
    alpha: float,
    depth: int,
    filter: Mapping[str, Any] | None,
    min_score: float | None,
    ef_search: int | None = None,
) -> Candidates:
    """Each side's best ``depth`` candidates in one session; a side of weight 0 is skipped.

    ``lock`` is the session's write lock: holding it while the keyword candidates' documents
    and vectors are read keeps both reads on the same state as the keyword index.
    """
    return gather_many(
        index_name,
        engine,
        keywords,
        lock,
        vector[np.newaxis, :],
        [text],
        alpha=alpha,
        depth=depth,
        filter=filter,
        min_score=min_score,
        ef_search=ef_search,
    )[0]


def gather_many(
    index_name: str,
    engine: Engine,
    keywords: KeywordIndex | None,
    lock: threading.Lock,
    vectors: npt.NDArray[np.float32],
    texts: Sequence[str],
    *,
    alpha: float,
    depth: int,
    filter: Mapping[str, Any] | None,
    min_score: float | None,
    ef_search: int | None = None,
) -> list[Candidates]:
    """:func:`gather` for each row of ``vectors`` (with its text): one product for the vector
    side (``Engine.search_many``, ``ef_search`` overriding an hnsw index's breadth), the
    keyword side query by query."""
    count = vectors.shape[0]
    vector_hits: list[list[Hit]] = [[] for _ in range(count)]
    if alpha > 0.0:
        found = engine.search_many(
            vectors, depth, filter=filter, min_score=min_score, ef_search=ef_search
        )
        vector_hits = [[Hit(index_name, doc, score, score) for doc, score in row] for row in found]
    keyword_hits: list[list[Hit]] = [[] for _ in range(count)]
    if alpha < 1.0 and keywords is not None:
        predicate = compile_filter(filter)
        for i, text in enumerate(texts):
            ranked = keywords.search(text, depth, predicate)
            with lock:
                docs = engine.get([doc_id for doc_id, _ in ranked])
                stored = engine.vectors_for([doc.id for doc in docs])
            bm25 = dict(ranked)
            cosines = np.clip(stored @ vectors[i], -1.0, 1.0).tolist() if docs else []
            keyword_hits[i] = [
                Hit(index_name, doc, cosine, bm25[doc.id])
                for doc, cosine in zip(docs, cosines, strict=True)
                if min_score is None or cosine >= min_score
            ]
    return [Candidates(v, k) for v, k in zip(vector_hits, keyword_hits, strict=True)]


def merge_rankings(parts: Sequence[Candidates]) -> Candidates:
    """One global ranking per side from several indexes' rankings (each by its own score)."""
    if len(parts) == 1:
        return parts[0]

    def order(hit: Hit) -> tuple[float, str, str]:
        return -hit.rank_score, hit.index_name, hit.doc.id

    return Candidates(
        sorted((hit for part in parts for hit in part.vector), key=order),
        sorted((hit for part in parts for hit in part.keyword), key=order),
    )


def weighted_rrf(candidates: Candidates, alpha: float, top_k: int) -> list[tuple[Hit, float]]:
    """The ``top_k`` best hits by fused value, with that value.

    Ties go to the better vector rank, then the better keyword rank, then by index and id.
    """
    missing = len(candidates.vector) + len(candidates.keyword) + 1
    fused: dict[tuple[str, str], list[float]] = {}
    hits: dict[tuple[str, str], Hit] = {}
    for rank, hit in enumerate(candidates.vector, start=1):
        hits[hit.key] = hit
        fused[hit.key] = [alpha / (RRF_K + rank), rank, missing]
    for rank, hit in enumerate(candidates.keyword, start=1):
        hits.setdefault(hit.key, hit)
        entry = fused.setdefault(hit.key, [0.0, missing, missing])
        entry[0] += (1.0 - alpha) / (RRF_K + rank)
        entry[2] = rank
    order = sorted(fused.items(), key=lambda item: (-item[1][0], item[1][1], item[1][2], item[0]))
    return [(hits[key], entry[0]) for key, entry in order[:top_k]]


def rank(candidates: Candidates, alpha: float, top_k: int) -> list[tuple[Hit, float | None]]:
    """The final ``top_k``: by cosine at ``alpha`` 1 (no fused value), else by weighted RRF."""
    if alpha >= 1.0:
        return [(hit, None) for hit in candidates.vector[:top_k]]
    return list(weighted_rrf(candidates, alpha, top_k))


def to_results(ranked: Sequence[tuple[Hit, float | None]]) -> list[ResultDocument]:
    """Result documents: ``score`` the cosine, ``fused_score`` the fused value (None: vector only)."""
    return [
        ResultDocument(
            id=hit.doc.id,
            text=hit.doc.text,
            metadata=hit.doc.metadata,
            score=hit.cosine,
            fused_score=fused,
            index_name=hit.index_name,
        )
        for hit, fused in ranked
    ]
