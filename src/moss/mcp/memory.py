"""The operations behind ``moss mcp``'s tools: shared sessions, a scope, plain JSON results.

One :class:`Memory` serves every request of one MCP server. It keeps one session per index,
refreshed before each read (cheap when nothing changed) so other agents' pushes are seen, and
every write is pushed at once with ``merge=True`` so concurrent agents never lose each other's
writes. Requests on one index are serialized by a lock: a session is not meant for concurrent
writers inside one process.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from ..client import MossClient
from ..errors import IndexNotFoundError, InvalidArgumentError
from ..session import Session
from ..types import DocumentInfo, IndexInfo, QueryOptions

#: The most results one search may return: enough for an agent, small enough for its context.
MAX_TOP_K = 100


@dataclass(frozen=True)
class Scope:
    """Which indexes the server may touch: one pinned index, a name prefix, or any."""

    index: str | None = None
    prefix: str | None = None

    def __post_init__(self) -> None:
        if self.index is not None and self.prefix is not None:
            raise InvalidArgumentError("pin the server to one --index or to a --prefix, not both")
        if self.index is not None and not self.index:
            raise InvalidArgumentError("--index must be a non-empty index name")
        if self.prefix is not None and not self.prefix:
            raise InvalidArgumentError("--prefix must be a non-empty name prefix")

    def describe(self) -> str:
        """One sentence for the model: what the server may touch."""
        if self.index is not None:
            return f"This server is pinned to the index {self.index!r}; other indexes are refused."
        if self.prefix is not None:
            return f"This server only reaches indexes whose names start with {self.prefix!r}."
        return "This server reaches every index of its project."

    def resolve(self, index: str | None) -> str:
        """The index a request means, or ``InvalidArgumentError`` if it is outside the scope."""
        if index is None or index == "":
            if self.index is not None:
                return self.index
            raise InvalidArgumentError("name the index to use (the 'index' argument)")
        if self.index is not None and index != self.index:
            raise InvalidArgumentError(
                f"index {index!r} is outside this server's scope: it is pinned to {self.index!r}"
            )
        if self.prefix is not None and not index.startswith(self.prefix):
            raise InvalidArgumentError(
                f"index {index!r} is outside this server's scope: names must start with "
                f"{self.prefix!r}"
            )
        return index

    def allows(self, name: str) -> bool:
        """Whether an index name is inside the scope (for listings)."""
        if self.index is not None:
            return name == self.index
        return self.prefix is None or name.startswith(self.prefix)


class Memory:
    """Search, remember, read and forget in a store's indexes, as JSON-ready dicts."""

    def __init__(
        self, client: MossClient, *, scope: Scope | None = None, model_id: str | None = None
    ) -> None:
        self.client = client
        self.scope = scope or Scope()
        self.model_id = model_id
        self._sessions: dict[str, Session] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def _open(self, name: str, *, must_exist: bool) -> Session:
        """The session of ``name``, refreshed to the latest stored version."""
        session = self._sessions.get(name)
        if session is not None:
            await session.refresh()
            return session
        try:
            session = await self.client.session(name, self.model_id, must_exist=must_exist)
        except IndexNotFoundError:
            raise _not_found(name) from None
        self._sessions[name] = session
        return session

    async def _drop(self, name: str) -> None:
        """Forget a session whose write failed: its unpushed changes must not ride along later."""
        session = self._sessions.pop(name, None)
        if session is not None:
            await session.close()

    async def search(
        self,
        index: str | None,
        query: str,
        top_k: int = 5,
        filter: dict[str, Any] | None = None,
        alpha: float = 0.4,
    ) -> dict[str, Any]:
        """The ``top_k`` documents most relevant to ``query``."""
        name = self.scope.resolve(index)
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidArgumentError(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
        async with self._lock(name):
            session = await self._open(name, must_exist=True)
            found = await session.query(
                query, QueryOptions(top_k=top_k, filter=filter, alpha=alpha)
            )
        return {
            "index": name,
            "version": session.version,
            "results": [
                {"id": d.id, "text": d.text, "metadata": d.metadata, "score": round(d.score, 6)}
                for d in found.docs
            ],
        }

    async def remember(
        self,
        index: str | None,
        texts: list[str],
        metadata: dict[str, Any] | None = None,
        ids: list[str] | None = None,
    ) -> dict[str, Any]:
        """Store plain texts (one metadata object for all), with new ids unless given."""
        if not texts:
            raise InvalidArgumentError("texts must hold at least one text to remember")
        if ids is not None and len(ids) != len(texts):
            raise InvalidArgumentError(
                f"ids must match texts one for one: got {len(ids)} ids for {len(texts)} texts"
            )
        chosen = ids if ids is not None else [f"mem-{uuid.uuid4().hex[:16]}" for _ in texts]
        docs = [
            DocumentInfo(id=doc_id, text=text, metadata=dict(metadata) if metadata else None)
            for doc_id, text in zip(chosen, texts, strict=True)
        ]
        return await self._write(self.scope.resolve(index), docs)

    async def add(self, index: str | None, documents: list[DocumentInfo]) -> dict[str, Any]:
        """Add (or replace, by id) documents."""
        if not documents:
            raise InvalidArgumentError("documents must hold at least one document")
        return await self._write(self.scope.resolve(index), documents)

    async def _write(self, name: str, docs: list[DocumentInfo]) -> dict[str, Any]:
        async with self._lock(name):
            session = await self._open(name, must_exist=False)
            try:
                added = await session.add_docs(docs)
                pushed = await session.push_index(merge=True)
            except Exception:
                await self._drop(name)
                raise
        return {
            "index": name,
            "ids": [doc.id for doc in docs],
            "added": added.added,
            "updated": added.updated,
            "version": pushed.version,
            "doc_count": pushed.doc_count,
        }

    async def get(self, index: str | None, ids: list[str]) -> dict[str, Any]:
        """The documents with these ids (those that exist), and the ids that do not."""
        name = self.scope.resolve(index)
        if not ids:
            raise InvalidArgumentError("ids must hold at least one document id")
        async with self._lock(name):
            session = await self._open(name, must_exist=True)
            docs = await session.get_docs(ids)
        found = {doc.id for doc in docs}
        return {
            "index": name,
            "version": session.version,
            "documents": [{"id": d.id, "text": d.text, "metadata": d.metadata} for d in docs],
            "missing": [doc_id for doc_id in dict.fromkeys(ids) if doc_id not in found],
        }

    async def forget(
        self, index: str | None, ids: list[str] | None = None, filter: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Delete documents by id or by metadata filter (exactly one of them) and push."""
        name = self.scope.resolve(index)
        if (ids is None) == (filter is None):
            raise InvalidArgumentError("give exactly one of ids or filter to say what to forget")
        if ids is not None and not ids:
            raise InvalidArgumentError("ids must hold at least one document id")
        async with self._lock(name):
            session = await self._open(name, must_exist=True)
            if ids is None:
                ids = [doc.id for doc in await session.get_docs(filter=filter)]
            deleted = await session.delete_docs(ids)
            if deleted:
                try:
                    await session.push_index(merge=True)
                except Exception:
                    await self._drop(name)
                    raise
        return {
            "index": name,
            "deleted": deleted,
            "version": session.version,
            "doc_count": session.doc_count,
        }

    async def list_indexes(self) -> dict[str, Any]:
        """The indexes in scope, latest version each."""
        infos = await self.client.list_indexes()
        return {"indexes": [_summary(info) for info in infos if self.scope.allows(info.name)]}

    async def versions(self, index: str | None) -> dict[str, Any]:
        """The stored versions of an index, oldest first."""
        name = self.scope.resolve(index)
        infos = await self.client.store.aversions(self.client.project_id, name)
        if not infos:
            raise _not_found(name)
        return {
            "index": name,
            "versions": [
                {
                    "version": info.version,
                    "doc_count": info.doc_count,
                    "size_bytes": info.size_bytes,
                    "created_at": info.created_at,
                }
                for info in infos
            ],
        }

    async def summary(self, index: str) -> dict[str, Any]:
        """An index's name, model, document count and latest version."""
        name = self.scope.resolve(index)
        info = await self.client.store.ahead(self.client.project_id, name)
        if info is None:
            raise _not_found(name)
        return _summary(info)

    async def close(self) -> None:
        """Close every session and the client."""
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
        await self.client.close()


def _not_found(name: str) -> IndexNotFoundError:
    return IndexNotFoundError(
        f"index {name!r} does not exist: call list_indexes to see the indexes, or "
        f"remember/add documents to create it"
    )


def _summary(info: IndexInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "model_id": info.model_id,
        "dimension": info.dimension,
        "doc_count": info.doc_count,
        "version": info.version,
        "updated_at": info.created_at,
    }
