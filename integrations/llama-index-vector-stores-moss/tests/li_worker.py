"""Second process for the hand-off test: open a pushed index by name and answer one query.

Usage: python li_worker.py STORE_DIR INDEX_NAME QUERY TOP_K
Prints JSON: the retrieved nodes (whole) and how many document texts this process embedded.
"""

from __future__ import annotations

import json
import sys

import pytest_socket
from llama_index.core import VectorStoreIndex
from llama_index.vector_stores.moss import MossVectorStore

from moss.embeddings import MiniLMModel

pytest_socket.disable_socket(allow_unix_socket=True)  # nothing may be downloaded here either

embedded_documents = 0
original = MiniLMModel.embed_documents


def counting(self: MiniLMModel, texts: list[str]) -> object:
    global embedded_documents
    embedded_documents += len(texts)
    return original(self, texts)


MiniLMModel.embed_documents = counting  # type: ignore[method-assign,assignment]


def main(store_dir: str, index_name: str, query: str, top_k: int) -> None:
    store = MossVectorStore(index_name, store=store_dir)
    index = VectorStoreIndex.from_vector_store(store, embed_model=store.embed_model)
    hits = index.as_retriever(similarity_top_k=top_k).retrieve(query)
    print(
        json.dumps(
            {
                "model_id": store.model_id,
                "version": store.session.version,
                "nodes": [hit.node.to_json() for hit in hits],
                "scores": [hit.score for hit in hits],
                "embedded_documents": embedded_documents,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
