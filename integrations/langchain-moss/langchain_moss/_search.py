"""Search arguments per search type, query options, and scores (pure: shared by sync and async).

Each search type accepts what LangChain's own stores (InMemoryVectorStore, FAISS) accept for it,
so ``as_retriever(search_kwargs=...)`` moves between stores; anything else is refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.documents import Document

from moss import InvalidArgumentError, QueryOptions, SearchResult
from moss.index.fusion import RRF_K

from ._records import FloatArray, to_document

#: A metadata filter: the plain form ``{"genre": "faq", "year": {"$gte": 2020}}`` or moss's
#: ``{"field": "genre", "condition": {"$eq": "faq"}}``, combined with ``$and``/``$or``/``$not``.
Filter = dict[str, Any]

#: Arguments of similarity searches beyond ``query``/``embedding``: ``fetch_k`` is accepted as
#: FAISS does and changes nothing (moss filters inside the index, so no candidate pool runs short).
SIMILARITY_ARGS = ("k", "filter", "alpha", "score_threshold", "fetch_k")
#: Arguments of maximal-marginal-relevance searches beyond ``query``/``embedding``.
MMR_ARGS = ("k", "fetch_k", "lambda_mult", "filter")
#: A vector-only query: MMR and searches by vector have no text for keyword ranking.
VECTOR_ONLY = 1.0
# The highest fused value: first on both rankings, alpha / (RRF_K + 1) + (1 - alpha) / (RRF_K + 1).
_FUSED_MAX = 1.0 / (RRF_K + 1)


def reject_extra(kwargs: Mapping[str, Any], method: str, accepted: tuple[str, ...]) -> None:
    """Refuse keyword arguments the method does not know, so a typo is never silently ignored."""
    if kwargs:
        raise InvalidArgumentError(
            f"{method} got unknown argument(s) {sorted(kwargs)}; it accepts {', '.join(accepted)}"
        )


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    return value


def _fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidArgumentError(f"{name} must be a number from 0 to 1, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Search:
    """One checked search request: how many, which filter, how to rank and cut off."""

    k: int
    filter: Filter | None = None
    #: None: the core's default blend (``QueryOptions.alpha``, 0.4, chosen on SciFact).
    alpha: float | None = None
    score_threshold: float | None = None
    fetch_k: int = 20
    lambda_mult: float = 0.5

    def options(
        self, vector: FloatArray | None = None, *, top_k: int | None = None
    ) -> QueryOptions:
        """The core query options; a cosine cut-off is applied in the index when ranking by cosine."""
        extra: dict[str, Any] = {} if self.alpha is None else {"alpha": self.alpha}
        min_score = None
        if self.alpha == VECTOR_ONLY and self.score_threshold is not None:
            # Relevance clips negative cosine to 0: only a positive threshold is a cut-off.
            min_score = self.score_threshold if self.score_threshold > 0 else None
        return QueryOptions(
            top_k=top_k or self.k, embedding=vector, filter=self.filter, min_score=min_score,
            **extra,
        )  # fmt: skip


def similarity(method: str, k: Any, filter: Filter | None, kwargs: dict[str, Any]) -> Search:
    """Check the arguments of a similarity search (``alpha``, ``score_threshold``... in kwargs)."""
    filter = kwargs.pop("filter", filter)
    alpha = kwargs.pop("alpha", None)
    threshold = kwargs.pop("score_threshold", None)
    fetch_k = kwargs.pop("fetch_k", 20)
    reject_extra(kwargs, f"MossVectorStore.{method}", ("query", *SIMILARITY_ARGS))
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, (int, float))
    ):
        raise InvalidArgumentError(f"score_threshold must be a number, got {threshold!r}")
    return Search(
        k=_positive_int("k", k),
        filter=filter,
        alpha=None if alpha is None else _fraction("alpha", alpha),
        score_threshold=None if threshold is None else float(threshold),
        fetch_k=_positive_int("fetch_k", fetch_k),
    )


def mmr(
    method: str,
    k: Any,
    fetch_k: Any,
    lambda_mult: Any,
    filter: Filter | None,
    kwargs: dict[str, Any],
) -> Search:
    """Check the arguments of a maximal-marginal-relevance search."""
    reject_extra(kwargs, f"MossVectorStore.{method}", ("query", *MMR_ARGS))
    return Search(
        k=_positive_int("k", k),
        filter=filter,
        alpha=VECTOR_ONLY,
        fetch_k=_positive_int("fetch_k", fetch_k),
        lambda_mult=_fraction("lambda_mult", lambda_mult),
    )


def relevance(score: float) -> float:
    """A cosine similarity as a relevance in [0, 1]: negative similarity means unrelated."""
    return max(0.0, min(1.0, score))


def ranked(
    result: SearchResult, score_threshold: float | None
) -> list[tuple[Document, float, float]]:
    """(document, cosine, relevance) per result in ranking order, below ``score_threshold`` dropped.

    The relevance is the score the results are ordered by, in [0, 1]: the cosine similarity
    (0 where negative) for vector-only ranking, else the fused value over its maximum (1 = first
    on both the vector and the keyword ranking). So relevance falls down the list; the cosine
    need not when keyword ranking is blended in.
    """
    rows = []
    for hit in result.docs:
        value = relevance(hit.score if hit.fused_score is None else hit.fused_score / _FUSED_MAX)
        if score_threshold is None or value >= score_threshold:
            rows.append((to_document(hit.id, hit.text, hit.metadata), hit.score, value))
    return rows


def documents(result: SearchResult, score_threshold: float | None) -> list[Document]:
    """The documents of a result, in ranking order."""
    return [doc for doc, _, _ in ranked(result, score_threshold)]


def cosine_pairs(
    result: SearchResult, score_threshold: float | None
) -> list[tuple[Document, float]]:
    """(document, cosine similarity) pairs, in ranking order."""
    return [(doc, cosine) for doc, cosine, _ in ranked(result, score_threshold)]


def relevance_pairs(
    result: SearchResult, score_threshold: float | None
) -> list[tuple[Document, float]]:
    """(document, relevance) pairs: the score the results are ordered by, in [0, 1]."""
    return [(doc, value) for doc, _, value in ranked(result, score_threshold)]
