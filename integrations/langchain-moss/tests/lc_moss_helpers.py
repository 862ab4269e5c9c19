"""Test helpers: deterministic counting embeddings, an instrumented file store, brute-force references."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from moss import FileStore, IndexInfo, ServiceUnavailableError


class CountingEmbeddings(Embeddings):
    """Deterministic pseudo-random unit vectors per text (same in every process), with call counts."""

    def __init__(self, size: int = 16, model: str = "fake-16") -> None:
        self.size = size
        self.model = model
        self.document_calls = 0
        self.documents_embedded = 0
        self.query_calls = 0
        self.async_document_calls = 0
        self.async_query_calls = 0

    def vector(self, text: str) -> list[float]:
        seed = int(hashlib.sha256(text.encode()).hexdigest(), 16) % 2**32
        values: list[float] = np.random.default_rng(seed).normal(size=self.size).tolist()
        return values

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.document_calls += 1
        self.documents_embedded += len(texts)
        return [self.vector(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        self.query_calls += 1
        return self.vector(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        self.async_document_calls += 1
        return [self.vector(text) for text in texts]

    async def aembed_query(self, text: str) -> list[float]:
        self.async_query_calls += 1
        return self.vector(text)


class CountingStore(FileStore):
    """A file store that counts completed puts and the most that ran at once; can be slowed or broken."""

    def __init__(self, path: Any, *, delay: float = 0.0) -> None:
        super().__init__(path)
        self.delay = delay
        self.fail = False
        self.puts = 0
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _exit(self, ok: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            self.puts += ok

    def put(self, project: str, name: str, chunks: Any, **kwargs: Any) -> IndexInfo:
        self._enter()
        ok = False
        try:
            time.sleep(self.delay)
            if self.fail:
                raise ServiceUnavailableError("the test store is down")
            info = super().put(project, name, chunks, **kwargs)
            ok = True
            return info
        finally:
            self._exit(ok)

    async def aput(self, project: str, name: str, chunks: Any, **kwargs: Any) -> IndexInfo:
        import asyncio

        self._enter()
        ok = False
        try:
            await asyncio.sleep(self.delay)
            if self.fail:
                raise ServiceUnavailableError("the test store is down")
            info = await super().aput(project, name, chunks, **kwargs)
            ok = True
            return info
        finally:
            self._exit(ok)


def stored_version(store: FileStore, name: str, project: str = "default") -> int:
    """The version of ``name`` other processes would open now (0: never pushed)."""
    head = store.head(project, name)
    return 0 if head is None else head.version


def unit(vector: Sequence[float]) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float64)
    normalized: np.ndarray = array / np.linalg.norm(array)
    return normalized


Doc = tuple[str, str, dict[str, Any]]


def brute_top_k(
    embeddings: CountingEmbeddings,
    docs: Iterable[Doc],
    query: str,
    k: int,
    keep: Callable[[dict[str, Any]], bool] = lambda meta: True,
) -> list[tuple[str, float]]:
    """The true top k (id, cosine) of the documents ``keep`` accepts, by exhaustive scoring."""
    q = unit(embeddings.vector(query))
    scored = [
        (doc_id, float(unit(embeddings.vector(text)) @ q))
        for doc_id, text, meta in docs
        if keep(meta)
    ]
    scored.sort(key=lambda pair: (-pair[1], pair[0]))
    return scored[:k]


def brute_mmr(
    query: np.ndarray, candidates: list[np.ndarray], k: int, lambda_mult: float
) -> list[int]:
    """Maximal marginal relevance by the textbook loop, in float64."""
    chosen: list[int] = []
    while len(chosen) < min(k, len(candidates)):
        best, best_score = -1, -np.inf
        for i, vector in enumerate(candidates):
            if i in chosen:
                continue
            redundancy = max((float(vector @ candidates[j]) for j in chosen), default=0.0)
            score = (
                float(vector @ query)
                if not chosen
                else (lambda_mult * float(vector @ query) - (1 - lambda_mult) * redundancy)
            )
            if score > best_score:
                best, best_score = i, score
        chosen.append(best)
    return chosen
