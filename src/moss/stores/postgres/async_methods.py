"""The async path of :class:`~moss.stores.postgres.PostgresStore`, the sync one's twin line for line.

It holds an :class:`~psycopg_pool.AsyncConnectionPool` and a listening connection per event
loop, made on first use and closed by ``aclose()`` or, failing that, when the loop shuts down.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import psycopg
from psycopg import AsyncCopy
from psycopg.sql import Composed
from psycopg_pool import AsyncConnectionPool

from ...snapshot.codec import SnapshotData, SnapshotHeader, SnapshotReader
from ...types import IndexInfo
from ...validation import validate_name
from ..base import AsyncDownload, check_ttl
from ..chunks import AsyncChunks, aiter_chunks
from ..file import check_expected_version
from .core import (
    COPY_TYPES,
    AConn,
    PostgresCore,
    check_version,
    counter_and_latest,
    scalar,
    version_info,
)
from .listen import FALLBACK_POLL_SECONDS, AsyncListener
from .sql import (
    SCHEMA_VERSION,
    check_level,
    info_from_row,
    notify_payload,
    translate_errors,
)
from .stream import AsyncBlobChunks, RowBuffer

#: What the receiving task hands the writing one: rows, an error, or None at the end.
_Batch = list[tuple[int, bytes | memoryview]] | BaseException | None


@dataclass(eq=False)
class AsyncState:
    """What the async path holds for one event loop: a pool and a listener."""

    loop: asyncio.AbstractEventLoop
    pool: AsyncConnectionPool[AConn]
    listener: AsyncListener
    opening: asyncio.Task[None] | None = None
    guard: AsyncGenerator[None, None] | None = field(default=None, repr=False)


class AsyncPostgresMethods(PostgresCore):
    """The async methods of ``PostgresStore``."""

    async def _async_state(self) -> AsyncState:
        loop = asyncio.get_running_loop()
        state = self._astate
        if state is None or state.loop is not loop:
            # A pool belongs to the loop that made it: a new loop (a new asyncio.run) needs its own.
            pool: AsyncConnectionPool[AConn] = AsyncConnectionPool(
                self._conninfo,
                min_size=1,
                max_size=self._pool_size,
                kwargs={"autocommit": True, **self._connect_options},
                check=AsyncConnectionPool.check_connection,
                timeout=self._timeout,
                name=f"moss-{self.schema}-async",
                open=False,
            )
            state = AsyncState(
                loop, pool, AsyncListener(self._conninfo, self._connect_options, self._sql)
            )
            state.opening = loop.create_task(self._open_async(state))
            self._astate = state
        if state.opening is not None:
            try:
                await asyncio.shield(state.opening)
            except Exception:
                if self._astate is state:
                    self._astate = None  # the next call tries afresh
                raise
        return state

    async def _open_async(self, state: AsyncState) -> None:
        await state.pool.open()
        # Closed when the loop shuts down (asyncio.run and loop runners close every open async
        # generator then), so a store never closed with aclose() leaks no connection.
        state.guard = _close_at_loop_shutdown(state)
        await state.guard.__anext__()
        state.opening = None

    @contextlib.asynccontextmanager
    async def _aconnection(self) -> AsyncGenerator[AConn, None]:
        with translate_errors(self.location):
            state = await self._async_state()
            async with state.pool.connection() as conn:
                await self._aensure_schema(conn)
                yield conn

    async def _aensure_schema(self, conn: AConn) -> None:
        if not self._schema_ready:
            if self._needs_upgrade(await self._alevel(conn)):
                await self._aupgrade(conn)
            self._schema_ready = True

    async def _alevel(self, conn: AConn) -> int:
        try:
            row = await (await conn.execute(self._sql.schema_version)).fetchone()
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            return 0
        return int(row[0]) if row else 0

    async def _aupgrade(self, conn: AConn) -> tuple[int, int]:
        async with conn.transaction():
            await conn.execute(self._sql.lock_schema)
            if not await (await conn.execute(self._sql.schema_exists)).fetchone():
                await conn.execute(self._sql.create_schema)
            await conn.execute(self._sql.create_version_table)
            row = await (await conn.execute(self._sql.schema_version)).fetchone()
            level = int(row[0]) if row else 0
            check_level(level, self.location)
            for steps in self._sql.migrations[level:]:
                for step in steps:
                    await conn.execute(step)
            if level < SCHEMA_VERSION:
                await conn.execute(self._sql.set_schema_version, (SCHEMA_VERSION,))
        return level, SCHEMA_VERSION

    async def aput(
        self,
        project: str,
        name: str,
        chunks: AsyncChunks,
        *,
        expected_version: int | None = None,
        ttl: float | None = None,
    ) -> IndexInfo:
        """Async twin of :meth:`put`; also accepts an async iterable of chunks."""
        check_expected_version(expected_version)
        ttl = check_ttl(ttl)
        project, name = self._key(project, name)
        reader = self._reader(name)
        async with self._aconnection() as conn, conn.transaction():
            if expected_version is not None:
                current = await self._alatest(conn, project, name)
                if current != expected_version:
                    raise self._conflict(name, current, expected_version)
            blob_id = scalar(await (await conn.execute(self._sql.next_blob)).fetchone())
            async with conn.cursor() as cursor, cursor.copy(self._sql.copy_chunks) as copy:
                copy.set_types(COPY_TYPES)
                header = await self._acopy_rows(copy, blob_id, reader, chunks)
            assert isinstance(header, SnapshotHeader)
            return await self._acommit(conn, project, name, blob_id, header, expected_version, ttl)

    async def _acopy_rows(
        self,
        copy: AsyncCopy,
        blob_id: int,
        reader: SnapshotReader,
        chunks: AsyncChunks,
    ) -> SnapshotHeader | SnapshotData:
        """Write the upload's rows while its next chunks arrive (the sync path needs no such
        overlap: its chunks are usually in memory already).

        A server receives an upload over the network and writes it to PostgreSQL at about the
        same speed: one after the other, a push costs both; side by side, the slower of the two.
        The queue holds two chunks, so memory stays bounded whatever the size.
        """
        queue: asyncio.Queue[_Batch] = asyncio.Queue(maxsize=2)

        async def receive() -> SnapshotHeader | SnapshotData:
            try:
                rows = RowBuffer(self.row_bytes)
                async for chunk in aiter_chunks(chunks):
                    reader.feed(chunk)
                    await queue.put(list(rows.add(chunk)))
                header = reader.finish()  # before the last rows: a truncated upload aborts COPY
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
                    await copy.write_row((blob_id, seq, row))
            return await receiver
        finally:
            if not receiver.done():
                receiver.cancel()
            with contextlib.suppress(BaseException):
                await receiver

    async def _acommit(
        self,
        conn: AConn,
        project: str,
        name: str,
        blob_id: int,
        header: SnapshotHeader,
        expected_version: int | None,
        ttl: float | None,
    ) -> IndexInfo:
        await conn.execute(self._sql.ensure_index, (project, name))
        await self._apurge(conn, self._sql.purge_expired, (project, name))
        counter, latest = counter_and_latest(
            await (await conn.execute(self._sql.lock_index, (project, name))).fetchone()
        )
        if expected_version is not None and latest != expected_version:
            raise self._conflict(name, latest, expected_version)
        version = counter + 1
        await conn.execute(
            self._sql.insert_version, self._version_row(project, name, version, blob_id, header)
        )
        await conn.execute(self._sql.publish, (version, version, ttl, project, name))
        cursor = await conn.execute(self._sql.prune, (project, name, version - self.keep_versions))
        pruned = [row[0] for row in await cursor.fetchall()]
        if pruned:
            await conn.execute(self._sql.drop_chunks, (pruned,))
        await conn.execute(self._sql.notify, (notify_payload(project, name, version),))
        return version_info(name, version, header)

    async def adelete(self, project: str, name: str) -> bool:
        """Async twin of :meth:`delete`."""
        project, name = self._key(project, name)
        async with self._aconnection() as conn, conn.transaction():
            await self._apurge(conn, self._sql.purge_expired, (project, name))
            row = await (await conn.execute(self._sql.lock_index, (project, name))).fetchone()
            if row is None or row[1] == 0:
                return False
            cursor = await conn.execute(self._sql.prune, (project, name, row[0]))
            pruned = [r[0] for r in await cursor.fetchall()]
            if pruned:
                await conn.execute(self._sql.drop_chunks, (pruned,))
            await conn.execute(self._sql.hide, (project, name))
            return True

    async def _apurge(self, conn: AConn, statement: Composed, params: tuple[str, ...]) -> None:
        """Async twin of ``PostgresStore._purge``."""
        cursor = await conn.execute(statement, params)
        pruned = [row[0] for row in await cursor.fetchall()]
        if pruned:
            await conn.execute(self._sql.drop_chunks, (pruned,))

    async def _alatest(self, conn: AConn, project: str, name: str) -> int:
        row = await (await conn.execute(self._sql.latest, (project, name))).fetchone()
        return int(row[0]) if row else 0

    async def aget(
        self,
        project: str,
        name: str,
        version: int | None = None,
        *,
        if_none_match: int | None = None,
    ) -> AsyncDownload:
        """Async twin of :meth:`get`."""
        project, name = self._key(project, name)
        check_version(version)
        with translate_errors(self.location):
            pool = (await self._async_state()).pool
            conn = await pool.getconn()
            try:
                await self._aensure_schema(conn)
                await conn.execute(self._sql.begin_snapshot)
                if version is None:
                    cursor = await conn.execute(self._sql.find_latest, (project, name))
                else:
                    cursor = await conn.execute(self._sql.find_version, (project, name, version))
                row = await cursor.fetchone()
                if row is None:
                    kept = (
                        []
                        if version is None
                        else [i.version for i in await self._aversions(conn, project, name)]
                    )
                    raise self._not_found(project, name, version, kept)
                number, blob_id = int(row[0]), int(row[1])
                if if_none_match is not None and number == if_none_match:
                    await _arelease(pool, conn)
                    return AsyncDownload(number, _empty(), not_modified=True)
            except BaseException:
                await _arelease(pool, conn)
                raise

        async def release(c: AConn) -> None:
            await _arelease(pool, c)

        return AsyncDownload(
            number,
            AsyncBlobChunks(
                conn, self._sql.read_chunks, blob_id, self._rows_per_fetch, self.location, release
            ),
        )

    async def _aversions(self, conn: AConn, project: str, name: str) -> builtins.list[IndexInfo]:
        cursor = await conn.execute(self._sql.versions, (project, name))
        return [info_from_row(row) for row in await cursor.fetchall()]

    async def ahead(self, project: str, name: str) -> IndexInfo | None:
        """Async twin of :meth:`head`."""
        project, name = self._key(project, name)
        async with self._aconnection() as conn:
            row = await (await conn.execute(self._sql.head, (project, name))).fetchone()
            if row is None:
                async with conn.transaction():
                    await self._apurge(conn, self._sql.purge_expired, (project, name))
        return None if row is None else info_from_row(row)

    async def alist(self, project: str) -> builtins.list[IndexInfo]:
        """Async twin of :meth:`list`."""
        project = validate_name(project, what="project id")
        async with self._aconnection() as conn:
            async with conn.transaction():
                await self._apurge(conn, self._sql.purge_project_expired, (project,))
            rows = await (await conn.execute(self._sql.list, (project,))).fetchall()
        return sorted((info_from_row(row) for row in rows), key=lambda info: info.name)

    async def aversions(self, project: str, name: str) -> builtins.list[IndexInfo]:
        """Async twin of :meth:`versions`."""
        project, name = self._key(project, name)
        async with self._aconnection() as conn:
            return await self._aversions(conn, project, name)

    async def awatch(self, project: str, name: str, after: int, timeout: float) -> int | None:
        """Async twin of :meth:`watch`: one shared LISTEN connection serves every watcher."""
        key = self._key(project, name)
        latest = await self._alatest_version(*key)
        if latest > after:
            return latest
        if timeout <= 0:
            return None
        deadline = asyncio.get_running_loop().time() + timeout
        listener = (await self._async_state()).listener
        await listener.start(timeout=min(timeout, self._timeout))
        with listener.waiting(key) as waiter:
            while True:
                # Looked up once the waiter is registered (and LISTEN active): nothing is missed.
                waiter.recheck = False
                latest = await self._alatest_version(*key)
                if latest > after:
                    return latest
                while not waiter.recheck:
                    remaining = deadline - asyncio.get_running_loop().time()
                    if remaining <= 0:
                        return None
                    # Without a listening connection, fall back to looking now and then.
                    wait = (
                        remaining if listener.connected else min(remaining, FALLBACK_POLL_SECONDS)
                    )
                    try:
                        await asyncio.wait_for(waiter.event.wait(), wait)
                    except asyncio.TimeoutError:
                        waiter.recheck = not listener.connected
                        continue
                    waiter.event.clear()
                    if waiter.version > after:
                        return waiter.version

    async def _alatest_version(self, project: str, name: str) -> int:
        async with self._aconnection() as conn:
            return await self._alatest(conn, project, name)

    async def aread_auth(self) -> tuple[int, bytes | None]:
        """Async twin of :meth:`read_auth`."""
        async with self._aconnection() as conn:
            row = await (await conn.execute(self._sql.read_auth)).fetchone()
        return (0, None) if row is None else (int(row[0]), bytes(row[1]))

    async def aclose(self) -> None:
        """Close both connection pools and the listening connection."""
        state, self._astate = self._astate, None
        if state is not None and state.loop is asyncio.get_running_loop():
            if state.opening is not None:
                with contextlib.suppress(Exception):
                    await state.opening
            if state.guard is not None:
                await state.guard.aclose()
        await asyncio.to_thread(self.close)


async def _close_at_loop_shutdown(state: AsyncState) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await state.listener.aclose()
        await state.pool.close()


async def _arelease(pool: AsyncConnectionPool[AConn], conn: AConn) -> None:
    with contextlib.suppress(psycopg.Error):
        await conn.execute("ROLLBACK")
    await pool.putconn(conn)


async def _empty() -> AsyncGenerator[bytes, None]:
    return
    yield  # an async generator that yields nothing
