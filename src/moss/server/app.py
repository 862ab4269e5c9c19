"""The HTTP index service: versions of named indexes over any store, per project, under ``/v1``.

Every request but ``/healthz`` authenticates with HTTP Basic: username = project id, password =
one of its keys. A project sees only its own indexes; another project's are simply not there
(404), for reads, lists, writes and watches alike. OpenAPI: ``/openapi.json``, ``/docs``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from ..console import mount_console
from ..errors import IndexNotFoundError, InvalidArgumentError
from ..stores import open_store
from ..stores.auth import auth_records, parse_env_keys
from ..stores.base import Store
from ..stores.file import FileStore
from ..stores.http.wire import (
    APPEND_HEADER,
    CHAIN_CONTENT_TYPE,
    TTL_HEADER,
    VERSION_HEADER,
    format_etag,
    info_to_headers,
    info_to_json,
    parse_etags,
    parse_ttl,
)
from ..validation import NAME_PATTERN, validate_name
from ..version import __version__
from . import models
from .auth import Authenticator
from .downloads import DownloadResponse, install_quiet_drops
from .errors import install_error_handlers
from .limits import Limits, UploadSlots
from .memory import pin_mmap_threshold
from .upload_check import check_current
from .uploads import parse_content_length, upload_chunks
from .watch import VersionNotifier

#: The default upload limit: 2 GiB.
DEFAULT_MAX_UPLOAD_BYTES = 2 << 30
#: The longest a watch request waits before answering 204 (clients simply ask again).
DEFAULT_MAX_WATCH_SECONDS = 30.0
#: The largest version number a request may name (versions are signed 64-bit everywhere).
MAX_VERSION = (1 << 63) - 1
#: The read size of downloads from a file store (8 MiB per stalled client would add up).
READ_CHUNK_BYTES = 256 << 10

_basic = HTTPBasic(auto_error=False, realm="moss")


class Service:
    """What the endpoints share: the store, who may use it, and who waits for new versions."""

    def __init__(
        self,
        store: Store,
        *,
        max_upload_bytes: int,
        env_keys: Mapping[str, Iterable[str]] | None,
        max_watch_seconds: float,
        limits: Limits,
    ) -> None:
        self.store = store
        self.max_upload_bytes = max_upload_bytes
        self.max_watch_seconds = max_watch_seconds
        self.limits = limits
        self.uploads = UploadSlots(limits)
        try:
            records = auth_records(store)
        except InvalidArgumentError:
            if not env_keys:
                raise
            records = None  # a store without a record: only keys from the environment
        self.auth = Authenticator(records, env_keys)
        self.notifier = VersionNotifier(store)
        # Downloads read the file store in small chunks: each stalled client holds one.
        small = isinstance(store, FileStore)
        self.read_options: dict[str, int] = {"chunk_size": READ_CHUNK_BYTES} if small else {}


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def _project(
    request: Request, credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)]
) -> str:
    return await _service(request).auth.project(credentials)


ServiceDep = Annotated[Service, Depends(_service)]
ProjectDep = Annotated[str, Depends(_project)]


def create_app(
    store: Store,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    env_keys: Mapping[str, Iterable[str]] | None = None,
    max_watch_seconds: float = DEFAULT_MAX_WATCH_SECONDS,
    limits: Limits | None = None,
    console: bool = True,
) -> FastAPI:
    """Build the service over ``store`` (with the web console at ``/console`` unless
    ``console=False``).

    ``env_keys`` (project id -> keys) are accepted besides the keys kept in the store; they are
    held in memory only. ``limits`` (timeouts, concurrent uploads) default to
    :meth:`Limits.from_env`: the ``MOSS_SERVE_*`` variables, else the built-in defaults.
    Example::

        app = create_app(FileStore("/srv/moss"), max_upload_bytes=1 << 30)
        uvicorn.run(app, host="127.0.0.1", port=8000)
    """
    if max_upload_bytes < 1:
        raise InvalidArgumentError(f"max_upload_bytes must be positive, got {max_upload_bytes}")
    pin_mmap_threshold()  # large buffers go back to the system when freed
    install_quiet_drops()
    service = Service(
        store,
        max_upload_bytes=max_upload_bytes,
        env_keys=env_keys,
        max_watch_seconds=max_watch_seconds,
        limits=limits if limits is not None else Limits.from_env(),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await service.notifier.close()
        await store.aclose()

    app = FastAPI(
        title="moss index service",
        version=__version__,
        description=__doc__,
        lifespan=lifespan,
    )
    app.state.service = service
    install_error_handlers(app)
    _add_routes(app)
    if console:
        mount_console(app, store, service.auth.project)
    return app


def create_app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` and multi-worker ``moss serve``: reads
    ``MOSS_SERVE_STORE``, ``MOSS_SERVE_MAX_UPLOAD_BYTES``, ``MOSS_SERVER_KEYS``,
    ``MOSS_SERVE_CONSOLE`` (``0``: no web console) and the
    limits' ``MOSS_SERVE_*`` variables (see :class:`Limits`)."""
    return create_app(
        open_store(os.environ["MOSS_SERVE_STORE"]),
        max_upload_bytes=int(
            os.environ.get("MOSS_SERVE_MAX_UPLOAD_BYTES") or DEFAULT_MAX_UPLOAD_BYTES
        ),
        env_keys=parse_env_keys(os.environ.get("MOSS_SERVER_KEYS", "")),
        console=os.environ.get("MOSS_SERVE_CONSOLE", "1") != "0",
    )


