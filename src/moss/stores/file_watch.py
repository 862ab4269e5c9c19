"""Watching a file store: one poll thread per store serves every watcher.

Each watched index costs one ``stat`` of its directory per poll; the versions are listed only
when the directory changed (a new version is a rename into it, which changes its mtime), so
hundreds of idle watches cost little, and only the watchers of the index that changed wake.
A put in this process wakes its watchers at once, without waiting for a poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: How often the poll thread looks at the watched directories (seconds).
POLL_SECONDS = 0.05
#: A directory changed this recently is listed again at every poll: an mtime that is coarser
#: than the time between two renames would hide the second one (nanoseconds).
_RECENT_NS = 2_000_000_000

Key = tuple[str, str]


class Waiter:
    """One watcher: woken (sync or async) with the first version above ``after``."""

    def __init__(self, key: Key, after: int) -> None:
        self.key = key
        self.after = after
        self.version: int | None = None
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: asyncio.Future[None] | None = None

    def wake(self, version: int) -> None:
        with self._lock:
            if self.version is not None:
                return
            self.version = version
            self._event.set()
            loop, future = self._loop, self._future
        if loop is not None and future is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(frozen=True, slots=True)
class Wait:
    """A flow step: wait until the waiter wakes or ``seconds`` pass; answer its version or None."""

    waiter: Waiter
    seconds: float

    def run(self) -> int | None:
        self.waiter._event.wait(self.seconds if math.isfinite(self.seconds) else None)
        return self.waiter.version

    async def arun(self) -> int | None:
        waiter = self.waiter
        future = asyncio.get_running_loop().create_future()
        with waiter._lock:
            if waiter.version is not None:
                return waiter.version
            waiter._loop, waiter._future = asyncio.get_running_loop(), future
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(future, self.seconds)
        return waiter.version


class Notifier:
    """The watchers of one store and the thread that polls for them (running while any wait)."""

    def __init__(
        self, directory_of: Callable[[str, str], Path], latest: Callable[[str, str], int]
    ) -> None:
        self._directory_of = directory_of
        self._latest = latest
        self._lock = threading.Lock()
        self._waiters: dict[Key, set[Waiter]] = {}
        self._thread: threading.Thread | None = None

    def add(self, project: str, name: str, after: int) -> Waiter:
        """Register a watcher (before the caller's first look, so no version slips between)."""
        waiter = Waiter((project, name), after)
        with self._lock:
            self._waiters.setdefault(waiter.key, set()).add(waiter)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._poll, name="moss-file-watch", daemon=True
                )
                self._thread.start()
        return waiter

    def remove(self, waiter: Waiter) -> None:
        with self._lock:
            waiters = self._waiters.get(waiter.key)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[waiter.key]

    def landed(self, project: str, name: str, version: int) -> None:
        """Wake the watchers of an index that got ``version`` (a put in this process)."""
        with self._lock:
            due = [w for w in self._waiters.get((project, name), ()) if w.after < version]
        for waiter in due:
            waiter.wake(version)

    def _poll(self) -> None:
        seen: dict[Key, tuple[int, int] | None] = {}
        paths: dict[Key, str] = {}  # made once per watched index: Path joins cost more than a stat
        while True:
            with self._lock:
                if not self._waiters:
                    self._thread = None  # the next watcher starts a new thread
                    return
                keys = list(self._waiters)
            now = time.time_ns()
            for key in keys:
                if key not in paths:
                    paths[key] = str(self._directory_of(*key))
                stamp = _stamp(paths[key])
                fresh = stamp is not None and now - stamp[0] < _RECENT_NS
                if key in seen and seen[key] == stamp and not fresh:
                    continue
                seen[key] = stamp
                try:
                    latest = self._latest(*key)
                except OSError:
                    continue  # looked at again next time
                self.landed(*key, latest)
            if len(paths) > len(keys):
                for key in set(paths) - set(keys):
                    del paths[key]
                    seen.pop(key, None)
            time.sleep(POLL_SECONDS)


def _stamp(directory: str) -> tuple[int, int] | None:
    """What changes when a version lands in ``directory``: its mtime (and inode)."""
    try:
        status = os.stat(directory)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return status.st_mtime_ns, status.st_ino
