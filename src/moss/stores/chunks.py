"""Turn the accepted shapes of snapshot input into plain chunk iterators."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Union

from .base import Chunks

CHUNK_SIZE = 8 << 20

#: What async puts accept: everything sync puts accept, or an async iterable of chunks.
AsyncChunks = Union[Chunks, AsyncIterable[bytes]]


def iter_chunks(chunks: Chunks, size: int = CHUNK_SIZE) -> Iterator[bytes | memoryview]:
    """Yield byte chunks from an iterable of chunks or a readable binary file."""
    read = getattr(chunks, "read", None)
    if read is None:
        yield from chunks  # type: ignore[misc]
        return
    while block := read(size):
        yield block


async def aiter_chunks(chunks: AsyncChunks, size: int = CHUNK_SIZE) -> AsyncIterator[bytes | memoryview]:
    """Yield byte chunks from an async iterable, an iterable or a file, without blocking the loop."""
    if isinstance(chunks, AsyncIterable):
        async for chunk in chunks:
            yield chunk
        return
    iterator = iter_chunks(chunks, size)
    sentinel = object()
    while (chunk := await asyncio.to_thread(next, iterator, sentinel)) is not sentinel:
        yield chunk  # type: ignore[misc]


async def aiter_sync(iterator: Iterable[bytes]) -> AsyncIterator[bytes]:
    """Pull a blocking iterator on a worker thread, one chunk at a time."""
    it = iter(iterator)
    sentinel = object()
    while (chunk := await asyncio.to_thread(next, it, sentinel)) is not sentinel:
        yield chunk  # type: ignore[misc]
