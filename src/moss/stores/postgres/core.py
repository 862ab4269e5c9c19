"""The base of :class:`~moss.stores.postgres.PostgresStore`: settings, messages, and the two
drivers that run a flow (:mod:`moss.stores.postgres.flows`) blocking or awaited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from ...errors import ConflictError, IndexNotFoundError, InvalidArgumentError
from ...flow import Flow, run_async, run_sync
from ...snapshot.codec import SnapshotHeader, SnapshotReader
from ...types import IndexInfo
from ...validation import validate_name
from ..base import DEFAULT_KEEP_VERSIONS
from ..base import check_version as check_number
from ..chain import doc_count
from .link import Link
from .pools import Pools
from .sql import (
    FETCH_BYTES,
    ROW_BYTES,
    SCHEMA_VERSION,
    Statements,
    check_level,
    parse_url,
    translate_errors,
)

P = ParamSpec("P")
T = TypeVar("T")


class PostgresCore:
    """Settings, messages and flow drivers of ``PostgresStore`` (see there for the arguments)."""

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
        if not 1 <= row_bytes <= ROW_BYTES:
            raise InvalidArgumentError(f"row_bytes must be in 1..{ROW_BYTES}, got {row_bytes}")
        self.schema = target.schema
        self.location = target.location
        self.keep_versions = keep
        self.max_snapshot_bytes = max_snapshot_bytes
        self.is_local = False  # clients keep a disk cache of downloads, as for a server
        self.row_bytes = row_bytes
        self._rows_per_fetch = max(1, FETCH_BYTES // row_bytes)
        self._timeout = connect_timeout
        self._auto_upgrade = auto_upgrade
        self._sql = Statements(self.schema)
        connect_options: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout))}
        self._pools = Pools(
            target.conninfo, connect_options, self._sql, size=pool_size, timeout=connect_timeout
        )
        self._schema_ready = False

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"  # the location never holds the password

    # -- drivers ---------------------------------------------------------------------------

    def _sync(
        self, flow: Callable[Concatenate[Link, P], Flow[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``flow`` blocking, on a connection of the sync pool."""
        link = Link(self._pools)
        with translate_errors(self.location):
            try:
                return run_sync(flow(link, *args, **kwargs))
            finally:
                link.close()

    async def _async(
        self, flow: Callable[Concatenate[Link, P], Flow[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``flow`` awaited, on a connection of the running loop's async pool."""
        link = Link(self._pools)
        with translate_errors(self.location):
            try:
                return await run_async(flow(link, *args, **kwargs))
            finally:
                await link.aclose()

    def close(self) -> None:
        """Close the sync connection pool (the async one is closed by :meth:`aclose`)."""
        self._pools.close()

    async def aclose(self) -> None:
        """Close both connection pools and the listening connection."""
        await self._pools.aclose()

    # -- messages and checks ---------------------------------------------------------------

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

    def _reader(self, name: str) -> SnapshotReader:
        return SnapshotReader(keep_data=False, expected_name=name, max_size=self.max_snapshot_bytes)


def check_version(version: int | None) -> None:
    """Refuse a requested version that is not None or an int in 1..2**63-1."""
    if version is not None:
        check_number(version)


def first_int(row: tuple[Any, ...] | None, default: int | None = None) -> int:
    """The first column of a row; ``default`` for no row (else the statement always returns one)."""
    if row is None:
        assert default is not None  # the statement always returns a row
        return default
    return int(row[0])


def version_row(
    project: str, name: str, version: int, blob_id: int, header: SnapshotHeader
) -> tuple[Any, ...]:
    """The columns of ``Statements.insert_version`` for a snapshot's header."""
    return (
        project, name, version, blob_id, header.model_id, header.dimension,
        doc_count(header), header.total_size, header.created_at, header.kind,
        header.author, header.message, header.model_artifact,
    )  # fmt: skip


def version_info(name: str, version: int, header: SnapshotHeader) -> IndexInfo:
    """Describe a version just written from its snapshot's header."""
    return IndexInfo(
        name=name,
        version=version,
        model_id=header.model_id,
        dimension=header.dimension,
        doc_count=doc_count(header),
        size_bytes=header.total_size,
        created_at=header.created_at,
        kind=header.kind,
        author=header.author,
        message=header.message,
    )


def auth_conflict(expected: int, actual: int) -> ConflictError:
    """The error of a lost compare-and-swap on the projects-and-keys record."""
    return ConflictError(
        f"the projects-and-keys record is at version {actual}, not {expected}",
        expected=expected,
        actual=actual,
    )
