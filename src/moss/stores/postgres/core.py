"""The shared part of :class:`~moss.stores.postgres.PostgresStore`: settings, messages, no I/O.

The sync path lives in :mod:`moss.stores.postgres`, its async twin, line for line, in
:mod:`moss.stores.postgres_async`; both build on :class:`PostgresCore`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import psycopg

from ...errors import ConflictError, IndexNotFoundError, InvalidArgumentError
from ...snapshot.codec import SnapshotHeader, SnapshotReader
from ...types import IndexInfo
from ...validation import validate_name
from ..base import DEFAULT_KEEP_VERSIONS
from .sql import FETCH_BYTES, ROW_BYTES, SCHEMA_VERSION, Statements, check_level, parse_url

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from .async_methods import AsyncState

Conn = psycopg.Connection[Any]
AConn = psycopg.AsyncConnection[Any]
#: Column types of a ``COPY ... (FORMAT BINARY)`` into ``chunks``.
COPY_TYPES = ["int8", "int4", "bytea"]


class PostgresCore:
    """Settings and what the sync and async paths share (see ``PostgresStore``)."""

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        keep_versions: int | None = None,
        max_snapshot_bytes: int | None = None,
        pool_size: int = 10,
        connect_timeout: float = 10.0,
        auto_upgrade: bool = True,
        row_bytes: int = ROW_BYTES,
    ) -> None:
        target = parse_url(url, schema=schema)
        keep = keep_versions if keep_versions is not None else target.keep_versions
        keep = DEFAULT_KEEP_VERSIONS if keep is None else keep
        if keep < 1:
            raise InvalidArgumentError(f"keep_versions must be at least 1, got {keep}")
        if pool_size < 1:
            raise InvalidArgumentError(f"pool_size must be at least 1, got {pool_size}")
        self.schema = target.schema
        self.location = target.location
        self.keep_versions = keep
        self.max_snapshot_bytes = max_snapshot_bytes
        self.is_local = False  # clients keep a disk cache of downloads, as for a server
        self._conninfo = target.conninfo
        self._connect_options: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout))}
        if not 1 <= row_bytes <= ROW_BYTES:
            raise InvalidArgumentError(f"row_bytes must be in 1..{ROW_BYTES}, got {row_bytes}")
        self.row_bytes = row_bytes
        self._rows_per_fetch = max(1, FETCH_BYTES // row_bytes)
        self._pool_size = pool_size
        self._timeout = connect_timeout
        self._auto_upgrade = auto_upgrade
        self._sql = Statements(self.schema)
        self._lock = threading.Lock()
        self._pool: ConnectionPool[Conn] | None = None
        self._astate: AsyncState | None = None
        self._schema_ready = False

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"  # the location never holds the password

    # -- what both paths share -------------------------------------------------------------

    @staticmethod
    def _key(project: str, name: str) -> tuple[str, str]:
        return validate_name(project, what="project id"), validate_name(name)

    def _conflict(self, name: str, current: int, expected: int) -> ConflictError:
        return ConflictError(
            f"index {name!r} is at version {current}, not the expected {expected}: "
            "reload it (client.session or session.refresh) and push again",
            expected=expected,
            actual=current,
        )

    def _not_found(
        self, project: str, name: str, version: int | None, kept: list[int]
    ) -> Exception:
        if version is not None:
            return IndexNotFoundError(
                f"index {name!r} has no version {version} (kept versions: {kept or 'none'})"
            )
        return IndexNotFoundError(
            f"index {name!r} does not exist in project {project!r}: push it first, or check the name"
        )

    def _needs_upgrade(self, level: int) -> bool:
        check_level(level, self.location)
        if level < SCHEMA_VERSION and not self._auto_upgrade:
            raise InvalidArgumentError(
                f"the moss tables at {self.location} are at schema version {level}, this moss "
                f"needs {SCHEMA_VERSION}: run `moss db upgrade --store <url>`"
            )
        return level < SCHEMA_VERSION

    def _version_row(
        self, project: str, name: str, version: int, blob_id: int, header: SnapshotHeader
    ) -> tuple[Any, ...]:
        return (
            project, name, version, blob_id, header.model_id, header.dimension,
            header.count, header.total_size, header.created_at,
        )  # fmt: skip

    def _reader(self, name: str) -> SnapshotReader:
        return SnapshotReader(keep_data=False, expected_name=name, max_size=self.max_snapshot_bytes)

    def close(self) -> None:
        """Close the sync connection pool (the async one is closed by :meth:`aclose`)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


def check_version(version: int | None) -> None:
    """Refuse a requested version that is not None or an int >= 1."""
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise InvalidArgumentError(f"version must be an integer >= 1, got {version!r}")


def scalar(row: tuple[Any, ...] | None) -> int:
    """The first column of a row that a statement always returns."""
    assert row is not None  # the statement always returns a row
    return int(row[0])


def counter_and_latest(row: tuple[Any, ...] | None) -> tuple[int, int]:
    """The (counter, latest) columns of an index row locked by ``Statements.lock_index``."""
    assert row is not None  # the index row was ensured in this transaction
    return int(row[0]), int(row[1])


def version_info(name: str, version: int, header: SnapshotHeader) -> IndexInfo:
    """Describe a version just written from its snapshot's header."""
    return IndexInfo(
        name=name,
        version=version,
        model_id=header.model_id,
        dimension=header.dimension,
        doc_count=header.count,
        size_bytes=header.total_size,
        created_at=header.created_at,
    )


def auth_conflict(expected: int, actual: int) -> ConflictError:
    """The error of a lost compare-and-swap on the projects-and-keys record."""
    return ConflictError(
        f"the projects-and-keys record is at version {actual}, not {expected}",
        expected=expected,
        actual=actual,
    )
