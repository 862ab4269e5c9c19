"""Shapes of the service's JSON, for its OpenAPI description (``/openapi.json``, ``/docs``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class IndexDescription(BaseModel):
    """One version of an index."""

    name: str
    version: int = Field(description="starts at 1, +1 per push, never reused")
    model_id: str
    dimension: int
    doc_count: int
    size_bytes: int
    created_at: float = Field(description="when this version was pushed (Unix seconds)")
    extra: dict[str, Any] = Field(default_factory=dict)


class IndexList(BaseModel):
    """The latest version of each index of the project."""

    indexes: list[IndexDescription]


class VersionList(BaseModel):
    """The kept versions of one index, oldest first."""

    versions: list[IndexDescription]


class WatchAnswer(BaseModel):
    """A version newer than the one the watcher had."""

    version: int


class Health(BaseModel):
    """The service is up."""

    status: str
    version: str


class ErrorAnswer(BaseModel):
    """Every error: a stable kind and a message saying what to do."""

    error: str = Field(
        description="invalid_argument, snapshot_invalid, snapshot_too_large, model_mismatch, "
        "authentication, index_not_found, conflict, service_unavailable, internal"
    )
    message: str


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorAnswer, "description": description}


_COMMON: dict[int | str, dict[str, Any]] = {
    400: _error("malformed name, parameter, header or snapshot"),
    401: _error("missing, wrong or revoked project key"),
}
_RETRY = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
_SNAPSHOT = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}

COMMON_RESPONSES: dict[int | str, dict[str, Any]] = dict(_COMMON)
SNAPSHOT_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": _SNAPSHOT, "description": "a moss snapshot"}
}
PUT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_COMMON,
    400: _error("malformed name or header, or a snapshot no client could open"),
    408: _error("the upload sent nothing for the server's idle timeout: nothing was stored"),
    412: _error("If-Match / If-None-Match did not hold: another version is stored"),
    413: _error("the snapshot is over the server's size limit"),
    429: {**_error("this project has too many uploads in progress"), "headers": _RETRY},
    503: {**_error("the server has too many uploads in progress"), "headers": _RETRY},
}
GET_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_COMMON,
    200: {"description": "the snapshot, streamed; ETag is the version", "content": _SNAPSHOT},
    304: {"description": "If-None-Match named this version: the cached copy is current"},
    404: _error("no such index (or version) in this project"),
}
CHAIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_COMMON,
    200: {"description": "the chain stream (application/vnd.moss.chain); ETag is the target"},
    304: {"description": "``after`` is already the target version"},
    404: _error("no such index (or version) in this project"),
}
HEAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the latest version, described in X-Moss-* headers"},
    400: {"description": "malformed name"},
    401: _COMMON[401],
    404: {"description": "no such index in this project"},
}
DELETE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_COMMON,
    404: _error("no such index in this project"),
}
WATCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_COMMON,
    204: {"description": "no newer version before the timeout: ask again"},
}
