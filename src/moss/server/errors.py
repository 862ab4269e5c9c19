"""Every error the service answers, mapped to a status code and a JSON body in one place."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from ..errors import ConflictError, MossError
from ..stores.http.wire import ERRORS, error_body, error_kind
from .limits import Refusal

_log = logging.getLogger("moss.server")

#: For errors raised by the framework itself (unknown routes, malformed credentials).
_KIND_OF_STATUS = {401: "authentication", 404: "not_found", 405: "method_not_allowed"}


def error_response(
    status: int,
    kind: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A JSON error answer; 401s also say how to authenticate."""
    all_headers = dict(headers or {})
    if status == 401:
        all_headers["WWW-Authenticate"] = 'Basic realm="moss"'
    return JSONResponse(
        error_body(kind, message, **extra), status_code=status, headers=all_headers or None
    )


async def _moss_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MossError)
    kind = error_kind(exc)
    status = ERRORS[kind][0]
    extra: dict[str, Any] = {}
    if isinstance(exc, ConflictError):
        extra = {"expected": exc.expected, "actual": exc.actual}
    if status >= 500:
        _log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return error_response(status, kind, str(exc), **extra)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    kind = _KIND_OF_STATUS.get(exc.status_code, "invalid_argument")
    if exc.status_code == 404 and kind == "not_found":
        message = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
    else:
        message = str(exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return error_response(exc.status_code, kind, message, headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (each route holds one method: Starlette's
    own ``Allow`` names only the first route that matched the path)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _refusal(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refusal)
    return error_response(exc.status, exc.kind, str(exc), exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
    return error_response(400, "invalid_argument", f"invalid request: {problems}")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    _log.exception("%s %s failed", request.method, request.url.path)
    return error_response(500, "internal", "the server failed; see its log, then retry")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every failure as ``{"error": kind, "message": ...}`` with the right status."""
    app.add_exception_handler(MossError, _moss_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Refusal, _refusal)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
