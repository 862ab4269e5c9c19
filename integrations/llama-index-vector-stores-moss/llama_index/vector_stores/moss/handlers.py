"""Push Moss sessions at LlamaIndex checkpoints, through the instrumentation dispatcher."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.ingestion import IngestionPipeline

# llama_index.core.instrumentation re-exports these without __all__, hence the ignores.
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.dispatcher import Dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.query import QueryEndEvent
from llama_index.core.instrumentation.events.retrieval import RetrievalEndEvent
from llama_index.core.instrumentation.span import SimpleSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler

from moss import InvalidArgumentError, PushResult, Session, SyncSession

from ._open import async_session
from .base import MossVectorStore

__all__ = ["DEFAULT_EVENTS", "DEFAULT_SPANS", "MossPushHandler"]

logger = logging.getLogger(__name__)

#: Events that end a checkpoint by default: a query engine's query, a retriever's retrieval.
DEFAULT_EVENTS: tuple[type[BaseEvent], ...] = (QueryEndEvent, RetrievalEndEvent)
#: Spans that end a checkpoint by default: an ingestion pipeline run (LlamaIndex has no
#: ingestion-end event). A name is ``Class.method`` and also matches subclasses of ``Class``.
DEFAULT_SPANS: tuple[str, ...] = (
    f"{IngestionPipeline.__name__}.run",
    f"{IngestionPipeline.__name__}.arun",
)
# A span id is "<name>-<uuid4>"; a uuid4 string is 36 characters.
_SPAN_ID_SUFFIX = 37


class MossPushHandler:
    """Push one or more sessions whenever LlamaIndex reaches a checkpoint, if they changed.

    Checkpoints are the end of the configured events (default: query end and retrieval end) and
    the successful end of the configured spans (default: ``IngestionPipeline.run`` / ``arun``).
    A session with no change since its last load or push is not pushed. Pushes go through
    ``Session.push_if_changed``, so pushes of one session never overlap, also between handlers.
    They merge by default (``merge=True``): agents sharing an index keep each other's nodes,
    because a push that finds a newer stored version replays this session's changes onto it.
    ``merge=False`` replaces the stored index with this session's content (last writer wins).

    Each version records who pushed it and why (``client.versions(name)``). The message names
    the checkpoint: ``"event:RetrievalEndEvent"`` or ``"span:IngestionPipeline.run"``. The
    author is the component that reached it: the span's instance (its ``name`` if it has one,
    as LlamaIndex agents do, else its class), or for an event the class of the span it was
    sent in (``"VectorIndexRetriever"``); ``author="..."`` overrides it (one handler per agent).

    LlamaIndex's dispatcher swallows every exception a handler raises, so a failed push is
    logged with the index name and kept in :attr:`errors`; with ``raise_error=True``,
    :meth:`checkpoint` (called directly) raises it, and :meth:`raise_for_errors` re-raises the
    first failure of a dispatcher-triggered push::

        store = MossVectorStore("support-kb", embed_model=MossEmbedding())
        with MossPushHandler(store):                 # attached to the root dispatcher
            pipeline = IngestionPipeline(transformations=[..., MossEmbedding()],
                                         vector_store=store)
            pipeline.run(documents=docs)             # pushed when the run ends
    """

    def __init__(
        self,
        *targets: MossVectorStore | Session | SyncSession,
        events: Iterable[type[BaseEvent]] = DEFAULT_EVENTS,
        spans: Iterable[str] = DEFAULT_SPANS,
        raise_error: bool = False,
        dispatcher: Dispatcher | None = None,
        attach: bool = True,
        merge: bool = True,
        author: str | None = None,
    ) -> None:
        if not targets:
            raise InvalidArgumentError(
                "give MossPushHandler at least one MossVectorStore or Session"
            )
        if author is not None and (not isinstance(author, str) or not author):
            raise InvalidArgumentError(f"author must be a non-empty str or None, got {author!r}")
        self.author = author
        """Recorded as every push's author when set; else the component at the checkpoint."""
        self._pushers = [_Pusher(_session_of(target), merge) for target in targets]
        self._events = tuple(events)
        self._spans = frozenset(spans)
        self.raise_error = raise_error
        self.errors: list[BaseException] = []
        self._dispatcher = dispatcher or get_dispatcher()
        self._event_handler = _EventHandler(self)
        self._span_handler = _SpanHandler(self)
        self._attached = False
        if attach:
            self.attach()

    @property
    def push_count(self) -> int:
        """How many pushes this handler completed, over all its sessions."""
        return sum(pusher.pushes for pusher in self._pushers)

    def attach(self) -> MossPushHandler:
        """Register on the dispatcher (done by the constructor unless ``attach=False``)."""
        if not self._attached:
            self._dispatcher.add_event_handler(self._event_handler)
            self._dispatcher.add_span_handler(self._span_handler)
            self._attached = True
        return self

    def detach(self) -> None:
        """Stop listening; pushes already running finish."""
        dispatcher = self._dispatcher
        dispatcher.event_handlers = [
            h for h in dispatcher.event_handlers if h is not self._event_handler
        ]
        dispatcher.span_handlers = [
            h for h in dispatcher.span_handlers if h is not self._span_handler
        ]
        self._attached = False

    def __enter__(self) -> MossPushHandler:
        return self.attach()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.detach()

    def checkpoint(
        self, *, author: str | None = None, message: str | None = None
    ) -> list[PushResult]:
        """Push every session that changed; return the pushes this call made.

        ``author`` and ``message`` are recorded with each version (the handler's ``author``
        option wins).
        """
        author = self.author or author
        results = []
        for pusher in self._pushers:
            try:
                results.extend(pusher.checkpoint(author, message))
            except Exception as exc:
                logger.error("moss: push of index %r failed: %s", pusher.name, exc, exc_info=exc)
                self.errors.append(exc)
                if self.raise_error:
                    raise
        return results

    def raise_for_errors(self) -> None:
        """Re-raise the first push failure since the last call, if any (and forget them all)."""
        if self.errors:
            first = self.errors[0]
            self.errors.clear()
            raise first

    def _is_checkpoint_event(self, event: BaseEvent) -> bool:
        return isinstance(event, self._events)

    def _is_checkpoint_span(self, span_id: str, instance: Any) -> bool:
        name = _span_name(span_id)
        if name in self._spans:
            return True
        if instance is None or "." not in name:
            return False
        # The span names the instance's own class; match a configured base class too.
        method = name.rsplit(".", 1)[1]
        return any(f"{cls.__name__}.{method}" in self._spans for cls in type(instance).__mro__)

    def _on_event(self, event: BaseEvent) -> None:
        # The span an event is sent in is "Class.method-<uuid>": the class is who sent it.
        owner = _span_name(event.span_id or "").split(".", 1)[0] or None
        self._on_checkpoint(owner, f"event:{event.class_name()}")

    def _on_span(self, span_id: str, instance: Any) -> None:
        name = getattr(instance, "name", None)
        if not (isinstance(name, str) and name):
            name = type(instance).__name__ if instance is not None else None
        self._on_checkpoint(name, f"span:{_span_name(span_id)}")

    def _on_checkpoint(self, author: str | None, message: str) -> None:
        # A failure is already logged and recorded; the dispatcher would drop it anyway.
        with contextlib.suppress(Exception):
            self.checkpoint(author=author, message=message)


