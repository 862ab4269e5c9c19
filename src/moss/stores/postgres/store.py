"""The PostgreSQL store: many ``moss serve`` replicas (or clients) over one database.

Needs the ``postgres`` extra (``pip install 'moss-sessions[postgres]'``): psycopg 3 with its
connection pools, a sync one for the sync path and an async one (per event loop, made on first
use) for the async path; neither path runs an event loop for the other. Each operation is
written once, as a flow (:mod:`moss.stores.postgres.flows`); the methods here drive it blocking
(``put``) or awaited (``aput``).

How the guarantees of the store protocol hold:

* **Atomic puts.** A version is written in one transaction: its bytes are streamed with
  ``COPY`` into rows of 8000 bytes (one heap page each, far from any PostgreSQL limit) while
  :class:`~moss.snapshot.SnapshotReader` checks them, then the version row that makes it visible
  is inserted. A writer that dies mid-upload leaves nothing: PostgreSQL rolls its transaction
  back. The async path receives the next chunks while the last ones are written.
* **Compare-and-swap.** The version number is decided under ``SELECT ... FOR UPDATE`` of the
  index's row in ``indexes``: of racing pushes with the same expected version, on any number
  of replicas, exactly one commits; the others see the new version and raise ``ConflictError``.
  The row keeps the counter, so numbers are never reused, also after a delete.
* **Expiry.** A put with ``ttl`` sets the row's ``expires_at`` (the database's clock), one
  without clears it. Reads filter expired indexes out; puts, deletes, heads and lists purge
  them (hide the row, delete the versions) in a transaction of their own.
* **Pruning under readers.** A download runs in one ``REPEATABLE READ`` read-only transaction:
  its lookup and its server-side cursor read one MVCC snapshot, so when a newer push prunes the
  version meanwhile (a plain ``DELETE`` in the writer's transaction), the reader still streams
  every row of it, and PostgreSQL reclaims the space only after the reader finishes. No deferred
  deletes to schedule, no reader registry; the cost is that a stalled reader holds back
  ``VACUUM`` until it closes (downloads are streamed, so that is seconds).
* **Bounded memory.** Reads fetch about 8 MiB of rows at a time through a server-side cursor
  (the async path one fetch ahead, so a server sends one chunk while it fetches the next).
* **Watching.** Every put sends ``NOTIFY`` (project, index, version) on commit; watchers
  ``LISTEN`` (see :mod:`moss.stores.postgres.listen`), and only those of that index wake.

The schema (``moss`` by default, ``?schema=name`` in the URL) is created and migrated by the
store on first use, or explicitly with ``moss db upgrade --store postgresql://...``. Projects and
keys live in it too (:class:`~moss.stores.auth.AuthRecords`), so every replica shares them.
"""

from __future__ import annotations

import builtins
from typing import cast

from ...types import IndexInfo
from ..base import AsyncDownload, Chunks, Download
from ..chain import aframed, framed
from ..chunks import AsyncChunks
from .flows import PostgresFlows
from .sql import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "PostgresStore"]


