"""The console's pages: login and logout, the index list, an index (versions and documents) and
the query playground. Every page but the login needs the cookie of :mod:`.login`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.security import HTTPBasicCredentials
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import IndexNotFoundError, InvalidArgumentError, MossError
from ..stores.base import Store
from ..types import QueryOptions
from ..validation import validate_name
from . import views
from .login import (
    Authenticate,
    clear_login,
    project_of,
    read_form,
    same_origin,
    set_login,
)
from .reader import Reader

HERE = Path(__file__).parent
#: Pages load nothing from elsewhere and run no inline script; nothing may frame them.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # no-referrer would make forms send Origin: null
    "Cache-Control": "no-store",
}
WRONG_KEY = (
    "Wrong project id or key, or the key was revoked. Keys come from `moss projects create` "
    "or `moss keys create` on the server's store."
)
DEFAULT_ALPHA = QueryOptions().alpha


class Console:
    """The pages, over one store, checking keys with the API's own authentication."""

    def __init__(self, store: Store, authenticate: Authenticate) -> None:
        self.store = store
        self.authenticate = authenticate
        self.reader = Reader(store)
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        self.templates.filters.update(
            bytes=views.human_bytes, when=views.human_time, pretty=views.pretty_json
        )

    def page(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        base = request.scope.get("root_path", "").rstrip("/")
        html = self.templates.get_template(template).render(base=base, **context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def to(self, request: Request, path: str) -> RedirectResponse:
        base = request.scope.get("root_path", "").rstrip("/")
        return RedirectResponse(base + path, status_code=303, headers=SECURITY_HEADERS)

    # -- login ------------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        return self.page(request, "login.html", project="", error=None)

    async def login(self, request: Request) -> Response:
        if not same_origin(request):
            return self.page(request, "error.html", 403, message="cross-origin form refused")
        form = await read_form(request)
        project, key = form.get("project", "").strip(), form.get("key", "")
        try:
            unlocked = await self.authenticate(HTTPBasicCredentials(username=project, password=key))
        except MossError:
            return self.page(request, "login.html", 401, project=project, error=WRONG_KEY)
        response = self.to(request, "/")
        set_login(response, request, unlocked, key)
        return response

    async def logout(self, request: Request) -> Response:
        if not same_origin(request):
            return self.page(request, "error.html", 403, message="cross-origin form refused")
        response = self.to(request, "/login")
        clear_login(response, request)
        return response

    # -- pages ------------------------------------------------------------------------------

    async def indexes(self, request: Request) -> Response:
        project = await project_of(request, self.authenticate)
        if project is None:
            return self.to(request, "/login")
        infos = await self.store.alist(project)
        return self.page(request, "indexes.html", project=project, indexes=infos)

    async def index(self, request: Request) -> Response:
        project = await project_of(request, self.authenticate)
        if project is None:
            return self.to(request, "/login")
        name = request.path_params["name"]
        context: dict[str, Any] = {"project": project, "name": name, "error": None}
        try:
            validate_name(name)
            context["info"] = await self.reader.latest(project, name)
        except (IndexNotFoundError, InvalidArgumentError) as exc:
            return self.page(request, "error.html", 404, project=project, message=str(exc))
        versions = await self.store.aversions(project, name)
        context.update(versions=list(reversed(versions)), columns=views.history_columns(versions))
        filter_text = request.query_params.get("filter", "")
        context.update(filter_text=filter_text, docs=[], page=1, pages=1, total=0)
        try:
            page = views.parse_int(request.query_params.get("page", ""), "page", 1, 10**9, 1)
            where = views.parse_filter(filter_text)
            session = await self.reader.session(project, name)
            docs = await session.get_docs(filter=where)
        except InvalidArgumentError as exc:
            context["error"] = str(exc)
            return self.page(request, "index.html", 400, **context)
        pages = views.page_count(len(docs))
        page = min(page, pages)
        start = (page - 1) * views.PAGE_SIZE
        context.update(
            docs=docs[start : start + views.PAGE_SIZE], page=page, pages=pages, total=len(docs)
        )
        return self.page(request, "index.html", **context)

    async def query(self, request: Request) -> Response:
        project = await project_of(request, self.authenticate)
        if project is None:
            return self.to(request, "/login")
        name = request.path_params["name"]
        try:
            validate_name(name)
            info = await self.reader.latest(project, name)
        except (IndexNotFoundError, InvalidArgumentError) as exc:
            return self.page(request, "error.html", 404, project=project, message=str(exc))
        form: dict[str, str] = {}
        if request.method == "POST":
            if not same_origin(request):
                return self.page(request, "error.html", 403, message="cross-origin form refused")
            form = await read_form(request)
        context: dict[str, Any] = {
            "project": project,
            "name": name,
            "info": info,
            "form": {
                "text": form.get("text", ""),
                "filter": form.get("filter", ""),
                "alpha": form.get("alpha", str(DEFAULT_ALPHA)),
                "top_k": form.get("top_k", "5"),
            },
            "result": None,
            "error": None,
        }
        if request.method == "POST":
            try:
                options = QueryOptions(
                    top_k=views.parse_int(form.get("top_k", ""), "top k", 1, views.MAX_TOP_K, 5),
                    filter=views.parse_filter(form.get("filter", "")),
                    alpha=views.parse_alpha(form.get("alpha", ""), DEFAULT_ALPHA),
                )
                session = await self.reader.session(project, name)
                context["result"] = await session.query(form.get("text", ""), options)
            except InvalidArgumentError as exc:
                context["error"] = str(exc)
                return self.page(request, "query.html", 400, **context)
        return self.page(request, "query.html", **context)


def console_app(store: Store, authenticate: Authenticate) -> Starlette:
    """The console as an ASGI app, to mount at ``/console``."""
    console = Console(store, authenticate)

    async def refused(request: Request, exc: Exception) -> Response:
        # Form errors (wrong content type, too large) and anything a store refuses.
        return console.page(request, "error.html", 400, message=str(exc))

    return Starlette(
        routes=[
            Route("/", console.indexes, methods=["GET"]),
            Route("/login", console.login_form, methods=["GET"]),
            Route("/login", console.login, methods=["POST"]),
            Route("/logout", console.logout, methods=["POST"]),
            Route("/indexes/{name}", console.index, methods=["GET"]),
            Route("/indexes/{name}/query", console.query, methods=["GET", "POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        exception_handlers={MossError: refused},
    )
