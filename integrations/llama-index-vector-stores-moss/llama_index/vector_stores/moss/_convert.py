"""The stored shape of a LlamaIndex node in a Moss session, both ways (shared by sync and async)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from moss import DocumentInfo

__all__ = ["NODE_CONTENT_KEY", "doc_to_node", "nodes_to_docs", "texts_to_embed"]

#: Where node_to_metadata_dict keeps the whole node as JSON.
NODE_CONTENT_KEY = "_node_content"


def texts_to_embed(nodes: Sequence[BaseNode]) -> tuple[list[int], list[str]]:
    """Positions of nodes that bring no embedding, and the texts LlamaIndex would embed for them."""
    missing = [i for i, node in enumerate(nodes) if node.embedding is None]
    return missing, [nodes[i].get_content(metadata_mode=MetadataMode.EMBED) for i in missing]


def nodes_to_docs(
    nodes: Sequence[BaseNode],
    missing: Sequence[int],
    vectors: Sequence[Any] | npt.NDArray[np.float32] | None,
) -> list[DocumentInfo]:
    """Moss documents for ``nodes``; ``vectors[j]`` is the embedding of ``nodes[missing[j]]``.

    The node's text is the document text; everything else (metadata, relationships, the node
    type) goes into the metadata through ``node_to_metadata_dict``, so the node's own metadata
    keys sit at the top level where filters address them, next to ``ref_doc_id``.
    """
    computed = dict(zip(missing, vectors if vectors is not None else [], strict=False))
    docs = []
    for i, node in enumerate(nodes):
        embedding = node.embedding if node.embedding is not None else computed.get(i)
        metadata = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
        text = node.get_content(metadata_mode=MetadataMode.NONE)
        docs.append(
            DocumentInfo(id=node.node_id, text=text, metadata=metadata, embedding=embedding)
        )
    return docs


def doc_to_node(doc_id: str, text: str, metadata: dict[str, Any] | None) -> BaseNode:
    """The node stored as this document; a document another framework wrote becomes a TextNode."""
    if metadata is not None and NODE_CONTENT_KEY in metadata:
        node = metadata_dict_to_node(metadata, text=text)
        node.embedding = None
        return node
    return TextNode(id_=doc_id, text=text, metadata=dict(metadata or {}))
