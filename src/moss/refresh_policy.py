"""How sessions retry merge pushes and follow an index in the background."""

from __future__ import annotations

import logging
import random

from .errors import ConflictError

#: A merge push retries on conflict, replaying local changes onto each newer version.
MERGE_ATTEMPTS = 20
#: How long one watch request waits before asking again (also bounds how late close() is seen).
WATCH_TIMEOUT = 10.0

logger = logging.getLogger("moss")


def merge_backoff(attempt: int) -> float:
    """Seconds to wait before merge attempt ``attempt``: random, so racing writers spread out."""
    return random.uniform(0, 0.01 * attempt)


def gave_up(name: str) -> ConflictError:
    """The error of a merge push that met a newer version on every attempt."""
    return ConflictError(
        f"index {name!r} kept changing: {MERGE_ATTEMPTS} merge attempts all met a newer "
        "version; push again later"
    )
