"""The exceptions moss raises.

Every error derives from :class:`MossError`; errors of dependencies (faiss, httpx, psycopg,
onnxruntime, the file system) are translated at the boundary and never leak::

    MossError
    ├── InvalidArgumentError     a bad name, id, text, metadata, vector, filter or option
    ├── ModelMismatchError       opening an index with another embedding model than it was built with
    ├── IndexNotFoundError       the named index (or version) does not exist in the store
    ├── SnapshotError            stored bytes are not a valid snapshot (truncated, corrupt, unknown)
    ├── ConflictError            push_index(expected_version=N) found another version stored
    ├── AuthenticationError      the project id or key is missing, wrong or revoked
    └── ServiceUnavailableError  the store cannot be reached or failed on its side
"""

from __future__ import annotations


class MossError(Exception):
    """Base class of every error moss raises."""


class InvalidArgumentError(MossError, ValueError):
    """An argument is malformed: a name, id, text, metadata, vector, filter or option."""


class ModelMismatchError(MossError):
    """The index was built with another embedding model (id or artifact) than the one given."""


class IndexNotFoundError(MossError, LookupError):
    """The named index, or the requested version of it, does not exist."""


class SnapshotError(MossError):
    """Stored bytes are not a valid snapshot: truncated, corrupted, or of an unknown format."""


class ConflictError(MossError):
    """A conditional push found a different version stored than the one expected."""

    def __init__(self, message: str, *, expected: int | None = None, actual: int | None = None):
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class AuthenticationError(MossError):
    """The project id or key was missing, wrong or revoked."""


class ServiceUnavailableError(MossError):
    """The store could not be reached, or it failed on its side; retrying may help."""
