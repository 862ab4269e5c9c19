"""Every operation of :class:`~moss.stores.postgres.PostgresStore`, written once as a flow.

Each flow takes the call's :class:`~moss.stores.postgres.link.Link` and yields its steps
(statements, the ``COPY`` of an upload, opening a download, waiting for a notification);
``PostgresStore`` runs it blocking for ``put``, awaited for ``aput``, and so on.

Writes run in one transaction (``BEGIN`` ... ``COMMIT``): a flow that raises midway leaves it
open and the link rolls it back. A version row is appended by :meth:`_append_version` under the
index row's lock, the one place that decides version numbers.
"""

from __future__ import annotations

import builtins
from typing import Any

from psycopg.errors import InvalidSchemaName, UndefinedTable
from psycopg.sql import Composed

from ...flow import Flow
from ...snapshot.codec import SnapshotHeader
from ...types import IndexInfo
from ...validation import validate_name
from ..base import AsyncDownload, Download, check_ttl
from ..base import check_version as check_number
from ..chain import (
    ChainPlan,
    Entry,
    check_model,
    check_put_kind,
    check_put_mode,
    openable,
    plan_chain,
    pruned,
    with_chain_stats,
)
from ..chunks import AsyncChunks
from ..file import check_expected_version
from .core import (
    PostgresCore,
    auth_conflict,
    check_version,
    first_int,
    version_info,
    version_row,
)
from .link import CopyRows, Link, OpenDownload
from .listen import AsyncListener, WaitForVersion
from .sql import SCHEMA_VERSION, check_level, info_from_row, notify_payload


