"""The stored shape of a LangChain document, and the pure helpers shared by sync and async paths."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from langchain_core.documents import Document

from moss import DocumentInfo, InvalidArgumentError, ResultDocument, SearchResult
from moss.embeddings import normalize_rows

FloatArray = npt.NDArray[np.float32]


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value: the store and the caller never share a dict or list.

    Tuples become lists, as they would after a push and reload, so a value reads back the same
    before and after a push.
    """
    if isinstance(value, Mapping):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [copy_json(item) for item in value]
    return value


def to_records(
    texts: Iterable[str],
    metadatas: Sequence[Mapping[str, Any] | None] | None,
    ids: Sequence[str | None] | None,
) -> list[DocumentInfo]:
    """Documents to store: one per text, with a new uuid4 where no id was given.

    The metadata is copied, so later changes to the caller's dicts do not reach the index.
    """
    if isinstance(texts, str):
        raise InvalidArgumentError("pass texts as a list of str, not a single str")
    batch = list(texts)
    for what, column in (("metadatas", metadatas), ("ids", ids)):
        if column is not None and len(column) != len(batch):
            raise InvalidArgumentError(
                f"got {len(batch)} texts but {len(column)} {what}: pass one per text"
            )
    return [
        DocumentInfo(
            id=_id_or_new(ids[i] if ids is not None else None),
            text=text,
            metadata=copy_json(metadatas[i]) if metadatas is not None and metadatas[i] else {},
        )
        for i, text in enumerate(batch)
    ]


def split_documents(
    documents: Sequence[Document], ids: Sequence[str | None] | None
) -> tuple[list[str], list[dict[str, Any]], list[str | None]]:
    """Texts, metadata and ids of LangChain documents; ``ids`` wins over ``Document.id``."""
    if ids is None:
        ids = [doc.id for doc in documents]
    return [doc.page_content for doc in documents], [doc.metadata for doc in documents], list(ids)


def to_document(doc_id: str, text: str, metadata: Mapping[str, Any] | None) -> Document:
    """A stored document as a LangChain ``Document`` with its id and a copy of its metadata."""
    return Document(id=doc_id, page_content=text, metadata=copy_json(metadata or {}))


def hits_to_pairs(hits: Sequence[ResultDocument]) -> list[tuple[Document, float]]:
    """Query results as (document, cosine similarity) pairs, best first."""
    return [(to_document(hit.id, hit.text, hit.metadata), hit.score) for hit in hits]


def relevance(score: float) -> float:
    """A cosine similarity as a relevance in [0, 1]: negative similarity means unrelated."""
    return max(0.0, min(1.0, score))


def _id_or_new(doc_id: str | None) -> str:
    return doc_id if doc_id else str(uuid.uuid4())


def reject_extra(kwargs: Mapping[str, Any], method: str, accepted: str) -> None:
    """Refuse keyword arguments the method does not know, so a typo is never silently ignored."""
    if kwargs:
        raise InvalidArgumentError(
            f"MossVectorStore.{method} got unknown argument(s) {sorted(kwargs)}; "
            f"it accepts {accepted}"
        )


def check_mmr(k: int, fetch_k: int, lambda_mult: float) -> int:
    """Validate MMR arguments; return how many candidates to fetch (at least ``k``)."""
    for name, value in (("k", k), ("fetch_k", fetch_k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(lambda_mult, bool) or not isinstance(lambda_mult, (int, float)):
        raise InvalidArgumentError(f"lambda_mult must be a number from 0 to 1, got {lambda_mult!r}")
    if not 0.0 <= lambda_mult <= 1.0:
        raise InvalidArgumentError(f"lambda_mult must be from 0 to 1, got {lambda_mult}")
    return max(k, fetch_k)


def mmr_select(query: FloatArray, candidates: FloatArray, k: int, lambda_mult: float) -> list[int]:
    """Indices of ``k`` candidates chosen by maximal marginal relevance, in the order chosen.

    Rows and the query are unit vectors, so dot products are cosine similarities. Each step
    takes the candidate maximising ``lambda_mult * sim(query, c) - (1 - lambda_mult) *
    max sim(c, chosen)``; the first is the most similar to the query (as LangChain's
    ``maximal_marginal_relevance`` does). Ties go to the earlier candidate.
    """
    count = min(k, candidates.shape[0])
    if count <= 0:
        return []
    similarity = candidates @ query
    chosen = [int(np.argmax(similarity))]
    redundancy = candidates @ candidates[chosen[0]]
    available = np.ones(candidates.shape[0], dtype=bool)
    available[chosen[0]] = False
    while len(chosen) < count:
        score = lambda_mult * similarity - (1.0 - lambda_mult) * redundancy
        score[~available] = -np.inf
        pick = int(np.argmax(score))
        chosen.append(pick)
        available[pick] = False
        redundancy = np.maximum(redundancy, candidates @ candidates[pick])
    return chosen


def mmr_documents(
    query: FloatArray,
    hits: Sequence[ResultDocument],
    stored: Sequence[DocumentInfo],
    k: int,
    lambda_mult: float,
) -> list[Document]:
    """Pick ``k`` of the candidate ``hits`` by MMR, using their stored vectors."""
    vectors = {doc.id: doc.embedding for doc in stored}
    # A candidate deleted between the query and the read of its vector is dropped.
    kept = [hit for hit in hits if vectors.get(hit.id) is not None]
    if not kept:
        return []
    matrix = np.asarray([vectors[hit.id] for hit in kept], dtype=np.float32)
    picked = mmr_select(np.asarray(query, dtype=np.float32), matrix, k, lambda_mult)
    return [to_document(kept[i].id, kept[i].text, kept[i].metadata) for i in picked]


def push_args(expected_version: int | None, merge: bool) -> dict[str, Any]:
    """Keyword arguments for ``push_index`` (``merge`` only when True: it excludes an expected version)."""
    args: dict[str, Any] = {"expected_version": expected_version}
    if merge:
        args["merge"] = True
    return args


def unit_vector(embedding: Sequence[float]) -> FloatArray:
    """A query vector the caller brought, as a float32 unit vector."""
    unit: FloatArray = normalize_rows(np.asarray(embedding, dtype=np.float32)[np.newaxis, :])[0]
    return unit


def min_score_for(score_threshold: float | None) -> float | None:
    """The cosine cut-off the index applies for a relevance ``score_threshold``."""
    # Relevance clips negative similarity to 0, so only a positive threshold maps to a cosine
    # cut-off the index can apply; a threshold <= 0 keeps every result.
    if score_threshold is None:
        return None
    if isinstance(score_threshold, bool) or not isinstance(score_threshold, (int, float)):
        raise InvalidArgumentError(f"score_threshold must be a number, got {score_threshold!r}")
    return float(score_threshold) if score_threshold > 0 else None


def relevant_pairs(
    result: SearchResult, score_threshold: float | None
) -> list[tuple[Document, float]]:
    """Results as (document, relevance) pairs, those below ``score_threshold`` dropped."""
    pairs = [(doc, relevance(score)) for doc, score in hits_to_pairs(result.docs)]
    if score_threshold is None:
        return pairs
    return [(doc, score) for doc, score in pairs if score >= score_threshold]
