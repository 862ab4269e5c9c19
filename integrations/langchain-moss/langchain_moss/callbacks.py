"""Push Moss sessions at checkpoints of LangChain and LangGraph runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler

from moss import InvalidArgumentError, PushResult, Session, SyncSession
from moss.flow import Flow, Io, run_async, run_sync

from ._checkpoints import CHECKPOINT_EVENT, Checkpoint, CheckpointRules
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
        author: str | None = None,
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
        if author is not None and (not isinstance(author, str) or not author):
            raise InvalidArgumentError(f"author must be a non-empty str or None, got {author!r}")
        self.merge = merge
        self.raise_error = raise_error
        self.author = author
        """Recorded as every push's author when set; else the node or run at the checkpoint."""
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

    def _push_all(self, author: str | None, message: str | None) -> Flow[list[PushResult]]:
        """Push each session with unpushed changes (the core's per-session lock orders pushes).

        Each version records ``author`` (the handler's own ``author`` wins) and ``message``.
        """
        author = self.author or author
        results: list[PushResult] = []
        errors: list[Exception] = []
        for session in self.sessions:
            try:
                pushed = yield self._push_step(session, author, message)
            except Exception as exc:
                logger.error("push of moss index %r at a checkpoint failed: %s", session.name, exc)
                errors.append(exc)
                continue
            if pushed is not None:
                results.append(self._pushed(pushed))
        if errors and self.raise_error:
            raise errors[0]
        return results

    def _push_step(
        self, session: Session, author: str | None, message: str | None
    ) -> Io[PushResult | None]:
        return Io(
            lambda: session.sync.push_if_changed(merge=self.merge, author=author, message=message),
            lambda: session.push_if_changed(merge=self.merge, author=author, message=message),
        )

    def _at(self, checkpoint: Checkpoint | None) -> Flow[list[PushResult]] | None:
        """The push flow of a checkpoint, or None when the event is none."""
        if checkpoint is None:
            return None
        return self._push_all(checkpoint.author, checkpoint.message)

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
            kwargs.get("name"),
        )

    def _ended(self, kwargs: Mapping[str, Any], *, chain: bool) -> Flow[list[PushResult]] | None:
        """Forget a finished run; the push flow if its end is a checkpoint."""
        return self._at(
            self.rules.ended(
                kwargs["run_id"], kwargs.get("parent_run_id"), kwargs.get("tags"), chain=chain
            )
        )

    def _event(self, name: str, kwargs: Mapping[str, Any]) -> Flow[list[PushResult]] | None:
        """The push flow if this custom event is the checkpoint event."""
        return self._at(self.rules.event(name, kwargs.get("run_id"), kwargs.get("metadata")))

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

    Each version records who pushed it and why (``client.versions(name)``): the author is the
    LangGraph node whose run reached the checkpoint, else that run's name (``author="..."``
    overrides it, e.g. one handler per agent); the message names the checkpoint:
    ``"node:researcher"``, ``"tag:save"``, ``"every 5 chain ends"``, ``"root end"`` or
    ``"event:moss_checkpoint"`` (comma-separated when one run end is several).

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

    def push(self, *, author: str | None = None, message: str | None = None) -> list[PushResult]:
        """Push every session that has unpushed changes now; return the completed pushes.

        ``author`` and ``message`` are recorded with each version (the handler's ``author``
        option wins).
        """
        return run_sync(self._push_all(author, message))

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
        if flow := self._ended(kwargs, chain=True):
            run_sync(flow)

    def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        """Push if this tool end is a checkpoint."""
        if flow := self._ended(kwargs, chain=False):
            run_sync(flow)

    def on_retriever_end(self, documents: Any, **kwargs: Any) -> None:
        """Push if this retriever end is a checkpoint."""
        if flow := self._ended(kwargs, chain=False):
            run_sync(flow)

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
        if flow := self._event(name, kwargs):
            run_sync(flow)


class AsyncMossPushHandler(_PushAtCheckpoints, AsyncCallbackHandler):
    """The async twin of :class:`MossPushHandler`: same checkpoints, pushes on the event loop.

    Example::

        handler = AsyncMossPushHandler(store, nodes=["researcher"])
        await graph.ainvoke(inputs, config={"callbacks": [handler]})
    """

    async def apush(
        self, *, author: str | None = None, message: str | None = None
    ) -> list[PushResult]:
        """Push every session that has unpushed changes now; return the completed pushes.

        ``author`` and ``message`` are recorded with each version (the handler's ``author``
        option wins).
        """
        return await run_async(self._push_all(author, message))

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
        if flow := self._ended(kwargs, chain=True):
            await run_async(flow)

    async def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        """Push if this tool end is a checkpoint."""
        if flow := self._ended(kwargs, chain=False):
            await run_async(flow)

    async def on_retriever_end(self, documents: Any, **kwargs: Any) -> None:
        """Push if this retriever end is a checkpoint."""
        if flow := self._ended(kwargs, chain=False):
            await run_async(flow)

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
        if flow := self._event(name, kwargs):
            await run_async(flow)
