"""Steps of the PostgreSQL flows, bound to one pooled connection per call (:class:`Link`).

A flow (see :mod:`moss.flow`) yields ``link.one(statement, params)`` and the like; run by
:func:`~moss.flow.run_sync` a step takes a connection from the sync pool on first use, run by
:func:`~moss.flow.run_async` one from the running loop's async pool. The driver closes the link
when the flow ends, which rolls back a transaction the flow left open (it failed midway) and
gives the connection back; a download detaches the connection and gives it back when read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import AsyncCopy, sql
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ...snapshot.codec import SnapshotReader
from ..base import AsyncDownload, Chunks, Download
from ..chunks import AsyncChunks, aiter_chunks, iter_chunks
from .pools import AConn, Conn, Pools
from .stream import AsyncBlobChunks, BlobChunks, RowBuffer

Statement = sql.SQL | sql.Composed
Fetch = Literal["none", "one", "all"]
#: Column types of a ``COPY ... (FORMAT BINARY)`` into ``chunks``.
COPY_TYPES = ["int8", "int4", "bytea"]
#: What the receiving task hands the writing one: rows, an error, or None at the end.
_Batch = list[tuple[int, bytes | memoryview]] | BaseException | None


class Link:
    """The connection of one call: taken on the first step, given back by ``close``/``aclose``."""

    def __init__(self, pools: Pools) -> None:
        self._pools = pools
        self._conn: tuple[ConnectionPool[Conn], Conn] | None = None
        self._aconn: tuple[AsyncConnectionPool[AConn], AConn] | None = None

    def connection(self) -> Conn:
        """The sync connection, taken from the pool on first use."""
        if self._conn is None:
            pool = self._pools.sync_pool()
            self._conn = pool, pool.getconn()
        return self._conn[1]

    async def aconnection(self) -> AConn:
        """The async connection, taken from the running loop's pool on first use."""
        if self._aconn is None:
            pool = (await self._pools.async_state()).pool
            self._aconn = pool, await pool.getconn()
        return self._aconn[1]

    def close(self) -> None:
        """Give the sync connection back, rolling back what the flow left open."""
        taken, self._conn = self._conn, None
        if taken is not None:
            _release(*taken)

    async def aclose(self) -> None:
        """Give the async connection back, rolling back what the flow left open."""
        taken, self._aconn = self._aconn, None
        if taken is not None:
            await _arelease(*taken)

    # -- steps -----------------------------------------------------------------------------

    def execute(self, statement: Statement, params: Sequence[Any] | None = None) -> Query:
        """Run a statement, ignoring its rows."""
        return Query(self, statement, params, "none")

    def one(self, statement: Statement, params: Sequence[Any] | None = None) -> Query:
        """Run a statement; its first row, or None."""
        return Query(self, statement, params, "one")

    def all(self, statement: Statement, params: Sequence[Any] | None = None) -> Query:
        """Run a statement; all its rows."""
        return Query(self, statement, params, "all")

    def release(self) -> Release:
        """Give the connection back now (before a long wait that needs none)."""
        return Release(self)

    def detach(self) -> tuple[Conn, Callable[[Conn], None]]:
        """Hand the sync connection over, with the function that gives it back."""
        self.connection()
        assert self._conn is not None
        (pool, conn), self._conn = self._conn, None
        return conn, lambda c: _release(pool, c)

    async def adetach(self) -> tuple[AConn, Callable[[AConn], Awaitable[None]]]:
        """Hand the async connection over, with the coroutine function that gives it back."""
        await self.aconnection()
        assert self._aconn is not None
        (pool, conn), self._aconn = self._aconn, None

        async def release(c: AConn) -> None:
            await _arelease(pool, c)

        return conn, release


@dataclass(frozen=True, slots=True)
class Query:
    """One statement on the link's connection, returning nothing, a row or every row."""

    link: Link
    statement: Statement
    params: Sequence[Any] | None
    fetch: Fetch

    def run(self) -> Any:
        cursor = self.link.connection().execute(self.statement, self.params)
        if self.fetch == "one":
            return cursor.fetchone()
        return cursor.fetchall() if self.fetch == "all" else None

    async def arun(self) -> Any:
        conn = await self.link.aconnection()
        cursor = await conn.execute(self.statement, self.params)
        if self.fetch == "one":
            return await cursor.fetchone()
        return await cursor.fetchall() if self.fetch == "all" else None


@dataclass(frozen=True, slots=True)
class Release:
    """Give the link's connection back early."""

    link: Link

    def run(self) -> None:
        self.link.close()

    async def arun(self) -> None:
        await self.link.aclose()


