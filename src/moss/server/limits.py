"""The service's limits and timeouts, and the upload slots that keep slow clients from
exhausting it.

Every limit has a default here, a ``create_app`` argument and an environment variable
(``docs/deployment.md`` lists them all). Uploads take a slot for as long as their body streams:
a project past its share gets 429, the server past its total gets 503, both with ``Retry-After``
and ``Connection: close`` so a refused client's socket is not kept either.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields

from ..errors import InvalidArgumentError

#: Seconds an upload may send nothing before it is dropped (and its temp file removed).
DEFAULT_UPLOAD_IDLE_SECONDS = 30.0
#: Seconds a download may accept nothing before it is dropped (and its file closed).
DEFAULT_DOWNLOAD_STALL_SECONDS = 30.0
#: Uploads streaming at once, per project and in total.
DEFAULT_MAX_UPLOADS_PER_PROJECT = 32
DEFAULT_MAX_UPLOADS = 128
#: What a refused upload is told to wait before trying again.
RETRY_AFTER_SECONDS = 5

#: Environment variable of each setting (read by ``create_app`` when an argument is not given).
ENV = {
    "upload_idle_seconds": "MOSS_SERVE_UPLOAD_IDLE_SECONDS",
    "download_stall_seconds": "MOSS_SERVE_DOWNLOAD_STALL_SECONDS",
    "max_uploads_per_project": "MOSS_SERVE_MAX_UPLOADS_PER_PROJECT",
    "max_uploads": "MOSS_SERVE_MAX_UPLOADS",
}


class Refusal(Exception):
    """An answer the server gives on its own account (busy, too slow), not a moss error."""

    def __init__(
        self, status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.headers = {"Connection": "close", **(headers or {})}


@dataclass(frozen=True)
class Limits:
    """Timeouts (seconds) and concurrency caps of one server."""

    upload_idle_seconds: float = DEFAULT_UPLOAD_IDLE_SECONDS
    download_stall_seconds: float = DEFAULT_DOWNLOAD_STALL_SECONDS
    max_uploads_per_project: int = DEFAULT_MAX_UPLOADS_PER_PROJECT
    max_uploads: int = DEFAULT_MAX_UPLOADS

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, bool) or not (isinstance(value, (int, float))):
                raise InvalidArgumentError(f"{spec.name} must be a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise InvalidArgumentError(f"{spec.name} must be positive, got {value!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """Defaults, overridden by the ``MOSS_SERVE_*`` variables that are set."""
        environ = os.environ if environ is None else environ
        values: dict[str, float | int] = {}
        for spec in fields(cls):
            raw = environ.get(ENV[spec.name], "").strip()
            if not raw:
                continue
            kind = int if spec.type in ("int", int) else float
            try:
                values[spec.name] = kind(raw)
            except ValueError:
                raise InvalidArgumentError(
                    f"{ENV[spec.name]}={raw!r} is not a {kind.__name__}"
                ) from None
        return cls(**values)  # type: ignore[arg-type]


class UploadSlots:
    """Counts uploads in flight, per project and in total; refuses past the caps."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._per_project: dict[str, int] = {}
        self._total = 0

    @contextlib.contextmanager
    def take(self, project: str) -> Iterator[None]:
        """Hold a slot for the duration of one upload, or raise :class:`Refusal`."""
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if self._total >= self._limits.max_uploads:
            raise Refusal(
                503,
                "service_unavailable",
                f"the server is receiving {self._total} uploads, its limit: retry in a moment",
                retry,
            )
        mine = self._per_project.get(project, 0)
        if mine >= self._limits.max_uploads_per_project:
            raise Refusal(
                429,
                "service_unavailable",
                f"this project has {mine} uploads in progress, the server's limit per project: "
                "wait for them to finish, then retry",
                retry,
            )
        self._per_project[project] = mine + 1
        self._total += 1
        try:
            yield
        finally:
            self._total -= 1
            left = self._per_project[project] - 1
            if left:
                self._per_project[project] = left
            else:
                del self._per_project[project]
