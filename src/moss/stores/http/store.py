"""The HTTP store: index versions kept by a ``moss serve`` service, over httpx.

Every call authenticates with HTTP Basic (username = the project id of the call, password = the
project key). Idempotent requests (get, head, list, versions, delete, watch) are retried with
exponential backoff on connection errors and 5xx answers; a put is retried only when the
connection failed before any of its body was sent. The sync methods use ``httpx.Client``, the
async ones ``httpx.AsyncClient``; neither runs an event loop for the other.
"""

from __future__ import annotations

import asyncio
import base64
import random
import threading
import time
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import urlsplit

import httpx

from ...errors import IndexNotFoundError, InvalidArgumentError, ServiceUnavailableError
from ...types import IndexInfo
from ...validation import validate_name
from ..base import AsyncDownload, Chunks, Download, check_ttl
from ..chunks import AsyncChunks, aiter_chunks, iter_chunks
from ..file import check_expected_version
from .io import (
    AsyncDownloadBody,
    AsyncUploadBody,
    DownloadBody,
    UploadBody,
    before_sending,
    close_at_loop_shutdown,
    error_for,
    json_of,
    no_chunks,
    version_of,
)
from .wire import (
    API_PREFIX,
    TTL_HEADER,
    format_etag,
    info_from_headers,
    info_from_json,
)

_Infos = list[IndexInfo]  # (inside the class, `list` is the method)

#: The longest one watch request asks the server to wait (servers cap it too).
WATCH_REQUEST_SECONDS = 25.0
_BACKOFF_START = 0.1
_BACKOFF_MAX = 2.0


