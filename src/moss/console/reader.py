"""Read-only sessions on the server's store for the console's document browser and playground.

Opening an index loads it into memory, so the last few opened are kept (keyed by project, name
and version) and reused until a newer version appears. Nothing here ever pushes.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from ..client import MossClient
from ..errors import IndexNotFoundError
from ..session import Session
from ..stores.base import Store
from ..types import IndexInfo

#: Indexes kept open at once (each holds its vectors in memory).
MAX_OPEN = 4


class Reader:
    """Open sessions by (project, index), newest version, shared by the console's requests."""

    def __init__(self, store: Store, max_open: int = MAX_OPEN) -> None:
        self._store = store
        self._max_open = max_open
        self._open: OrderedDict[tuple[str, str, int], tuple[MossClient, Session]] = OrderedDict()
        self._lock = asyncio.Lock()

    async def latest(self, project: str, name: str) -> IndexInfo:
        """The newest version of the project's index; IndexNotFoundError if it has none."""
        info = await self._store.ahead(project, name)
        if info is None:
            raise IndexNotFoundError(f"index {name!r} does not exist in project {project!r}")
        return info

    async def session(self, project: str, name: str) -> Session:
        """A session on the newest version of the index (opened once, then reused)."""
        info = await self.latest(project, name)
        key = (project, name, info.version)
        async with self._lock:
            if key in self._open:
                self._open.move_to_end(key)
                return self._open[key][1]
            # The store is the server's own: the client borrows it and never closes it.
            client = MossClient(project, store=self._store)
            session = await client.session(name, version=info.version, must_exist=True)
            self._open[key] = (client, session)
            while len(self._open) > self._max_open:
                _, (old_client, old_session) = self._open.popitem(last=False)
                await old_session.close()
                await old_client.close()
            return session
