"""The stored shape of a LangChain document, and the pure helpers shared by sync and async paths."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from langchain_core.documents import Document

from moss import DocumentInfo, InvalidArgumentError, ResultDocument
from moss.embeddings import normalize_rows
from moss.index.mmr import mmr_select

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


def _id_or_new(doc_id: str | None) -> str:
    return doc_id if doc_id else str(uuid.uuid4())


def mmr_documents(
    query: FloatArray,
    hits: Sequence[ResultDocument],
    stored: Sequence[DocumentInfo],
    k: int,
    lambda_mult: float,
) -> list[Document]:
    """Pick ``k`` of the candidate ``hits`` (best first) by MMR, using their stored vectors.

    The core's :func:`~moss.index.mmr.mmr_select` picks: on equal scores the better-ranked hit.
    """
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