class PostgresFlows(PostgresCore):
    """The flows of ``PostgresStore``; its public methods drive them."""

    # -- schema ----------------------------------------------------------------------------

    def _ensure_schema(self, link: Link) -> Flow[None]:
        if self._schema_ready:
            return
        try:
            level = first_int((yield link.one(self._sql.schema_version)), 0)
        except (UndefinedTable, InvalidSchemaName):
            level = 0
        if self._needs_upgrade(level):
            yield from self._upgrade(link)
        self._schema_ready = True

    def _upgrade(self, link: Link) -> Flow[tuple[int, int]]:
        sql = self._sql
        yield link.execute(sql.begin)
        yield link.execute(sql.lock_schema)  # replicas starting together migrate once
        if not (yield link.one(sql.schema_exists)):
            yield link.execute(sql.create_schema)
        yield link.execute(sql.create_version_table)
        level = first_int((yield link.one(sql.schema_version)), 0)
        check_level(level, self.location)
        for steps in sql.migrations[level:]:
            for step in steps:
                yield link.execute(step)
        if level < SCHEMA_VERSION:
            yield link.execute(sql.set_schema_version, (SCHEMA_VERSION,))
        yield link.execute(sql.commit)
        self._schema_ready = True
        return level, SCHEMA_VERSION

    # -- writes ----------------------------------------------------------------------------

    def _put(
        self,
        link: Link,
        project: str,
        name: str,
        chunks: AsyncChunks,
        expected_version: int | None,
        ttl: float | None,
        append: bool = False,
    ) -> Flow[IndexInfo]:
        check_expected_version(expected_version)
        check_put_mode(expected_version, append)
        ttl = check_ttl(ttl)
        project, name = self._key(project, name)
        reader = self._reader(name)
        sql = self._sql
        yield from self._ensure_schema(link)
        yield link.execute(sql.begin)
        if expected_version:  # (0 is checked after the upload: a delta with it is refused)
            current = first_int((yield link.one(sql.latest, (project, name))), 0)
            if current != expected_version:  # fail before the upload, not after it
                raise self._conflict(name, current, expected_version)
        blob_id = first_int((yield link.one(sql.next_blob)))
        header = yield CopyRows(link, sql.copy_chunks, blob_id, reader, chunks, self.row_bytes)
        assert isinstance(header, SnapshotHeader)
        check_put_kind(name, header.kind, expected_version, append)
        version = yield from self._append_version(
            link, project, name, blob_id, header, expected_version, ttl, append
        )
        infos = yield from self._versions_of(link, project, name)
        yield link.execute(sql.commit)
        return (
            infos[-1]
            if infos and infos[-1].version == version
            else version_info(name, version, header)
        )

    def _append_version(
        self,
        link: Link,
        project: str,
        name: str,
        blob_id: int,
        header: SnapshotHeader,
        expected_version: int | None,
        ttl: float | None,
        append: bool = False,
    ) -> Flow[int]:
        """Insert the row of the next version after the latest (compare-and-swap under the index
        row's lock), publish it, prune old versions and notify watchers; return its number."""
        sql, key = self._sql, (project, name)
        yield link.execute(sql.ensure_index, key)
        yield from self._purge(link, sql.purge_expired, key)  # expired counts as absent
        row = yield link.one(sql.lock_index, key)
        assert row is not None  # the index row was ensured in this transaction
        counter, latest = int(row[0]), int(row[1])
        if append and not latest:
            raise self._not_found(project, name, None, [])
        if expected_version is not None and latest != expected_version:
            raise self._conflict(name, latest, expected_version)
        if header.kind == "delta":
            model = yield link.one(sql.latest_model, (*key, latest))
            assert model is not None  # the latest version's row, under the lock
            check_model(name, header, model[0], model[1], int(model[2]))
        version = counter + 1
        yield link.execute(sql.insert_version, version_row(*key, version, blob_id, header))
        yield link.execute(sql.publish, (version, version, ttl, *key))
        kept = [Entry(int(v), kind, 0) for v, kind in (yield link.all(sql.kept_kinds, key))]
        dropped = pruned(kept, self.keep_versions)
        if dropped:
            yield from self._purge(link, sql.prune_listed, (*key, dropped))
        yield link.execute(sql.notify, (notify_payload(project, name, version),))
        return version

    def _delete(self, link: Link, project: str, name: str) -> Flow[bool]:
        project, name = self._key(project, name)
        sql, key = self._sql, (project, name)
        yield from self._ensure_schema(link)
        yield link.execute(sql.begin)
        yield from self._purge(link, sql.purge_expired, key)
        row = yield link.one(sql.lock_index, key)
        if row is None or row[1] == 0:
            yield link.execute(sql.commit)  # keep what the purge did
            return False
        yield from self._purge(link, sql.prune, (*key, row[0]))
        yield link.execute(sql.hide, key)
        yield link.execute(sql.commit)
        return True

    def _purge(self, link: Link, statement: Composed, params: tuple[Any, ...]) -> Flow[None]:
        """Run a statement deleting versions (returning their blob ids) and drop their chunks."""
        pruned = [row[0] for row in (yield link.all(statement, params))]
        if pruned:
            yield link.execute(self._sql.drop_chunks, (pruned,))

    def _purged(self, link: Link, statement: Composed, params: tuple[str, ...]) -> Flow[None]:
        """Purge expired indexes in a transaction of its own."""
        yield link.execute(self._sql.begin)
        yield from self._purge(link, statement, params)
        yield link.execute(self._sql.commit)

    # -- reads -----------------------------------------------------------------------------

    def _get(
        self, link: Link, project: str, name: str, version: int | None, if_none_match: int | None
    ) -> Flow[Download | AsyncDownload]:
        project, name = self._key(project, name)
        check_version(version)
        sql = self._sql
        yield from self._ensure_schema(link)
        yield link.execute(sql.begin_snapshot)
        if version is None:
            row = yield link.one(sql.find_latest, (project, name))
        else:
            row = yield link.one(sql.find_version, (project, name, version))
        if row is None:
            kept = [] if version is None else (yield from self._versions_of(link, project, name))
            raise self._not_found(project, name, version, [info.version for info in kept])
        number, blob_id = int(row[0]), int(row[1])
        unchanged = if_none_match is not None and number == if_none_match
        download: Download | AsyncDownload = yield OpenDownload(
            link,
            number,
            () if unchanged else (blob_id,),
            sql.read_chunks,
            self._rows_per_fetch,
            self.location,
        )
        return download

    def _chain(
        self, link: Link, project: str, name: str, after: int | None, version: int | None
    ) -> Flow[tuple[ChainPlan, Download | AsyncDownload]]:
        """Plan and open a chain in one read-only snapshot: nothing it lists can be pruned
        before it is read, and its versions stream back to back on one connection."""
        project, name = self._key(project, name)
        if after is not None:
            check_number(after, "after", lowest=0)
        check_version(version)
        yield from self._ensure_schema(link)
        yield link.execute(self._sql.begin_snapshot)
        rows = yield link.all(self._sql.chain_rows, (project, name))
        entries = [Entry(int(row[0]), row[1], int(row[2])) for row in rows]
        blobs = {int(row[0]): int(row[3]) for row in rows}
        plan = plan_chain(project, name, entries, after=after, version=version)
        download: Download | AsyncDownload = yield OpenDownload(
            link,
            plan.target,
            tuple(blobs[entry.version] for entry in plan.frames),
            self._sql.read_chunks,
            self._rows_per_fetch,
            self.location,
        )
        return plan, download

    def _versions_of(self, link: Link, project: str, name: str) -> Flow[builtins.list[IndexInfo]]:
        rows = yield link.all(self._sql.versions, (project, name))
        return with_chain_stats(openable([info_from_row(row) for row in rows]))

    def _versions(self, link: Link, project: str, name: str) -> Flow[builtins.list[IndexInfo]]:
        project, name = self._key(project, name)
        yield from self._ensure_schema(link)
        return (yield from self._versions_of(link, project, name))

    def _head(self, link: Link, project: str, name: str) -> Flow[IndexInfo | None]:
        key = self._key(project, name)
        yield from self._ensure_schema(link)
        infos = yield from self._versions_of(link, *key)
        if not infos:
            yield from self._purged(link, self._sql.purge_expired, key)
            return None
        return infos[-1]

    def _list(self, link: Link, project: str) -> Flow[builtins.list[IndexInfo]]:
        project = validate_name(project, what="project id")
        yield from self._ensure_schema(link)
        yield from self._purged(link, self._sql.purge_project_expired, (project,))
        rows = yield link.all(self._sql.list, (project,))
        per_index: dict[str, builtins.list[IndexInfo]] = {}
        for row in rows:
            per_index.setdefault(row[0], []).append(info_from_row(row))
        latest = [with_chain_stats(infos)[-1] for infos in per_index.values()]
        # Sorted here, not in SQL: the database's collation may not sort by code point.
        return sorted(latest, key=lambda info: info.name)

    def _latest(self, link: Link, project: str, name: str) -> Flow[int]:
        yield from self._ensure_schema(link)
        return first_int((yield link.one(self._sql.latest, (project, name))), 0)

    def _watch(
        self, link: Link, project: str, name: str, after: int, timeout: float
    ) -> Flow[int | None]:
        key = self._key(project, name)
        check_number(after, "after", lowest=0)
        current = yield from self._latest(link, *key)
        if current > after:
            return current
        if timeout <= 0:
            return None
        yield link.release()  # the wait needs no pooled connection

        async def listener() -> AsyncListener:
            return (await self._pools.async_state()).listener

        async def latest() -> int:
            return await self._async(self._latest, *key)

        heard: int | None = yield WaitForVersion(
            self._pools.conninfo,
            self._pools.connect_options,
            self._sql,
            key,
            after,
            timeout,
            self._timeout,
            listener,
            latest,
        )
        return heard

    # -- projects and keys -----------------------------------------------------------------

    def _read_auth(self, link: Link) -> Flow[tuple[int, bytes | None]]:
        yield from self._ensure_schema(link)
        row = yield link.one(self._sql.read_auth)
        return (0, None) if row is None else (int(row[0]), bytes(row[1]))

    def _write_auth(self, link: Link, data: bytes, expected_version: int) -> Flow[int]:
        check_expected_version(expected_version)
        sql = self._sql
        yield from self._ensure_schema(link)
        if expected_version == 0:
            row = yield link.one(sql.create_auth, (data,))
        else:
            row = yield link.one(sql.replace_auth, (data, expected_version))
        if row is None:
            actual = first_int((yield link.one(sql.read_auth)), 0)
            raise auth_conflict(expected_version, actual)
        return int(row[0])
