"""What the sync and async paths of :class:`~moss.stores.postgres.PostgresStore` share.

The schema and its migrations, every SQL statement, the parsing of ``postgresql://`` URLs,
the NOTIFY payload, and the translation of psycopg's errors: no I/O here.

Tables, in one PostgreSQL schema (``moss`` unless the URL says ``?schema=...``)::

    schema_version  one row: the migration level of the schema
    indexes         one row per (project, index): the version counter, which survives deletes,
                    and the visible version (0 once deleted); locked FOR UPDATE by writers;
                    ``expires_at`` (schema 2): when the index counts as deleted (put with ttl)
    versions        one row per kept version: its summary and the id of its bytes;
                    ``kind`` (full, delta or compaction), ``author``, ``message``, ``model_artifact``
                    (schema 3; NULL artifact: written before, not compared)
    chunks          the bytes of each version, in rows of 8000 bytes stored in place
                    (``STORAGE PLAIN``: one row fills one 8 KiB page, see ``ROW_BYTES``)
    auth            one row: the projects-and-keys record, replaced by compare-and-swap
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import psycopg
from psycopg import sql
from psycopg_pool import PoolTimeout

from ...errors import InvalidArgumentError, ServiceUnavailableError
from ...types import IndexInfo
from ..chunks import CHUNK_SIZE

#: The schema level this version of moss writes and reads.
SCHEMA_VERSION = 3
DEFAULT_SCHEMA = "moss"
#: Bytes per row of ``chunks``. A row this small fits a heap page whole, so PostgreSQL stores it
#: as it is; bigger values would be TOASTed: cut into ~2 KB pieces, each one more tuple and one
#: more index entry. Measured on a 154 MiB snapshot with fsync on, 8000-byte rows write about a
#: third faster than 8 MiB TOASTed ones (float vectors do not compress, so nothing is lost).
ROW_BYTES = 8000
#: Rows fetched per round trip when reading: about 8 MiB, handed on as one chunk.
FETCH_BYTES = CHUNK_SIZE
#: Query parameters moss reads from the URL itself; everything else is for libpq.
MOSS_PARAMETERS = ("schema", "keep_versions")

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,47}")

#: Statement lists that take a schema from level N-1 to level N (index N-1 in this tuple).
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE {s}.indexes (
            project text NOT NULL,
            name text NOT NULL,
            counter bigint NOT NULL DEFAULT 0,
            latest bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (project, name))""",
        "CREATE SEQUENCE {s}.blob_ids",
        """CREATE TABLE {s}.versions (
            project text NOT NULL,
            name text NOT NULL,
            version bigint NOT NULL,
            blob_id bigint NOT NULL,
            model_id text NOT NULL,
            dimension integer NOT NULL,
            doc_count bigint NOT NULL,
            size_bytes bigint NOT NULL,
            created_at double precision NOT NULL,
            PRIMARY KEY (project, name, version),
            FOREIGN KEY (project, name) REFERENCES {s}.indexes)""",
        """CREATE TABLE {s}.chunks (
            blob_id bigint NOT NULL,
            seq integer NOT NULL,
            data bytea NOT NULL,
            PRIMARY KEY (blob_id, seq))""",
        "ALTER TABLE {s}.chunks ALTER COLUMN data SET STORAGE PLAIN",
        """CREATE TABLE {s}.auth (
            id integer PRIMARY KEY CHECK (id = 1),
            version bigint NOT NULL,
            data bytea NOT NULL)""",
    ),
    ("ALTER TABLE {s}.indexes ADD COLUMN IF NOT EXISTS expires_at timestamptz",),
    (
        "ALTER TABLE {s}.versions ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'full'",
        "ALTER TABLE {s}.versions ADD COLUMN IF NOT EXISTS author text",
        "ALTER TABLE {s}.versions ADD COLUMN IF NOT EXISTS message text",
        "ALTER TABLE {s}.versions ADD COLUMN IF NOT EXISTS model_artifact text",
    ),
)
#: SQL condition: the index row ``i`` has not expired. The database's clock decides, so replicas
#: with skewed clocks agree.
LIVE = "(i.expires_at IS NULL OR i.expires_at > clock_timestamp())"
_EXPIRED = "expires_at <= clock_timestamp()"
assert len(MIGRATIONS) == SCHEMA_VERSION


