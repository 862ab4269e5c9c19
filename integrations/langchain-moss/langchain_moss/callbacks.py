"""Push Moss sessions at checkpoints of LangChain and LangGraph runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler

from moss import InvalidArgumentError, PushResult, Session, SyncSession
from moss.flow import Flow, Io, run_async, run_sync

from ._checkpoints import CHECKPOINT_EVENT, CheckpointRules
from ._open import async_face
from .retrievers import MossRetriever
from .vectorstores import MossVectorStore

logger = logging.getLogger(__name__)

#: What a handler pushes: a session, or the session of a vector store or retriever.
Target = Session | SyncSession | MossVectorStore | MossRetriever


def _session_of(target: Target) -> Session:
    if isinstance(target, (Session, SyncSession)):
        return async_face(target)
    if isinstance(target, MossVectorStore):
        return target.session
    if isinstance(target, MossRetriever):
        return target.vectorstore.session
    raise InvalidArgumentError(
        f"a push handler pushes Session, SyncSession, MossVectorStore or MossRetriever objects, "
        f"got {type(target).__name__}"
    )


class _PushAtCheckpoints:
    """Configuration, checkpoint rules and the push flow shared by the sync and async handlers."""

    def __init__(
        self,
        targets: Target | Iterable[Target],
        *,
        on_root_end: bool = True,
        tags: Iterable[str] = (),
        nodes: Iterable[str] = (),
        every_n_chain_ends: int | None = None,
        checkpoint_event: str | None = CHECKPOINT_EVENT,
        merge: bool = True,
        raise_error: bool = False,
    ) -> None:
        # A retriever is a pydantic model, and so iterable: test for a single target first.
        if isinstance(targets, (Session, SyncSession, MossVectorStore, MossRetriever)):
            many: list[Target] = [targets]
        else:
            many = list(targets)
        # One entry per session, in order: two targets may share a session.
        unique = {id(session): session for session in map(_session_of, many)}
        self.sessions: tuple[Session, ...] = tuple(unique.values())
        if not self.sessions:
            raise InvalidArgumentError("give the push handler at least one session to push")
        self.rules = CheckpointRules(
            on_root_end=on_root_end,
            tags=tags,
            nodes=nodes,
            every_n_chain_ends=every_n_chain_ends,
            checkpoint_event=checkpoint_event,
        )
        self.merge = merge
        self.raise_error = raise_error
        self._count_lock = threading.Lock()
        self.push_count = 0
        """Completed pushes so far, over all sessions."""
        self.last_results: dict[str, PushResult] = {}
        """The latest completed push of each index, by index name."""

    @property
    def ignore_llm(self) -> bool:
        """Model calls write nothing to a session: LangChain need not report them."""
        return True

    @property
    def ignore_chat_model(self) -> bool:
        """Model calls write nothing to a session: LangChain need not report them."""
        return True

    def __repr__(self) -> str:
        names = [session.name for session in self.sessions]
        return f"{type(self).__name__}(indexes={names!r}, pushes={self.push_count})"

    def _push_all(self) -> Flow[list[PushResult]]:
        """Push each session with unpushed changes (the core's per-session lock orders pushes)."""
        results: list[PushResult] = []
        errors: list[Exception] = []
        for session in self.sessions:
            try:
                pushed = yield self._push_step(session)
            except Exception as exc:
                logger.error("push of moss index %r at a checkpoint failed: %s", session.name, exc)
                errors.append(exc)
                continue
            if pushed is not None:
                results.append(self._pushed(pushed))
        if errors and self.raise_error:
            raise errors[0]
        return results

    def _push_step(self, session: Session) -> Io[PushResult | None]:
        return Io(
            lambda: session.sync.push_if_changed(merge=self.merge),
            lambda: session.push_if_changed(merge=self.merge),
        )

    def _pushed(self, result: PushResult) -> PushResult:
        with self._count_lock:
            self.push_count += 1
            self.last_results[result.index_name] = result
        logger.debug("pushed index %r as version %d", result.index_name, result.version)
        return result

    def _started(self, kwargs: Mapping[str, Any]) -> None:
        """Record a run's start (its tags and LangGraph node) from the event's arguments."""
        self.rules.started(
            kwargs["run_id"],
            kwargs.get("parent_run_id"),
            kwargs.get("tags"),
            kwargs.get("metadata"),
        )

    def _ended(self, kwargs: Mapping[str, Any], *, chain: bool) -> bool:
        """Forget a finished run; whether its end is a checkpoint."""
        return self.rules.ended(
            kwargs["run_id"], kwargs.get("parent_run_id"), kwargs.get("tags"), chain=chain
        )

    def _failed(self, kwargs: Mapping[str, Any]) -> None:
        """Forget a run that raised: a failed run is not a checkpoint."""
        self.rules.failed(kwargs["run_id"])


class MossPushHandler(_PushAtCheckpoints, BaseCallbackHandler):
    """Push Moss sessions at checkpoints of a run, so other processes see what agents wrote.

    Checkpoints: the end of the root run (``on_root_end``, default); the end of the outermost
    run with one of ``tags``; the end of one of the LangGraph ``nodes``; every N-th chain end
    (``every_n_chain_ends``; LangGraph's hidden runs do not count); and the custom event
    ``moss_checkpoint`` (``dispatch_custom_event("moss_checkpoint", {})``; ``checkpoint_event``
    renames it, None disables it). Runs are chains (LangGraph graphs and nodes included), tools
    and retrievers; model calls write nothing and are ignored. A failed run is not a checkpoint.

    At a checkpoint each session with changes since its last push is pushed
    (``Session.push_if_changed``); one without is not. Pushes of one session never overlap: a
    checkpoint during a push waits for it, then pushes what is still unpushed. A failed push is
    logged with the index name and raised if ``raise_error=True``.

    Pushes merge by default (``push_index(merge=True)``): the index is shared, so a push that
    finds a newer version replays this session's changes onto it instead of replacing other
    writers' documents. ``merge=False`` replaces the stored index with this session (last
    writer wins).

    Example::

        from langchain_moss import MossPushHandler, MossVectorStore

        store = MossVectorStore(index_name="research-notes")
        handler = MossPushHandler(store, nodes=["researcher"])
        graph.invoke(inputs, config={"callbacks": [handler]})
        handler.push_count

    In async runs this handler's pushes run in a worker thread; :class:`AsyncMossPushHandler`
    pushes on the event loop instead.
    """

    def push(self) -> list[PushResult]:
        """Push every session that has unpushed changes now; return the completed pushes."""
        return run_sync(self._push_all())

    def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
        """Record the run (its tags and LangGraph node)."""
        self._started(kwargs)

    def on_tool_start(self, serialized: Any, input_str: str, **kwargs: Any) -> None:
        """Record the run."""
        self._started(kwargs)

    def on_retriever_start(self, serialized: Any, query: str, **kwargs: Any) -> None:
        """Record the run."""
        self._started(kwargs)

    def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
        """Push if this chain end is a checkpoint."""
        if self._ended(kwargs, chain=True):
            self.push()

    def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        """Push if this tool end is a checkpoint."""
        if self._ended(kwargs, chain=False):
            self.push()

    def on_retriever_end(self, documents: Any, **kwargs: Any) -> None:
        """Push if this retriever end is a checkpoint."""
        if self._ended(kwargs, chain=False):
            self.push()

    def on_chain_error(self, error: BaseException, **kwargs: Any) -> None:
        """Forget the run."""
        self._failed(kwargs)

    def on_tool_error(self, error: BaseException, **kwargs: Any) -> None:
        """Forget the run."""
        self._failed(kwargs)

    def on_retriever_error(self, error: BaseException, **kwargs: Any) -> None:
        """Forget the run."""
        self._failed(kwargs)

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        """Push at the checkpoint event."""
        if self.rules.is_checkpoint_event(name):
            self.push()


class AsyncMossPushHandler(_PushAtCheckpoints, AsyncCallbackHandler):
    """The async twin of :class:`MossPushHandler`: same checkpoints, pushes on the event loop.

    Example::

        handler = AsyncMossPushHandler(store, nodes=["researcher"])
        await graph.ainvoke(inputs, config={"callbacks": [handler]})
    """

    async def apush(self) -> list[PushResult]:
        """Push every session that has unpushed changes now; return the completed pushes."""
        return await run_async(self._push_all())

    async def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
        """Record the run (its tags and LangGraph node)."""
        self._started(kwargs)

    async def on_tool_start(self, serialized: Any, input_str: str, **kwargs: Any) -> None:
        """Record the run."""
        self._started(kwargs)

    async def on_retriever_start(self, serialized: Any, query: str, **kwargs: Any) -> None:
        """Record the run."""
        self._started(kwargs)

    async def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
        """Push if this chain end is a checkpoint."""
        if self._ended(kwargs, chain=True):
            await self.apush()

    async def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        """Push if this tool end is a checkpoint."""
        if self._ended(kwargs, chain=False):
            await self.apush()

    async def on_retriever_end(self, documents: Any, **kwargs: Any) -> None:
        """Push if this retriever end is a checkpoint."""
        if self._ended(kwargs, chain=False):
            await self.apush()

    async def on_chain_error(self, error: BaseException, **kwargs: Any) -> None:
        """Forget the run."""
        self._failed(kwargs)

    async def on_tool_error(self, error: BaseException, **kwargs: Any) -> None:
        """Forget the run."""
        self._failed(kwargs)

    async def on_retriever_error(self, error: BaseException, **kwargs: Any) -> None:
        """Forget the run."""
        self._failed(kwargs)

    async def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        """Push at the checkpoint event."""
        if self.rules.is_checkpoint_event(name):
            await self.apush()
