"""Running a VectorStoreQuery on a session: validate and translate it once, then let moss answer.

Only embedding the query text differs between the sync and async paths, so the store embeds it
between :func:`plan_query` and :func:`answer`. Filters, ranking and MMR are moss's own: this
module only translates LlamaIndex's request and result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

from moss import DocumentInfo, InvalidArgumentError, QueryOptions, Session
from moss.embeddings import normalize_rows
from moss.index.mmr import mmr_select
from moss.validation import MAX_TOP_K

from ._convert import doc_to_node
from ._filters import MossFilter, to_moss_filter

__all__ = ["DEFAULT_MMR_THRESHOLD", "QueryPlan", "answer", "plan_query", "to_nodes"]

Vector = npt.NDArray[np.float32]

#: LlamaIndex's default MMR trade-off (1 ranks by similarity alone, 0 by novelty alone).
DEFAULT_MMR_THRESHOLD = 0.5
_SUPPORTED_MODES = (
    VectorStoreQueryMode.DEFAULT,
    VectorStoreQueryMode.MMR,
    VectorStoreQueryMode.HYBRID,
    VectorStoreQueryMode.TEXT_SEARCH,
)


@dataclass(frozen=True)
class QueryPlan:
    """A validated query: what to rank, how, and the query vector if the caller brought one."""

    text: str
    vector: Vector | None
    top_k: int
    filter: MossFilter | None
    node_ids: list[str] | None
    mmr_threshold: float | None  # None: not an MMR query
    alpha: float
    include_embeddings: bool = False


def plan_query(query: VectorStoreQuery, kwargs: dict[str, Any], dimension: int | None) -> QueryPlan:
    """Check ``query`` and translate its filters; raise InvalidArgumentError for what moss cannot do."""
    mode = VectorStoreQueryMode(query.mode)
    if mode not in _SUPPORTED_MODES:
        raise InvalidArgumentError(
            f"query mode {mode.value!r} is not supported by MossVectorStore: use "
            "VectorStoreQueryMode.DEFAULT, MMR, HYBRID or TEXT_SEARCH"
        )
    if query.query_embedding is None and query.query_str is None:
        raise InvalidArgumentError("the query has neither query_embedding nor query_str")
    # VectorIndexRetriever passes node_ids=[] (its empty node table) to stores that keep text,
    # so an empty list means no restriction, for doc_ids too.
    node_ids = list(query.node_ids) if query.node_ids else None
    threshold = None
    if mode == VectorStoreQueryMode.MMR:
        threshold = query.mmr_threshold  # VectorIndexRetriever passes it in vector_store_kwargs
        threshold = kwargs.get("mmr_threshold") if threshold is None else threshold
        threshold = DEFAULT_MMR_THRESHOLD if threshold is None else threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise InvalidArgumentError(
                f"mmr_threshold must be a number in [0, 1], got {threshold!r}"
            )
        if not 0 <= threshold <= 1:
            raise InvalidArgumentError(
                f"mmr_threshold must be a number in [0, 1], got {threshold!r}"
            )
    vector = None
    if query.query_embedding is not None:
        vector = _unit_vector(query.query_embedding, dimension)
    return QueryPlan(
        text=query.query_str or "",
        vector=vector,
        top_k=_top_k(mode, query),
        filter=to_moss_filter(query.filters, query.doc_ids or None),
        node_ids=node_ids,
        mmr_threshold=threshold,
        alpha=_alpha(mode, query, local=node_ids is not None or threshold is not None),
        include_embeddings=bool(kwargs.get("include_embeddings", False)),
    )


def _alpha(mode: VectorStoreQueryMode, query: VectorStoreQuery, *, local: bool) -> float:
    """moss's alpha: TEXT_SEARCH 0 (keywords only), else ``query.alpha`` or moss's default.

    DEFAULT blends like HYBRID when there is query text (one default everywhere: the core's);
    without query text, or for MMR and node_ids restrictions, it ranks by vector alone, unless
    an ``alpha`` below 1 asks for keywords (then it raises, as HYBRID does: no silent fallback).
    """
    if mode == VectorStoreQueryMode.TEXT_SEARCH:
        alpha = 0.0
    elif mode == VectorStoreQueryMode.MMR:
        return 1.0
    else:
        alpha = QueryOptions().alpha if query.alpha is None else query.alpha
    keywords_asked = query.alpha is not None and query.alpha < 1.0
    if (
        mode == VectorStoreQueryMode.DEFAULT
        and (local or not query.query_str)
        and not keywords_asked
    ):
        return 1.0
    if not query.query_str:
        raise InvalidArgumentError(
            f"query mode {mode.value!r} searches keywords, so it needs query_str (the query text)"
        )
    if local and alpha < 1.0:
        raise InvalidArgumentError(
            f"query mode {mode.value!r} ranks by keywords inside moss, which cannot also "
            "restrict to node_ids: drop them, or use VectorStoreQueryMode.DEFAULT"
        )
    return float(alpha)


def _top_k(mode: VectorStoreQueryMode, query: VectorStoreQuery) -> int:
    """LlamaIndex's per-mode result counts, where given: hybrid_top_k and sparse_top_k."""
    k: Any = query.similarity_top_k
    if mode == VectorStoreQueryMode.HYBRID and query.hybrid_top_k:
        k = query.hybrid_top_k
    if mode == VectorStoreQueryMode.TEXT_SEARCH and query.sparse_top_k:
        k = query.sparse_top_k
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidArgumentError(f"similarity_top_k must be a positive integer, got {k!r}")
    return k


def _unit_vector(vector: Sequence[float] | npt.ArrayLike, dimension: int | None) -> Vector:
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or (dimension is not None and array.shape[0] != dimension):
        raise InvalidArgumentError(
            f"the query embedding has shape {array.shape}, but the session holds "
            f"{dimension}-dimensional vectors: embed the query with the session's model"
        )
    unit: Vector = normalize_rows(array[None, :])[0]
    return unit


def answer(session: Session, plan: QueryPlan, vector: Vector) -> VectorStoreQueryResult:
    """Rank the session's documents for ``plan`` against the query ``vector``.

    ``similarities`` follow the order of the results: the fused score where keywords take part
    (``alpha < 1``), else the cosine similarity (also for MMR, whose picks trade it for novelty).
    """
    # More than the session holds is all of it; beyond that moss's query limit applies.
    k = min(plan.top_k, max(session.doc_count, 1))
    if k > MAX_TOP_K:
        raise InvalidArgumentError(
            f"similarity_top_k is at most {MAX_TOP_K} in MossVectorStore (moss's query limit; "
            f"got {plan.top_k} for {session.doc_count} nodes): ask for fewer, or read every "
            "node with get_nodes()"
        )
    if plan.node_ids is None and plan.mmr_threshold is None:
        options = QueryOptions(top_k=k, embedding=vector, filter=plan.filter, alpha=plan.alpha)
        hits = session.sync.query(plan.text, options).docs
        ids = [hit.id for hit in hits]
        scores = [hit.score if hit.fused_score is None else hit.fused_score for hit in hits]
        docs = [DocumentInfo(id=hit.id, text=hit.text, metadata=hit.metadata) for hit in hits]
    else:
        docs, scores = _rank_candidates(session, plan, vector, k)
        ids = [doc.id for doc in docs]
    nodes = to_nodes(session, docs, plan.include_embeddings)
    return VectorStoreQueryResult(nodes=nodes, similarities=scores, ids=ids)


def _rank_candidates(
    session: Session, plan: QueryPlan, vector: Vector, k: int
) -> tuple[list[DocumentInfo], list[float]]:
    """MMR, or top k by cosine among ``node_ids``: moss's mmr_select (lambda 1 is plain top k)."""
    candidates = session.sync.get_docs(plan.node_ids, filter=plan.filter, include_embeddings=True)
    if not candidates:
        return [], []
    # By id, so that equal scores go to the smaller id, as in moss's own queries.
    candidates.sort(key=lambda doc: doc.id)
    matrix = np.asarray([doc.embedding for doc in candidates], dtype=np.float32)
    lam = 1.0 if plan.mmr_threshold is None else plan.mmr_threshold
    picked = mmr_select(vector, matrix, k, lambda_mult=lam)
    # Rounding can put a product of unit vectors a hair outside [-1, 1].
    cosine = np.clip(matrix[picked] @ vector, -1.0, 1.0).tolist()
    return [candidates[i] for i in picked], cosine


def to_nodes(
    session: Session, docs: Sequence[DocumentInfo], include_embeddings: bool
) -> list[BaseNode]:
    """The nodes stored as ``docs``; with their stored embeddings if asked for."""
    embeddings: dict[str, Any] = {}
    if include_embeddings and docs:
        stored = session.sync.get_docs([doc.id for doc in docs], include_embeddings=True)
        embeddings = {doc.id: doc.embedding for doc in stored}
    nodes = []
    for doc in docs:
        node = doc_to_node(doc.id, doc.text, doc.metadata)
        embedding = embeddings.get(doc.id)
        if embedding is not None:
            node.embedding = [float(x) for x in embedding]
        nodes.append(node)
    return nodes
