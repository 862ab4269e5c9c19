"""The connections of :class:`~moss.stores.postgres.PostgresStore`: one sync pool, and per event
loop an async pool and a listening connection.

The async pool and listener belong to the loop that made them (a new ``asyncio.run`` needs its
own); they are made on first use and closed by ``aclose()`` or, failing that, when the loop
shuts down. Neither path runs an event loop for the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from .listen import AsyncListener
from .sql import Statements

Conn = psycopg.Connection[Any]
AConn = psycopg.AsyncConnection[Any]


@dataclass(eq=False)
class AsyncState:
    """What the async path holds for one event loop: a pool and a listener."""

    loop: asyncio.AbstractEventLoop
    pool: AsyncConnectionPool[AConn]
    listener: AsyncListener
    opening: asyncio.Task[None] | None = None
    guard: AsyncGenerator[None, None] | None = field(default=None, repr=False)


class Pools:
    """Open connection pools on first use; close them on ``close()`` / ``aclose()``."""

    def __init__(
        self,
        conninfo: str,
        connect_options: dict[str, Any],
        statements: Statements,
        *,
        size: int,
        timeout: float,
    ) -> None:
        self.conninfo = conninfo
        self.connect_options = connect_options
        self._statements = statements
        self._size = size
        self._timeout = timeout
        self._lock = threading.Lock()
        self._pool: ConnectionPool[Conn] | None = None
        self._astate: AsyncState | None = None

    def _options(self, suffix: str) -> dict[str, Any]:
        """What the sync and the async pool are made with (opened by the caller)."""
        return {
            "min_size": 1,
            "max_size": self._size,
            "kwargs": {"autocommit": True, **self.connect_options},
            "timeout": self._timeout,
            "name": f"moss-{self._statements.schema}{suffix}",
            "open": False,
        }

    def sync_pool(self) -> ConnectionPool[Conn]:
        """The sync pool, opened on first use."""
        with self._lock:
            if self._pool is None:
                pool: ConnectionPool[Conn] = ConnectionPool(
                    self.conninfo, check=ConnectionPool.check_connection, **self._options("")
                )
                pool.open()
                self._pool = pool
            return self._pool

    async def async_state(self) -> AsyncState:
        """The running loop's async pool and listener, opened on first use."""
        loop = asyncio.get_running_loop()
        state = self._astate
        if state is None or state.loop is not loop:
            # A pool belongs to the loop that made it: a new loop (a new asyncio.run) needs its own.
            pool: AsyncConnectionPool[AConn] = AsyncConnectionPool(
                self.conninfo, check=AsyncConnectionPool.check_connection, **self._options("-async")
            )
            listener = AsyncListener(self.conninfo, self.connect_options, self._statements)
            state = AsyncState(loop, pool, listener)
            state.opening = loop.create_task(_open_async(state))
            self._astate = state
        if state.opening is not None:
            try:
                await asyncio.shield(state.opening)
            except Exception:
                if self._astate is state:
                    self._astate = None  # the next call tries afresh
                raise
        return state

    def close(self) -> None:
        """Close the sync pool (the async one is closed by :meth:`aclose`)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    async def aclose(self) -> None:
        """Close both pools and the listening connection."""
        state, self._astate = self._astate, None
        if state is not None and state.loop is asyncio.get_running_loop():
            if state.opening is not None:
                with contextlib.suppress(Exception):
                    await state.opening
            if state.guard is not None:
                await state.guard.aclose()
        await asyncio.to_thread(self.close)


async def _open_async(state: AsyncState) -> None:
    await state.pool.open()
    # Closed when the loop shuts down (asyncio.run and loop runners close every open async
    # generator then), so a store never closed with aclose() leaks no connection.
    state.guard = _close_at_loop_shutdown(state)
    await state.guard.__anext__()
    state.opening = None


async def _close_at_loop_shutdown(state: AsyncState) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await state.listener.aclose()
        await state.pool.close()
