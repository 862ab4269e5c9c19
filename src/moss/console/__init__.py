"""The web console served by ``moss serve`` at ``/console``: log in with a project id and key,
browse the project's indexes, their versions and documents, and try queries.

Read-only: it opens sessions on the server's own store and never pushes. Authentication is the
API's (the same check, per request); the key lives in an HttpOnly, SameSite=Strict cookie and
never in a URL. Pages are rendered on the server from Jinja2 templates (autoescaped: document
texts and metadata are untrusted); the stylesheet ships in the package, so it works offline.

``mount_console(app, store, authenticate)`` adds it to a FastAPI/Starlette app.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from ..stores.base import Store
from .login import Authenticate

__all__ = ["Authenticate", "mount_console"]

PREFIX = "/console"
_logger = logging.getLogger("moss.console")


def mount_console(app: Starlette, store: Store, authenticate: Authenticate) -> None:
    """Serve the console at ``/console`` of ``app`` over ``store``.

    ``authenticate`` maps Basic credentials to the project they unlock or raises
    :class:`~moss.errors.AuthenticationError`: pass the API's own check so both agree exactly.
    Without Jinja2 (the ``console`` extra) the path answers with how to install it.
    """
    try:
        from .app import console_app
    except ImportError as exc:
        _logger.warning("web console off: %s (pip install 'moss-sessions[console]')", exc)
        message = (
            f"the web console needs the console extra: pip install 'moss-sessions[console]' ({exc})"
        )

        async def missing(request: Request) -> PlainTextResponse:
            return PlainTextResponse(message, status_code=501)

        app.mount(PREFIX, Starlette(routes=[Route("/{path:path}", missing)]))
        return
    app.mount(PREFIX, console_app(store, authenticate))
