"""Push Moss sessions at checkpoints of LangChain and LangGraph runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler

from moss import InvalidArgumentError, PushResult, Session

from ._checkpoints import CHECKPOINT_EVENT, CheckpointRules, PushGate, gate_for
from ._records import push_args
from .retrievers import MossRetriever
from .vectorstores import MossVectorStore

logger = logging.getLogger(__name__)

#: What a handler pushes: a session, or the session of a vector store or retriever.
Target = Session | MossVectorStore | MossRetriever


def _session_of(target: Target) -> Session:
    if isinstance(target, Session):
        return target
    if isinstance(target, MossVectorStore):
        return target.session
    if isinstance(target, MossRetriever):
        return target.vectorstore.session
    raise InvalidArgumentError(
        f"a push handler pushes Session, MossVectorStore or MossRetriever objects, "
        f"got {type(target).__name__}"
    )


class _PushAtCheckpoints:
    """Configuration, checkpoint rules and bookkeeping shared by the sync and async handlers."""

    raise_error: bool

    def __init__(
        self,
        targets: Target | Iterable[Target],
        *,
        on_root_end: bool = True,
        tags: Iterable[str] = (),
        nodes: Iterable[str] = (),
        every_n_chain_ends: int | None = None,
        checkpoint_event: str | None = CHECKPOINT_EVENT,
        merge: bool = False,
        raise_error: bool = False,
    ) -> None:
        # A retriever is a pydantic model, and so iterable: test for a single target first.
        if isinstance(targets, (Session, MossVectorStore, MossRetriever)):
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

    def _pushed(self, result: PushResult) -> PushResult:
        with self._count_lock:
            self.push_count += 1
            self.last_results[result.index_name] = result
        logger.debug("pushed index %r as version %d", result.index_name, result.version)
        return result

    def _failed(self, session: Session, gate: PushGate, exc: Exception) -> None:
        gate.release()
        logger.error("push of moss index %r at a checkpoint failed: %s", session.name, exc)

    def _finish(self, errors: list[Exception]) -> None:
        if errors and self.raise_error:
            raise errors[0]

    def _run_started(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: Mapping[str, Any] | None,
    ) -> None:
        self.rules.started(run_id, parent_run_id, tags, metadata)

    def _run_ended(
        self, run_id: UUID, parent_run_id: UUID | None, kwargs: Mapping[str, Any], chain: bool
    ) -> bool:
        return self.rules.ended(run_id, parent_run_id, kwargs.get("tags"), chain=chain)


class MossPushHandler(_PushAtCheckpoints, BaseCallbackHandler):
    """Push Moss sessions at checkpoints of a run, so other processes see what agents wrote.

    Checkpoints: the end of the root run (``on_root_end``, default); the end of the outermost
    run with one of ``tags``; the end of one of the LangGraph ``nodes``; every N-th chain end
    (``every_n_chain_ends``; LangGraph's hidden runs do not count); and the custom event
    ``moss_checkpoint`` (``dispatch_custom_event("moss_checkpoint", {})``; ``checkpoint_event``
    renames it, None disables it). Runs are chains (LangGraph graphs and nodes included), tools
    and retrievers; model calls write nothing and are ignored. A failed run is not a checkpoint.

    At a checkpoint each session with changes since its last push is pushed; one without is
    not. Pushes of one session never overlap, in this process: a checkpoint during a push
    makes one more push after it. A failed push is logged with the index name and raised if
    ``raise_error=True``. ``merge=True`` pushes with ``push_index(merge=True)``, so concurrent
    writers' documents are kept.

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
        results: list[PushResult] = []
        errors: list[Exception] = []
        for session in self.sessions:
            gate = gate_for(session)
            if not gate.claim():
                continue
            try:
                while True:
                    if session.has_unpushed_changes:
                        pushed = session.sync.push_index(**push_args(None, self.merge))
                        results.append(self._pushed(pushed))
                    if not gate.repeat():
                        break
            except Exception as exc:
                self._failed(session, gate, exc)
                errors.append(exc)
        self._finish(errors)
        return results

    def _end(self, run_id: UUID, parent_run_id: UUID | None, kwargs: Any, chain: bool) -> None:
        if self._run_ended(run_id, parent_run_id, kwargs, chain):
            self.push()

    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Record the run (its tags and LangGraph node)."""
        self._run_started(run_id, parent_run_id, tags, metadata)

    def on_chain_end(
        self,
        outputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Push if this chain end is a checkpoint."""
        self._end(run_id, parent_run_id, kwargs, chain=True)

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Forget the run."""
        self.rules.failed(run_id)

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Record the run."""
        self._run_started(run_id, parent_run_id, tags, metadata)

    def on_tool_end(
        self, output: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        """Push if this tool end is a checkpoint."""
        self._end(run_id, parent_run_id, kwargs, chain=False)

    def on_tool_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Forget the run."""
        self.rules.failed(run_id)

    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Record the run."""
        self._run_started(run_id, parent_run_id, tags, metadata)

    def on_retriever_end(
        self, documents: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        """Push if this retriever end is a checkpoint."""
        self._end(run_id, parent_run_id, kwargs, chain=False)

    def on_retriever_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Forget the run."""
        self.rules.failed(run_id)

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
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
        results: list[PushResult] = []
        errors: list[Exception] = []
        for session in self.sessions:
            gate = gate_for(session)
            if not gate.claim():
                continue
            try:
                while True:
                    if session.has_unpushed_changes:
                        pushed = await session.push_index(**push_args(None, self.merge))
                        results.append(self._pushed(pushed))
                    if not gate.repeat():
                        break
            except Exception as exc:
                self._failed(session, gate, exc)
                errors.append(exc)
        self._finish(errors)
        return results

    async def _end(
        self, run_id: UUID, parent_run_id: UUID | None, kwargs: Any, chain: bool
    ) -> None:
        if self._run_ended(run_id, parent_run_id, kwargs, chain):
            await self.apush()

    async def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Record the run (its tags and LangGraph node)."""
        self._run_started(run_id, parent_run_id, tags, metadata)

    async def on_chain_end(
        self,
        outputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Push if this chain end is a checkpoint."""
        await self._end(run_id, parent_run_id, kwargs, chain=True)

    async def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Forget the run."""
        self.rules.failed(run_id)

    async def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Record the run."""
        self._run_started(run_id, parent_run_id, tags, metadata)

    async def on_tool_end(
        self, output: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        """Push if this tool end is a checkpoint."""
        await self._end(run_id, parent_run_id, kwargs, chain=False)

    async def on_tool_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Forget the run."""
        self.rules.failed(run_id)

    async def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Record the run."""
        self._run_started(run_id, parent_run_id, tags, metadata)

    async def on_retriever_end(
        self, documents: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        """Push if this retriever end is a checkpoint."""
        await self._end(run_id, parent_run_id, kwargs, chain=False)

    async def on_retriever_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Forget the run."""
        self.rules.failed(run_id)

    async def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Push at the checkpoint event."""
        if self.rules.is_checkpoint_event(name):
            await self.apush()