@dataclass(frozen=True, slots=True)
class OpenDownload:
    """Hand the link's connection, in its read-only transaction, to a download of blobs (one
    version, or a chain's versions back to back).

    No ``blob_ids``: the caller has this version already (an empty, not-modified download).
    """

    link: Link
    version: int
    blob_ids: tuple[int, ...]
    statement: sql.Composed
    rows_per_fetch: int
    location: str

    def run(self) -> Download:
        if not self.blob_ids:
            self.link.close()
            return Download(self.version, iter(()), not_modified=True)
        conn, release = self.link.detach()
        chunks = BlobChunks(
            conn, self.statement, self.blob_ids, self.rows_per_fetch, self.location, release
        )
        return Download(self.version, chunks)

    async def arun(self) -> AsyncDownload:
        if not self.blob_ids:
            await self.link.aclose()
            return AsyncDownload(self.version, _empty(), not_modified=True)
        conn, release = await self.link.adetach()
        chunks = AsyncBlobChunks(
            conn, self.statement, self.blob_ids, self.rows_per_fetch, self.location, release
        )
        return AsyncDownload(self.version, chunks)


@dataclass(frozen=True, slots=True)
class CopyRows:
    """Check an upload with ``reader`` while ``COPY``-ing it into rows of ``row_bytes``.

    Returns what ``reader.finish()`` returns (the snapshot's header). The reader finishes before the last row is written, so a
    truncated upload aborts the ``COPY`` (and with it the transaction).
    """

    link: Link
    statement: sql.Composed
    blob_id: int
    reader: SnapshotReader
    chunks: AsyncChunks
    row_bytes: int

    def run(self) -> object:
        rows = RowBuffer(self.row_bytes)
        chunks: Chunks = self.chunks  # type: ignore[assignment]  # put() takes sync chunks only
        with self.link.connection().cursor() as cursor, cursor.copy(self.statement) as copy:
            copy.set_types(COPY_TYPES)
            for chunk in iter_chunks(chunks):
                self.reader.feed(chunk)
                for seq, row in rows.add(chunk):
                    copy.write_row((self.blob_id, seq, row))
            header = self.reader.finish()
            for seq, row in rows.flush():
                copy.write_row((self.blob_id, seq, row))
        return header

    async def arun(self) -> object:
        conn = await self.link.aconnection()
        async with conn.cursor() as cursor, cursor.copy(self.statement) as copy:
            copy.set_types(COPY_TYPES)
            return await self._acopy(copy)

    async def _acopy(self, copy: AsyncCopy) -> object:
        """Write the rows while the next chunks arrive (the sync path needs no such overlap:
        its chunks are usually in memory already).

        A server receives an upload over the network and writes it to PostgreSQL at about the
        same speed: one after the other, a push costs both; side by side, the slower of the two.
        The queue holds two chunks, so memory stays bounded whatever the size.
        """
        queue: asyncio.Queue[_Batch] = asyncio.Queue(maxsize=2)

        async def receive() -> object:
            try:
                rows = RowBuffer(self.row_bytes)
                async for chunk in aiter_chunks(self.chunks):
                    self.reader.feed(chunk)
                    await queue.put(list(rows.add(chunk)))
                header = self.reader.finish()
                await queue.put(list(rows.flush()))
                await queue.put(None)
                return header
            except BaseException as exc:
                await queue.put(exc)
                raise

        receiver = asyncio.get_running_loop().create_task(receive())
        try:
            while (batch := await queue.get()) is not None:
                if isinstance(batch, BaseException):
                    raise batch
                for seq, row in batch:
                    await copy.write_row((self.blob_id, seq, row))
            return await receiver
        finally:
            if not receiver.done():
                receiver.cancel()
            with contextlib.suppress(BaseException):
                await receiver


def _release(pool: ConnectionPool[Conn], conn: Conn) -> None:
    """End what transaction the connection is in and give it back."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        with contextlib.suppress(psycopg.Error):
            conn.execute("ROLLBACK")
    pool.putconn(conn)


async def _arelease(pool: AsyncConnectionPool[AConn], conn: AConn) -> None:
    if conn.info.transaction_status != TransactionStatus.IDLE:
        with contextlib.suppress(psycopg.Error):
            await conn.execute("ROLLBACK")
    await pool.putconn(conn)


async def _empty() -> AsyncGenerator[bytes, None]:
    return
    yield  # an async generator that yields nothing
