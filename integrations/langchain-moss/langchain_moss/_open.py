"""Open a session from LangChain-style keyword arguments (one flow for sync and async)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from langchain_core.embeddings import Embeddings

from moss import (
    EmbeddingModel,
    InvalidArgumentError,
    ModelMismatchError,
    MossClient,
    Session,
    Store,
    SyncSession,
)
from moss.flow import Flow, Io

from .embeddings import model_id_for, moss_model_for

StoreArg = Store | str | os.PathLike[str]


def async_face(session: Session | SyncSession) -> Session:
    """The session with awaitable methods (its ``.sync`` blocks): the adapter needs both faces."""
    if isinstance(session, Session):
        return session
    if isinstance(session, SyncSession):
        return session.aio  # one core under both faces: writes through either are seen by both
    raise InvalidArgumentError(
        f"session must be a moss Session or SyncSession, got {type(session).__name__}"
    )


@dataclass
class OpenRequest:
    """A checked request to open one index: which client, name, model, version and options."""

    client: MossClient
    owns_client: bool
    index_name: str
    model_id: str | None
    model: EmbeddingModel | None
    version: int | None
    auto_refresh: bool
    must_exist: bool

    def flow(self) -> Flow[Session]:
        """Open the session: blocking through ``client.sync``, or awaited on the running loop."""
        args = (self.index_name, self.model_id)
        options: dict[str, Any] = {
            "model": self.model,
            "version": self.version,
            "auto_refresh": self.auto_refresh,
            "must_exist": self.must_exist,
        }
        session = yield Io(
            lambda: self.client.sync.session(*args, **options),
            lambda: self.client.session(*args, **options),
        )
        return async_face(session)


def open_request(
    *,
    index_name: str | None,
    embedding: Embeddings | None,
    model_id: str | None,
    client: MossClient | None,
    store: StoreArg | None,
    project_id: str | None,
    version: int | None,
    auto_refresh: bool = False,
    must_exist: bool = False,
) -> OpenRequest:
    """Check the keyword arguments that name an index; create the client if none was given."""
    if index_name is None:
        raise InvalidArgumentError(
            "pass session=<an open moss Session>, or index_name=... to open one by name"
        )
    if client is not None and (store is not None or project_id is not None):
        raise InvalidArgumentError(
            "pass either client=MossClient(...) or store=/project_id=, not both"
        )
    model = moss_model_for(embedding, model_id) if embedding is not None else None
    owns = client is None
    if client is None:
        client = MossClient(project_id, store=store)
    return OpenRequest(
        client=client,
        owns_client=owns,
        index_name=index_name,
        model_id=None if model is not None else model_id,
        model=model,
        version=version,
        auto_refresh=auto_refresh,
        must_exist=must_exist,
    )


def check_session_model(
    session: Session, embedding: Embeddings | None, model_id: str | None
) -> None:
    """Refuse an embedding or model id that differs from the open session's model."""
    asked = model_id
    if asked is None and embedding is not None:
        asked = model_id_for(embedding)
    if asked is not None and asked != session.model_id:
        raise ModelMismatchError(
            f"session {session.name!r} uses embedding model {session.model_id!r}, but "
            f"{asked!r} was given: pass the session's model (or none), or open another index"
        )
