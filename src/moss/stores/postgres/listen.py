"""Hear new versions as they commit: PostgreSQL ``LISTEN`` on a dedicated connection.

Every put sends ``NOTIFY <schema>_versions, '[project, index, version]'`` in its transaction, so
the notification goes out exactly when the version becomes visible, to every listener on the
database: a ``moss serve`` replica learns of a push through another replica without polling.

The async path keeps one listening connection per store and event loop (:class:`AsyncListener`)
and hands each notification to the waiters of its index only, however many indexes are watched.
The sync path (:class:`WaitForVersion` run blocking) listens on a connection of its own for
the duration of one call: it needs no thread, and sync watchers are few (one per auto-refreshed
sync session).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from .sql import Statements, parse_payload

_log = logging.getLogger("moss.stores.postgres")
_Key = tuple[str, str]

#: While the listening connection is down, waiters look at the table this often instead.
FALLBACK_POLL_SECONDS = 1.0
_RECONNECT_MAX_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class WaitForVersion:
    """A step: wait up to ``timeout`` s for a version of ``key`` above ``after``, then return it
    (None at the timeout).

    Sync, it listens on a connection of its own for the duration; async, it registers with the
    loop's shared :class:`AsyncListener` (made by ``listener``) and is woken only by
    notifications for ``key``, looking the latest version up (``latest``) once registered.
    """

    conninfo: str
    connect_options: dict[str, Any]
    statements: Statements
    key: _Key
    after: int
    timeout: float
    connect_timeout: float
    listener: Callable[[], Awaitable[AsyncListener]]
    latest: Callable[[], Awaitable[int]]

    def run(self) -> int | None:
        deadline = time.monotonic() + self.timeout
        with psycopg.connect(self.conninfo, autocommit=True, **self.connect_options) as conn:
            conn.execute(self.statements.listen)
            # Looked up only once LISTEN is active: a push in between cannot be missed.
            row = conn.execute(self.statements.latest, self.key).fetchone()
            if row is not None and int(row[0]) > self.after:
                return int(row[0])
            while (remaining := deadline - time.monotonic()) > 0:
                for notify in conn.notifies(timeout=remaining):
                    heard = parse_payload(notify.payload)
                    if heard is not None and heard[:2] == self.key and heard[2] > self.after:
                        return heard[2]
            return None

    async def arun(self) -> int | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        listener = await self.listener()
        await listener.start(timeout=min(self.timeout, self.connect_timeout))
        with listener.waiting(self.key) as waiter:
            while True:
                # Looked up once the waiter is registered (and LISTEN active): nothing is missed.
                waiter.recheck = False
                latest = await self.latest()
                if latest > self.after:
                    return latest
                while not waiter.recheck:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        return None
                    # Without a listening connection, fall back to looking now and then.
                    connected = listener.connected
                    wait = remaining if connected else min(remaining, FALLBACK_POLL_SECONDS)
                    try:
                        await asyncio.wait_for(waiter.event.wait(), wait)
                    except asyncio.TimeoutError:
                        waiter.recheck = not listener.connected
                        continue
                    waiter.event.clear()
                    if waiter.version > self.after:
                        return waiter.version


@dataclass(eq=False)
class Waiter:
    """One awaiting watch: woken with the highest version heard, or to look again."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    version: int = 0
    recheck: bool = False


class AsyncListener:
    """One LISTEN connection per store and event loop, feeding every async watcher."""

    def __init__(
        self, conninfo: str, connect_options: dict[str, Any], statements: Statements
    ) -> None:
        self._conninfo = conninfo
        self._options = connect_options
        self._statements = statements
        self._waiters: dict[_Key, set[Waiter]] = {}
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """Whether notifications are arriving (else waiters fall back to polling)."""
        return self._connected.is_set()

    async def start(self, timeout: float) -> None:
        """Start listening; wait up to ``timeout`` s for the first connection."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)

    @contextlib.contextmanager
    def waiting(self, key: _Key) -> Iterator[Waiter]:
        """Register a waiter for ``key`` for the duration of the block."""
        waiter = Waiter()
        self._waiters.setdefault(key, set()).add(waiter)
        try:
            yield waiter
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[key]

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, **self._options
                )
                async with conn:
                    await conn.execute(self._statements.listen)
                    self._connected.set()
                    self._wake_all()  # anything committed while we were away: look again
                    delay = 0.1
                    async for notify in conn.notifies():
                        self._dispatch(notify.payload)
            except Exception as exc:  # whatever broke, listen again: watchers poll meanwhile
                _log.warning("listening for new versions failed, reconnecting: %s", exc)
            self._connected.clear()
            self._wake_all()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX_SECONDS)

    def _dispatch(self, payload: str) -> None:
        heard = parse_payload(payload)
        if heard is None:
            return
        for waiter in self._waiters.get(heard[:2], ()):
            waiter.version = max(waiter.version, heard[2])
            waiter.event.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.recheck = True
                waiter.event.set()

    async def aclose(self) -> None:
        """Stop listening and close the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._connected.clear()