def _span_name(span_id: str) -> str:
    """``Class.method`` of a span id ``Class.method-<uuid4>``."""
    if len(span_id) > _SPAN_ID_SUFFIX and span_id[-_SPAN_ID_SUFFIX] == "-":
        return span_id[:-_SPAN_ID_SUFFIX]
    return span_id


class _Pusher:
    """One session's pushes, through moss's ``push_if_changed`` (its per-session lock)."""

    def __init__(self, session: Session, merge: bool) -> None:
        self.session = session
        self.name = session.name
        self.merge = merge
        self.pushes = 0

    def checkpoint(self, author: str | None, message: str | None) -> list[PushResult]:
        # moss serialises pushes of one session, also across handlers and stores, and sends
        # nothing when an earlier push already took the changes.
        result = self.session.sync.push_if_changed(merge=self.merge, author=author, message=message)
        if result is None:
            return []
        self.pushes += 1
        return [result]


def _session_of(target: MossVectorStore | Session | SyncSession) -> Session:
    if isinstance(target, MossVectorStore):
        return async_session(target.session)
    if isinstance(target, (Session, SyncSession)):
        return async_session(target)
    raise InvalidArgumentError(
        f"MossPushHandler pushes MossVectorStore or Session objects, got {type(target).__name__}"
    )


class _EventHandler(BaseEventHandler):
    """Calls the owner's checkpoint on the configured events."""

    _owner: MossPushHandler = PrivateAttr()

    def __init__(self, owner: MossPushHandler) -> None:
        super().__init__()
        self._owner = owner

    @classmethod
    def class_name(cls) -> str:
        return "MossPushEventHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if self._owner._is_checkpoint_event(event):
            self._owner._on_event(event)


class _SpanHandler(BaseSpanHandler[SimpleSpan]):
    """Tracks the configured spans and calls the owner's checkpoint when one ends well."""

    _owner: MossPushHandler = PrivateAttr()

    def __init__(self, owner: MossPushHandler) -> None:
        super().__init__()
        self._owner = owner

    @classmethod
    def class_name(cls) -> str:
        return "MossPushSpanHandler"

    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SimpleSpan | None:
        if not self._owner._is_checkpoint_span(id_, instance):
            return None
        return SimpleSpan(id_=id_, parent_id=parent_span_id, tags=tags or {})

    def prepare_to_exit_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> SimpleSpan | None:
        span = self.open_spans.get(id_)
        if span is not None:
            self._owner._on_span(id_, instance)
        return span

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> SimpleSpan | None:
        # A span that failed is no checkpoint: what it wrote may be half done.
        return self.open_spans.get(id_)
