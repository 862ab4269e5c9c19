"""Stores: where versions of indexes live. ``open_store`` turns a URL into one."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import InvalidArgumentError
from .base import DEFAULT_KEEP_VERSIONS, AsyncDownload, Chunks, Download, Store
from .file import FileStore

__all__ = [
    "DEFAULT_KEEP_VERSIONS",
    "AsyncDownload",
    "Chunks",
    "Download",
    "FileStore",
    "Store",
    "default_store_url",
    "open_store",
]


def default_store_url() -> str:
    """The store used when none is given: ``MOSS_STORE``, else a file store at ``MOSS_HOME`` or ``~/.moss``."""
    if url := os.environ.get("MOSS_STORE"):
        return url
    home = os.environ.get("MOSS_HOME") or str(Path.home() / ".moss")
    return Path(home).expanduser().resolve().as_uri()


def open_store(
    spec: Store | str | os.PathLike[str] | None = None,
    *,
    project_key: str | None = None,
) -> Store:
    """Return a store for ``spec``: a store object, a URL, a path, or None for the default.

    URLs: ``file:///path`` (embedded), ``http(s)://host:port`` (``moss serve``),
    ``postgresql://...`` (PostgreSQL).
    """
    if spec is None:
        spec = default_store_url()
    if isinstance(spec, os.PathLike):
        return FileStore(spec)
    if not isinstance(spec, str):
        if isinstance(spec, Store):
            return spec
        raise InvalidArgumentError(
            f"store must be a Store or a URL string, got {type(spec).__name__}"
        )
    parsed = urlparse(spec)
    scheme = parsed.scheme.lower()
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InvalidArgumentError(
                f"file store URL {spec!r} names a host: use file:///absolute/path"
            )
        return FileStore(unquote(parsed.path))
    if scheme == "":
        return FileStore(spec)
    if scheme in ("http", "https"):
        from .http.store import HttpStore  # imported lazily: only users of the service need it

        return HttpStore(spec, project_key=project_key)
    if scheme in ("postgresql", "postgres"):
        from .postgres.store import PostgresStore  # needs the [postgres] extra

        return PostgresStore(spec)
    raise InvalidArgumentError(
        f"unknown store URL {spec!r}: use file:///path, http(s)://host:port or postgresql://..."
    )
