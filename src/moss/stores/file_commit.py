"""What the file store does under an index's writer lock: publish a version, prune, purge.

Every function here runs with :func:`moss.stores.file_layout.locked` held (the lock serialises
puts, prunes and deletes across threads and processes), so the latest version read at the start
is still the latest when the new one is renamed into place: compare-and-swap and appends need
no retries.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..atomic_files import fsync_dir
from ..errors import ConflictError, IndexNotFoundError, SnapshotError
from ..snapshot.codec import SnapshotHeader, read_header
from . import file_layout as layout
from .chain import Entry, check_model, pruned


def publish(
    directory: Path,
    name: str,
    header: SnapshotHeader,
    temp_path: Path,
    *,
    expected_version: int | None,
    append: bool,
    ttl: float | None,
    keep: int,
) -> int:
    """Rename the upload (complete, flushed and fsync'ed) into place as the next version;
    return its number."""
    purge_if_expired(directory)  # an expired index counts as absent
    kept = layout.kept_kinds(directory)
    current = kept[-1][0] if kept else 0
    if append and not current:
        raise IndexNotFoundError(
            f"index {name!r} does not exist (or expired): a delta can only be appended to an "
            "existing index; push a full snapshot first"
        )
    if expected_version is not None and current != expected_version:
        raise ConflictError(
            f"index {name!r} is at version {current}, not the expected {expected_version}: "
            "reload it (client.session or session.refresh) and push again",
            expected=expected_version,
            actual=current,
        )
    if header.kind == "delta":
        latest = _latest_header(directory, name, current)
        check_model(name, header, latest.model_id, latest.model_artifact, latest.dimension)
    version = max(current, layout.read_counter(directory)) + 1
    # Before the version appears: whoever sees the new version also sees its expiry.
    layout.set_expiry(directory, ttl)
    # No counter write: the newest version file is never pruned, so the listing holds the
    # highest number until a delete or expiry removes them all, which writes the counter first
    # (two fsyncs fewer per put).
    # The upload was flushed and fsync'ed before the lock was taken: rename it, flush the entry.
    os.rename(temp_path, directory / layout.version_file(version, header.kind))
    fsync_dir(directory)
    sizes = [Entry(number, kind, 0) for number, kind in kept]
    prune(directory, [*sizes, Entry(version, header.kind, 0)], keep)
    return version


def _latest_header(directory: Path, name: str, version: int) -> SnapshotHeader:
    try:
        with layout.open_version(directory, version) as handle:
            return read_header(handle)
    except SnapshotError as exc:
        raise SnapshotError(
            f"stored version {version} of index {name!r} is unreadable: {exc}"
        ) from exc


def prune(directory: Path, entries: list[Entry], keep: int) -> None:
    """Remove what retention drops (:func:`moss.stores.chain.pruned`)."""
    # A reader that already opened an old version keeps reading it: unlinking an open file
    # on POSIX frees it only when the last handle closes.
    kinds = {entry.version: entry.kind for entry in entries}
    for version in pruned(entries, keep):
        with contextlib.suppress(FileNotFoundError):
            (directory / layout.version_file(version, kinds[version])).unlink()


def purge_if_expired(directory: Path) -> None:
    """Remove an expired index's versions (checked under the lock: a put may have renewed it)."""
    if layout.expired(directory):
        remove_versions(directory)


def remove_versions(directory: Path) -> bool:
    """Remove every kept version and the expiry; keep the counter so numbers are never reused.
    Return whether there was a version."""
    kept = layout.kept_kinds(directory)
    if kept:
        layout.write_counter(directory, max(kept[-1][0], layout.read_counter(directory)))
    for version, kind in kept:
        with contextlib.suppress(FileNotFoundError):
            (directory / layout.version_file(version, kind)).unlink()
    layout.set_expiry(directory, None)
    return bool(kept)
