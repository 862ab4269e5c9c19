"""A session's queries, written once as flows: one query, or many scored with one product.

Under an event loop, the search of a large index runs in a worker thread (an ``Offload`` step),
so other coroutines keep running while it scans.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial

import numpy as np
import numpy.typing as npt

from .documents import check_query_options
from .embeddings import EmbeddingModel, normalize_rows
from .errors import InvalidArgumentError
from .flow import Flow, Io, Offload
from .index.fusion import Candidates, candidate_depth, rank, to_results
from .index.search_plan import check_ef_search
from .refresh_policy import SessionState
from .types import QueryOptions, SearchResult
from .validation import MAX_BATCH, validate_vector

#: Indexes (or batches) of more rows than this do their engine work in a worker thread under an
#: event loop. Measured at 384 dimensions on 2 shared cores: a worker-thread round trip costs
#: ~0.07 ms, a scan 0.1 ms at 1k rows, 0.4 ms at 5k, 0.8 ms at 10k, 12-60 ms from 20k to 200k,
#: and a one-document write that grows the matrix of a 200k index ~125 ms; above 10k rows a
#: blocked loop would cost more than a millisecond per call, so the work moves off it.
OFFLOAD_THRESHOLD = 10_000
#: An unfiltered vector query of an hnsw index runs on the event loop at any size while its
#: efSearch is at most this: the graph answers in ~0.3-0.6 ms at 100k to 1M rows (efSearch 64,
#: benchmarks/bench_large.py), and a worker-thread round trip (~0.07 ms) would add a sixth.
INLINE_EF_SEARCH = 256

Vector = npt.NDArray[np.float32]


class Querying(SessionState):
    """Queries over a session's local index (the query half of ``SessionCore``)."""

    def large(self, batch: int = 0) -> bool:
        """Whether engine work on this index (plus ``batch`` rows) belongs off the event loop."""
        return len(self.index) + batch > OFFLOAD_THRESHOLD

    def offload_query(self, options: QueryOptions) -> bool:
        """Whether one query's engine work belongs off the event loop: on a large index,
        unless its hnsw graph answers it alone (no filter, no keyword side, a small efSearch)."""
        if not self.large():
            return False
        engine = self.index.engine
        hnsw = engine.hnsw if engine is not None else None
        return (
            hnsw is None
            or bool(options.filter)
            or options.alpha < 1.0
            or (options.ef_search or hnsw.ef_for(len(self.index))) > INLINE_EF_SEARCH
        )

    def check_query(self, text: str, options: QueryOptions | None) -> QueryOptions:
        self.check_open()
        checked = check_query_options(text, options)
        check_ef_search(checked.ef_search)
        return checked

    def query_vector(self, options: QueryOptions) -> Vector | None:
        """The query vector the caller brought (normalised), or None if text must be embedded."""
        if options.embedding is None:
            return None
        vector = validate_vector(options.embedding, self.dimension, "query embedding")
        normalized: Vector = normalize_rows(vector[np.newaxis, :], copy=False)[0]
        return normalized

    def prepare_keywords(self, options: QueryOptions) -> Flow[None]:
        """Build the keyword index before a first keyword query (in a worker thread if large)."""
        index = self.index
        if options.alpha < 1.0 and index.keywords_pending() and self.large():
            yield Offload(index.build_keywords)

    def query(self, text: str, options: QueryOptions | None) -> Flow[SearchResult]:
        started = time.perf_counter()
        options = self.check_query(text, options)
        vector = self.query_vector(options)
        if vector is None and len(self.index):
            vector = yield from embed_query(self.model, text)
        yield from self.prepare_keywords(options)
        search = partial(self.candidates, text, options, vector)
        candidates = (yield Offload(search)) if self.offload_query(options) else search()
        docs = to_results(rank(candidates, float(options.alpha), options.top_k))
        elapsed = (time.perf_counter() - started) * 1000
        return SearchResult(docs=docs, query=text, index_name=self.name, time_taken_ms=elapsed)

    def candidates(self, text: str, options: QueryOptions, vector: Vector | None) -> Candidates:
        """Each side's ranked candidates for this query (vector side only at alpha 1)."""
        alpha, top_k = float(options.alpha), options.top_k
        return self.index.gather(
            self.name,
            vector,
            text,
            alpha=alpha,
            depth=top_k if alpha >= 1.0 else candidate_depth(top_k),
            filter=options.filter,
            min_score=options.min_score,
            ef_search=options.ef_search,
        )

    def query_many(
        self, texts: Sequence[str] | None, options: QueryOptions | None, embeddings: object
    ) -> Flow[list[SearchResult]]:
        """One result per query: the texts embedded in one batch (unless ``embeddings`` are
        given), the vector side scored with one product, the keyword side and fusion per query."""
        started = time.perf_counter()
        self.check_open()
        options = check_batch_options(options)
        texts, vectors = self.check_batch(texts, embeddings)
        alpha, top_k = float(options.alpha), options.top_k
        parts = [Candidates([], []) for _ in texts]
        if texts and len(self.index):
            if vectors is None:
                vectors = yield from embed_queries(self.model, texts)
            if alpha < 1.0 and self.index.keywords_pending() and self.large():
                yield Offload(self.index.build_keywords)
            search = partial(
                self.index.gather_many,
                self.name,
                vectors,
                texts,
                alpha=alpha,
                depth=top_k if alpha >= 1.0 else candidate_depth(top_k),
                filter=options.filter,
                min_score=options.min_score,
                ef_search=options.ef_search,
            )
            parts = (yield Offload(search)) if self.large() else search()
        ranked = [to_results(rank(part, alpha, top_k)) for part in parts]
        elapsed = (time.perf_counter() - started) * 1000
        return [
            SearchResult(docs=docs, query=text, index_name=self.name, time_taken_ms=elapsed)
            for docs, text in zip(ranked, texts, strict=True)
        ]

    def check_batch(
        self, texts: Sequence[str] | None, embeddings: object
    ) -> tuple[list[str], Vector | None]:
        """The query texts (empty strings for vector-only queries) and the given vectors
        (normalised), or None if the texts must be embedded."""
        if texts is not None:
            if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
                raise InvalidArgumentError(
                    f"texts must be a list of query strings, got {type(texts).__name__}; "
                    "for one query use session.query"
                )
            if len(texts) > MAX_BATCH:
                raise InvalidArgumentError(
                    f"at most {MAX_BATCH} queries per call, got {len(texts)}"
                )
            for i, text in enumerate(texts):
                if not isinstance(text, str):
                    raise InvalidArgumentError(
                        f"texts[{i}] must be a str, got {type(text).__name__}"
                    )
        if embeddings is None:
            if texts is None:
                raise InvalidArgumentError("pass the query texts, or embeddings=[[...], ...]")
            if self.model.requires_vectors:
                raise InvalidArgumentError(
                    f"model {self.model.model_id!r} does not embed text: pass "
                    "query_many(texts, options, embeddings=<one vector per query>)"
                )
            for i, text in enumerate(texts):
                if not text.strip():
                    raise InvalidArgumentError(
                        f"texts[{i}] is empty: pass the text to search for, or the query "
                        "vectors as embeddings=[[...], ...]"
                    )
            return list(texts), None
        vectors = _query_matrix(embeddings, self.dimension)
        if texts is None:
            return [""] * vectors.shape[0], vectors
        if len(texts) != vectors.shape[0]:
            raise InvalidArgumentError(
                f"got {len(texts)} texts and {vectors.shape[0]} embeddings: pass one per query"
            )
        return list(texts), vectors