class HttpStore:
    """Keep index versions in a ``moss serve`` service.

    Example::

        store = HttpStore("http://10.0.0.5:8000", project_key=os.environ["MOSS_PROJECT_KEY"])
        client = MossClient("acme", store=store)   # or MossClient("acme", key, store=url)
    """

    def __init__(
        self,
        url: str,
        *,
        project_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgumentError(f"not a moss server URL: {url!r}; use http(s)://host:port")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise InvalidArgumentError(
                f"the server URL {url!r} must not carry credentials or a query: "
                "pass the key as project_key (or MOSS_PROJECT_KEY)"
            )
        if retries < 0 or timeout <= 0:
            raise InvalidArgumentError("retries must be >= 0 and timeout > 0")
        self.location = url.rstrip("/")
        self._api = self.location + API_PREFIX
        self._key = project_key
        self._timeout = timeout
        self._retries = retries
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None
        self._aclient_guard: AsyncGenerator[None, None] | None = None

    def __repr__(self) -> str:
        return f"HttpStore({self.location!r})"  # never the key

    # -- what sync and async share: building requests, reading answers ---------------------

    def _auth(self, project: str) -> dict[str, str]:
        """HTTP Basic credentials: username = the call's project id, password = the key."""
        validate_name(project, what="project id")
        if self._key is None:
            return {}  # the server answers 401, saying a key is needed
        token = base64.b64encode(f"{project}:{self._key}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}

    def _url(self, name: str | None = None, suffix: str = "") -> str:
        if name is None:
            return f"{self._api}/indexes"
        return f"{self._api}/indexes/{validate_name(name)}{suffix}"

    def _unavailable(self, exc: Exception) -> ServiceUnavailableError:
        return ServiceUnavailableError(
            f"cannot reach the moss server at {self.location} ({type(exc).__name__}: {exc}): "
            "check that `moss serve` runs there and the network allows it, then retry"
        )

    def _client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"timeout": self._timeout}
        if self.location.startswith("http://"):
            # Plain HTTP never uses TLS (and redirects are not followed): skip loading the CA
            # bundle, which costs ~40 ms per client, a lot next to a 2 ms conditional get.
            options["verify"] = False
        return options

    @staticmethod
    def _backoff(attempt: int) -> float:
        return min(_BACKOFF_MAX, _BACKOFF_START * 2.0**attempt) * random.uniform(0.5, 1.5)

    @staticmethod
    def _retryable(response: httpx.Response) -> bool:
        return response.status_code >= 500 or response.status_code == 429

    def _put_headers(self, expected_version: int | None, ttl: float | None) -> dict[str, str]:
        check_expected_version(expected_version)
        ttl = check_ttl(ttl)
        headers = {"Content-Type": "application/octet-stream"}
        if ttl is not None:
            headers[TTL_HEADER] = repr(ttl)
        if expected_version == 0:
            headers["If-None-Match"] = "*"
        elif expected_version is not None:
            headers["If-Match"] = format_etag(expected_version)
        return headers

    @staticmethod
    def _get_args(
        version: int | None, if_none_match: int | None
    ) -> tuple[dict[str, int], dict[str, str]]:
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int) or version < 1
        ):
            raise InvalidArgumentError(f"version must be an integer >= 1, got {version!r}")
        params = {} if version is None else {"version": version}
        headers = {} if if_none_match is None else {"If-None-Match": format_etag(if_none_match)}
        return params, headers

    @staticmethod
    def _watch_timeout(remaining: float) -> float:
        return max(0.0, min(remaining, WATCH_REQUEST_SECONDS))

    # -- sync -------------------------------------------------------------------------------

    def _sync(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(**self._client_options())
            return self._client

    def _send(
        self,
        method: str,
        url: str,
        project: str,
        *,
        stream: bool = False,
        retry: bool = True,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; answer a 2xx/304 response (open if ``stream``), raise otherwise."""
        headers = {**kwargs.pop("headers", {}), **self._auth(project)}
        client = self._sync()
        for attempt in range(self._retries + 1):
            last = attempt == self._retries or not retry
            request = client.build_request(
                method, url, headers=headers, timeout=timeout or self._timeout, **kwargs
            )
            try:
                response = client.send(request, stream=stream)
            except httpx.TransportError as exc:
                if last:
                    raise self._unavailable(exc) from exc
                time.sleep(self._backoff(attempt))
                continue
            if response.is_success or response.status_code == 304:
                return response
            try:
                response.read()
            except httpx.TransportError as exc:
                raise self._unavailable(exc) from exc
            finally:
                response.close()
            if last or not self._retryable(response):
                raise error_for(response, self.location)
            time.sleep(self._backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def put(
        self,
        project: str,
        name: str,
        chunks: Chunks,
        *,
        expected_version: int | None = None,
        ttl: float | None = None,
    ) -> IndexInfo:
        """Upload a snapshot, streamed, as the next version (see :class:`~moss.stores.base.Store`)."""
        url, headers = (
            self._url(name),
            {**self._put_headers(expected_version, ttl), **self._auth(project)},
        )
        body = UploadBody(iter_chunks(chunks))
        client = self._sync()
        for attempt in range(self._retries + 1):
            try:
                response = client.put(url, content=body, headers=headers)
            except httpx.TransportError as exc:
                # Resend only what was never sent: the body is a stream we cannot replay.
                if body.started or attempt == self._retries or not before_sending(exc):
                    raise self._unavailable(exc) from exc
                time.sleep(self._backoff(attempt))
                continue
            if not response.is_success:
                raise error_for(response, self.location)
            return info_from_json(json_of(response))
        raise AssertionError("unreachable")  # pragma: no cover

    def get(
        self,
        project: str,
        name: str,
        version: int | None = None,
        *,
        if_none_match: int | None = None,
    ) -> Download:
        """Open a version for reading, streamed; ``not_modified`` when ``if_none_match`` is current."""
        params, headers = self._get_args(version, if_none_match)
        response = self._send(
            "GET", self._url(name), project, stream=True, params=params, headers=headers
        )
        number = version_of(response, if_none_match)
        if response.status_code == 304:
            response.close()
            return Download(number, iter(()), not_modified=True)
        return Download(number, DownloadBody(response, self.location, name))

    def head(self, project: str, name: str) -> IndexInfo | None:
        """Describe the latest version, or None if the index does not exist."""
        try:
            response = self._send("HEAD", self._url(name), project)
        except IndexNotFoundError:
            return None
        return info_from_headers(response.headers)

    def list(self, project: str) -> _Infos:
        """Describe the latest version of every index of the project, sorted by name."""
        response = self._send("GET", self._url(), project)
        return [info_from_json(item) for item in json_of(response).get("indexes", [])]

    def versions(self, project: str, name: str) -> _Infos:
        """Describe every kept version, oldest first."""
        response = self._send("GET", self._url(name, "/versions"), project)
        return [info_from_json(item) for item in json_of(response).get("versions", [])]

    def delete(self, project: str, name: str) -> bool:
        """Delete every version of the index; return whether it existed."""
        try:
            self._send("DELETE", self._url(name), project)
        except IndexNotFoundError:
            return False
        return True

    def watch(self, project: str, name: str, after: int, timeout: float) -> int | None:
        """Long-poll the server until a version above ``after`` lands, or ``timeout`` passes."""
        url = self._url(name, "/watch")
        deadline = time.monotonic() + timeout
        while True:
            wait = self._watch_timeout(deadline - time.monotonic())
            response = self._send(
                "GET",
                url,
                project,
                params={"after": after, "timeout": wait},
                timeout=wait + self._timeout,
            )
            if response.status_code == 200:
                return int(json_of(response)["version"])
            if time.monotonic() >= deadline:
                return None

    def close(self) -> None:
        """Close the sync connection pool (an async one is closed by :meth:`aclose`)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- async: the same, line for line ----------------------------------------------------

    async def _async(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._aclient is not None and self._aclient_loop is loop:
                return self._aclient
            # A pool belongs to the loop that made it: a new loop (a new asyncio.run) needs its own.
            client = self._aclient = httpx.AsyncClient(**self._client_options())
            self._aclient_loop = loop
        # Close the pool when its loop shuts down (asyncio.run and loop runners close every open
        # async generator then), so a store never closed with aclose() leaks no sockets.
        self._aclient_guard = close_at_loop_shutdown(client)
        await self._aclient_guard.__anext__()
        return client

    async def _asend(
        self,
        method: str,
        url: str,
        project: str,
        *,
        stream: bool = False,
        retry: bool = True,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Async twin of :meth:`_send`."""
        headers = {**kwargs.pop("headers", {}), **self._auth(project)}
        client = await self._async()
        for attempt in range(self._retries + 1):
            last = attempt == self._retries or not retry
            request = client.build_request(
                method, url, headers=headers, timeout=timeout or self._timeout, **kwargs
            )
            try:
                response = await client.send(request, stream=stream)
            except httpx.TransportError as exc:
                if last:
                    raise self._unavailable(exc) from exc
                await asyncio.sleep(self._backoff(attempt))
                continue
            if response.is_success or response.status_code == 304:
                return response
            try:
                await response.aread()
            except httpx.TransportError as exc:
                raise self._unavailable(exc) from exc
            finally:
                await response.aclose()
            if last or not self._retryable(response):
                raise error_for(response, self.location)
            await asyncio.sleep(self._backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

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
        url, headers = (
            self._url(name),
            {**self._put_headers(expected_version, ttl), **self._auth(project)},
        )
        body = AsyncUploadBody(aiter_chunks(chunks))
        client = await self._async()
        for attempt in range(self._retries + 1):
            try:
                response = await client.put(url, content=body, headers=headers)
            except httpx.TransportError as exc:
                if body.started or attempt == self._retries or not before_sending(exc):
                    raise self._unavailable(exc) from exc
                await asyncio.sleep(self._backoff(attempt))
                continue
            if not response.is_success:
                raise error_for(response, self.location)
            return info_from_json(json_of(response))
        raise AssertionError("unreachable")  # pragma: no cover

    async def aget(
        self,
        project: str,
        name: str,
        version: int | None = None,
        *,
        if_none_match: int | None = None,
    ) -> AsyncDownload:
        """Async twin of :meth:`get`."""
        params, headers = self._get_args(version, if_none_match)
        response = await self._asend(
            "GET", self._url(name), project, stream=True, params=params, headers=headers
        )
        number = version_of(response, if_none_match)
        if response.status_code == 304:
            await response.aclose()
            return AsyncDownload(number, no_chunks(), not_modified=True)
        return AsyncDownload(number, AsyncDownloadBody(response, self.location, name))

    async def ahead(self, project: str, name: str) -> IndexInfo | None:
        """Async twin of :meth:`head`."""
        try:
            response = await self._asend("HEAD", self._url(name), project)
        except IndexNotFoundError:
            return None
        return info_from_headers(response.headers)

    async def alist(self, project: str) -> _Infos:
        """Async twin of :meth:`list`."""
        response = await self._asend("GET", self._url(), project)
        return [info_from_json(item) for item in json_of(response).get("indexes", [])]

    async def aversions(self, project: str, name: str) -> _Infos:
        """Async twin of :meth:`versions`."""
        response = await self._asend("GET", self._url(name, "/versions"), project)
        return [info_from_json(item) for item in json_of(response).get("versions", [])]

    async def adelete(self, project: str, name: str) -> bool:
        """Async twin of :meth:`delete`."""
        try:
            await self._asend("DELETE", self._url(name), project)
        except IndexNotFoundError:
            return False
        return True

    async def awatch(self, project: str, name: str, after: int, timeout: float) -> int | None:
        """Async twin of :meth:`watch`."""
        url = self._url(name, "/watch")
        deadline = time.monotonic() + timeout
        while True:
            wait = self._watch_timeout(deadline - time.monotonic())
            response = await self._asend(
                "GET",
                url,
                project,
                params={"after": after, "timeout": wait},
                timeout=wait + self._timeout,
            )
            if response.status_code == 200:
                return int(json_of(response)["version"])
            if time.monotonic() >= deadline:
                return None

    async def aclose(self) -> None:
        """Close both connection pools."""
        with self._lock:
            guard, self._aclient_guard = self._aclient_guard, None
            self._aclient, self._aclient_loop = None, None
        if guard is not None:
            await guard.aclose()  # closes the pool
        self.close()
