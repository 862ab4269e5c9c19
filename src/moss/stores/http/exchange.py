"""The steps of an HTTP exchange, for flows (:mod:`moss.flow`) that run sync or async.

:class:`Clients` owns the two connection pools (``httpx.Client`` for blocking calls,
``httpx.AsyncClient`` per event loop); :class:`Send` and :class:`Release` are the only steps
that touch them, so the request logic of :class:`~moss.stores.http.HttpStore` is written once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import httpx

from .io import UploadBody, close_at_loop_shutdown


class Clients:
    """The store's sync pool and its async pool, each made on first use."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None
        self._aclient_guard: AsyncGenerator[None, None] | None = None

    def sync(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(**self._options)
            return self._client

    async def asynchronous(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._aclient is not None and self._aclient_loop is loop:
                return self._aclient
            # A pool belongs to the loop that made it: a new loop (a new asyncio.run) needs its own.
            client = self._aclient = httpx.AsyncClient(**self._options)
            self._aclient_loop = loop
        # Close the pool when its loop shuts down (asyncio.run and loop runners close every open
        # async generator then), so a store never closed with aclose() leaks no sockets.
        self._aclient_guard = close_at_loop_shutdown(client)
        await self._aclient_guard.__anext__()
        return client

    def close(self) -> None:
        """Close the sync pool."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close both pools."""
        with self._lock:
            guard, self._aclient_guard = self._aclient_guard, None
            self._aclient, self._aclient_loop = None, None
        if guard is not None:
            await guard.aclose()  # closes the pool
        self.close()


@dataclass(frozen=True, slots=True)
class Send:
    """Send one request; answer its response (body read, or left open if ``stream``)."""

    clients: Clients
    method: str
    url: str
    headers: dict[str, str]
    timeout: float
    params: dict[str, Any] = field(default_factory=dict)
    body: UploadBody | None = None
    stream: bool = False

    def run(self) -> httpx.Response:
        client = self.clients.sync()
        content = None if self.body is None else self.body.sync()
        return client.send(self._request(client, content), stream=self.stream)

    async def arun(self) -> httpx.Response:
        client = await self.clients.asynchronous()
        content = None if self.body is None else self.body.asynchronous()
        return await client.send(self._request(client, content), stream=self.stream)

    def _request(self, client: httpx.Client | httpx.AsyncClient, content: Any) -> httpx.Request:
        return client.build_request(
            self.method,
            self.url,
            headers=self.headers,
            params=self.params,
            content=content,
            timeout=self.timeout,
        )


@dataclass(frozen=True, slots=True)
class Release:
    """Read what is left of a response's body and close it (frees its connection)."""

    response: httpx.Response

    def run(self) -> None:
        try:
            self.response.read()
        finally:
            self.response.close()

    async def arun(self) -> None:
        try:
            await self.response.aread()
        finally:
            await self.response.aclose()
