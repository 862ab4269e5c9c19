"""The PostgreSQL store: many ``moss serve`` replicas (or clients) over one database.

Needs the ``postgres`` extra (``pip install 'moss-sessions[postgres]'``): psycopg 3 with its
connection pools, a sync one for the sync path and an async one (per event loop, made on first
use) for the async path; neither path runs an event loop for the other.

How the guarantees of the store protocol hold:

* **Atomic puts.** A version is written in one transaction: its bytes are streamed with
  ``COPY`` into rows of 8000 bytes (one heap page each, far from any PostgreSQL limit) while
  :class:`~moss.snapshot.SnapshotReader` checks them, then the version row that makes it visible
  is inserted. A writer that dies mid-upload leaves nothing: PostgreSQL rolls its transaction
  back. The async path receives the next chunks while the last ones are written.
* **Compare-and-swap.** The version number is decided under ``SELECT ... FOR UPDATE`` of the
  index's row in ``indexes``: of racing pushes with the same expected version, on any number
  of replicas, exactly one commits; the others see the new version and raise ``ConflictError``.
  The row keeps the counter, so numbers are never reused, also after a delete.
* **Expiry.** A put with ``ttl`` sets the row's ``expires_at`` (the database's clock), one
  without clears it. Reads filter expired indexes out; puts, deletes, heads and lists purge
  them (hide the row, delete the versions) in a transaction of their own.
* **Pruning under readers.** A download runs in one ``REPEATABLE READ`` read-only transaction:
  its lookup and its server-side cursor read one MVCC snapshot, so when a newer push prunes the
  version meanwhile (a plain ``DELETE`` in the writer's transaction), the reader still streams
  every row of it, and PostgreSQL reclaims the space only after the reader finishes. No deferred
  deletes to schedule, no reader registry; the cost is that a stalled reader holds back
  ``VACUUM`` until it closes (downloads are streamed, so that is seconds).
* **Bounded memory.** Reads fetch about 8 MiB of rows at a time through a server-side cursor
  (the async path one fetch ahead, so a server sends one chunk while it fetches the next).
* **Watching.** Every put sends ``NOTIFY`` (project, index, version) on commit; watchers
  ``LISTEN`` (see :mod:`moss.stores.postgres_listen`).

The schema (``moss`` by default, ``?schema=name`` in the URL) is created and migrated by the
store on first use, or explicitly with ``moss db upgrade --store postgresql://...``. Projects and
keys live in it too (:class:`~moss.stores.auth.AuthRecords`), so every replica shares them.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterator

import psycopg
from psycopg.sql import Composed
from psycopg_pool import ConnectionPool

from ...snapshot.codec import SnapshotHeader
from ...types import IndexInfo
from ...validation import validate_name
from ..base import Chunks, Download, check_ttl
from ..chunks import iter_chunks
from ..file import check_expected_version
from .async_methods import AsyncPostgresMethods
from .core import (
    COPY_TYPES,
    Conn,
    auth_conflict,
    check_version,
    counter_and_latest,
    scalar,
    version_info,
)
from .listen import wait_for_version
from .sql import (
    SCHEMA_VERSION,
    check_level,
    info_from_row,
    notify_payload,
    translate_errors,
)
from .stream import BlobChunks, RowBuffer

__all__ = ["SCHEMA_VERSION", "PostgresStore"]


class PostgresStore(AsyncPostgresMethods):
    """Keep index versions in PostgreSQL, shared by every replica and client over the database.

    Example::

        store = PostgresStore("postgresql://moss:secret@db.internal/moss")
        client = MossClient(store=store)  # or MossClient(store="postgresql://...")

    Arguments (the first two also as URL parameters, which libpq never sees):

    * ``schema`` (``?schema=``, default ``moss``): the PostgreSQL schema of moss's tables; its
      name also names the NOTIFY channel, so stores over one schema hear each other.
    * ``keep_versions`` (``?keep_versions=``, default 5): versions kept per index.
    * ``max_snapshot_bytes``: refuse larger snapshots (``SnapshotError``).
    * ``pool_size``: connections per pool (each process has a sync and, once used, an async
      pool, plus one listening connection for async watchers).
    * ``connect_timeout``: seconds to wait for a connection before ``ServiceUnavailableError``.
    * ``auto_upgrade``: create or migrate the tables on first use (else ask for
      ``moss db upgrade``).
    * ``row_bytes``: bytes per stored row, at most 8000 (smaller only for tests).
    """

    # -- sync: connections and schema ------------------------------------------------------

    def _sync_pool(self) -> ConnectionPool[Conn]:
        with self._lock:
            if self._pool is None:
                pool: ConnectionPool[Conn] = ConnectionPool(
                    self._conninfo,
                    min_size=1,
                    max_size=self._pool_size,
                    kwargs={"autocommit": True, **self._connect_options},
                    check=ConnectionPool.check_connection,
                    timeout=self._timeout,
                    name=f"moss-{self.schema}",
                    open=False,
                )
                pool.open()
                self._pool = pool
            return self._pool

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Conn]:
        with translate_errors(self.location), self._sync_pool().connection() as conn:
            self._ensure_schema(conn)
            yield conn

    def _ensure_schema(self, conn: Conn) -> None:
        if not self._schema_ready:
            if self._needs_upgrade(self._level(conn)):
                self._upgrade(conn)
            self._schema_ready = True

    def _level(self, conn: Conn) -> int:
        try:
            row = conn.execute(self._sql.schema_version).fetchone()
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            return 0
        return int(row[0]) if row else 0

    def _upgrade(self, conn: Conn) -> tuple[int, int]:
        with conn.transaction():
            conn.execute(self._sql.lock_schema)  # replicas starting together migrate once
            if not conn.execute(self._sql.schema_exists).fetchone():
                conn.execute(self._sql.create_schema)
            conn.execute(self._sql.create_version_table)
            row = conn.execute(self._sql.schema_version).fetchone()
            level = int(row[0]) if row else 0
            check_level(level, self.location)
            for steps in self._sql.migrations[level:]:
                for step in steps:
                    conn.execute(step)
            if level < SCHEMA_VERSION:
                conn.execute(self._sql.set_schema_version, (SCHEMA_VERSION,))
        return level, SCHEMA_VERSION

    def upgrade(self) -> tuple[int, int]:
        """Create or migrate the store's tables; return the schema version before and after."""
        with translate_errors(self.location), self._sync_pool().connection() as conn:
            result = self._upgrade(conn)
        self._schema_ready = True
        return result

    # -- sync: writes ----------------------------------------------------------------------

    def put(
        self,
        project: str,
        name: str,
        chunks: Chunks,
        *,
        expected_version: int | None = None,
        ttl: float | None = None,
    ) -> IndexInfo:
        """Store a snapshot as the next version (see :class:`~moss.stores.base.Store`)."""
        check_expected_version(expected_version)
        ttl = check_ttl(ttl)
        project, name = self._key(project, name)
        reader = self._reader(name)
        with self._connection() as conn, conn.transaction():
            if expected_version is not None:
                current = self._latest(conn, project, name)
                if current != expected_version:  # fail before the upload, not after it
                    raise self._conflict(name, current, expected_version)
            blob_id = scalar(conn.execute(self._sql.next_blob).fetchone())
            rows = RowBuffer(self.row_bytes)
            with conn.cursor() as cursor, cursor.copy(self._sql.copy_chunks) as copy:
                copy.set_types(COPY_TYPES)
                for chunk in iter_chunks(chunks):
                    reader.feed(chunk)
                    for seq, row in rows.add(chunk):
                        copy.write_row((blob_id, seq, row))
                header = reader.finish()  # inside COPY: a truncated upload aborts it
                for seq, row in rows.flush():
                    copy.write_row((blob_id, seq, row))
            assert isinstance(header, SnapshotHeader)
            return self._commit(conn, project, name, blob_id, header, expected_version, ttl)

    def _commit(
        self,
        conn: Conn,
        project: str,
        name: str,
        blob_id: int,
        header: SnapshotHeader,
        expected_version: int | None,
        ttl: float | None,
    ) -> IndexInfo:
        conn.execute(self._sql.ensure_index, (project, name))
        self._purge(conn, self._sql.purge_expired, (project, name))  # expired counts as absent
        counter, latest = counter_and_latest(
            conn.execute(self._sql.lock_index, (project, name)).fetchone()
        )
        if expected_version is not None and latest != expected_version:
            raise self._conflict(name, latest, expected_version)
        version = counter + 1
        conn.execute(
            self._sql.insert_version, self._version_row(project, name, version, blob_id, header)
        )
        conn.execute(self._sql.publish, (version, version, ttl, project, name))
        pruned = [
            row[0]
            for row in conn.execute(self._sql.prune, (project, name, version - self.keep_versions))
        ]
        if pruned:
            conn.execute(self._sql.drop_chunks, (pruned,))
        conn.execute(self._sql.notify, (notify_payload(project, name, version),))
        return version_info(name, version, header)

    def delete(self, project: str, name: str) -> bool:
        """Delete every version of the index; the counter survives, so numbers are never reused."""
        project, name = self._key(project, name)
        with self._connection() as conn, conn.transaction():
            self._purge(conn, self._sql.purge_expired, (project, name))
            row = conn.execute(self._sql.lock_index, (project, name)).fetchone()
            if row is None or row[1] == 0:
                return False
            pruned = [r[0] for r in conn.execute(self._sql.prune, (project, name, row[0]))]
            if pruned:
                conn.execute(self._sql.drop_chunks, (pruned,))
            conn.execute(self._sql.hide, (project, name))
            return True

    def _purge(self, conn: Conn, statement: Composed, params: tuple[str, ...]) -> None:
        """Run a ``purge_*expired`` statement and drop the chunks of the versions it deleted."""
        pruned = [row[0] for row in conn.execute(statement, params)]
        if pruned:
            conn.execute(self._sql.drop_chunks, (pruned,))

    # -- sync: reads -----------------------------------------------------------------------

    def _latest(self, conn: Conn, project: str, name: str) -> int:
        row = conn.execute(self._sql.latest, (project, name)).fetchone()
        return int(row[0]) if row else 0

    def get(
        self,
        project: str,
        name: str,
        version: int | None = None,
        *,
        if_none_match: int | None = None,
    ) -> Download:
        """Open the latest (or the given) version for reading; raise if absent."""
        project, name = self._key(project, name)
        check_version(version)
        with translate_errors(self.location):
            pool = self._sync_pool()
            conn = pool.getconn()
            try:
                self._ensure_schema(conn)
                conn.execute(self._sql.begin_snapshot)
                if version is None:
                    row = conn.execute(self._sql.find_latest, (project, name)).fetchone()
                else:
                    row = conn.execute(self._sql.find_version, (project, name, version)).fetchone()
                if row is None:
                    kept = (
                        []
                        if version is None
                        else [i.version for i in self._versions(conn, project, name)]
                    )
                    raise self._not_found(project, name, version, kept)
                number, blob_id = int(row[0]), int(row[1])
                if if_none_match is not None and number == if_none_match:
                    _release(pool, conn)
                    return Download(number, iter(()), not_modified=True)
            except BaseException:
                _release(pool, conn)
                raise
        return Download(
            number,
            BlobChunks(
                conn,
                self._sql.read_chunks,
                blob_id,
                self._rows_per_fetch,
                self.location,
                lambda c: _release(pool, c),
            ),
        )

    def _versions(self, conn: Conn, project: str, name: str) -> builtins.list[IndexInfo]:
        return [info_from_row(row) for row in conn.execute(self._sql.versions, (project, name))]

    def head(self, project: str, name: str) -> IndexInfo | None:
        """Describe the latest version, or None if the index does not exist."""
        project, name = self._key(project, name)
        with self._connection() as conn:
            row = conn.execute(self._sql.head, (project, name)).fetchone()
            if row is None:
                with conn.transaction():
                    self._purge(conn, self._sql.purge_expired, (project, name))
        return None if row is None else info_from_row(row)

    def list(self, project: str) -> builtins.list[IndexInfo]:
        """Describe the latest version of every index of the project, sorted by name."""
        project = validate_name(project, what="project id")
        with self._connection() as conn:
            with conn.transaction():
                self._purge(conn, self._sql.purge_project_expired, (project,))
            rows = conn.execute(self._sql.list, (project,)).fetchall()
        # Sorted here, not in SQL: the database's collation may not sort by code point.
        return sorted((info_from_row(row) for row in rows), key=lambda info: info.name)

    def versions(self, project: str, name: str) -> builtins.list[IndexInfo]:
        """Describe every kept version, oldest first."""
        project, name = self._key(project, name)
        with self._connection() as conn:
            return self._versions(conn, project, name)

    def watch(self, project: str, name: str, after: int, timeout: float) -> int | None:
        """Wait until the latest version exceeds ``after`` (LISTEN, no polling), up to ``timeout`` s."""
        key = self._key(project, name)
        with self._connection() as conn:
            current = self._latest(conn, *key)
        if current > after:
            return current
        if timeout <= 0:
            return None
        with translate_errors(self.location):
            return wait_for_version(
                self._conninfo,
                self._connect_options,
                self._sql,
                key,
                after,
                timeout,
                lambda conn: self._latest(conn, *key),
            )

    # -- sync: projects and keys (AuthRecords) ---------------------------------------------

    def read_auth(self) -> tuple[int, bytes | None]:
        """Return the projects-and-keys record's version (0 if never written) and bytes."""
        with self._connection() as conn:
            row = conn.execute(self._sql.read_auth).fetchone()
        return (0, None) if row is None else (int(row[0]), bytes(row[1]))

    def write_auth(self, data: bytes, *, expected_version: int) -> int:
        """Replace the record if still at ``expected_version`` (0: absent); return the new version."""
        check_expected_version(expected_version)
        with self._connection() as conn:
            if expected_version == 0:
                row = conn.execute(self._sql.create_auth, (data,)).fetchone()
            else:
                row = conn.execute(self._sql.replace_auth, (data, expected_version)).fetchone()
            if row is None:
                actual = conn.execute(self._sql.read_auth).fetchone()
                raise auth_conflict(expected_version, int(actual[0]) if actual else 0)
        return int(row[0])


def _release(pool: ConnectionPool[Conn], conn: Conn) -> None:
    """End a download's read-only transaction and give its connection back."""
    with contextlib.suppress(psycopg.Error):
        conn.execute("ROLLBACK")
    pool.putconn(conn)
