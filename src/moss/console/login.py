"""Who is using the console: the project id and key kept in a cookie, checked per request.

The cookie holds both, base64url-encoded; it is HttpOnly (no script reads it), SameSite=Strict
(no other site's page sends it) and Secure over https, scoped to ``/console``. Every request
checks it again with the API's own authentication, so a revoked key stops working at once.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, urlsplit

from fastapi.security import HTTPBasicCredentials
from starlette.requests import Request
from starlette.responses import Response

from ..errors import AuthenticationError, InvalidArgumentError

#: The API's check: credentials -> the project they unlock, or AuthenticationError.
Authenticate = Callable[[HTTPBasicCredentials], Awaitable[str]]

COOKIE = "moss_console"
#: How long the browser keeps the cookie; the key itself stays valid until revoked.
COOKIE_SECONDS = 8 * 3600
#: Forms are small (a login, a query); anything bigger is refused before parsing.
MAX_FORM_BYTES = 64 * 1024


def _b64(text: str) -> str:
    # Unpadded, so the cookie value needs no quoting.
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode("ascii")).decode("utf-8")


def credentials_from(request: Request) -> HTTPBasicCredentials | None:
    """The project id and key of the login cookie, or None if absent or malformed."""
    value = request.cookies.get(COOKIE)
    if not value or "." not in value:
        return None
    project, _, key = value.partition(".")
    try:
        return HTTPBasicCredentials(username=_unb64(project), password=_unb64(key))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


async def project_of(request: Request, authenticate: Authenticate) -> str | None:
    """The project the cookie's key unlocks, or None (no cookie, wrong or revoked key)."""
    credentials = credentials_from(request)
    if credentials is None:
        return None
    try:
        return await authenticate(credentials)
    except AuthenticationError:
        return None


def set_login(response: Response, request: Request, project: str, key: str) -> None:
    """Keep the credentials in the console's cookie."""
    response.set_cookie(
        COOKIE,
        f"{_b64(project)}.{_b64(key)}",
        max_age=COOKIE_SECONDS,
        path=request.scope.get("root_path") or "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_login(response: Response, request: Request) -> None:
    """Forget the credentials."""
    response.delete_cookie(
        COOKIE,
        path=request.scope.get("root_path") or "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def same_origin(request: Request) -> bool:
    """Whether a POST comes from the console's own pages: its Origin (when the browser sends
    one) must be this server. SameSite=Strict already keeps the cookie off cross-site requests;
    this refuses them outright, logins included."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme == request.url.scheme and parts.netloc == request.headers.get("host")


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict (the last value of each field)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise InvalidArgumentError("send the form as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InvalidArgumentError(f"the form is larger than {MAX_FORM_BYTES} bytes")
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