def _version_headers(version: int) -> dict[str, str]:
    return {"ETag": format_etag(version), VERSION_HEADER: str(version)}


def _expected_version(request: Request) -> int | None:
    """``If-None-Match: *`` -> 0 (only if absent); ``If-Match: "N"`` -> N; neither -> None."""
    if_none_match = parse_etags(request.headers.get("if-none-match"))
    if_match = parse_etags(request.headers.get("if-match"))
    if if_none_match is not None:
        if if_none_match != [] or if_match is not None:
            raise InvalidArgumentError(
                'a PUT takes If-None-Match: * (only if absent) or If-Match: "<version>", not both'
            )
        return 0
    if if_match is None:
        return None
    if len(if_match) != 1:
        raise InvalidArgumentError('If-Match must name exactly one version, as in If-Match: "7"')
    return if_match[0]


#: The ``{name}`` of every index path, described for OpenAPI (checked by validate_name).
NameParam = Annotated[
    str,
    Path(
        description="the index name",
        json_schema_extra={"pattern": f"^{NAME_PATTERN.pattern}$", "maxLength": 128},
    ),
]
VersionParam = Annotated[
    int | None, Query(ge=1, le=MAX_VERSION, description="an older kept version")
]


def _add_routes(app: FastAPI) -> None:
    index_path = "/v1/indexes/{name}"

    @app.get("/healthz", response_model=models.Health, tags=["service"])
    async def healthz() -> dict[str, Any]:
        """Liveness: answers without authentication."""
        return {"status": "ok", "version": __version__}

    @app.get(
        "/v1/indexes",
        response_model=models.IndexList,
        responses=models.COMMON_RESPONSES,
        tags=["indexes"],
    )
    async def list_indexes(service: ServiceDep, project: ProjectDep) -> JSONResponse:
        """The latest version of every index of the project, sorted by name."""
        infos = await service.store.alist(project)
        return JSONResponse({"indexes": [info_to_json(info) for info in infos]})

    @app.put(
        index_path,
        status_code=201,
        response_model=models.IndexDescription,
        responses=models.PUT_RESPONSES,
        openapi_extra=models.SNAPSHOT_BODY,
        tags=["indexes"],
    )
    async def put_index(
        name: NameParam, request: Request, service: ServiceDep, project: ProjectDep
    ) -> JSONResponse:
        """Store the body (a snapshot, streamed) as the next version of the index.

        ``If-Match: "N"`` stores it only if the latest version is N, ``If-None-Match: *`` only
        if the index does not exist; otherwise 412. The snapshot is checked as it streams in
        and becomes visible only when complete. ``X-Moss-TTL: <seconds>`` makes the index
        expire that long after this push unless another push comes first (absent: never).
        """
        validate_name(name)
        expected = _expected_version(request)
        ttl = parse_ttl(request.headers.get(TTL_HEADER))
        append = _append(request)
        parse_content_length(request, service.max_upload_bytes)
        with service.uploads.take(project):
            if expected:  # (0: the store decides, e.g. that a delta needs a base)
                await check_current(service.store, project, name, expected)
            chunks = upload_chunks(
                request, name, service.max_upload_bytes, service.limits.upload_idle_seconds
            )
            info = await service.store.aput(
                project, name, chunks, expected_version=expected, ttl=ttl, append=append
            )
        service.notifier.publish(project, name, info.version)
        return JSONResponse(
            info_to_json(info), status_code=201, headers=_version_headers(info.version)
        )

    @app.get(
        index_path,
        response_class=Response,
        responses=models.GET_RESPONSES,
        tags=["indexes"],
    )
    async def get_index(
        name: NameParam,
        request: Request,
        service: ServiceDep,
        project: ProjectDep,
        version: VersionParam = None,
    ) -> Response:
        """Download the latest (or the given) version as a stream; 304 if ``If-None-Match``
        names it (the caller's cached copy is current)."""
        validate_name(name)
        tags = parse_etags(request.headers.get("if-none-match"))
        single = tags[0] if tags is not None and len(tags) == 1 else None
        download = await service.store.aget(
            project, name, version, if_none_match=single, **service.read_options
        )
        if (
            not download.not_modified
            and tags is not None
            and (tags == [] or download.version in tags)
        ):
            await download.aclose()  # "*" or a list of tags: matched after opening
            download.not_modified = True
        headers = _version_headers(download.version)
        if download.not_modified:
            return Response(status_code=304, headers=headers)
        return DownloadResponse(download, headers, service.limits.download_stall_seconds)

    @app.get(
        f"{index_path}/chain",
        response_class=Response,
        responses=models.CHAIN_RESPONSES,
        tags=["indexes"],
    )
    async def get_chain(
        name: NameParam,
        service: ServiceDep,
        project: ProjectDep,
        after: Annotated[
            int | None, Query(ge=0, le=MAX_VERSION, description="the version the caller has")
        ] = None,
        version: VersionParam = None,
    ) -> Response:
        """Stream what brings a reader from ``after`` to ``version`` (default: the latest): the
        deltas after ``after``, or the newest full snapshot and the deltas after it; 304 if
        ``after`` is already the target."""
        validate_name(name)
        download = await service.store.aget_chain(
            project, name, after=after, version=version, **service.read_options
        )
        headers = _version_headers(download.version)
        if download.not_modified:
            await download.aclose()
            return Response(status_code=304, headers=headers)
        return DownloadResponse(
            download, headers, service.limits.download_stall_seconds, CHAIN_CONTENT_TYPE
        )

    @app.head(index_path, responses=models.HEAD_RESPONSES, tags=["indexes"])
    async def head_index(name: NameParam, service: ServiceDep, project: ProjectDep) -> Response:
        """Describe the latest version in headers (ETag, X-Moss-Version, X-Moss-Doc-Count, ...)."""
        validate_name(name)
        info = await service.store.ahead(project, name)
        if info is None:
            raise IndexNotFoundError(f"index {name!r} does not exist")
        headers = info_to_headers(info)
        headers["Content-Length"] = str(info.size_bytes)
        return Response(headers=headers, media_type="application/octet-stream")

    @app.delete(index_path, status_code=204, responses=models.DELETE_RESPONSES, tags=["indexes"])
    async def delete_index(name: NameParam, service: ServiceDep, project: ProjectDep) -> Response:
        """Delete every version of the index (its version numbers are never reused)."""
        validate_name(name)
        if not await service.store.adelete(project, name):
            raise IndexNotFoundError(f"index {name!r} does not exist")
        service.notifier.forget(project, name)
        return Response(status_code=204)

    @app.get(
        f"{index_path}/versions",
        response_model=models.VersionList,
        responses=models.COMMON_RESPONSES,
        tags=["indexes"],
    )
    async def list_versions(
        name: NameParam, service: ServiceDep, project: ProjectDep
    ) -> JSONResponse:
        """Every kept version of the index, oldest first (empty if it does not exist)."""
        validate_name(name)
        infos = await service.store.aversions(project, name)
        return JSONResponse({"versions": [info_to_json(info) for info in infos]})

    @app.get(
        f"{index_path}/watch",
        response_model=models.WatchAnswer,
        responses=models.WATCH_RESPONSES,
        tags=["indexes"],
    )
    async def watch_index(
        name: NameParam,
        service: ServiceDep,
        project: ProjectDep,
        after: Annotated[
            int, Query(ge=0, le=MAX_VERSION, description="the version the caller has")
        ] = 0,
        timeout: Annotated[
            float, Query(ge=0, allow_inf_nan=False, description="seconds to wait (capped)")
        ] = 25.0,
    ) -> Response:
        """Long-poll: answer ``{"version": M}`` as soon as a version M > ``after`` exists, or
        204 when ``timeout`` (capped by the server) passes first; then ask again."""
        validate_name(name)
        wait = min(timeout, service.max_watch_seconds)
        version = await service.notifier.wait(project, name, after, wait)
        if version is None:
            return Response(status_code=204)
        return JSONResponse({"version": version}, headers=_version_headers(version))


def _append(request: Request) -> bool:
    """``X-Moss-Append: 1``: the body is a delta, stored after whatever version is latest."""
    value = request.headers.get(APPEND_HEADER)
    if value not in (None, "0", "1"):
        raise InvalidArgumentError(f"{APPEND_HEADER} must be 1 (a delta) or 0, got {value[:20]!r}")
    return value == "1"
