"""The body of a PUT, streamed into the store with bounded memory.

The store validates the snapshot as it streams (header, name, checksums) and commits only a
complete one; this module adds what only the server knows: the size limit, checked on the
header's declared size before anything is written and on the bytes actually received; the idle
timeout, so a client that stops sending is dropped (the store then removes its temp file); the
full check of every section (:mod:`.upload_check`), completed before the last batch reaches
the store, so a snapshot no client could open is never published; and the batching of the
socket's small pieces into chunks big enough to write efficiently.

When an upload is refused early, the server answers at once; uvicorn reads and discards the rest
of the body, so the client still receives the answer rather than a reset connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request

from ..errors import SnapshotError
from ..stores.http.wire import SnapshotTooLargeError
from .limits import Refusal
from .upload_check import UploadChecker

#: Chunks handed to the store: big enough that per-chunk overhead (a thread hop per write in
#: the file store) vanishes, small enough that memory stays a few MiB per upload.
BATCH_BYTES = 4 << 20
#: Batches read ahead of the store: memory per upload stays under (READ_AHEAD + 2) batches.
READ_AHEAD = 2


def parse_content_length(request: Request, limit: int) -> None:
    """Refuse an upload whose declared length is already over ``limit``, before reading it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise SnapshotTooLargeError(_too_large(int(declared), limit))


async def upload_chunks(
    request: Request, name: str, limit: int, idle_seconds: float
) -> AsyncIterator[bytes]:
    """Yield the request body in batches, enforcing ``limit`` and the snapshot's name early.

    A task reads ahead (at most ``READ_AHEAD`` batches) while the store writes the previous
    batch, so network and disk work overlap instead of taking turns. Raises
    :class:`SnapshotTooLargeError` past the limit, :class:`SnapshotError` for a foreign or
    wrongly named header, a snapshot no client could open, and when the client goes away
    mid-upload; :class:`Refusal` (408) when it sends nothing for ``idle_seconds``.
    """
    queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue(maxsize=READ_AHEAD)

    async def read_ahead() -> None:
        try:
            async for batch in _batches(request, name, limit, idle_seconds):
                await queue.put(batch)
            await queue.put(None)
        except Exception as exc:  # handed to the consumer, raised there
            await queue.put(exc)

    reader = asyncio.create_task(read_ahead())
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        reader.cancel()  # the store stopped early (a bad snapshot): stop reading
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def _batches(
    request: Request, name: str, limit: int, idle_seconds: float
) -> AsyncIterator[bytes]:
    """The body in batches of about ``BATCH_BYTES``, checked as described above."""
    checker = UploadChecker(expected_name=name)
    received = 0
    batch: list[bytes] = []
    unchecked: list[bytes] = []  # pieces of the batch not yet fed to the checker
    batched = 0
    pieces = request.stream()
    try:
        while True:
            try:
                piece = await asyncio.wait_for(anext(pieces), idle_seconds)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise Refusal(
                    408,
                    "snapshot_invalid",
                    f"the upload sent nothing for {idle_seconds:g} s after {received} bytes: "
                    "it was dropped and nothing was stored; push again",
                ) from None
            received += len(piece)
            if received > limit:
                raise SnapshotTooLargeError(_too_large(received, limit, at_least=True))
            if checker.header is None:
                # Until the header is in, check each piece at once: a wrong name or an
                # oversized declared size is refused before a byte is written.
                checker.feed(piece)
                if checker.header is not None and checker.header.total_size > limit:
                    raise SnapshotTooLargeError(_too_large(checker.header.total_size, limit))
            else:
                unchecked.append(piece)
            batch.append(piece)
            batched += len(piece)
            if batched >= BATCH_BYTES:
                await asyncio.to_thread(_feed, checker, unchecked)
                yield b"".join(batch)
                batch, batched, unchecked = [], 0, []
    except ClientDisconnect as exc:
        raise SnapshotError(
            f"the upload was cut off after {received} bytes: nothing was stored"
        ) from exc
    await asyncio.to_thread(_feed, checker, unchecked)
    await asyncio.to_thread(checker.finish)  # the store commits only after the last batch
    if batch:
        yield b"".join(batch)


def _feed(checker: UploadChecker, pieces: list[bytes]) -> None:
    for piece in pieces:
        checker.feed(piece)


def _too_large(size: int, limit: int, *, at_least: bool = False) -> str:
    amount = f"at least {size}" if at_least else f"{size}"
    return (
        f"the snapshot is {amount} bytes, over this server's limit of {limit} bytes: "
        "split the index, or start the server with a larger --max-upload-bytes"
    )
