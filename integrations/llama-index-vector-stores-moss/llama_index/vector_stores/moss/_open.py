"""Opening a MossVectorStore's session, by name or from a session given (shared by sync and async)."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypedDict

from llama_index.core.base.embeddings.base import BaseEmbedding

from moss import EmbeddingModel, InvalidArgumentError, MossClient, Session, Store, SyncSession

from .embeddings import moss_model_for

__all__ = ["OpenOptions", "OpenRequest", "async_session", "check_session_only", "llamaindex_advice"]

# moss's message for an index built with an embedder it cannot name (moss/loading.py).
_OWN_MODEL = re.compile(r"model=EmbedderModel\(your_embedder, model_id=('[^']*'|\"[^\"]*\")\)")


class OpenOptions(TypedDict, total=False):
    """How :meth:`MossVectorStore.aopen` opens, as the constructor's keyword arguments."""

    client: MossClient | None
    store: Store | str | os.PathLike[str] | None
    model_id: str | None
    embed_model: BaseEmbedding | None
    version: int | None
    auto_refresh: bool
    must_exist: bool


@dataclass
class OpenRequest:
    """What to open: the client (made here if not given), and the model and id to ask for."""

    client: MossClient
    owned: MossClient | None
    model: EmbeddingModel | None
    model_id: str | None
    version: int | None = None
    auto_refresh: bool = False
    must_exist: bool = False

    @classmethod
    def make(
        cls,
        client: MossClient | None,
        store: Store | str | os.PathLike[str] | None,
        model_id: str | None,
        embed_model: BaseEmbedding | None,
        version: int | None = None,
        auto_refresh: bool = False,
        must_exist: bool = False,
    ) -> OpenRequest:
        if client is not None and store is not None:
            raise InvalidArgumentError("pass client= or store=, not both")
        model = None if embed_model is None else moss_model_for(embed_model, model_id)
        owned = None
        if client is None:
            client = owned = MossClient(store=store)
        return cls(
            client, owned, model, None if model else model_id, version, auto_refresh, must_exist
        )

    def open(self, index_name: str) -> Session:
        """Open the session, blocking; close a client made here if that fails."""
        try:
            with llamaindex_advice():
                opened = self.client.sync.session(
                    index_name,
                    self.model_id,
                    model=self.model,
                    version=self.version,
                    auto_refresh=self.auto_refresh,
                    must_exist=self.must_exist,
                )
            return async_session(opened)
        except BaseException:
            if self.owned is not None:
                self.owned.sync.close()
            raise

    async def aopen(self, index_name: str) -> Session:
        """Open the session without blocking the event loop."""
        try:
            with llamaindex_advice():
                return await self.client.session(
                    index_name,
                    self.model_id,
                    model=self.model,
                    version=self.version,
                    auto_refresh=self.auto_refresh,
                    must_exist=self.must_exist,
                )
        except BaseException:
            if self.owned is not None:
                await self.owned.close()
            raise


def async_session(session: Session | SyncSession) -> Session:
    """The async :class:`Session` behind ``session`` (a blocking ``SyncSession`` wraps one)."""
    if isinstance(session, Session):
        return session
    if isinstance(session, SyncSession):
        return session.aio  # one core under both faces: writes through either are seen by both
    raise InvalidArgumentError(f"session must be a moss Session, got {type(session).__name__}")


@contextlib.contextmanager
def llamaindex_advice() -> Iterator[None]:
    """Turn moss's advice for an index built with your own model into LlamaIndex's."""
    try:
        yield
    except InvalidArgumentError as exc:
        stored = _OWN_MODEL.search(str(exc))
        if stored is None:
            raise
        raise InvalidArgumentError(
            f"{str(exc).partition(': open it with')[0]}: open it with the LlamaIndex embedding "
            f"it was built with, MossVectorStore(..., embed_model=<that embedding>, "
            f"model_id={stored[1]})"
        ) from None


def check_session_only(
    session: Session,
    index_name: str | None,
    client: MossClient | None,
    store: object,
    model_id: str | None,
    embed_model: BaseEmbedding | None,
    version: int | None,
    auto_refresh: bool,
    must_exist: bool = False,
) -> None:
    """Refuse arguments that would open a session, next to ``session=`` (an open one)."""
    if client is not None or store is not None or embed_model is not None:
        raise InvalidArgumentError(
            "pass either session= or (index_name, client or store, model_id or embed_model): "
            "an open session already has its store and model"
        )
    if version is not None or auto_refresh or must_exist:
        raise InvalidArgumentError(
            "version=, auto_refresh= and must_exist= choose how a session is opened: pass them with "
            "index_name, not with an open session="
        )
    if index_name is not None and index_name != session.name:
        raise InvalidArgumentError(
            f"index_name {index_name!r} differs from the session's {session.name!r}"
        )
    if model_id is not None and model_id != session.model_id:
        raise InvalidArgumentError(
            f"model_id {model_id!r} differs from the session's {session.model_id!r}"
        )
