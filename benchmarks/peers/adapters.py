"""One adapter per store: write the same documents, open them by name, query by vector.

Every adapter persists the store the way its documentation suggests and opens it again the same
way, in the process that measures it. Queries bring their vector (no peer pays for embedding);
results are document ids, so recall is computed the same way for all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]
TOP_K = 10
#: The filtered query keeps documents whose ``topic`` is this (one in ten documents).
FILTER_TOPIC = 3
TOPICS = 10
INDEX_NAME = "bench"


def make_docs(n: int) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Ids, texts and metadata shaped like conversation turns (``topic`` selects 10%)."""
    for i in range(n):
        text = f"turn {i} of conversation {i // 20}: a few words about topic {i % TOPICS}"
        yield f"doc-{i}", text, {"conversation": i // 20, "topic": i % TOPICS, "speaker": "agent"}


class Precomputed:
    """A LangChain/LlamaIndex-style embedder handing out given vectors in order."""

    def __init__(self, vectors: Matrix | None = None) -> None:
        self._vectors = [] if vectors is None else vectors.tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        taken, self._vectors = self._vectors[: len(texts)], self._vectors[len(texts) :]
        return taken

    def embed_query(self, text: str) -> list[float]:
        raise NotImplementedError("the benchmark queries by vector")


class Peer:
    """How one store is written, opened and queried."""

    name = ""
    #: Documents above which the peer is skipped (with the printed reason); None: no cap.
    cap: int | None = None
    cap_reason = ""

    def imports(self) -> None:
        """Import the library (timed apart from opening)."""

    def write(self, folder: Path, vectors: Matrix) -> dict[str, float]:
        """Add the documents and persist them; return ``add_s`` and ``persist_s``."""
        raise NotImplementedError

    def open(self, folder: Path) -> Any:
        """Open the persisted store until it can answer."""
        raise NotImplementedError

    def search(self, handle: Any, query: Matrix) -> list[str]:
        raise NotImplementedError

    def search_batch(self, handle: Any, queries: Matrix) -> list[list[str]]:
        """One call where the peer has a batch API; else a loop."""
        return [self.search(handle, q) for q in queries]

    def search_filtered(self, handle: Any, query: Matrix) -> list[str] | None:
        """Top-k among documents whose topic is FILTER_TOPIC; None if the peer cannot filter."""
        return None


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    import time

    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


# -- moss ----------------------------------------------------------------------------------------


class Moss(Peer):
    """A pushed moss index in a file store, opened with ``client.sync.session(name)``."""

    name = "moss"
    precision = "float32"

    def imports(self) -> None:
        import moss  # noqa: F401

    def _session(self, folder: Path, **kwargs: Any) -> Any:
        from moss import MossClient

        client = MossClient(store=folder.as_uri())
        if self.precision != "float32":
            kwargs["precision"] = self.precision
        return client.sync.session(INDEX_NAME, **kwargs)

    def write(self, folder: Path, vectors: Matrix) -> dict[str, float]:
        from moss import DocumentInfo

        session = self._session(folder, model_id="custom")
        docs = [
            DocumentInfo(id=doc_id, text=text, metadata=meta, embedding=vector)
            for (doc_id, text, meta), vector in zip(make_docs(len(vectors)), vectors, strict=True)
        ]
        _, add_s = _timed(lambda: session.sync.add_docs(docs))
        _, persist_s = _timed(session.sync.push_index)
        return {"add_s": add_s, "persist_s": persist_s}

    def open(self, folder: Path) -> Any:
        return self._session(folder)

    def search(self, handle: Any, query: Matrix) -> list[str]:
        from moss import QueryOptions

        # alpha=1.0: vector ranking, as every peer does (moss may default to hybrid ranking).
        options = QueryOptions(top_k=TOP_K, embedding=query, alpha=1.0)
        return [doc.id for doc in handle.sync.query("", options).docs]

    def search_batch(self, handle: Any, queries: Matrix) -> list[list[str]]:
        from moss import QueryOptions

        # One query_many: one matrix product for the batch (what a user with a batch calls).
        options = QueryOptions(top_k=TOP_K, alpha=1.0)
        results = handle.sync.query_many(None, options, embeddings=queries)
        return [[doc.id for doc in result.docs] for result in results]

    def search_filtered(self, handle: Any, query: Matrix) -> list[str]:
        from moss import QueryOptions

        options = QueryOptions(
            top_k=TOP_K, embedding=query, filter={"topic": FILTER_TOPIC}, alpha=1.0
        )
        return [doc.id for doc in handle.sync.query("", options).docs]


class MossInt8(Moss):
    """The same, with ``precision="int8"``: int8 scan, float32 re-rank, codes in the snapshot."""

    name = "moss-int8"
    precision = "int8"


# -- the floors: what a user would write by hand ---------------------------------------------


class NumpyJson(Peer):
    """``vectors.npy`` plus a JSON list of documents; ``matrix @ query`` and a partition."""

    name = "numpy-json"

    def write(self, folder: Path, vectors: Matrix) -> dict[str, float]:
        folder.mkdir(parents=True, exist_ok=True)
        docs, add_s = _timed(
            lambda: [{"id": i, "text": t, "metadata": m} for i, t, m in make_docs(len(vectors))]
        )

        def persist() -> None:
            np.save(folder / "vectors.npy", vectors)
            (folder / "docs.json").write_text(json.dumps(docs), encoding="utf-8")

        _, persist_s = _timed(persist)
        return {"add_s": add_s, "persist_s": persist_s}

    def open(self, folder: Path) -> Any:
        matrix = np.load(folder / "vectors.npy")
        docs = json.loads((folder / "docs.json").read_text(encoding="utf-8"))
        ids = [doc["id"] for doc in docs]
        topics = np.array([doc["metadata"]["topic"] for doc in docs])
        return matrix, ids, topics

    @staticmethod
    def _top(scores: Matrix, k: int = TOP_K) -> npt.NDArray[np.intp]:
        if len(scores) <= k:
            return np.argsort(-scores)
        top = np.argpartition(-scores, k)[:k]
        return top[np.argsort(-scores[top])]

    def search(self, handle: Any, query: Matrix) -> list[str]:
        matrix, ids, _ = handle
        return [ids[i] for i in self._top(matrix @ query)]

    def search_batch(self, handle: Any, queries: Matrix) -> list[list[str]]:
        matrix, ids, _ = handle
        scores = queries @ matrix.T
        return [[ids[i] for i in self._top(row)] for row in scores]

    def search_filtered(self, handle: Any, query: Matrix) -> list[str]:
        matrix, ids, topics = handle
        rows = np.flatnonzero(topics == FILTER_TOPIC)
        return [ids[rows[i]] for i in self._top(matrix[rows] @ query)]


class FaissFlat(Peer):
    """A bare ``faiss.IndexFlatIP`` (``write_index`` / ``read_index``): vectors only, no docs."""

    name = "faiss-flat"

    def imports(self) -> None:
        import faiss  # noqa: F401

    def write(self, folder: Path, vectors: Matrix) -> dict[str, float]:
        import faiss

        folder.mkdir(parents=True, exist_ok=True)
        index = faiss.IndexFlatIP(vectors.shape[1])
        _, add_s = _timed(lambda: index.add(vectors))
        _, persist_s = _timed(lambda: faiss.write_index(index, str(folder / "index.faiss")))
        return {"add_s": add_s, "persist_s": persist_s}

    def open(self, folder: Path) -> Any:
        import faiss

        return faiss.read_index(str(folder / "index.faiss"))

    def search(self, handle: Any, query: Matrix) -> list[str]:
        _, rows = handle.search(query[None, :], TOP_K)
        return [f"doc-{i}" for i in rows[0]]

    def search_batch(self, handle: Any, queries: Matrix) -> list[list[str]]:
        _, rows = handle.search(queries, TOP_K)
        return [[f"doc-{i}" for i in row] for row in rows]


# -- the stores users would otherwise pick ----------------------------------------------------


class LangchainFaiss(Peer):
    """langchain-community ``FAISS`` (``save_local`` / ``load_local``: a faiss file and a pickle)."""

    name = "langchain-faiss"

    def imports(self) -> None:
        from langchain_community.vectorstores import FAISS  # noqa: F401

    def write(self, folder: Path, vectors: Matrix) -> dict[str, float]:
        from langchain_community.vectorstores import FAISS

        ids, texts, metas = (list(c) for c in zip(*make_docs(len(vectors)), strict=True))
        pairs = list(zip(texts, vectors.tolist(), strict=True))
        store, add_s = _timed(
            lambda: FAISS.from_embeddings(pairs, Precomputed(), metadatas=metas, ids=ids)  # type: ignore[arg-type]
        )
        _, persist_s = _timed(lambda: store.save_local(str(folder)))
        return {"add_s": add_s, "persist_s": persist_s}

    def open(self, folder: Path) -> Any:
        from langchain_community.vectorstores import FAISS

        return FAISS.load_local(
            str(folder),
            Precomputed(),  # type: ignore[arg-type]
            allow_dangerous_deserialization=True,  # its docstore is a pickle
        )

    def search(self, handle: Any, query: Matrix) -> list[str]:
        hits = handle.similarity_search_with_score_by_vector(query.tolist(), k=TOP_K)
        return [doc.id for doc, _ in hits]

    def search_filtered(self, handle: Any, query: Matrix) -> list[str]:
        # Default fetch_k (20): FAISS post-filters the 20 nearest, as a user gets by default.
        hits = handle.similarity_search_with_score_by_vector(
            query.tolist(), k=TOP_K, filter={"topic": FILTER_TOPIC}
        )
        return [doc.id for doc, _ in hits]


class LangchainInMemory(Peer):
    """langchain-core ``InMemoryVectorStore`` (``dump`` / ``load``: indented JSON)."""

    name = "langchain-inmemory"
    cap = 10_000
    cap_reason = "~30 s to open and ~1.5 s per query at 100k (a Python loop over every vector)"

    def imports(self) -> None:
        from langchain_core.vectorstores import InMemoryVectorStore  # noqa: F401

    def write(self, folder: Path, vectors: Matrix) -> dict[str, float]:
        from langchain_core.vectorstores import InMemoryVectorStore

        folder.mkdir(parents=True, exist_ok=True)
        store = InMemoryVectorStore(embedding=Precomputed(vectors))  # type: ignore[arg-type]
        ids, texts, metas = (list(c) for c in zip(*make_docs(len(vectors)), strict=True))
        _, add_s = _timed(lambda: store.add_texts(texts, metadatas=metas, ids=ids))
        _, persist_s = _timed(lambda: store.dump(str(folder / "store.json")))
        return {"add_s": add_s, "persist_s": persist_s}

    def open(self, folder: Path) -> Any:
        from langchain_core.vectorstores import InMemoryVectorStore

        return InMemoryVectorStore.load(str(folder / "store.json"), embedding=Precomputed())  # type: ignore[arg-type]

    def search(self, handle: Any, query: Matrix) -> list[str]:
        return [doc.id for doc in handle.similarity_search_by_vector(query.tolist(), k=TOP_K)]

    def search_filtered(self, handle: Any, query: Matrix) -> list[str]:
        docs = handle.similarity_search_by_vector(
            query.tolist(), k=TOP_K, filter=lambda doc: doc.metadata.get("topic") == FILTER_TOPIC
        )
        return [doc.id for doc in docs]


class LlamaSimple(Peer):
    """llama-index ``SimpleVectorStore`` (``persist`` / ``from_persist_path``: JSON)."""

    name = "llama-index-simple"
    cap = 10_000
    cap_reason = "~4 min to open and ~1.2 s per query at 100k (JSON of Python floats)"

    def imports(self) -> None:
        from llama_index.core.vector_stores import SimpleVectorStore  # noqa: F401

    def write(self, folder: Path, vectors: Matrix) -> dict[str, float]:
        from llama_index.core.schema import TextNode
        from llama_index.core.vector_stores import SimpleVectorStore

        folder.mkdir(parents=True, exist_ok=True)
        store = SimpleVectorStore()
        nodes = [
            TextNode(id_=doc_id, text=text, metadata=meta, embedding=vector)
            for (doc_id, text, meta), vector in zip(
                make_docs(len(vectors)), vectors.tolist(), strict=True
            )
        ]
        _, add_s = _timed(lambda: store.add(nodes))
        _, persist_s = _timed(lambda: store.persist(str(folder / "vector_store.json")))
        return {"add_s": add_s, "persist_s": persist_s}

    def open(self, folder: Path) -> Any:
        from llama_index.core.vector_stores import SimpleVectorStore

        return SimpleVectorStore.from_persist_path(str(folder / "vector_store.json"))

    def search(self, handle: Any, query: Matrix) -> list[str]:
        from llama_index.core.vector_stores import VectorStoreQuery

        result = handle.query(
            VectorStoreQuery(query_embedding=query.tolist(), similarity_top_k=TOP_K)
        )
        return list(result.ids or [])

    def search_filtered(self, handle: Any, query: Matrix) -> list[str]:
        from llama_index.core.vector_stores import (
            ExactMatchFilter,
            MetadataFilters,
            VectorStoreQuery,
        )

        filters = MetadataFilters(filters=[ExactMatchFilter(key="topic", value=FILTER_TOPIC)])
        result = handle.query(
            VectorStoreQuery(
                query_embedding=query.tolist(), similarity_top_k=TOP_K, filters=filters
            )
        )
        return list(result.ids or [])


class Chroma(Peer):
    """chromadb ``PersistentClient`` (HNSW, default settings: L2 space, default search depth)."""

    name = "chroma"
    cap = 100_000
    cap_reason = "adding 100k documents takes over two minutes (HNSW build)"

    def imports(self) -> None:
        os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
        import chromadb  # noqa: F401

    def _client(self, folder: Path) -> Any:
        import chromadb
        from chromadb.config import Settings

        return chromadb.PersistentClient(
            path=str(folder), settings=Settings(anonymized_telemetry=False)
        )

    def write(self, folder: Path, vectors: Matrix) -> dict[str, float]:
        client = self._client(folder)
        collection = client.create_collection(INDEX_NAME, embedding_function=None)
        ids, texts, metas = (list(c) for c in zip(*make_docs(len(vectors)), strict=True))
        step = client.get_max_batch_size()

        def add() -> None:
            for start in range(0, len(ids), step):
                end = start + step
                collection.add(
                    ids=ids[start:end],
                    embeddings=vectors[start:end],
                    documents=texts[start:end],
                    metadatas=metas[start:end],
                )

        _, add_s = _timed(add)
        return {"add_s": add_s, "persist_s": 0.0}  # PersistentClient writes as it adds

    def open(self, folder: Path) -> Any:
        return self._client(folder).get_collection(INDEX_NAME)

    def search(self, handle: Any, query: Matrix) -> list[str]:
        return list(handle.query(query_embeddings=[query], n_results=TOP_K)["ids"][0])

    def search_batch(self, handle: Any, queries: Matrix) -> list[list[str]]:
        return [list(ids) for ids in handle.query(query_embeddings=queries, n_results=TOP_K)["ids"]]

    def search_filtered(self, handle: Any, query: Matrix) -> list[str]:
        result = handle.query(
            query_embeddings=[query], n_results=TOP_K, where={"topic": FILTER_TOPIC}
        )
        return list(result["ids"][0])


PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in (
        Moss(),
        MossInt8(),
        NumpyJson(),
        FaissFlat(),
        LangchainFaiss(),
        LangchainInMemory(),
        LlamaSimple(),
        Chroma(),
    )
}
#: Peers that run at the large sizes (1M): moss and the floors.
LARGE_PEERS = ("moss", "moss-int8", "numpy-json", "faiss-flat")
