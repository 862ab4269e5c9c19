"""A session's core: its state, local writes and reads (adds, columnar adds, deletes, gets) and
queries (:mod:`moss.querying`), each written once as a flow that both faces drive."""

from __future__ import annotations

from collections.abc import Iterable, Sized
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from .documents import (
    assemble_vectors,
    embed_texts,
    plan_embedding,
    prepare_columns,
    prepare_docs,
)
from .embeddings.progress import Progress
from .errors import InvalidArgumentError
from .flow import Flow, Offload
from .index.local import Changes
from .querying import OFFLOAD_THRESHOLD, Querying
from .types import AddResult, DocumentInfo
from .validation import validate_batch, validate_doc_id


class SessionCore(Querying):
    """A session's state with its local reads and writes (queries, adds, deletes)."""

    # -- local reads and writes ----------------------------------------------------------------

    def add(self, docs: Iterable[DocumentInfo], progress: Progress = None) -> Flow[AddResult]:
        self.check_open()
        batch = validate_batch(docs)
        check = partial(prepare_docs, batch, self.model, self.dimension)
        prepared = (yield Offload(check)) if len(batch) > OFFLOAD_THRESHOLD else check()
        if not prepared.ids:
            return AddResult(added=0, updated=0)
        # Texts already stored under the same id, and repeats within the batch, embed nothing.
        plan = plan_embedding(prepared, self.index.unchanged)
        embedded = None
        if plan.texts:
            embedded = yield from embed_texts(self.model, plan.texts, progress)
        # A new custom session learns its dimension from its first vectors.
        dimension = self.dimension or _width(prepared.given_vectors, plan.reused, embedded)
        vectors = assemble_vectors(prepared, plan, embedded, dimension)
        upsert = partial(
            self.index.upsert, prepared.ids, prepared.texts, prepared.metadata, vectors
        )
        added, updated = (yield Offload(upsert)) if self.large(len(prepared.ids)) else upsert()
        return AddResult(added=added, updated=updated)

    def add_arrays(
        self, ids: object, texts: object, vectors: object, metadata: object
    ) -> Flow[AddResult]:
        self.check_open()
        count = len(ids) if isinstance(ids, Sized) else 0

        def write() -> tuple[int, int]:
            columns = prepare_columns(ids, texts, vectors, metadata, self.dimension)
            changes = Changes(columns.ids, columns.texts, columns.metadata, columns.vectors)
            return self.index.apply(changes)

        added, updated = (yield Offload(write)) if self.large(count) else write()
        return AddResult(added=added, updated=updated)

    def delete(self, ids: Iterable[str]) -> Flow[int]:
        self.check_open()
        if isinstance(ids, str):
            raise InvalidArgumentError("pass a list of document ids, not a single string")
        # A delete in a large index may copy its matrix (while a push holds a view of it).
        delete = partial(self.index.delete, [validate_doc_id(doc_id) for doc_id in ids])
        deleted: int = (yield Offload(delete)) if self.large() else delete()
        return deleted

    def get(
        self,
        ids: Iterable[str] | None,
        filter: dict[str, Any] | None,
        limit: int | None,
        include_embeddings: bool,
    ) -> list[DocumentInfo]:
        self.check_open()
        if isinstance(ids, str):
            raise InvalidArgumentError("pass a list of document ids, not a single string")
        checked = None if ids is None else [validate_doc_id(doc_id) for doc_id in ids]
        stored, engine = self.index.get(checked, filter, limit)
        vectors: list[Any] = [None] * len(stored)
        if include_embeddings and stored and engine is not None:
            vectors = list(engine.vectors_for([doc.id for doc in stored]))
        return [
            DocumentInfo(id=doc.id, text=doc.text, metadata=doc.metadata, embedding=vector)
            for doc, vector in zip(stored, vectors, strict=False)
        ]


def _width(*matrices: npt.NDArray[np.float32] | None) -> int:
    """The width of the first matrix given (the dimension a new custom session learns)."""
    return int(next(m.shape[1] for m in matrices if m is not None))
