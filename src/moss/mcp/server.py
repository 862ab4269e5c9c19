"""The MCP face of moss: tools and resources over a :class:`~moss.mcp.memory.Memory`.

Built on the official ``mcp`` SDK's FastMCP: the JSON schemas come from the annotated
parameters below, and an exception raised by a tool comes back to the client as a tool error
(``isError``) carrying the moss message; the server keeps running.
"""

# No ``from __future__ import annotations``: the tools' parameter types are built per server
# (the index parameter is optional when the server is pinned), so they must be evaluated at
# definition, where the local names are in scope; FastMCP reads them to make the schemas.
from typing import Annotated, Any

from mcp.server.fastmcp import FastMCP
from pydantic import BaseModel, ConfigDict, Field

from ..types import DocumentInfo
from .memory import MAX_TOP_K, Memory

FILTER_HELP = (
    'Optional metadata filter, applied before ranking. Plain form: {"topic": "billing"} '
    '(equality), {"year": {"$gte": 2020}}, {"tags": {"$contains": "urgent"}}; several '
    'keys must all hold; combine with {"$and": [...]}, {"$or": [...]}, {"$not": {...}}. '
    "Operators: $eq $ne $gt $gte $lt $lte $in $nin $contains $all $any $exists."
)


class Document(BaseModel):
    """A document to add: its id, its text and optional metadata."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Unique id in the index; an existing id is replaced.")
    text: str = Field(description="The text to store; it is embedded for semantic search.")
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="Optional JSON object (strings, numbers, booleans, lists) to filter on.",
    )


def create_server(memory: Memory, *, host: str = "127.0.0.1", port: int = 8765) -> FastMCP:
    """An MCP server exposing ``memory``'s operations as tools, and index summaries as resources."""
    scope = memory.scope.describe()
    pinned = memory.scope.index is not None
    index_help = (
        f"Name of the index to use. May be left out: this server is pinned to {memory.scope.index!r}."
        if pinned
        else "Name of the index to use (see list_indexes). " + scope
    )
    # Pinned, the index argument defaults to the pin (the schema says so, and omits it from
    # "required"); otherwise it is required.
    Index = (
        Annotated[str, Field(default=memory.scope.index, description=index_help)]
        if pinned
        else Annotated[str, Field(description=index_help)]
    )
    mcp = FastMCP(
        "moss",
        instructions=(
            "moss is shared memory for agents: named indexes of texts with metadata, searched by "
            "meaning and keywords. Writes are pushed at once and merged with other agents' "
            "writes; reads see other agents' latest pushes. " + scope
        ),
        host=host,
        port=port,
        # Not a line per request on stderr: MCP clients show it to the user as server noise.
        log_level="WARNING",
    )

    @mcp.tool()
    async def search(
        index: Index,  # type: ignore[valid-type]
        query: Annotated[str, Field(description="What to look for, in natural language.")],
        top_k: Annotated[
            int, Field(ge=1, le=MAX_TOP_K, description="How many results to return at most.")
        ] = 5,
        filter: Annotated[dict[str, Any] | None, Field(description=FILTER_HELP)] = None,
        alpha: Annotated[
            float,
            Field(
                ge=0.0,
                le=1.0,
                description=(
                    "Blend of the two rankings: 1.0 semantic only, 0.0 keyword only (exact "
                    "words, ids, codes), in between both. The default 0.4 suits most queries."
                ),
            ),
        ] = 0.4,
    ) -> dict[str, Any]:
        """Search an index for the documents most relevant to a query.

        Returns the results best first, each with its id, text, metadata and score (cosine
        similarity to the query, higher is more similar), and the index version searched.
        """
        return await memory.search(index, query, top_k, filter, alpha)

    @mcp.tool()
    async def remember(
        index: Index,  # type: ignore[valid-type]
        texts: Annotated[
            list[str],
            Field(min_length=1, description="The facts or notes to remember, one text each."),
        ],
        metadata: Annotated[
            dict[str, Any] | None,
            Field(description="Optional JSON object stored with every one of these texts."),
        ] = None,
        ids: Annotated[
            list[str] | None,
            Field(
                description=(
                    "Optional ids, one per text (an existing id is replaced); new unique ids "
                    "are made when left out."
                )
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Remember plain texts in an index (created if it does not exist) and share them at once.

        Returns the ids stored and the index's new version. Other agents' concurrent writes
        are kept: they are merged, never overwritten.
        """
        return await memory.remember(index, texts, metadata, ids)

    @mcp.tool()
    async def add(
        index: Index,  # type: ignore[valid-type]
        documents: Annotated[
            list[Document],
            Field(min_length=1, description="The documents, each with its own id and metadata."),
        ],
    ) -> dict[str, Any]:
        """Add documents (id, text, metadata) to an index, created if needed; shared at once.

        A document whose id exists replaces it. Other agents' concurrent writes are merged,
        never overwritten. Returns how many were added and replaced, and the new version.
        """
        docs = [DocumentInfo(id=d.id, text=d.text, metadata=d.metadata) for d in documents]
        return await memory.add(index, docs)

    @mcp.tool()
    async def get(
        index: Index,  # type: ignore[valid-type]
        ids: Annotated[list[str], Field(min_length=1, description="The document ids to read.")],
    ) -> dict[str, Any]:
        """Read documents by id: those found (id, text, metadata) and the ids that are missing."""
        return await memory.get(index, ids)

    @mcp.tool()
    async def forget(
        index: Index,  # type: ignore[valid-type]
        ids: Annotated[
            list[str] | None, Field(description="Ids of the documents to delete.")
        ] = None,
        filter: Annotated[
            dict[str, Any] | None,
            Field(description="Instead of ids: delete every document matching. " + FILTER_HELP),
        ] = None,
    ) -> dict[str, Any]:
        """Delete documents from an index, by ids or by metadata filter (give exactly one).

        The deletion is shared at once. Returns how many documents were deleted.
        """
        return await memory.forget(index, ids, filter)

    @mcp.tool()
    async def list_indexes() -> dict[str, Any]:
        """List the indexes this server can reach: name, model, document count, latest version."""
        return await memory.list_indexes()

    @mcp.tool()
    async def versions(index: Index) -> dict[str, Any]:  # type: ignore[valid-type]
        """List the stored versions of an index, oldest first, with document counts and times."""
        return await memory.versions(index)

    @mcp.resource(
        "moss://index/{name}",
        name="index-summary",
        description="An index's summary: name, embedding model, document count, latest version.",
        mime_type="application/json",
    )
    async def index_summary(name: str) -> dict[str, Any]:
        return await memory.summary(name)

    @mcp.resource(
        "moss://indexes",
        name="indexes",
        description="Every index this server can reach, with its summary.",
        mime_type="application/json",
    )
    async def indexes() -> dict[str, Any]:
        return await memory.list_indexes()

    return mcp


async def serve(memory: Memory, *, http: bool = False, **settings: Any) -> None:
    """Run the server over stdio until the client disconnects, or over streamable HTTP.

    ``settings`` are ``host`` and ``port`` for HTTP (served at ``/mcp``).
    """
    server = create_server(memory, **settings)
    try:
        if http:
            await server.run_streamable_http_async()
        else:
            await server.run_stdio_async()
    finally:
        await memory.close()
