"""What ``moss serve`` and :class:`~moss.stores.http.HttpStore` agree on: no I/O, used by both.

Errors travel as ``{"error": kind, "message": ...}`` with a status code; versions travel as the
ETag (``"7"``) and as ``X-Moss-Version``; an index's description travels as JSON, or as headers
on ``HEAD``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from ...errors import (
    AuthenticationError,
    ConflictError,
    IndexNotFoundError,
    InvalidArgumentError,
    ModelMismatchError,
    MossError,
    ServiceUnavailableError,
    SnapshotError,
)
from ...types import IndexInfo

API_PREFIX = "/v1"
VERSION_HEADER = "X-Moss-Version"
#: On a PUT: seconds without pushes after which the index expires (absent: never).
TTL_HEADER = "X-Moss-TTL"
#: On a PUT of a delta: ``1`` stores it after whatever version is latest (a merge push).
APPEND_HEADER = "X-Moss-Append"
#: The media type of a chain stream (``GET /v1/indexes/{name}/chain``).
CHAIN_CONTENT_TYPE = "application/vnd.moss.chain"
#: Fields of an index description added with deltas, and their values when a server omits them.
_CHAIN_FIELDS: dict[str, Any] = {
    "kind": "full",
    "author": None,
    "message": None,
    "chain_length": 0,
    "chain_bytes": 0,
    "base_bytes": 0,
}

#: Error kind on the wire -> (status code, the moss error a client raises). Order matters for
#: :func:`error_kind`: subclasses before their bases.
ERRORS: dict[str, tuple[int, type[MossError]]] = {
    "invalid_argument": (400, InvalidArgumentError),
    "snapshot_invalid": (400, SnapshotError),
    "snapshot_too_large": (413, SnapshotError),
    "model_mismatch": (400, ModelMismatchError),
    "authentication": (401, AuthenticationError),
    "index_not_found": (404, IndexNotFoundError),
    "conflict": (412, ConflictError),
    "service_unavailable": (503, ServiceUnavailableError),
    "internal": (500, ServiceUnavailableError),
}


class SnapshotTooLargeError(SnapshotError):
    """An upload is larger than the server accepts (HTTP 413)."""


def error_kind(exc: MossError) -> str:
    """The wire kind of a moss error (the most specific one that matches)."""
    if isinstance(exc, SnapshotTooLargeError):
        return "snapshot_too_large"
    for kind, (_, cls) in ERRORS.items():
        if kind != "internal" and isinstance(exc, cls):
            return kind
    return "internal"


def error_body(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of an error answer."""
    return {"error": kind, "message": message, **extra}


def format_etag(version: int) -> str:
    """The ETag of a version: the number, quoted as HTTP wants."""
    return f'"{version}"'


def parse_ttl(value: str | None) -> float | None:
    """The ttl an ``X-Moss-TTL`` header asks for; None if absent. Refuses anything but a
    positive finite number of seconds."""
    if value is None:
        return None
    try:
        ttl = float(value.strip())
    except ValueError:
        ttl = math.nan
    if not math.isfinite(ttl) or ttl <= 0:
        raise InvalidArgumentError(
            f"{TTL_HEADER} must be a positive finite number of seconds, got {value!r}"
        )
    return ttl


def parse_etags(value: str | None) -> list[int] | None:
    """Versions named by an ``If-Match`` / ``If-None-Match`` value; None if absent, [] for ``*``.

    Accepts quoted or bare numbers and weak tags (``W/"3"``); anything else is not a version
    of ours and matches nothing.
    """
    if value is None:
        return None
    versions: list[int] = []
    for part in value.split(","):
        tag = part.strip()
        if tag == "*":
            return []
        tag = tag.removeprefix("W/").strip('"')
        if tag.isdigit() and len(tag) <= 18:
            versions.append(int(tag))
    return versions


