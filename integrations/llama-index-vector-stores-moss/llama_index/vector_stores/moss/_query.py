"""Running a VectorStoreQuery on a session: validate it once, then answer it (sync and async share this).

Only embedding the query text differs between the sync and async paths, so the store embeds it
between :func:`plan_query` and :func:`answer`; everything here is local, in-memory work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from llama_index.core.vector_stores.types import (
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

from moss import DocumentInfo, InvalidArgumentError, QueryOptions, Session

from ._convert import doc_to_node
from ._filters import Selection, select
from ._ranking import mmr, top_k, unit_vector

__all__ = ["QueryPlan", "answer", "matching", "plan_query"]

Vector = npt.NDArray[np.float32]

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
    selection: Selection
    node_ids: list[str] | None
    mmr: bool
    mmr_threshold: float | None
    alpha: float = 1.0

    @property
    def engine_can_run(self) -> bool:
        """Whether one moss query answers it (no local predicate, id restriction or MMR)."""
        return self.selection.residual is None and self.node_ids is None and not self.mmr


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
    alpha = _alpha(mode, query)
    vector = None
    if query.query_embedding is not None:
        vector = unit_vector(query.query_embedding, dimension)
    threshold = query.mmr_threshold
    if threshold is None:  # VectorIndexRetriever passes it in vector_store_kwargs
        threshold = kwargs.get("mmr_threshold")
    plan = QueryPlan(
        text=query.query_str or "",
        vector=vector,
        top_k=_top_k(mode, query),
        # VectorIndexRetriever passes node_ids=[] (its empty node table) to stores that keep
        # text, so an empty list means no restriction, for doc_ids too.
        selection=select(query.filters, query.doc_ids or None),
        node_ids=list(query.node_ids) if query.node_ids else None,
        mmr=mode == VectorStoreQueryMode.MMR,
        mmr_threshold=threshold,
        alpha=alpha,
    )
    if alpha < 1.0 and not plan.engine_can_run:
        raise InvalidArgumentError(
            f"query mode {mode.value!r} ranks by keywords inside moss, which cannot also apply "
            "node_ids or these filters (they need a local check): drop them, or use "
            "VectorStoreQueryMode.DEFAULT"
        )
    return plan


def _alpha(mode: VectorStoreQueryMode, query: VectorStoreQuery) -> float:
    """moss's alpha: TEXT_SEARCH keyword only, HYBRID ``query.alpha`` (else moss's default)."""
    if mode == VectorStoreQueryMode.TEXT_SEARCH:
        alpha = 0.0
    elif mode == VectorStoreQueryMode.HYBRID:
        alpha = QueryOptions().alpha if query.alpha is None else query.alpha
    else:
        return 1.0
    if not query.query_str:
        raise InvalidArgumentError(
            f"query mode {mode.value!r} searches keywords, so it needs query_str (the query text)"
        )
    return alpha


def _top_k(mode: VectorStoreQueryMode, query: VectorStoreQuery) -> int:
    """LlamaIndex's per-mode result counts, where given: hybrid_top_k and sparse_top_k."""
    if mode == VectorStoreQueryMode.HYBRID and query.hybrid_top_k:
        return query.hybrid_top_k
    if mode == VectorStoreQueryMode.TEXT_SEARCH and query.sparse_top_k:
        return query.sparse_top_k
    return query.similarity_top_k


def answer(session: Session, plan: QueryPlan, vector: Vector) -> VectorStoreQueryResult:
    """Rank the session's documents for ``plan`` against the query ``vector``."""
    if plan.engine_can_run:
        options = QueryOptions(
            top_k=plan.top_k, embedding=vector, filter=plan.selection.pushdown, alpha=plan.alpha
        )
        hits = session.sync.query(plan.text, options).docs
        return VectorStoreQueryResult(
            nodes=[doc_to_node(hit.id, hit.text, hit.metadata) for hit in hits],
            similarities=[hit.score for hit in hits],
            ids=[hit.id for hit in hits],
        )
    candidates = matching(session, plan.selection, plan.node_ids)
    ids = [doc.id for doc in candidates]
    vectors = _vectors(session, ids)
    if plan.mmr:
        ranked, scores = mmr(ids, vectors, vector, plan.top_k, plan.mmr_threshold)
    else:
        ranked, scores = top_k(ids, vectors, vector, plan.top_k)
    by_id = {doc.id: doc for doc in candidates}
    nodes = [doc_to_node(i, by_id[i].text, by_id[i].metadata) for i in ranked]
    return VectorStoreQueryResult(nodes=nodes, similarities=scores, ids=ranked)


def matching(
    session: Session, selection: Selection, node_ids: list[str] | None
) -> list[DocumentInfo]:
    """The session's documents among ``node_ids`` (all if None) that pass ``selection``."""
    docs = session.sync.get_docs(node_ids, filter=selection.pushdown)
    residual = selection.residual
    return docs if residual is None else [doc for doc in docs if residual(doc.metadata or {})]


def _vectors(session: Session, ids: list[str]) -> Vector:
    if not ids:
        return np.empty((0, session.dimension or 0), dtype=np.float32)
    docs = session.sync.get_docs(ids, include_embeddings=True)
    return np.asarray([doc.embedding for doc in docs], dtype=np.float32)
