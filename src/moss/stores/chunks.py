"""Turn the accepted shapes of snapshot input into plain chunk iterators."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import TypeVar

from .base import Chunks

T = TypeVar("T")

CHUNK_SIZE = 8 << 20

#: What async puts accept: everything sync puts accept, or an async iterable of chunks.
AsyncChunks = Chunks | AsyncIterable[bytes | memoryview]


def iter_chunks(chunks: Chunks, size: int = CHUNK_SIZE) -> Iterator[bytes | memoryview]:
    """Yield byte chunks from an iterable of chunks or a readable binary file."""
    read = getattr(chunks, "read", None)
    if read is None:
        yield from chunks
        return
    while block := read(size):
        yield block


async def aiter_chunks(
    chunks: AsyncChunks, size: int = CHUNK_SIZE
) -> AsyncIterator[bytes | memoryview]:
    """Yield byte chunks from an async iterable, an iterable or a file, without blocking the loop."""
    if isinstance(chunks, AsyncIterable):
        async for chunk in chunks:
            yield chunk
        return
    async for chunk in aiter_sync(iter_chunks(chunks, size)):
        yield chunk


def _next_or_none(iterator: Iterator[T]) -> T | None:
    return next(iterator, None)


async def aiter_sync(chunks: Iterable[T]) -> AsyncIterator[T]:
    """Pull a blocking iterator on a worker thread, one chunk at a time."""
    iterator = iter(chunks)
    while (chunk := await asyncio.to_thread(_next_or_none, iterator)) is not None:
        yield chunk


class NextChunk:
    """A flow step (:mod:`moss.flow`) taking the next chunk of a snapshot, None at the end:
    from :func:`iter_chunks` when run blocking, from :func:`aiter_chunks` when awaited."""

    def __init__(self, chunks: AsyncChunks) -> None:
        self._chunks = chunks
        self._iterator: Iterator[bytes | memoryview] | None = None
        self._aiterator: AsyncIterator[bytes | memoryview] | None = None

    def run(self) -> bytes | memoryview | None:
        if self._iterator is None:
            self._iterator = iter_chunks(self._chunks)  # type: ignore[arg-type]  # async input: aput
        return next(self._iterator, None)

    async def arun(self) -> bytes | memoryview | None:
        if self._aiterator is None:
            self._aiterator = aiter_chunks(self._chunks)
        return await anext(self._aiterator, None)
