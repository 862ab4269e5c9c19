"""The documents section of a snapshot: columnar JSON, encoded and checked.

Internal to :mod:`moss.snapshot`. The section is one JSON object of three parallel lists,
``{"ids": [...], "texts": [...], "metadata": [...]}``, so a reader decodes it with one
``orjson.loads`` and checks each column with a fast whole-column pass.

The optional ``documents_index`` section gives the byte range of the ids list and of every text
and metadata value inside that JSON. With it, a reader parses only the ids when opening and
keeps texts and metadata as :class:`LazyColumn` views of the raw bytes: a value is decoded when
it is read (a query decodes its ten results), a whole column when it is scanned (a filter, a
write, a push). Measured at 100k documents: opening skips ~100 ms of parsing, and the session
holds the ~10 MB section instead of ~40 MB of Python strings and dicts.

With the ``ids_index`` section too (:mod:`moss.snapshot.ids_index`), the ids stay a lazy column
as well, and rows are found through its table of id hashes: no id is parsed at open, and a
process holds no copy of them (~200 MB of strings and dict entries per million ids before).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
import orjson

from ..errors import InvalidArgumentError, SnapshotError
from ..index.columns import LazyColumn
from ..index.gc_pause import gc_paused
from ..index.id_table import IdColumn
from ..validation import MAX_ID_BYTES, MAX_TEXT_BYTES
from .ids_index import encode_ids_index, parse_ids_index

Metadata = dict[str, Any] | None
COLUMNS = ("ids", "texts", "metadata")
INDEX_SECTION = "documents_index"
_METADATA_TYPES = {dict, type(None)}
_T = TypeVar("_T")


def encode_documents(
    count: int,
    ids: Sequence[str],
    texts: Sequence[str],
    metadata: Sequence[Metadata],
    *,
    indexed: bool = True,
) -> tuple[bytes, bytes, bytes]:
    """Return the documents section, its index section and the ids index section (both empty
    for no documents, or without ``indexed``); raise :class:`InvalidArgumentError` if a reader
    would not accept them."""
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
        ids_json = orjson.dumps(columns["ids"])
        texts_json = orjson.dumps(columns["texts"])
        metadata_json = orjson.dumps(columns["metadata"])
    except orjson.JSONEncodeError as exc:
        raise InvalidArgumentError(f"documents cannot be encoded as JSON: {exc}") from exc
    head = b'{"ids":' + ids_json + b',"texts":'
    middle = b',"metadata":'
    raw = head + texts_json + middle + metadata_json + b"}"
    if count == 0 or not indexed:
        return raw, b"", b""
    # bounds[i] is where value i starts; value i ends one byte (its "," or "]") before bounds[i+1].
    text_bounds = array_bounds(texts_json, count) + np.uint64(len(head))
    metadata_start = len(head) + len(texts_json) + len(middle)
    metadata_bounds = array_bounds(metadata_json, count) + np.uint64(metadata_start)
    ids_range = np.array([len(b'{"ids":'), len(b'{"ids":') + len(ids_json)], dtype="<u8")
    index = np.concatenate([ids_range, text_bounds, metadata_bounds]).astype("<u8")
    id_bounds = array_bounds(ids_json, count)
    ids_index = encode_ids_index(ids_json, id_bounds, len(b'{"ids":'), columns["ids"])
    return raw, index.tobytes(), ids_index


_QUOTE, _BACKSLASH, _COMMA = ord('"'), ord("\\"), ord(",")
_OPENERS, _CLOSERS = (ord("["), ord("{")), (ord("]"), ord("}"))


def array_bounds(array_json: bytes, count: int) -> npt.NDArray[np.uint64]:
    """Where each element of a compact JSON array starts, plus one past its closing ``]``.

    Found by scanning the bytes with numpy (strings masked out, nesting depth by cumulative
    sums) instead of encoding every value on its own: one pass over ~10 MB costs a few ms where
    100k separate ``orjson.dumps`` calls cost ~0.2 s.
    """
    data = np.frombuffer(array_json, dtype=np.uint8)
    quotes = np.flatnonzero(data == _QUOTE)
    escaped = quotes[(quotes > 0) & (data[np.maximum(quotes - 1, 0)] == _BACKSLASH)]
    if len(escaped):  # rare: a quote after backslashes is escaped if their run is odd
        odd = [q for q in escaped.tolist() if _backslash_run(array_json, q) % 2 == 1]
        quotes = np.setdiff1d(quotes, np.asarray(odd, dtype=quotes.dtype), assume_unique=True)
    toggles = np.zeros(len(data) + 1, dtype=np.int8)
    toggles[quotes] = 1
    in_string = (np.cumsum(toggles[:-1], dtype=np.int64) & 1).astype(bool)  # quote bytes too
    structural = ~in_string
    opens = ((data == _OPENERS[0]) | (data == _OPENERS[1])) & structural
    closes = ((data == _CLOSERS[0]) | (data == _CLOSERS[1])) & structural
    depth = np.cumsum(opens.view(np.int8), dtype=np.int32) - np.cumsum(
        closes.view(np.int8), dtype=np.int32
    )
    separators = np.flatnonzero((data == _COMMA) & structural & (depth == 1))
    if len(separators) != count - 1:
        raise InvalidArgumentError(  # cannot happen for orjson output; checked, not assumed
            f"documents JSON holds {len(separators) + 1} values where {count} were expected"
        )
    bounds = np.empty(count + 1, dtype=np.uint64)
    bounds[0] = 1
    bounds[1:count] = separators + 1
    bounds[count] = len(data)
    return bounds


def _backslash_run(data: bytes, quote: int) -> int:
    run = 0
    while quote - run - 1 >= 0 and data[quote - run - 1] == _BACKSLASH:
        run += 1
    return run


def parse_documents(
    raw: bytes | bytearray, count: int
) -> tuple[list[str], list[str], list[Metadata]]:
    """Decode and check the documents section of a snapshot of ``count`` documents."""
    with gc_paused():
        try:
            columns = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise SnapshotError(f"snapshot documents section is not valid JSON: {exc}") from exc
    if not isinstance(columns, dict):
        raise SnapshotError("snapshot documents section is not a JSON object")
    ids, texts, metadata = (_column(columns, name, count) for name in COLUMNS)
    check_documents(ids, texts, metadata)
    return ids, texts, metadata


def parse_indexed_documents(
    raw: bytes | memoryview,
    index: bytes | memoryview,
    count: int,
    ids_index: bytes | memoryview | None = None,
) -> tuple[list[str] | IdColumn, LazyColumn[str], LazyColumn[Metadata]]:
    """Decode only the ids; texts and metadata stay lazy views of ``raw`` (a memoryview of a
    mapped file stays one: the documents are then shared by the processes that map it). With
    the ``ids_index`` section, the ids stay a lazy view too, with the table that finds rows.

    Every range of the index is checked against the section's bytes before use: each value is
    followed by its separator, and the lists open and close where the index says. A value that
    does not decode to its column's type raises :class:`SnapshotError` when it is read.
    """
    # Signed views of the offsets (no copy): one past 2**63 reads as negative and is refused.
    bounds = np.frombuffer(index, dtype="<i8")
    if len(bounds) != 2 + 2 * (count + 1):
        raise SnapshotError(
            f"snapshot documents index holds {len(bounds)} offsets; {count} documents need "
            f"{2 + 2 * (count + 1)}: the data is corrupt"
        )
    if count == 0 or int(bounds.max()) > len(raw) or int(bounds.min()) < 0:
        raise SnapshotError(
            "snapshot documents index points outside its section: the data is corrupt"
        )
    data = np.frombuffer(raw, dtype=np.uint8)
    ids_start, ids_end = int(bounds[0]), int(bounds[1])
    text_bounds = bounds[2 : count + 3]
    metadata_bounds = bounds[count + 3 :]
    for column in (text_bounds, metadata_bounds):
        _check_bounds(data, column)
    if not ids_start < ids_end <= text_bounds[0]:
        raise SnapshotError(
            "snapshot documents index has an invalid ids range: the data is corrupt"
        )
    # LazyColumn only slices ``raw`` and hands the slices to orjson: a memoryview serves as bytes.
    view = cast(bytes, raw)
    texts = LazyColumn[str](view, text_bounds, _text)
    metadata = LazyColumn[Metadata](view, metadata_bounds, _metadata)
    if ids_index is not None:
        return (
            parse_ids_index(raw, ids_index, count, (ids_start, ids_end), check_ids),
            texts,
            metadata,
        )
    with gc_paused():
        try:
            ids = orjson.loads(raw[ids_start:ids_end])
        except orjson.JSONDecodeError as exc:
            raise SnapshotError(f"snapshot document ids are not valid JSON: {exc}") from exc
    if not isinstance(ids, list) or len(ids) != count:
        raise SnapshotError(f"snapshot documents 'ids' must be a list of {count} entries")
    check_ids(ids)
    return ids, texts, metadata


def _check_bounds(data: npt.NDArray[np.uint8], bounds: npt.NDArray[np.int64]) -> None:
    """Values are non-empty, each followed by "," (the last by "]"), the list opened by "["."""
    if np.any(np.diff(bounds) < 2) or bounds[0] < 1:
        raise SnapshotError("snapshot documents index has overlapping values: the data is corrupt")
    separators = data[bounds[1:] - 1]
    if (
        data[bounds[0] - 1] != ord("[")
        or separators[-1] != ord("]")
        or np.any(separators[:-1] != ord(","))
    ):
        raise SnapshotError(
            "snapshot documents index does not match its section: the data is corrupt"
        )


def _text(values: list[Any]) -> None:
    if not set(map(type, values)) <= {str}:
        bad = next(t for t in values if type(t) is not str)
        raise SnapshotError(f"snapshot document texts must be strings, got {type(bad).__name__}")
    _check_sizes(values, MAX_TEXT_BYTES, "document text")


def _metadata(values: list[Any]) -> None:
    if not set(map(type, values)) <= _METADATA_TYPES:
        bad = next(m for m in values if m is not None and type(m) is not dict)
        raise SnapshotError(
            f"snapshot document metadata must be a JSON object or null, got {type(bad).__name__}"
        )


def _column(columns: dict[str, Any], name: str, count: int) -> list[Any]:
    column = columns.get(name)
    if not isinstance(column, list) or len(column) != count:
        raise SnapshotError(f"snapshot documents {name!r} must be a list of {count} entries")
    return column


def check_documents(ids: list[Any], texts: list[Any], metadata: list[Any]) -> None:
    """Check the columns hold what a session can load; shared by the writer and the reader."""
    check_ids(ids)
    _text(texts)
    _metadata(metadata)


def check_ids(ids: list[Any]) -> None:
    """Ids are unique non-empty strings within the size limit."""
    # Whole-column passes in C first (set of types); locate the culprit only when one fails.
    if not set(map(type, ids)) <= {str} or not all(ids):
        bad = next(i for i in ids if type(i) is not str or not i)
        raise SnapshotError(f"snapshot document id {bad!r} is not a non-empty string")
    _check_sizes(ids, MAX_ID_BYTES, "document id")
    if len(set(ids)) != len(ids):
        raise SnapshotError(f"snapshot document id {_first_duplicate(ids)!r} occurs more than once")


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
