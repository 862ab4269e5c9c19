"""The documents section of a snapshot: columnar JSON, encoded and checked.

Internal to :mod:`moss.snapshot`. The section is one JSON object of three parallel lists,
``{"ids": [...], "texts": [...], "metadata": [...]}``, so a reader decodes it with one
``orjson.loads`` and checks each column with a fast whole-column pass.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson

from .errors import InvalidArgumentError, SnapshotError
from .validation import MAX_ID_BYTES, MAX_TEXT_BYTES

Metadata = dict[str, Any] | None
COLUMNS = ("ids", "texts", "metadata")
_METADATA_TYPES = {dict, type(None)}


def encode_documents(
    count: int, ids: Sequence[str], texts: Sequence[str], metadata: Sequence[Metadata]
) -> bytes:
    """Return the documents section; raise :class:`InvalidArgumentError` if a reader would not
    accept it."""
    columns: dict[str, list[Any]] = {
        "ids": list(ids),
        "texts": list(texts),
        "metadata": list(metadata),
    }
    for name, column in columns.items():
        if len(column) != count:
            raise InvalidArgumentError(
                f"{count} vectors but {len(column)} {name}: pass one per vector"
            )
    try:
        check_documents(columns["ids"], columns["texts"], columns["metadata"])
    except SnapshotError as exc:
        raise InvalidArgumentError(str(exc).replace("snapshot ", "", 1)) from None
    try:
        return orjson.dumps(columns)
    except orjson.JSONEncodeError as exc:
        raise InvalidArgumentError(f"documents cannot be encoded as JSON: {exc}") from exc


def parse_documents(
    raw: bytes | bytearray, count: int
) -> tuple[list[str], list[str], list[Metadata]]:
    """Decode and check the documents section of a snapshot of ``count`` documents."""
    with _gc_paused():
        try:
            columns = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise SnapshotError(f"snapshot documents section is not valid JSON: {exc}") from exc
    if not isinstance(columns, dict):
        raise SnapshotError("snapshot documents section is not a JSON object")
    ids, texts, metadata = (_column(columns, name, count) for name in COLUMNS)
    check_documents(ids, texts, metadata)
    return ids, texts, metadata


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large JSON tree is built.

    Creating ~100k metadata dicts triggers repeated collections that each walk every live object
    of the process: pausing them makes the parse 2-3x faster (measured: 174 ms -> 74 ms at 100k).
    A JSON tree has no cycles, so nothing is left for the collector to find afterwards. Re-enabled
    only if it was enabled, so nested or concurrent pauses always end with the collector on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _column(columns: dict[str, Any], name: str, count: int) -> list[Any]:
    column = columns.get(name)
    if not isinstance(column, list) or len(column) != count:
        raise SnapshotError(f"snapshot documents {name!r} must be a list of {count} entries")
    return column


def check_documents(ids: list[Any], texts: list[Any], metadata: list[Any]) -> None:
    """Check the columns hold what a session can load; shared by the writer and the reader."""
    # Whole-column passes in C first (set of types); locate the culprit only when one fails.
    if not set(map(type, ids)) <= {str} or not all(ids):
        bad = next(i for i in ids if type(i) is not str or not i)
        raise SnapshotError(f"snapshot document id {bad!r} is not a non-empty string")
    _check_sizes(ids, MAX_ID_BYTES, "document id")
    if len(set(ids)) != len(ids):
        raise SnapshotError(f"snapshot document id {_first_duplicate(ids)!r} occurs more than once")
    if not set(map(type, texts)) <= {str}:
        bad = next(t for t in texts if type(t) is not str)
        raise SnapshotError(f"snapshot document texts must be strings, got {type(bad).__name__}")
    _check_sizes(texts, MAX_TEXT_BYTES, "document text")
    if not set(map(type, metadata)) <= _METADATA_TYPES:
        bad = next(m for m in metadata if m is not None and type(m) is not dict)
        raise SnapshotError(
            f"snapshot document metadata must be a JSON object or null, got {type(bad).__name__}"
        )


def _check_sizes(values: list[str], limit: int, what: str) -> None:
    chars = limit // 4  # a str of n characters takes at most 4n bytes in UTF-8: skip the encode
    if not values or max(map(len, values)) <= chars:
        return
    for value in values:
        if len(value) > chars and len(value.encode("utf-8", "surrogatepass")) > limit:
            raise SnapshotError(f"snapshot {what} {value[:40]!r}... exceeds {limit} bytes")


def _first_duplicate(ids: list[str]) -> str:
    seen: set[str] = set()
    for doc_id in ids:
        if doc_id in seen:
            return doc_id
        seen.add(doc_id)
    return ""  # unreachable: called only once len(set(ids)) != len(ids)
