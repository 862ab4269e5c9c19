"""The HTTP store: index versions kept by a ``moss serve`` service, over httpx.

Every call authenticates with HTTP Basic (username = the project id of the call, password = the
project key). Idempotent requests (get, head, list, versions, delete, watch) are retried with
exponential backoff on connection errors, 429 and 5xx answers (429/503: as ``Retry-After``
says, up to a cap); a put is retried only when its body can be sent again whole (none of it
sent yet, or small enough to keep) and the connection failed before sending or the server
answered 429 or 503 (busy: it refuses before storing anything). Each request is written once, as a flow
(:mod:`moss.flow`): the sync methods drive it on ``httpx.Client``, the async ones on
``httpx.AsyncClient``; neither runs an event loop for the other.
"""

from __future__ import annotations

import base64
import random
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from ...errors import IndexNotFoundError, InvalidArgumentError, ServiceUnavailableError
from ...flow import Flow, Sleep, run_async, run_sync
from ...types import IndexInfo
from ...validation import validate_name
from ..base import AsyncDownload, Chunks, Download, check_expected_version, check_ttl, check_version
from ..chain import check_put_mode
from ..chunks import AsyncChunks
from .exchange import Clients, Release, Send
from .io import (
    UploadBody,
    adownload_of,
    before_sending,
    download_of,
    error_for,
    json_of,
    retry_after,
    version_of,
)
from .wire import (
    API_PREFIX,
    APPEND_HEADER,
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
        options: dict[str, Any] = {"timeout": timeout}
        if self.location.startswith("http://"):
            # Plain HTTP never uses TLS (and redirects are not followed): skip loading the CA
            # bundle, which costs ~40 ms per client, a lot next to a 2 ms conditional get.
            options["verify"] = False
        self._clients = Clients(**options)

    def __repr__(self) -> str:
        return f"HttpStore({self.location!r})"  # never the key

    # -- the public methods: each drives one flow, blocking or awaited ---------------------

    def put(
        self,
        project: str,
        name: str,
        chunks: Chunks,
        *,
        expected_version: int | None = None,
        ttl: float | None = None,
        append: bool = False,
    ) -> IndexInfo:
        """Upload a snapshot or delta, streamed, as the next version (see
        :class:`~moss.stores.base.Store`)."""
        return run_sync(self._put(project, name, chunks, expected_version, ttl, append))

    async def aput(
        self,
        project: str,
        name: str,
        chunks: AsyncChunks,
        *,
        expected_version: int | None = None,
        ttl: float | None = None,
        append: bool = False,
    ) -> IndexInfo:
        """Async twin of :meth:`put`; also accepts an async iterable of chunks."""
        return await run_async(self._put(project, name, chunks, expected_version, ttl, append))

    def get(
        self,
        project: str,
        name: str,
        version: int | None = None,
        *,
        if_none_match: int | None = None,
    ) -> Download:
        """Open a version for reading, streamed; ``not_modified`` when ``if_none_match`` is current."""
        answer = run_sync(self._get(project, name, version, if_none_match))
        return download_of(name, self.location, answer)

    async def aget(
        self,
        project: str,
        name: str,
        version: int | None = None,
        *,
        if_none_match: int | None = None,
    ) -> AsyncDownload:
        """Async twin of :meth:`get`."""
        answer = await run_async(self._get(project, name, version, if_none_match))
        return adownload_of(name, self.location, answer)

    def get_chain(
        self, project: str, name: str, *, after: int | None = None, version: int | None = None
    ) -> Download:
        """The chain stream that brings a reader to ``version`` (see :mod:`moss.stores.chain`),
        in one request; ``not_modified`` when ``after`` is the target."""
        answer = run_sync(self._chain(project, name, after, version))
        return download_of(name, self.location, answer)

    async def aget_chain(
        self, project: str, name: str, *, after: int | None = None, version: int | None = None
    ) -> AsyncDownload:
        """Async twin of :meth:`get_chain`."""
        answer = await run_async(self._chain(project, name, after, version))
        return adownload_of(name, self.location, answer)

    def head(self, project: str, name: str) -> IndexInfo | None:
        """Describe the latest version, or None if the index does not exist."""
        return run_sync(self._head(project, name))

    async def ahead(self, project: str, name: str) -> IndexInfo | None:
        """Async twin of :meth:`head`."""
        return await run_async(self._head(project, name))

    def list(self, project: str) -> _Infos:
        """Describe the latest version of every index of the project, sorted by name."""
        return run_sync(self._infos(project, None, "indexes"))

    async def alist(self, project: str) -> _Infos:
        """Async twin of :meth:`list`."""
        return await run_async(self._infos(project, None, "indexes"))

    def versions(self, project: str, name: str) -> _Infos:
        """Describe every kept version, oldest first."""
        return run_sync(self._infos(project, name, "versions"))

    async def aversions(self, project: str, name: str) -> _Infos:
        """Async twin of :meth:`versions`."""
        return await run_async(self._infos(project, name, "versions"))

    def delete(self, project: str, name: str) -> bool:
        """Delete every version of the index; return whether it existed."""
        return run_sync(self._delete(project, name))

    async def adelete(self, project: str, name: str) -> bool:
        """Async twin of :meth:`delete`."""
        return await run_async(self._delete(project, name))

    def watch(self, project: str, name: str, after: int, timeout: float) -> int | None:
        """Long-poll the server until a version above ``after`` lands, or ``timeout`` passes."""
        return run_sync(self._watch(project, name, after, timeout))

    async def awatch(self, project: str, name: str, after: int, timeout: float) -> int | None:
        """Async twin of :meth:`watch`."""
        return await run_async(self._watch(project, name, after, timeout))

    def close(self) -> None:
        """Close the sync connection pool (an async one is closed by :meth:`aclose`)."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close both connection pools."""
        await self._clients.aclose()

    # -- the flows: written once for both -------------------------------------------------

    def _put(
        self,
        project: str,
        name: str,
        chunks: AsyncChunks,
        expected_version: int | None,
        ttl: float | None,
        append: bool,
    ) -> Flow[IndexInfo]:
        check_expected_version(expected_version)
        check_put_mode(expected_version, append)
        ttl = check_ttl(ttl)
        headers = {"Content-Type": "application/octet-stream"}
        if ttl is not None:
            headers[TTL_HEADER] = repr(ttl)
        if append:
            headers[APPEND_HEADER] = "1"
        if expected_version == 0:
            headers["If-None-Match"] = "*"
        elif expected_version is not None:
            headers["If-Match"] = format_etag(expected_version)
        response = yield from self._send(
            "PUT", self._url(name), project, headers=headers, body=UploadBody(chunks)
        )
        return info_from_json(json_of(response))

    def _get(
        self, project: str, name: str, version: int | None, if_none_match: int | None
    ) -> Flow[tuple[int, httpx.Response | None]]:
        """The version and its open response (None when ``if_none_match`` is current)."""
        params: dict[str, Any] = {}
        headers: dict[str, str] = {}
        if version is not None:
            params["version"] = check_version(version)
        if if_none_match is not None:
            check_version(if_none_match, "if_none_match", lowest=0)
            headers["If-None-Match"] = format_etag(if_none_match)
        response = yield from self._send(
            "GET", self._url(name), project, stream=True, params=params, headers=headers
        )
        number = version_of(response, if_none_match)
        if response.status_code == 304:
            yield Release(response)
            return number, None
        return number, response

    def _chain(
        self, project: str, name: str, after: int | None, version: int | None
    ) -> Flow[tuple[int, httpx.Response | None]]:
        """The target version and the open chain response (None when ``after`` is current)."""
        params: dict[str, Any] = {}
        if after is not None:
            params["after"] = check_version(after, "after", lowest=0)
        if version is not None:
            params["version"] = check_version(version)
        url = self._url(name, "/chain")
        response = yield from self._send("GET", url, project, stream=True, params=params)
        number = version_of(response, after)
        if response.status_code == 304:
            yield Release(response)
            return number, None
        return number, response

    def _head(self, project: str, name: str) -> Flow[IndexInfo | None]:
        try:
            response = yield from self._send("HEAD", self._url(name), project)
        except IndexNotFoundError:
            return None
        return info_from_headers(response.headers)

    def _infos(self, project: str, name: str | None, key: str) -> Flow[_Infos]:
        url = self._url() if name is None else self._url(name, "/versions")
        response = yield from self._send("GET", url, project)
        return [info_from_json(item) for item in json_of(response).get(key, [])]

    def _delete(self, project: str, name: str) -> Flow[bool]:
        try:
            yield from self._send("DELETE", self._url(name), project)
        except IndexNotFoundError:
            return False
        return True

    def _watch(self, project: str, name: str, after: int, timeout: float) -> Flow[int | None]:
        check_version(after, "after", lowest=0)
        url = self._url(name, "/watch")
        deadline = time.monotonic() + timeout
        while True:
            wait = max(0.0, min(deadline - time.monotonic(), WATCH_REQUEST_SECONDS))
            response = yield from self._send(
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

    def _send(
        self,
        method: str,
        url: str,
        project: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        body: UploadBody | None = None,
        stream: bool = False,
        timeout: float | None = None,
    ) -> Flow[httpx.Response]:
        """Send with retries; answer a 2xx/304 response (open if ``stream``), raise otherwise.

        Requests without a body are idempotent: retried with back-off on connection errors,
        429 and 5xx. A put is resent only if its body can be sent again whole and either the
        connection failed before sending or the server answered 429 or 503.
        """
        send = Send(
            self._clients,
            method,
            url,
            headers={**(headers or {}), **self._auth(project)},
            timeout=timeout or self._timeout,
            params=params or {},
            body=body,
            stream=stream,
        )
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                response: httpx.Response = yield send
            except httpx.TransportError as exc:
                resend = body is None or (body.replayable and before_sending(exc))
                if last or not resend:
                    raise self._unavailable(exc) from exc
                yield Sleep(self._backoff(attempt))
                continue
            if response.is_success or response.status_code == 304:
                return response
            try:
                yield Release(response)
            except httpx.TransportError as exc:
                raise self._unavailable(exc) from exc
            status, replayable = response.status_code, body is None or body.replayable
            busy = status in (429, 503)
            if last or not replayable or not (busy or (body is None and status >= 500)):
                raise error_for(response, self.location)
            yield Sleep(retry_after(response) if busy else self._backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- request parts ---------------------------------------------------------------------

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

    @staticmethod
    def _backoff(attempt: int) -> float:
        return min(_BACKOFF_MAX, _BACKOFF_START * 2.0**attempt) * random.uniform(0.5, 1.5)
