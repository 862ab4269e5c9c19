"""LangChain integration for moss: a shared Moss session as VectorStore and Retriever.

Example::

    from langchain_moss import MossEmbeddings, MossPushHandler, MossVectorStore

    store = MossVectorStore(index_name="support-kb", embedding=MossEmbeddings())
    store.add_texts(["Refunds take 5 days."], metadatas=[{"topic": "refund"}])
    retriever = store.as_retriever(search_kwargs={"k": 3})
    chain.invoke(inputs, config={"callbacks": [MossPushHandler(store)]})  # pushes at the end
"""

from .callbacks import AsyncMossPushHandler, MossPushHandler
from .embeddings import MossEmbeddings, model_id_for
from .retrievers import MossRetriever
from .vectorstores import MossVectorStore

try:
    from .graph_store import MossStore
except ModuleNotFoundError as _missing:  # LangGraph is optional: langchain-moss-sessions[langgraph]
    if not (_missing.name or "").startswith("langgraph"):
        raise
    _why = _missing

    def __getattr__(name: str) -> object:
        if name == "MossStore":
            raise ImportError(
                "MossStore needs LangGraph: pip install 'langchain-moss-sessions[langgraph]'"
            ) from _why
        raise AttributeError(f"module 'langchain_moss' has no attribute {name!r}")


__all__ = [
    "AsyncMossPushHandler",
    "MossEmbeddings",
    "MossPushHandler",
    "MossRetriever",
    "MossStore",
    "MossVectorStore",
    "model_id_for",
]
