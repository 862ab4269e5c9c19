"""moss: named, shareable, in-memory retrieval sessions for AI agents.

Example::

    from moss import DocumentInfo, MossClient, QueryOptions

    client = MossClient()
    session = await client.session("conv-123")
    await session.add_docs([DocumentInfo(id="turn-1", text="Refund confirmed.")])
    await session.push_index()
"""

from .client import MossClient, SyncClient
from .embeddings import CustomModel, EmbedderModel, EmbeddingModel
from .errors import (
    AuthenticationError,
    ConflictError,
    IndexNotFoundError,
    InvalidArgumentError,
    ModelMismatchError,
    MossError,
    ServiceUnavailableError,
    SnapshotError,
)
from .session import Session, SyncSession
from .stores import FileStore, Store
from .types import (
    AddResult,
    DocumentInfo,
    IndexDiff,
    IndexInfo,
    PushResult,
    QueryOptions,
    ResultDocument,
    SearchResult,
)
from .version import __version__ as __version__

__all__ = [
    "AddResult",
    "AuthenticationError",
    "ConflictError",
    "CustomModel",
    "DocumentInfo",
    "EmbedderModel",
    "EmbeddingModel",
    "FileStore",
    "IndexDiff",
    "IndexInfo",
    "IndexNotFoundError",
    "InvalidArgumentError",
    "ModelMismatchError",
    "MossClient",
    "MossError",
    "PushResult",
    "QueryOptions",
    "ResultDocument",
    "SearchResult",
    "ServiceUnavailableError",
    "Session",
    "SnapshotError",
    "Store",
    "SyncClient",
    "SyncSession",
]