class PostgresStore(PostgresFlows):
    """Keep index versions in PostgreSQL, shared by every replica and client over the database.

    Example::

        store = PostgresStore("postgresql://moss:secret@db.internal/moss")
        client = MossClient(store=store)  # or MossClient(store="postgresql://...")

    Arguments (the first two also as URL parameters, which libpq never sees):

    * ``schema`` (``?schema=``, default ``moss``): the PostgreSQL schema of moss's tables; its
      name also names the NOTIFY channel, so stores over one schema hear each other.
    * ``keep_versions`` (``?keep_versions=``, default 5): versions kept per index.
    * ``max_snapshot_bytes``: refuse larger snapshots (``SnapshotError``).
    * ``pool_size``: connections per pool (each process has a sync and, once used, an async
      pool, plus one listening connection for async watchers).
    * ``connect_timeout``: seconds to wait for a connection before ``ServiceUnavailableError``.
    * ``auto_upgrade``: create or migrate the tables on first use (else ask for
      ``moss db upgrade``).
    * ``row_bytes``: bytes per stored row, at most 8000 (smaller only for tests).
    """

    def upgrade(self) -> tuple[int, int]:
        """Create or migrate the store's tables; return the schema version before and after."""
        return self._sync(self._upgrade)

    def put(
        self,
        project: str,
        name: str,
        chunks: Chunks,
        *,
        expected_version: int | None = None,
        ttl: float | None = None,
        append: bool = False,
    ) -> IndexInfo:
        """Store a snapshot or delta as the next version (see :class:`~moss.stores.base.Store`)."""
        return self._sync(self._put, project, name, chunks, expected_version, ttl, append)

    async def aput(
        self,
        project: str,
        name: str,
        chunks: AsyncChunks,
        *,
        expected_version: int | None = None,
        ttl: float | None = None,
        append: bool = False,
    ) -> IndexInfo:
        """Async twin of :meth:`put`; also accepts an async iterable of chunks."""
        return await self._async(self._put, project, name, chunks, expected_version, ttl, append)

    def get(
        self,
        project: str,
        name: str,
        version: int | None = None,
        *,
        if_none_match: int | None = None,
    ) -> Download:
        """Open the latest (or the given) version for reading; raise if absent."""
        return cast(Download, self._sync(self._get, project, name, version, if_none_match))

    async def aget(
        self,
        project: str,
        name: str,
        version: int | None = None,
        *,
        if_none_match: int | None = None,
    ) -> AsyncDownload:
        """Async twin of :meth:`get`."""
        download = await self._async(self._get, project, name, version, if_none_match)
        return cast(AsyncDownload, download)

    def get_chain(
        self, project: str, name: str, *, after: int | None = None, version: int | None = None
    ) -> Download:
        """The chain stream that brings a reader to ``version`` (see :mod:`moss.stores.chain`),
        planned and read in one read-only snapshot of the database."""
        plan, download = self._sync(self._chain, project, name, after, version)
        assert isinstance(download, Download)
        return Download(plan.target, framed(plan, download.chunks), plan.not_modified)

    async def aget_chain(
        self, project: str, name: str, *, after: int | None = None, version: int | None = None
    ) -> AsyncDownload:
        """Async twin of :meth:`get_chain`."""
        plan, download = await self._async(self._chain, project, name, after, version)
        assert isinstance(download, AsyncDownload)
        return AsyncDownload(plan.target, aframed(plan, download.chunks), plan.not_modified)

    def head(self, project: str, name: str) -> IndexInfo | None:
        """Describe the latest version, or None if the index does not exist."""
        return self._sync(self._head, project, name)

    async def ahead(self, project: str, name: str) -> IndexInfo | None:
        """Async twin of :meth:`head`."""
        return await self._async(self._head, project, name)

    def list(self, project: str) -> builtins.list[IndexInfo]:
        """Describe the latest version of every index of the project, sorted by name."""
        return self._sync(self._list, project)

    async def alist(self, project: str) -> builtins.list[IndexInfo]:
        """Async twin of :meth:`list`."""
        return await self._async(self._list, project)

    def versions(self, project: str, name: str) -> builtins.list[IndexInfo]:
        """Describe every kept version, oldest first."""
        return self._sync(self._versions, project, name)

    async def aversions(self, project: str, name: str) -> builtins.list[IndexInfo]:
        """Async twin of :meth:`versions`."""
        return await self._async(self._versions, project, name)

    def delete(self, project: str, name: str) -> bool:
        """Delete every version of the index; the counter survives, so numbers are never reused."""
        return self._sync(self._delete, project, name)

    async def adelete(self, project: str, name: str) -> bool:
        """Async twin of :meth:`delete`."""
        return await self._async(self._delete, project, name)

    def watch(self, project: str, name: str, after: int, timeout: float) -> int | None:
        """Wait until the latest version exceeds ``after`` (LISTEN, no polling), up to ``timeout`` s."""
        return self._sync(self._watch, project, name, after, timeout)

    async def awatch(self, project: str, name: str, after: int, timeout: float) -> int | None:
        """Async twin of :meth:`watch`: one shared LISTEN connection serves every watcher."""
        return await self._async(self._watch, project, name, after, timeout)

    def read_auth(self) -> tuple[int, bytes | None]:
        """Return the projects-and-keys record's version (0 if never written) and bytes."""
        return self._sync(self._read_auth)

    async def aread_auth(self) -> tuple[int, bytes | None]:
        """Async twin of :meth:`read_auth`."""
        return await self._async(self._read_auth)

    def write_auth(self, data: bytes, *, expected_version: int) -> int:
        """Replace the record if still at ``expected_version`` (0: absent); return the new version."""
        return self._sync(self._write_auth, data, expected_version)
