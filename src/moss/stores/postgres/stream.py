"""Bytes in and out of PostgreSQL rows, a bounded amount at a time.

:class:`RowBuffer` cuts the chunks of an upload, whatever their sizes, into rows of a fixed
size; :class:`BlobChunks` and :class:`AsyncBlobChunks` read a version back through a server-side
cursor, ``rows_per_fetch`` rows (one chunk of about 8 MiB) per round trip, inside the read-only
transaction the store opened, and hand the connection back when done, closed early, or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from .sql import translate_errors

_Conn = psycopg.Connection[Any]
_AConn = psycopg.AsyncConnection[Any]
_CURSOR_NAME = "moss_download"


class RowBuffer:
    """Regroup chunks of any size into numbered rows of ``size`` bytes (the last one shorter)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._parts: list[bytes | memoryview] = []
        self._buffered = 0
        self._seq = 0

    def add(self, chunk: bytes | memoryview) -> Iterator[tuple[int, bytes | memoryview]]:
        """Take a chunk; yield every row it completes (memory: at most one row plus the chunk)."""
        view = memoryview(chunk).cast("B")
        while view:
            if not self._parts and len(view) >= self.size:
                yield self._next(view[: self.size])  # no copy when a chunk holds a whole row
                view = view[self.size :]
                continue
            take = min(len(view), self.size - self._buffered)
            self._parts.append(view[:take])
            self._buffered += take
            view = view[take:]
            if self._buffered == self.size:
                yield from self.flush()

    def flush(self) -> Iterator[tuple[int, bytes | memoryview]]:
        """Yield what is buffered as one last (shorter) row, if anything."""
        if self._parts:
            data = b"".join(self._parts)
            self._parts, self._buffered = [], 0
            yield self._next(data)

    def _next(self, data: bytes | memoryview) -> tuple[int, bytes | memoryview]:
        self._seq += 1
        return self._seq, data


class BlobChunks(Iterator[bytes]):
    """The rows of stored versions (one, or several back to back for a chain), fetched a chunk
    at a time, one cursor per version; closing releases the connection."""

    def __init__(
        self,
        conn: _Conn,
        query: sql.Composed,
        blob_ids: Sequence[int],
        rows_per_fetch: int,
        location: str,
        release: Callable[[_Conn], None],
    ) -> None:
        self._conn: _Conn | None = conn
        self._rows_per_fetch = rows_per_fetch
        self._cursor: psycopg.ServerCursor[Any] | None = None
        self._query = query
        self._blob_ids = list(blob_ids)
        self._location = location
        self._release = release

    def __iter__(self) -> BlobChunks:
        return self

    def __next__(self) -> bytes:
        if self._conn is None:
            raise StopIteration
        try:
            with translate_errors(self._location):
                while True:
                    if self._cursor is None:
                        if not self._blob_ids:
                            rows = []
                            break
                        self._cursor = self._conn.cursor(name=_CURSOR_NAME, binary=True)
                        self._cursor.execute(self._query, (self._blob_ids.pop(0),))
                    rows = self._cursor.fetchmany(self._rows_per_fetch)
                    if rows:
                        break
                    cursor, self._cursor = self._cursor, None
                    cursor.close()  # this version is read: on to the next one
        except BaseException:
            self.close()
            raise
        if not rows:
            self.close()
            raise StopIteration
        return b"".join(row[0] for row in rows)

    def close(self) -> None:
        """Stop reading; end the transaction and give the connection back (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            with contextlib.suppress(psycopg.Error):
                cursor.close()
        self._release(conn)

    def __del__(self) -> None:
        # A download dropped without being read or closed must not keep its connection.
        with contextlib.suppress(Exception):
            self.close()


class AsyncBlobChunks(AsyncIterator[bytes]):
    """Async twin of :class:`BlobChunks`, one fetch ahead.

    While the caller sends a chunk on (a server streaming a download to its client), the next
    one is already being fetched: the two waits overlap instead of adding up, and memory holds
    two chunks at most.
    """

    def __init__(
        self,
        conn: _AConn,
        query: sql.Composed,
        blob_ids: Sequence[int],
        rows_per_fetch: int,
        location: str,
        release: Callable[[_AConn], Awaitable[None]],
    ) -> None:
        self._conn: _AConn | None = conn
        self._rows_per_fetch = rows_per_fetch
        self._cursor: psycopg.AsyncServerCursor[Any] | None = None
        self._query = query
        self._blob_ids = list(blob_ids)
        self._location = location
        self._release = release
        self._ahead: asyncio.Task[bytes | None] | None = None

    def __aiter__(self) -> AsyncBlobChunks:
        return self

    async def _fetch(self, conn: _AConn) -> bytes | None:
        with translate_errors(self._location):
            while True:
                if self._cursor is None:
                    if not self._blob_ids:
                        return None
                    self._cursor = conn.cursor(name=_CURSOR_NAME, binary=True)
                    await self._cursor.execute(self._query, (self._blob_ids.pop(0),))
                rows = await self._cursor.fetchmany(self._rows_per_fetch)
                if rows:
                    return b"".join(row[0] for row in rows)
                cursor, self._cursor = self._cursor, None
                await cursor.close()  # this version is read: on to the next one

    async def __anext__(self) -> bytes:
        conn = self._conn
        if conn is None:
            raise StopAsyncIteration
        try:
            ahead, self._ahead = self._ahead, None
            chunk = await (ahead if ahead is not None else self._fetch(conn))
        except BaseException:
            await self.aclose()
            raise
        if chunk is None:
            await self.aclose()
            raise StopAsyncIteration
        self._ahead = asyncio.get_running_loop().create_task(self._fetch(conn))
        return chunk

    async def aclose(self) -> None:
        """Stop reading; end the transaction and give the connection back (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            # Let a fetch in flight finish (one chunk at most): cancelling it midway would leave
            # the connection in the middle of a protocol exchange.
            with contextlib.suppress(Exception):
                await asyncio.shield(ahead)
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            with contextlib.suppress(psycopg.Error):
                await cursor.close()
        await self._release(conn)
