"""Open a session from LangChain-style keyword arguments (checks shared by sync and async)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from langchain_core.embeddings import Embeddings

from moss import (
    EmbeddingModel,
    IndexNotFoundError,
    InvalidArgumentError,
    ModelMismatchError,
    MossClient,
    Session,
    Store,
)

from .embeddings import model_id_for, moss_model_for

StoreArg = Store | str | os.PathLike[str]


@dataclass
class OpenRequest:
    """A checked request to open one index: which client, name, model and version."""

    client: MossClient
    owns_client: bool
    index_name: str
    model_id: str | None
    model: EmbeddingModel | None
    version: int | None
    must_exist: bool

    def open(self) -> Session:
        """Open the session without an event loop (plain blocking I/O)."""
        session = self.client.sync.session(
            self.index_name, self.model_id, model=self.model, version=self.version
        )
        return self._checked(session)

    async def aopen(self) -> Session:
        """Open the session on the running event loop."""
        session = await self.client.session(
            self.index_name, self.model_id, model=self.model, version=self.version
        )
        return self._checked(session)

    def _checked(self, session: Session) -> Session:
        if self.must_exist and session.version == 0:
            raise IndexNotFoundError(
                f"index {self.index_name!r} does not exist in {self.client.store.location}: push "
                "it first (MossVectorStore.push()), or check the name, project and store"
            )
        return session


def open_request(
    *,
    index_name: str | None,
    embedding: Embeddings | None,
    model_id: str | None,
    client: MossClient | None,
    store: StoreArg | None,
    project_id: str | None,
    version: int | None,
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
