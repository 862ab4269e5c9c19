"""One implementation for sync and async: I/O-free generator flows run by two small drivers.

Logic that must run both ways (loading a version, the merge-push loop, HTTP retries, the
PostgreSQL queries) is written once, as a generator that *yields steps* and receives their
results; :func:`run_sync` performs each step blocking, :func:`run_async` awaits it. This is the
pattern of httpx's ``Auth.sync_auth_flow`` / ``Auth.async_auth_flow``.

A step's exception is thrown back into the flow at its ``yield``, so flows handle errors with
plain ``try``/``except``. Example::

    def _push(self, chunks) -> Flow[PushResult]:
        try:
            info = yield Io(lambda: store.put(...), lambda: store.aput(...))
        except ConflictError:
            yield Sleep(0.1)
            ...
        return PushResult(...)

    def push(self):              return run_sync(self._push(chunks))
    async def apush(self):       return await run_async(self._push(chunks))
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["Flow", "Io", "Offload", "Sleep", "Step", "run_async", "run_sync"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Step(Protocol[T_co]):
    """What a flow asks its driver to do: ``run()`` blocking or ``await arun()``."""

    def run(self) -> T_co: ...

    async def arun(self) -> T_co: ...


#: A flow yields steps, is sent each step's result, and returns its own result.
Flow = Generator[Step[Any], Any, T]


@dataclass(frozen=True, slots=True)
class Io(Generic[T]):
    """An I/O step given as its blocking and its awaitable form (two calls with the same meaning)."""

    blocking: Callable[[], T]
    awaitable: Callable[[], Awaitable[T]]

    def run(self) -> T:
        return self.blocking()

    async def arun(self) -> T:
        return await self.awaitable()


@dataclass(frozen=True, slots=True)
class Offload(Generic[T]):
    """CPU-bound work: run in place when blocking, in a worker thread under an event loop."""

    function: Callable[[], T]

    def run(self) -> T:
        return self.function()

    async def arun(self) -> T:
        return await asyncio.to_thread(self.function)


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds`` (``time.sleep`` or ``asyncio.sleep``)."""

    seconds: float

    def run(self) -> None:
        time.sleep(self.seconds)

    async def arun(self) -> None:
        await asyncio.sleep(self.seconds)


def run_sync(flow: Flow[T]) -> T:
    """Drive ``flow`` to its result, performing every step blocking."""
    result: Any = None
    error: Exception | None = None
    try:
        while True:
            try:
                step = flow.throw(error) if error is not None else flow.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            try:
                result, error = step.run(), None
            except Exception as exc:  # handed to the flow, which may catch it at its yield
                result, error = None, exc
    finally:
        flow.close()  # an interrupt still runs the flow's finally blocks


async def run_async(flow: Flow[T]) -> T:
    """Drive ``flow`` to its result, awaiting every step."""
    result: Any = None
    error: Exception | None = None
    try:
        while True:
            try:
                step = flow.throw(error) if error is not None else flow.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            try:
                result, error = await step.arun(), None
            except Exception as exc:
                result, error = None, exc
    finally:
        flow.close()  # a cancelled task still runs the flow's finally blocks
