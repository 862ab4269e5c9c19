"""The body of a PUT, streamed into the store with bounded memory.

The store validates the snapshot as it streams (header, name, checksums) and commits only a
complete one; this module adds what only the server knows: the size limit, checked on the
header's declared size before anything is written and on the bytes actually received, and the
batching of the socket's small pieces into chunks big enough to write efficiently.

When an upload is refused early, the server answers at once; uvicorn reads and discards the rest
of the body, so the client still receives the answer rather than a reset connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request

from ..errors import SnapshotError
from ..snapshot.codec import SnapshotReader
from ..stores.http.wire import SnapshotTooLargeError

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


async def upload_chunks(request: Request, name: str, limit: int) -> AsyncIterator[bytes]:
    """Yield the request body in batches, enforcing ``limit`` and the snapshot's name early.

    A task reads ahead (at most ``READ_AHEAD`` batches) while the store writes the previous
    batch, so network and disk work overlap instead of taking turns. Raises
    :class:`SnapshotTooLargeError` past the limit, :class:`SnapshotError` for a foreign or
    wrongly named header, and when the client goes away mid-upload.
    """
    queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue(maxsize=READ_AHEAD)

    async def read_ahead() -> None:
        try:
            async for batch in _batches(request, name, limit):
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


async def _batches(request: Request, name: str, limit: int) -> AsyncIterator[bytes]:
    """The body in batches of about ``BATCH_BYTES``, checked as described above."""
    probe: SnapshotReader | None = SnapshotReader(keep_data=False, expected_name=name)
    received = 0
    batch: list[bytes] = []
    batched = 0
    try:
        async for piece in request.stream():
            received += len(piece)
            if received > limit:
                raise SnapshotTooLargeError(_too_large(received, limit, at_least=True))
            if probe is not None:
                # Parse just the header: a wrong name or an oversized declared size is refused
                # before a byte is written. The store parses it again; it is tiny.
                probe.feed(piece)
                if probe.header is not None:
                    if probe.header.total_size > limit:
                        raise SnapshotTooLargeError(_too_large(probe.header.total_size, limit))
                    probe = None
            batch.append(piece)
            batched += len(piece)
            if batched >= BATCH_BYTES:
                yield b"".join(batch)
                batch, batched = [], 0
    except ClientDisconnect as exc:
        raise SnapshotError(
            f"the upload was cut off after {received} bytes: nothing was stored"
        ) from exc
    if batch:
        yield b"".join(batch)


def _too_large(size: int, limit: int, *, at_least: bool = False) -> str:
    amount = f"at least {size}" if at_least else f"{size}"
    return (
        f"the snapshot is {amount} bytes, over this server's limit of {limit} bytes: "
        "split the index, or start the server with a larger --max-upload-bytes"
    )
