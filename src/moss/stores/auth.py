"""Projects and their keys, kept in the store itself so every server replica over it shares them.

A store that can hold them offers :class:`AuthRecords`: one small opaque document with a version,
replaced by compare-and-swap. :class:`ProjectKeys` keeps projects and hashed keys in it::

    keys = ProjectKeys(auth_records(store))
    record, secret = keys.create_project("acme")  # the secret is shown once, stored hashed
    assert keys.table().verify("acme", secret)

Keys are 256-bit random strings (``secrets.token_urlsafe(32)``), stored only as their SHA-256.
A slow password hash (bcrypt, argon2) protects guessable passwords; a 256-bit random key cannot
be guessed from its hash whatever the hash speed, so SHA-256 keeps every request cheap without
weakening anything. Keys are compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import orjson

from ..errors import ConflictError, InvalidArgumentError
from ..validation import validate_name, validate_project_id
from .base import Store
from .file import FileStore
from .file_auth import FileAuthRecords

__all__ = [
    "AuthRecords",
    "AuthTable",
    "KeyRecord",
    "ProjectKeys",
    "ProjectRecord",
    "auth_records",
    "hash_key",
    "new_key",
]

_FORMAT = 1
_CAS_ATTEMPTS = 20
MIN_KEY_LENGTH = 16
#: Compared against when the project is unknown, so that case costs what a known one does.
_NO_PROJECT_DIGEST = "0" * 64


@runtime_checkable
class AuthRecords(Protocol):
    """One small versioned document holding projects and hashed keys, replaced by CAS."""

    def read_auth(self) -> tuple[int, bytes | None]:
        """Return the current version (0 if never written) and the document (None if absent)."""
        ...

    def write_auth(self, data: bytes, *, expected_version: int) -> int:
        """Replace the document if its version is still ``expected_version``; return the new one.

        Raises :class:`~moss.errors.ConflictError` when another writer came first.
        """
        ...

    async def aread_auth(self) -> tuple[int, bytes | None]:
        """Async twin of :meth:`read_auth`."""
        ...


def auth_records(store: Store) -> AuthRecords:
    """The projects-and-keys record of ``store``; raise if that kind of store cannot keep one."""
    if isinstance(store, AuthRecords):
        return store
    if isinstance(store, FileStore):
        return FileAuthRecords(store.root)
    raise InvalidArgumentError(
        f"store {store.location} cannot keep projects and keys: serve a file:// or postgresql:// store"
    )


def new_key() -> str:
    """A new random project key (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of a key: its SHA-256, hex (see the module docstring for why not slower)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    """One key of a project, as stored: never the key itself, only its hash."""

    id: str
    sha256: str
    created_at: float
    revoked_at: float | None = None
    label: str = ""

    @property
    def revoked(self) -> bool:
        """Whether the key was revoked (it no longer authenticates)."""
        return self.revoked_at is not None


@dataclass(frozen=True)
class ProjectRecord:
    """A project and its keys."""

    name: str
    created_at: float
    keys: tuple[KeyRecord, ...] = ()


@dataclass(frozen=True)
class AuthTable:
    """Every project and key at one version of the record; answers "is this key valid?"."""

    projects: Mapping[str, ProjectRecord] = field(default_factory=dict)

    def verify(self, project: str, key: str) -> bool:
        """Whether ``key`` is a live key of ``project`` (constant time in the key's content)."""
        # Hash whether or not the project exists: timing must not tell which projects exist.
        digest = hash_key(key)
        record = self.projects.get(project)
        if record is None:
            hmac.compare_digest(digest, _NO_PROJECT_DIGEST)
            return False
        matched = False
        for stored in record.keys:
            # Compare against every key, revoked or not, so timing says nothing about which matched.
            if hmac.compare_digest(digest, stored.sha256) and not stored.revoked:
                matched = True
        return matched

    def to_bytes(self) -> bytes:
        """Serialise for :meth:`AuthRecords.write_auth`."""
        return orjson.dumps(
            {
                "format": _FORMAT,
                "projects": {
                    name: {
                        "created_at": record.created_at,
                        "keys": [_key_to_json(key) for key in record.keys],
                    }
                    for name, record in sorted(self.projects.items())
                },
            },
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_bytes(cls, data: bytes | None) -> AuthTable:
        """Parse what :meth:`to_bytes` wrote (None: no projects yet)."""
        if data is None:
            return cls()
        try:
            raw = orjson.loads(data)
            if raw.get("format") != _FORMAT:
                raise ValueError(f"unknown format {raw.get('format')!r}")
            projects = {
                name: ProjectRecord(
                    name=name,
                    created_at=float(entry["created_at"]),
                    keys=tuple(_key_from_json(key) for key in entry["keys"]),
                )
                for name, entry in raw["projects"].items()
            }
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"the store's projects-and-keys record is unreadable ({exc}): restore it from a backup"
            ) from exc
        return cls(projects)


def _key_to_json(key: KeyRecord) -> dict[str, Any]:
    return {
        "id": key.id,
        "sha256": key.sha256,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "label": key.label,
    }


def _key_from_json(entry: Mapping[str, Any]) -> KeyRecord:
    revoked_at = entry.get("revoked_at")
    return KeyRecord(
        id=str(entry["id"]),
        sha256=str(entry["sha256"]),
        created_at=float(entry["created_at"]),
        revoked_at=None if revoked_at is None else float(revoked_at),
        label=str(entry.get("label", "")),
    )


def _new_key_record(label: str) -> tuple[KeyRecord, str]:
    secret = new_key()
    record = KeyRecord(
        id=f"key-{secrets.token_hex(4)}",
        sha256=hash_key(secret),
        created_at=time.time(),
        label=label,
    )
    return record, secret


class ProjectKeys:
    """Create projects, and create, list and revoke their keys, in a store's auth record.

    Every change is a read-modify-write retried on conflict, so concurrent admins never lose
    each other's changes.
    """

    def __init__(self, records: AuthRecords) -> None:
        self.records = records

    def table(self) -> AuthTable:
        """The current projects and keys."""
        return AuthTable.from_bytes(self.records.read_auth()[1])

    def projects(self) -> list[ProjectRecord]:
        """Every project, sorted by name."""
        return sorted(self.table().projects.values(), key=lambda record: record.name)

    def create_project(self, name: str, *, label: str = "") -> tuple[KeyRecord, str]:
        """Create a project with one key; return the key's record and the key (shown once)."""
        validate_project_id(name)
        record, secret = _new_key_record(label)

        def change(projects: dict[str, ProjectRecord]) -> None:
            if name in projects:
                raise InvalidArgumentError(
                    f"project {name!r} already exists: add a key with `moss keys create --project {name}`"
                )
            projects[name] = ProjectRecord(name, time.time(), (record,))

        self._update(change)
        return record, secret

    def create_key(self, project: str, *, label: str = "") -> tuple[KeyRecord, str]:
        """Add a key to an existing project; return its record and the key (shown once)."""
        record, secret = _new_key_record(label)

        def change(projects: dict[str, ProjectRecord]) -> None:
            current = _existing(projects, project)
            projects[project] = replace(current, keys=(*current.keys, record))

        self._update(change)
        return record, secret

    def list_keys(self, project: str) -> list[KeyRecord]:
        """The keys of a project (hashes and dates, never the keys), oldest first."""
        return list(_existing(dict(self.table().projects), project).keys)

    def revoke_key(self, project: str, key_id: str) -> KeyRecord:
        """Revoke a key of a project: it stops authenticating at once, on every replica."""
        revoked: list[KeyRecord] = []

        def change(projects: dict[str, ProjectRecord]) -> None:
            current = _existing(projects, project)
            keys = list(current.keys)
            for position, key in enumerate(keys):
                if key.id == key_id:
                    keys[position] = key if key.revoked else replace(key, revoked_at=time.time())
                    revoked[:] = [keys[position]]
                    break
            else:
                raise InvalidArgumentError(
                    f"project {project!r} has no key {key_id!r}: see `moss keys list --project {project}`"
                )
            projects[project] = replace(current, keys=tuple(keys))

        self._update(change)
        return revoked[0]

    def _update(self, change: Callable[[dict[str, ProjectRecord]], None]) -> None:
        for _ in range(_CAS_ATTEMPTS):
            version, data = self.records.read_auth()
            projects = dict(AuthTable.from_bytes(data).projects)
            change(projects)
            try:
                self.records.write_auth(AuthTable(projects).to_bytes(), expected_version=version)
                return
            except ConflictError:
                continue  # another admin wrote meanwhile: apply the change to theirs
        raise ConflictError(
            f"the projects-and-keys record kept changing during {_CAS_ATTEMPTS} attempts: try again"
        )


def _existing(projects: Mapping[str, ProjectRecord], project: str) -> ProjectRecord:
    validate_name(project, what="project id")
    record = projects.get(project)
    if record is None:
        raise InvalidArgumentError(
            f"project {project!r} does not exist: create it with `moss projects create {project}`"
        )
    return record


def parse_env_keys(value: str) -> dict[str, list[str]]:
    """Parse ``MOSS_SERVER_KEYS`` (``project:key,project:key``) into keys per project.

    Each entry splits at its last ``:`` (keys contain none). Project ids cannot contain ``:``
    (HTTP Basic could never send them): such an entry is refused with a message saying so.
    """
    keys: dict[str, list[str]] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        project, sep, key = entry.rpartition(":")
        if not sep or not project:
            raise InvalidArgumentError(
                "MOSS_SERVER_KEYS entries must look like project:key, separated by commas"
            )
        validate_project_id(project, what="project id in MOSS_SERVER_KEYS")
        if len(key) < MIN_KEY_LENGTH:
            raise InvalidArgumentError(
                f"the key for project {project!r} in MOSS_SERVER_KEYS is shorter than "
                f"{MIN_KEY_LENGTH} characters: generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        keys.setdefault(project, []).append(key)
    return keys


def env_table(keys: Mapping[str, Iterable[str]]) -> AuthTable:
    """An :class:`AuthTable` of keys given by the environment (held in memory, hashed)."""
    now = time.time()
    return AuthTable(
        {
            project: ProjectRecord(
                project,
                now,
                tuple(
                    KeyRecord(id=f"env-{n}", sha256=hash_key(key), created_at=now)
                    for n, key in enumerate(project_keys)
                ),
            )
            for project, project_keys in keys.items()
        }
    )
