"""Wake long-polling watchers when a new version of an index lands.

Two sources feed one notifier: pushes through this server publish at once, and for indexes that
someone is watching, one poller per index asks the store (``awatch``) for versions written by
others (another replica, a process writing the file store directly). However many clients watch
one index, the store is polled once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ..stores.base import Store

_Key = tuple[str, str]
_log = logging.getLogger("moss.server")

#: How long one store poll waits before the poller checks whether anyone still listens.
POLL_SECONDS = 5.0


class VersionNotifier:
    """Tell waiters when the latest version of an index exceeds the one they know."""

    def __init__(self, store: Store, *, poll_seconds: float = POLL_SECONDS) -> None:
        self._store = store
        self._poll_seconds = poll_seconds
        self._latest: dict[_Key, int] = {}
        self._events: dict[_Key, asyncio.Event] = {}
        self._waiting: dict[_Key, int] = {}
        self._pollers: dict[_Key, asyncio.Task[None]] = {}

    def publish(self, project: str, name: str, version: int) -> None:
        """Record that ``version`` exists and wake everyone waiting on the index."""
        key = (project, name)
        if version <= self._latest.get(key, 0):
            return
        if key in self._waiting:  # only watched indexes are remembered: memory stays bounded
            self._latest[key] = version
        event = self._events.pop(key, None)
        if event is not None:
            event.set()

    def forget(self, project: str, name: str) -> None:
        """Drop what is known of a deleted index (a new push restarts from the store's number)."""
        self._latest.pop((project, name), None)

    async def wait(self, project: str, name: str, after: int, timeout: float) -> int | None:
        """Return the latest version once it exceeds ``after``, or None after ``timeout`` s."""
        key = (project, name)
        deadline = time.monotonic() + timeout
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            # One look at the store first: the version may have landed before anyone watched.
            current = await self._store.awatch(project, name, after, 0)
            if current is not None:
                self.publish(project, name, current)
                return current
            if timeout <= 0:
                return None
            self._latest.setdefault(key, after)
            self._ensure_poller(key)
            while (latest := self._latest.get(key, 0)) <= after:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                event = self._events.setdefault(key, asyncio.Event())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)
            return latest
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key]
                self._latest.pop(key, None)

    def _ensure_poller(self, key: _Key) -> None:
        if key not in self._pollers:
            self._pollers[key] = asyncio.create_task(self._poll(key))

    async def _poll(self, key: _Key) -> None:
        project, name = key
        try:
            while key in self._waiting:
                after = self._latest.get(key, 0)
                try:
                    version = await self._store.awatch(project, name, after, self._poll_seconds)
                except Exception as exc:  # the store hiccuped: watchers still time out cleanly
                    _log.warning("polling index %r for new versions failed: %s", name, exc)
                    await asyncio.sleep(1.0)
                    continue
                if version is not None:
                    self.publish(project, name, version)
        finally:
            del self._pollers[key]

    async def close(self) -> None:
        """Stop every poller (at server shutdown)."""
        pollers = list(self._pollers.values())
        for task in pollers:
            task.cancel()
        for task in pollers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
