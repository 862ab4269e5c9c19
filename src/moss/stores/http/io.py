"""The httpx-facing parts of :class:`~moss.stores.http.HttpStore`: request and response bodies,
and failed answers turned into moss errors."""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import httpx

from ...errors import (
    AuthenticationError,
    ConflictError,
    IndexNotFoundError,
    InvalidArgumentError,
    MossError,
    ServiceUnavailableError,
    SnapshotError,
)
from ..base import AsyncDownload, Download
from ..chunks import AsyncChunks, aiter_chunks, iter_chunks
from .wire import ERRORS, VERSION_HEADER

#: Download chunk size: big enough that per-chunk overhead vanishes, small enough to stay light.
DOWNLOAD_CHUNK = 1 << 20


def json_of(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or {} if it has none."""
    try:
        data = response.json()
    except ValueError:
        data = None
    return data if isinstance(data, dict) else {}


def error_for(response: httpx.Response, location: str) -> MossError:
    """The moss error for a failed answer (its body must have been read)."""
    status = response.status_code
    body = json_of(response)
    kind, message = str(body.get("error", "")), body.get("message")
    if not isinstance(message, str):
        message = response.text[:300] or response.reason_phrase
    if status >= 500 or status == 429:
        return ServiceUnavailableError(
            f"the moss server at {location} failed (HTTP {status}): {message}; retry later"
        )
    if status == 401:
        return AuthenticationError(f"{location} refused the credentials: {message}")
    if status == 412:
        return ConflictError(message, expected=body.get("expected"), actual=body.get("actual"))
    if status == 413:
        return SnapshotError(message)
    if kind in ERRORS:
        return ERRORS[kind][1](message)
    # Not a moss answer (a proxy, another service): judge by the status alone.
    return IndexNotFoundError(message) if status == 404 else InvalidArgumentError(message)


def version_of(response: httpx.Response, if_none_match: int | None) -> int:
    """The version an answer is about (its X-Moss-Version header)."""
    value = response.headers.get(VERSION_HEADER)
    if value is not None and value.isdigit():
        return int(value)
    if response.status_code == 304 and if_none_match is not None:
        return if_none_match
    raise ServiceUnavailableError(
        f"{response.url} answered without an {VERSION_HEADER} header: is it a moss server?"
    )


def retry_after(response: httpx.Response) -> float:
    """The wait a 429/503 answer asks for: ``Retry-After`` seconds, at most
    :data:`RETRY_AFTER_MAX` (a date, or none: a short wait), with a little jitter."""
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        seconds = RETRY_AFTER_DEFAULT
    if not seconds >= 0:  # NaN or negative
        seconds = RETRY_AFTER_DEFAULT
    return min(seconds, RETRY_AFTER_MAX) * random.uniform(1.0, 1.2)


def before_sending(exc: httpx.TransportError) -> bool:
    """Whether the request certainly never reached the server."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


#: The longest wait a ``Retry-After`` answer gets, and the wait when it names none.
RETRY_AFTER_MAX = 5.0
RETRY_AFTER_DEFAULT = 0.5
#: An upload body up to this size is kept while it is sent, so it can be sent again.
REPLAY_BYTES = 1 << 20


class UploadBody:
    """A request body streamed from snapshot chunks. It records whether any of it was taken and
    keeps a copy of a small body (up to ``keep_bytes``), so a retry is safe (:attr:`replayable`).
    httpx pulls :meth:`sync` on a Client, :meth:`asynchronous` on an AsyncClient."""

    def __init__(self, chunks: AsyncChunks, keep_bytes: int = REPLAY_BYTES) -> None:
        self._chunks = chunks
        self.started = False
        self._keep_bytes = keep_bytes
        self._kept: list[bytes] | None = []
        self._kept_size = 0
        self._complete = False  # the whole body was taken and kept

    @property
    def replayable(self) -> bool:
        """Whether the body can be sent (again) whole."""
        return not self.started or self._complete

    def _keep(self, chunk: bytes | memoryview) -> None:
        if self._kept is not None:
            self._kept_size += len(chunk)
            if self._kept_size > self._keep_bytes:
                self._kept = None  # too large to keep: a retry needs nothing sent yet
            else:
                self._kept.append(bytes(chunk))

    def sync(self) -> Iterator[bytes]:
        if self._complete:
            assert self._kept is not None
            yield from self._kept
            return
        for chunk in iter_chunks(self._chunks):  # type: ignore[arg-type]  # async input: async put
            self.started = True
            self._keep(chunk)
            yield chunk  # type: ignore[misc]  # memoryviews are sent as they are, uncopied
        self._complete = self._kept is not None

    async def asynchronous(self) -> AsyncIterator[bytes]:
        if self._complete:
            assert self._kept is not None
            for kept in self._kept:
                yield kept
            return
        async for chunk in aiter_chunks(self._chunks):
            self.started = True
            self._keep(chunk)
            yield chunk  # type: ignore[misc]  # memoryviews are sent as they are, uncopied
        self._complete = self._kept is not None


class DownloadBody:
    """The chunks of a streamed download; closing it (or finishing) releases the connection."""

    def __init__(self, response: httpx.Response, location: str, name: str) -> None:
        self._response = response
        self._location = location
        self._name = name
        self._chunks = response.iter_bytes(DOWNLOAD_CHUNK)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except StopIteration:
            self.close()
            raise
        except httpx.TransportError as exc:
            self.close()
            raise _cut_off(self._location, self._name, exc) from exc

    def close(self) -> None:
        self._response.close()


class AsyncDownloadBody:
    """Async twin of :class:`DownloadBody`."""

    def __init__(self, response: httpx.Response, location: str, name: str) -> None:
        self._response = response
        self._location = location
        self._name = name
        self._chunks = response.aiter_bytes(DOWNLOAD_CHUNK)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            await self.aclose()
            raise
        except httpx.TransportError as exc:
            await self.aclose()
            raise _cut_off(self._location, self._name, exc) from exc

    async def aclose(self) -> None:
        await self._response.aclose()


def _cut_off(location: str, name: str, exc: Exception) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        f"the download of index {name!r} from {location} was cut off "
        f"({type(exc).__name__}: {exc}): open it again"
    )


async def close_at_loop_shutdown(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    """Close ``client`` when this generator is closed: by ``aclose()``, or by the event loop
    shutting down its open async generators (``asyncio.run`` and loop runners do)."""
    try:
        yield
    finally:
        await client.aclose()


def download_of(name: str, location: str, answer: tuple[int, httpx.Response | None]) -> Download:
    """A blocking download of ``answer`` (its version, and its open response; None for a 304)."""
    number, response = answer
    if response is None:
        return Download(number, iter(()), not_modified=True)
    return Download(number, DownloadBody(response, location, name))


def adownload_of(
    name: str, location: str, answer: tuple[int, httpx.Response | None]
) -> AsyncDownload:
    """Async twin of :func:`download_of`."""
    number, response = answer
    if response is None:
        return AsyncDownload(number, no_chunks(), not_modified=True)
    return AsyncDownload(number, AsyncDownloadBody(response, location, name))


async def no_chunks() -> AsyncIterator[bytes]:
    """The body of a 304: nothing."""
    return
    yield  # an async generator that yields nothing
