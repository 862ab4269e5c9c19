"""Embeddings for nodes that bring none: stored vectors reused, each distinct text embedded once.

LlamaIndex embeds a node's text with its embed-mode metadata (``MetadataMode.EMBED``), not the
plain text Moss stores, so the session's own reuse (which compares stored texts) cannot see
these; this compares the embed-mode text of the node stored under the same id instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from llama_index.core.schema import BaseNode, MetadataMode

from moss import DocumentInfo, SyncSession
from moss.documents import embed_texts
from moss.embeddings import EmbeddingModel
from moss.embeddings.progress import Progress
from moss.flow import Flow

from ._convert import doc_to_node, texts_to_embed

__all__ = ["missing_embeddings"]

Matrix = npt.NDArray[np.float32]


def missing_embeddings(
    session: SyncSession, model: EmbeddingModel, nodes: Sequence[BaseNode], progress: Progress
) -> Flow[tuple[list[int], list[Matrix] | None]]:
    """Positions of the nodes without an embedding and a vector for each (None: no such node)."""
    missing, texts = texts_to_embed(nodes)
    if not missing:
        return missing, None
    stored = {
        doc.id: doc
        for doc in session.get_docs([nodes[i].node_id for i in missing], include_embeddings=True)
    }
    vectors: list[Matrix | None] = [None] * len(missing)
    todo: dict[str, list[int]] = {}  # distinct text -> positions in ``missing``
    for j, (i, text) in enumerate(zip(missing, texts, strict=True)):
        doc = stored.get(nodes[i].node_id)
        if doc is not None and doc.embedding is not None and _embed_text(doc) == text:
            vectors[j] = np.asarray(doc.embedding, dtype=np.float32)
        else:
            todo.setdefault(text, []).append(j)
    if todo:
        embedded = yield from embed_texts(model, list(todo), progress)
        for row, positions in zip(embedded, todo.values(), strict=True):
            for j in positions:
                vectors[j] = row
    return missing, [v for v in vectors if v is not None]


def _embed_text(doc: DocumentInfo) -> str:
    """The text LlamaIndex embeds for the node stored as ``doc``."""
    node = doc_to_node(doc.id, doc.text, doc.metadata)
    return node.get_content(metadata_mode=MetadataMode.EMBED)
