"""The body of a GET, streamed from the store with back-pressure and a stall timeout.

The store hands over chunks of its own size; the socket is given pieces of ``PIECE_BYTES``,
each only once the previous one has drained (uvicorn pauses ``send`` while the transport's
buffer is full), so a slow reader holds at most one store chunk and one piece. A reader that
accepts nothing for ``stall_seconds`` is dropped, and the store's file or connection is closed
the moment the response ends, however it ends (complete, cut off, cancelled or timed out).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..stores.base import AsyncDownload

#: What one ``send`` hands the socket: small, so a stalled reader pins little memory.
PIECE_BYTES = 64 << 10

_log = logging.getLogger("moss.server")
#: Set in the task of a download this module dropped on purpose (read by :class:`QuietDrops`).
_dropped: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "moss_download_dropped", default=False
)
_UNFINISHED = "ASGI callable returned without completing response."


class QuietDrops(logging.Filter):
    """Silence uvicorn's error line for a download this module dropped (already logged as a
    warning naming the client's stall); every other unfinished response still logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.getMessage() == _UNFINISHED and _dropped.get())


def install_quiet_drops() -> None:
    """Attach :class:`QuietDrops` to uvicorn's error logger (once)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietDrops) for f in logger.filters):
        logger.addFilter(QuietDrops())


class DownloadResponse(Response):
    """A 200 streaming ``download``; closes it when done."""

    def __init__(
        self,
        download: AsyncDownload,
        headers: Mapping[str, str],
        stall_seconds: float,
        media_type: str = "application/octet-stream",
    ) -> None:
        # No Response.__init__: it would set Content-Length from an (empty) body.
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)
        self._download = download
        self._stall_seconds = stall_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._send(
                send, {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
            )
            async for chunk in self._download:
                view = memoryview(chunk)
                for start in range(0, len(view), PIECE_BYTES):
                    piece = bytes(view[start : start + PIECE_BYTES])
                    await self._send(
                        send, {"type": "http.response.body", "body": piece, "more_body": True}
                    )
            await self._send(send, {"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            # Returning unfinished makes uvicorn close the connection.
            _dropped.set(True)
            _log.warning(
                "dropped a download whose client read nothing for %g s", self._stall_seconds
            )
        except OSError:
            pass  # the client went away: nothing to answer
        finally:
            await self._download.aclose()

    async def _send(self, send: Send, message: dict[str, object]) -> None:
        await asyncio.wait_for(send(message), self._stall_seconds)
