"""MossRetriever: a LangChain retriever over a Moss index, built from a vector store or a name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from pydantic import Field

from moss import InvalidArgumentError
from moss.flow import Flow, Io, run_async, run_sync

from ._open import open_request
from ._search import reject_extra, relevance_pairs, similarity
from .vectorstores import Filter, MossVectorStore

#: The arguments that name an index to open when no ``vectorstore`` is given.
_OPEN_ARGS = (
    "index_name", "embedding", "model_id", "client", "store", "project_id", "version", "auto_refresh"
)  # fmt: skip
#: What a call may change for itself: the fields of the same names.
_CALL_ARGS = ("k", "filter", "score_threshold", "alpha")
#: Results of a batch's queries computed together (query text -> documents), read by the
#: per-input invocations that ``batch`` / ``abatch`` still run for callbacks and tracing.
_PREFETCHED: ContextVar[dict[str, list[Document]] | None] = ContextVar(
    "moss_retriever_prefetched", default=None
)


class MossRetriever(BaseRetriever):
    """Retrieve the documents of a Moss index most similar to a query.

    Built from a :class:`MossVectorStore` (sharing its live session), or from a plain dict of
    arguments naming an index that was pushed before (``index_name``, and optionally
    ``embedding``, ``model_id``, ``store`` or ``client``, ``project_id``, ``version``,
    ``auto_refresh``); an index that does not exist raises ``IndexNotFoundError``. ``k``,
    ``filter``, ``score_threshold`` (on the relevance score in [0, 1], see
    ``MossVectorStore.similarity_search_with_relevance_scores``) and ``alpha`` (1.0 vector
    search, 0.0 keyword search, in between a blend; default moss's 0.4, the best on SciFact)
    can also be given per call. Any other argument is refused, so a typo never goes unnoticed.

    Example::

        from langchain_moss import MossRetriever

        retriever = MossRetriever(index_name="support-kb", k=3)
        retriever.invoke("refund status")
        retriever.invoke("refund status", k=1, filter={"topic": "refund"})
        retriever.invoke("order ORD-1234", alpha=0.4)  # blend in keyword search

        # in LCEL, and as an agent tool
        chain = retriever | (lambda docs: "\\n".join(d.page_content for d in docs))
        from langchain_core.tools import create_retriever_tool
        tool = create_retriever_tool(retriever, "support_kb", "Search the support knowledge base")

    An index opened by name is the version pushed last when it was opened; call
    ``retriever.vectorstore.session.sync.refresh()`` to load a newer one.
    """

    vectorstore: MossVectorStore
    """The vector store searched; opened from ``index_name`` when not given."""
    k: int = Field(default=4, ge=1)
    """How many documents to return at most."""
    filter: Filter | None = None
    """A metadata filter applied before ranking (plain or moss form)."""
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """Drop documents whose relevance (cosine similarity) is lower."""
    alpha: float | None = Field(default=None, ge=0.0, le=1.0)
    """1.0 vector search, 0.0 keyword (BM25) search, in between a blend; None: moss's 0.4."""

    def __init__(self, **data: Any) -> None:
        """Take ``vectorstore=``, or arguments naming an index to open (``index_name``, ...)."""
        # Opened here rather than in a pydantic validator, so moss errors reach the caller as
        # themselves instead of wrapped in a ValidationError.
        named = {name: data.pop(name) for name in _OPEN_ARGS if name in data}
        fields = sorted(type(self).model_fields)
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise InvalidArgumentError(
                f"MossRetriever got unknown argument(s) {unknown}; it accepts {', '.join(fields)} "
                f"and, to open an index by name, {', '.join(_OPEN_ARGS)}"
            )
        if data.get("vectorstore") is not None:
            if named:
                raise InvalidArgumentError(
                    f"pass either vectorstore= or arguments naming an index ({sorted(named)}), "
                    "not both"
                )
        else:
            request = open_request(
                index_name=named.get("index_name"),
                embedding=named.get("embedding"),
                model_id=named.get("model_id"),
                client=named.get("client"),
                store=named.get("store"),
                project_id=named.get("project_id"),
                version=named.get("version"),
                auto_refresh=named.get("auto_refresh", False),
                must_exist=True,
            )
            data["vectorstore"] = MossVectorStore._opened(
                request, run_sync(request.flow()), named.get("embedding")
            )
        super().__init__(**data)

    def batch(
        self,
        inputs: list[str],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Retrieve for several queries: embedded in one batch and scored with one product
        (``session.query_many``); callbacks and tracing run per query as with ``invoke``."""
        prefetched = self._prefetch(inputs, kwargs)
        if prefetched is None:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        flow = self.vectorstore._search_many(*prefetched)
        with _prefetched(dict(zip(prefetched[0], run_sync(flow), strict=True))):
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)

    async def abatch(
        self,
        inputs: list[str],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Async twin of :meth:`batch`."""
        prefetched = self._prefetch(inputs, kwargs)
        if prefetched is None:
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )
        found = await run_async(self.vectorstore._search_many(*prefetched))
        with _prefetched(dict(zip(prefetched[0], found, strict=True))):
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )

    def _prefetch(self, inputs: list[str], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
        """The arguments of one batched search for ``inputs``, or None when they cannot share
        one (not all non-empty strings, or arguments the per-query path must report)."""
        if len(inputs) < 2 or not all(isinstance(text, str) and text.strip() for text in inputs):
            return None
        try:
            args = self._search_args(dict(kwargs))
            search = similarity("batch", args.pop("k"), args.pop("filter"), args)
        except InvalidArgumentError:
            return None  # each invocation raises it, as invoke would
        texts = list(dict.fromkeys(inputs))
        return texts, search, relevance_pairs

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return run_sync(self._relevant(query, kwargs))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return await run_async(self._relevant(query, kwargs))

    def _relevant(self, query: str, kwargs: dict[str, Any]) -> Flow[list[Document]]:
        found = _PREFETCHED.get()
        if found is not None and query in found:
            return list(found[query])
        store, args = self.vectorstore, self._search_args(kwargs)
        pairs = yield Io(
            lambda: store.similarity_search_with_relevance_scores(query, **args),
            lambda: store.asimilarity_search_with_relevance_scores(query, **args),
        )
        return [doc for doc, _ in pairs]

    def _search_args(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Per-call values where given, else the retriever's fields; unknown names refused."""
        reject_extra(
            {name: value for name, value in kwargs.items() if name not in _CALL_ARGS},
            "MossRetriever.invoke",
            _CALL_ARGS,
        )
        args = {name: getattr(self, name) for name in _CALL_ARGS}
        args.update({name: value for name, value in kwargs.items() if value is not None})
        return args


@contextmanager
def _prefetched(found: dict[str, list[tuple[Document, float]]]) -> Iterator[None]:
    token = _PREFETCHED.set({text: [doc for doc, _ in pairs] for text, pairs in found.items()})
    try:
        yield
    finally:
        _PREFETCHED.reset(token)
