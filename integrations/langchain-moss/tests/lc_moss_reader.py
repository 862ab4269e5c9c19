"""A second process: open an index by name, report what it sees and how often it embedded.

Usage: python lc_moss_reader.py STORE_URL INDEX_NAME QUERY
"""

from __future__ import annotations

import json
import sys

from langchain_moss import MossRetriever, MossVectorStore
from lc_moss_helpers import CountingEmbeddings


def main(store: str, index_name: str, query: str) -> None:
    embeddings = CountingEmbeddings()
    vs = MossVectorStore(index_name=index_name, embedding=embeddings, store=store)
    docs = vs.session.sync.get_docs()
    after_open = embeddings.document_calls + embeddings.async_document_calls
    top = MossRetriever(vectorstore=vs, k=1).invoke(query)
    report = {
        "version": vs.session.version,
        "docs": {doc.id: doc.text for doc in docs},
        "document_calls_after_open": after_open,
        "document_calls_after_query": embeddings.document_calls + embeddings.async_document_calls,
        "query_calls": embeddings.query_calls,
        "top": [doc.id for doc in top],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:4])