def check_batch_options(options: object) -> QueryOptions:
    """Check the options shared by a batch of queries (the vectors come as ``embeddings=``)."""
    checked = check_query_options("-", options)
    check_ef_search(checked.ef_search)
    if checked.embedding is not None:
        raise InvalidArgumentError(
            "QueryOptions.embedding is for one query: pass query_many(..., embeddings=matrix) "
            "with one vector per query"
        )
    return checked


def _query_matrix(embeddings: object, dimension: int | None) -> Vector:
    try:
        matrix = np.asarray(embeddings, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"embeddings must be a matrix of numbers: {exc}") from exc
    if matrix.ndim != 2 or (dimension is not None and matrix.shape[1] != dimension):
        raise InvalidArgumentError(
            f"embeddings must have shape (queries, {dimension or 'dimension'}), got {matrix.shape}"
        )
    return normalize_rows(matrix, copy=True)


def embed_query(model: EmbeddingModel, text: str) -> Flow[Vector]:
    """Embed one query text (blocking or awaited)."""
    vector: Vector = yield Io(lambda: model.embed_query(text), lambda: model.aembed_query(text))
    return vector


def embed_queries(model: EmbeddingModel, texts: list[str]) -> Flow[Vector]:
    """Embed several query texts in one batch (blocking or awaited)."""
    vectors: Vector = yield Io(
        lambda: model.embed_queries(texts), lambda: model.aembed_queries(texts)
    )
    return vectors