def info_to_json(info: IndexInfo) -> dict[str, Any]:
    """An index version's description as JSON (``created_at`` is when it was pushed)."""
    return {
        "name": info.name,
        "version": info.version,
        "model_id": info.model_id,
        "dimension": info.dimension,
        "doc_count": info.doc_count,
        "size_bytes": info.size_bytes,
        "created_at": info.created_at,
        "extra": info.extra,
        **{key: getattr(info, key) for key in _CHAIN_FIELDS},
    }


def info_from_json(data: Mapping[str, Any]) -> IndexInfo:
    """Invert :func:`info_to_json`; raise :class:`ServiceUnavailableError` on a foreign shape."""
    try:
        return IndexInfo(
            name=str(data["name"]),
            version=_int(data["version"]),
            model_id=str(data["model_id"]),
            dimension=_int(data["dimension"]),
            doc_count=_int(data["doc_count"]),
            size_bytes=_int(data["size_bytes"]),
            created_at=_float(data["created_at"]),
            extra=dict(data.get("extra") or {}),
            kind=_kind(data.get("kind", "full")),
            author=_text(data.get("author")),
            message=_text(data.get("message")),
            chain_length=_int(data.get("chain_length", 0)),
            chain_bytes=_int(data.get("chain_bytes", 0)),
            base_bytes=_int(data.get("base_bytes", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ServiceUnavailableError(
            f"the server sent an index description moss cannot read ({exc}): is it a moss server?"
        ) from exc


def info_to_headers(info: IndexInfo) -> dict[str, str]:
    """An index version's description as response headers (for ``HEAD``)."""
    return {
        "ETag": format_etag(info.version),
        VERSION_HEADER: str(info.version),
        "X-Moss-Name": info.name,
        "X-Moss-Model-Id": quote(info.model_id, safe=""),  # model ids may be any Unicode
        "X-Moss-Dimension": str(info.dimension),
        "X-Moss-Doc-Count": str(info.doc_count),
        "X-Moss-Size-Bytes": str(info.size_bytes),
        "X-Moss-Created-At": repr(info.created_at),
        "X-Moss-Kind": info.kind,
        "X-Moss-Chain": f"{info.chain_length} {info.chain_bytes} {info.base_bytes}",
        # Percent-encoded (free text); at most 3 * (256 + 4096) bytes, within header limits.
        **{
            f"X-Moss-{key.title()}": quote(value, safe="")
            for key, value in (("author", info.author), ("message", info.message))
            if value is not None
        },
    }


def info_from_headers(headers: Mapping[str, str]) -> IndexInfo:
    """Invert :func:`info_to_headers` (header names are case-insensitive in ``headers``)."""
    try:
        chain = [_int(part) for part in headers.get("x-moss-chain", "0 0 0").split()]
        if len(chain) != 3:
            raise ValueError(f"X-Moss-Chain must hold three integers, got {chain}")
        return IndexInfo(
            name=headers["x-moss-name"],
            version=_int(headers[VERSION_HEADER.lower()]),
            model_id=unquote(headers["x-moss-model-id"]),
            dimension=_int(headers["x-moss-dimension"]),
            doc_count=_int(headers["x-moss-doc-count"]),
            size_bytes=_int(headers["x-moss-size-bytes"]),
            created_at=_float(headers["x-moss-created-at"]),
            kind=_kind(headers.get("x-moss-kind", "full")),
            author=_unquoted(headers.get("x-moss-author")),
            message=_unquoted(headers.get("x-moss-message")),
            chain_length=chain[0],
            chain_bytes=chain[1],
            base_bytes=chain[2],
        )
    except (KeyError, ValueError) as exc:
        raise ServiceUnavailableError(
            f"the server sent index headers moss cannot read ({exc}): is it a moss server?"
        ) from exc


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


def _float(value: object) -> float:
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def _kind(value: object) -> str:
    if value not in ("full", "delta", "compaction"):
        raise ValueError(f"expected the kind 'full', 'delta' or 'compaction', got {value!r}")
    return str(value)


def _text(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"expected a string or null, got {value!r}")
    return value


def _unquoted(value: str | None) -> str | None:
    return None if value is None else unquote(value)