@dataclass(frozen=True)
class Target:
    """A parsed store URL: what libpq connects to, and what moss reads from the query."""

    conninfo: str
    location: str
    schema: str
    keep_versions: int | None


def parse_url(url: str, *, schema: str | None = None) -> Target:
    """Split a ``postgresql://`` URL into libpq's part and moss's (``schema``, ``keep_versions``).

    ``schema``, when given, replaces the URL's. The location (for caches and messages) keeps
    everything but the password, and always names the schema.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise InvalidArgumentError(f"not a PostgreSQL URL: {_redact(url)!r}; use postgresql://...")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {key: value for key, value in query if key in MOSS_PARAMETERS}
    libpq = [(key, value) for key, value in query if key not in MOSS_PARAMETERS]
    schema = check_schema(schema if schema is not None else ours.get("schema", DEFAULT_SCHEMA))
    keep = ours.get("keep_versions")
    if keep is not None and not keep.isdigit():
        raise InvalidArgumentError(
            f"keep_versions in the store URL must be an integer, got {keep!r}"
        )
    conninfo = urlunsplit(parts._replace(query=urlencode(libpq)))
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    public_netloc = f"{user}@{netloc[2]}" if netloc[1] else netloc[2]
    location_query = urlencode([*libpq, ("schema", schema)])
    location = urlunsplit(parts._replace(netloc=public_netloc, query=location_query))
    return Target(conninfo, location, schema, None if keep is None else int(keep))


def _redact(url: str) -> str:
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)


def check_schema(schema: str) -> str:
    """Refuse schema names that are not plain lower-case identifiers (they also name a channel)."""
    if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
        raise InvalidArgumentError(
            f"schema must be 1-48 characters of a-z, 0-9 and _, not starting with a digit; "
            f"got {schema!r}"
        )
    return schema


class Statements:
    """Every statement of the store, with the schema filled in once."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        #: NOTIFY channel of this schema: replicas over one schema hear each other's pushes.
        self.channel = f"{schema}_versions"
        s = sql.Identifier(schema)

        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(s=s)

        self.migrations = tuple(tuple(q(step) for step in steps) for steps in MIGRATIONS)
        self.lock_schema = sql.SQL("SELECT pg_advisory_xact_lock(hashtext({key}))").format(
            key=sql.Literal(f"moss-schema:{schema}")
        )
        self.schema_exists = sql.SQL("SELECT 1 FROM pg_namespace WHERE nspname = {}").format(
            sql.Literal(schema)
        )
        self.create_schema = q("CREATE SCHEMA IF NOT EXISTS {s}")
        self.create_version_table = q(
            "CREATE TABLE IF NOT EXISTS {s}.schema_version ("
            "id integer PRIMARY KEY CHECK (id = 1), version integer NOT NULL, "
            "upgraded_at timestamptz NOT NULL DEFAULT now())"
        )
        self.schema_version = q("SELECT version FROM {s}.schema_version WHERE id = 1")
        self.set_schema_version = q(
            "INSERT INTO {s}.schema_version (id, version) VALUES (1, %s) ON CONFLICT (id) "
            "DO UPDATE SET version = excluded.version, upgraded_at = now()"
        )
        # Writes run between these (on autocommit connections; a flow that fails midway leaves
        # its transaction to the link, which rolls it back).
        self.begin = sql.SQL("BEGIN")
        self.commit = sql.SQL("COMMIT")
        self.listen = sql.SQL("LISTEN {}").format(sql.Identifier(self.channel))
        self.notify = sql.SQL("SELECT pg_notify({}, %s)").format(sql.Literal(self.channel))

        self.latest = q(
            f"SELECT CASE WHEN {_EXPIRED} THEN 0 ELSE latest END FROM {{s}}.indexes "
            "WHERE project = %s AND name = %s"
        )
        self.ensure_index = q(
            "INSERT INTO {s}.indexes (project, name) VALUES (%s, %s) ON CONFLICT DO NOTHING"
        )
        self.lock_index = q(
            "SELECT counter, latest FROM {s}.indexes WHERE project = %s AND name = %s FOR UPDATE"
        )
        self.next_blob = q("SELECT nextval('{s}.blob_ids')")
        self.copy_chunks = q("COPY {s}.chunks (blob_id, seq, data) FROM STDIN (FORMAT BINARY)")
        self.insert_version = q(
            "INSERT INTO {s}.versions (project, name, version, blob_id, model_id, dimension, "
            "doc_count, size_bytes, created_at, kind, author, message, model_artifact) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        )
        # Under the index row's lock: the kept versions (for retention) and the latest's model.
        self.kept_kinds = q(
            "SELECT version, kind FROM {s}.versions WHERE project = %s AND name = %s "
            "ORDER BY version"
        )
        self.latest_model = q(
            "SELECT model_id, model_artifact, dimension FROM {s}.versions "
            "WHERE project = %s AND name = %s AND version = %s"
        )
        self.prune_listed = q(
            "DELETE FROM {s}.versions WHERE project = %s AND name = %s AND version = ANY(%s) "
            "RETURNING blob_id"
        )
        # expires_at = now + ttl, or NULL (never) when the ttl parameter is NULL.
        self.publish = q(
            "UPDATE {s}.indexes SET counter = %s, latest = %s, "
            "expires_at = clock_timestamp() + %s::float8 * interval '1 second' "
            "WHERE project = %s AND name = %s"
        )
        # Hide an expired index and delete its versions in one statement, returning the blob
        # ids whose chunks to drop; the UPDATE locks the index row like lock_index does.
        self.purge_expired = q(
            "WITH expired AS (UPDATE {s}.indexes SET latest = 0, expires_at = NULL "
            f"WHERE project = %s AND name = %s AND {_EXPIRED} RETURNING project, name) "
            "DELETE FROM {s}.versions v USING expired e "
            "WHERE v.project = e.project AND v.name = e.name RETURNING v.blob_id"
        )
        self.purge_project_expired = q(
            "WITH expired AS (UPDATE {s}.indexes SET latest = 0, expires_at = NULL "
            f"WHERE project = %s AND {_EXPIRED} RETURNING project, name) "
            "DELETE FROM {s}.versions v USING expired e "
            "WHERE v.project = e.project AND v.name = e.name RETURNING v.blob_id"
        )
        self.prune = q(
            "DELETE FROM {s}.versions WHERE project = %s AND name = %s AND version <= %s "
            "RETURNING blob_id"
        )
        self.drop_chunks = q("DELETE FROM {s}.chunks WHERE blob_id = ANY(%s)")
        self.hide = q(
            "UPDATE {s}.indexes SET latest = 0, expires_at = NULL WHERE project = %s AND name = %s"
        )

        # Reads. A download runs in one REPEATABLE READ transaction: the lookup and the cursor
        # see one snapshot, so a prune committed meanwhile cannot take the rows away.
        self.begin_snapshot = sql.SQL("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        self.find_latest = q(
            "SELECT v.version, v.blob_id FROM {s}.indexes i JOIN {s}.versions v "
            "ON v.project = i.project AND v.name = i.name AND v.version = i.latest "
            f"WHERE i.project = %s AND i.name = %s AND {LIVE}"
        )
        self.find_version = q(
            "SELECT v.version, v.blob_id FROM {s}.indexes i JOIN {s}.versions v "
            "ON v.project = i.project AND v.name = i.name "
            f"WHERE i.project = %s AND i.name = %s AND v.version = %s AND {LIVE}"
        )
        self.read_chunks = q("SELECT data FROM {s}.chunks WHERE blob_id = %s ORDER BY seq")
        self.chain_rows = q(
            "SELECT v.version, v.kind, v.size_bytes, v.blob_id FROM {s}.indexes i "
            "JOIN {s}.versions v ON v.project = i.project AND v.name = i.name "
            f"WHERE i.project = %s AND i.name = %s AND {LIVE} ORDER BY v.version"
        )
        columns = (
            "v.name, v.version, v.model_id, v.dimension, v.doc_count, v.size_bytes, "
            "v.created_at, v.kind, v.author, v.message"
        )
        # Every kept version of the project's live indexes, for the chain statistics.
        self.list = q(
            f"SELECT {columns} FROM {{s}}.indexes i JOIN {{s}}.versions v "
            "ON v.project = i.project AND v.name = i.name AND v.version <= i.latest "
            f"WHERE i.project = %s AND {LIVE} ORDER BY v.name, v.version"
        )
        self.versions = q(
            f"SELECT {columns} FROM {{s}}.indexes i JOIN {{s}}.versions v "
            "ON v.project = i.project AND v.name = i.name "
            f"WHERE i.project = %s AND i.name = %s AND {LIVE} ORDER BY v.version"
        )

        self.read_auth = q("SELECT version, data FROM {s}.auth WHERE id = 1")
        self.create_auth = q(
            "INSERT INTO {s}.auth (id, version, data) VALUES (1, 1, %s) "
            "ON CONFLICT (id) DO NOTHING RETURNING version"
        )
        self.replace_auth = q(
            "UPDATE {s}.auth SET version = version + 1, data = %s "
            "WHERE id = 1 AND version = %s RETURNING version"
        )


def info_from_row(row: tuple[Any, ...]) -> IndexInfo:
    """An :class:`IndexInfo` from the columns of ``Statements.list`` / ``versions``."""
    name, version, model_id, dimension, doc_count, size_bytes, created_at, *described = row
    kind, author, message = described
    return IndexInfo(
        name=name,
        version=int(version),
        model_id=model_id,
        dimension=int(dimension),
        doc_count=int(doc_count),
        size_bytes=int(size_bytes),
        created_at=float(created_at),
        kind=kind,
        author=author,
        message=message,
    )


def notify_payload(project: str, name: str, version: int) -> str:
    """The NOTIFY payload of a new version (well under PostgreSQL's 8000-byte limit)."""
    return orjson.dumps([project, name, version]).decode()


def parse_payload(payload: str) -> tuple[str, str, int] | None:
    """Invert :func:`notify_payload`; None for anything else on the channel."""
    try:
        project, name, version = orjson.loads(payload)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None
    if isinstance(project, str) and isinstance(name, str) and isinstance(version, int):
        return project, name, version
    return None


class SchemaTooNewError(InvalidArgumentError):
    """The database was upgraded by a newer moss than this one."""


def check_level(level: int, location: str) -> None:
    """Refuse to work on a schema migrated past what this moss knows."""
    if level > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"the moss tables at {location} are at schema version {level}, but this moss knows "
            f"versions up to {SCHEMA_VERSION}: upgrade moss-sessions on this machine"
        )


@contextlib.contextmanager
def translate_errors(location: str) -> Iterator[None]:
    """Turn psycopg's errors into moss errors (the store's boundary)."""
    try:
        yield
    except PoolTimeout as exc:
        raise ServiceUnavailableError(
            f"no connection to PostgreSQL at {location} became free in time ({exc}): "
            "check that the database is up, or raise the store's pool_size"
        ) from exc
    except psycopg.OperationalError as exc:
        raise ServiceUnavailableError(
            f"cannot reach PostgreSQL at {location} ({exc}): check that it runs and accepts "
            "connections, then retry"
        ) from exc
    except psycopg.Error as exc:
        raise ServiceUnavailableError(
            f"PostgreSQL at {location} failed ({type(exc).__name__}: {exc}): retry, and check "
            "the server's log if it persists"
        ) from exc
