"""The keyword index as bytes, for an optional snapshot section: open without re-tokenising.

Layout (little-endian; every array 8-byte aligned from the section start; the normative spec is
the ``keywords`` section in ``docs/snapshot-format.md``)::

    magic       8 bytes  b"MOSSKW1\\0"
    counts      4 x u64  documents, vocabulary JSON bytes, terms with postings, postings
    vocabulary  JSON list of the terms, term id = position (padded with spaces to 8 bytes)
    lengths     i32[documents]            terms per document, in snapshot row order
    terms       i32[terms with postings]  ascending term ids
    offsets     i64[terms with postings + 1]
    slots       i32[postings]             rows, ascending within each term
    freqs       i32[postings]

Slots are the snapshot's rows, so the section carries no ids or metadata: they come from the
documents section. Decoding checks every count, offset and value before use and raises
``SnapshotError``; it never trusts a length from the bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from ..errors import SnapshotError
from ..index.analyzer import TermIds
from ..index.keyword import KeywordIndex, _Segment

__all__ = ["decode_keywords", "encode_keywords"]

MAGIC = b"MOSSKW1\x00"
_COUNTS = 4


def _pad(data: bytes) -> bytes:
    return data + b" " * (-len(data) % 8)


def encode_keywords(index: KeywordIndex, ids: Sequence[str]) -> bytes:
    """The index as a section whose slots are the positions of ``ids`` (the snapshot rows).

    ``ids`` must be exactly the indexed documents (as ``Engine.export`` lists them).
    """
    with index._lock:
        if len(ids) != len(index):
            raise ValueError(f"{len(ids)} rows for {len(index)} indexed documents")
        row_of = dict(zip(ids, range(len(ids)), strict=True))
        slot_rows = np.array([-1 if i is None else row_of[i] for i in index._ids], dtype=np.int64)
        parts = [segment.triples() for segment in index._segments] or [_Segment.empty().triples()]
        terms, slots, freqs = (np.concatenate(column) for column in zip(*parts, strict=True))
        rows = slot_rows[slots]
        live = rows >= 0
        terms, rows, freqs = terms[live], rows[live], freqs[live]
        order = np.lexsort((rows, terms))
        segment = _Segment.build(terms[order], rows[order], freqs[order])
        lengths = np.zeros(len(ids), dtype=np.int64)
        lengths[slot_rows[slot_rows >= 0]] = index._lengths[: len(slot_rows)][slot_rows >= 0]
        vocabulary = _pad(orjson.dumps(list(index._term_ids.terms)))
    counts = np.array([len(ids), len(vocabulary), len(segment.terms), len(segment)], "<u8")
    return b"".join(
        [
            MAGIC,
            counts.tobytes(),
            vocabulary,
            _pad(lengths.astype("<i4").tobytes()),
            _pad(segment.terms.astype("<i4").tobytes()),
            segment.offsets.astype("<i8").tobytes(),
            _pad(segment.slots.astype("<i4").tobytes()),
            _pad(segment.freqs.astype("<i4").tobytes()),
        ]
    )


class _Reader:
    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data).cast("B")
        self.at = 0

    def take(self, size: int, what: str) -> memoryview:
        if size < 0 or size > len(self.data) - self.at:
            raise SnapshotError(
                f"keyword section is truncated: {what} needs {size} bytes, "
                f"{len(self.data) - self.at} left; push the index again"
            )
        chunk = self.data[self.at : self.at + size]
        self.at += size + (-size % 8)
        return chunk

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        width = np.dtype(dtype).itemsize
        if count < 0 or count > (len(self.data) - self.at) // width:
            raise SnapshotError(f"keyword section is truncated in {what}; push the index again")
        return np.frombuffer(self.take(count * width, what), dtype=dtype).astype(np.int64)


def decode_keywords(
    data: bytes | memoryview, ids: Sequence[str], metadata: Sequence[dict[str, Any] | None]
) -> KeywordIndex:
    """The keyword index of a snapshot whose rows are ``ids`` / ``metadata``."""
    reader = _Reader(data)
    if bytes(reader.take(len(MAGIC), "magic")) != MAGIC:
        raise SnapshotError("keyword section has an unknown magic number; push the index again")
    docs, vocab_bytes, term_count, postings = (
        int(n) for n in np.frombuffer(reader.take(8 * _COUNTS, "counts"), "<u8")
    )
    if docs != len(ids):
        raise SnapshotError(
            f"keyword section covers {docs} documents but the snapshot holds {len(ids)}"
        )
    try:
        terms_list = orjson.loads(bytes(reader.take(vocab_bytes, "vocabulary")))
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"keyword section vocabulary is not JSON: {exc}") from None
    if not isinstance(terms_list, list) or not all(isinstance(t, str) for t in terms_list):
        raise SnapshotError("keyword section vocabulary must be a list of strings")
    vocabulary = dict(zip(terms_list, range(len(terms_list)), strict=True))
    lengths = reader.array("<i4", docs, "lengths")
    terms = reader.array("<i4", term_count, "terms")
    offsets = reader.array("<i8", term_count + 1, "offsets")
    slots = reader.array("<i4", postings, "slots")
    freqs = reader.array("<i4", postings, "freqs")
    if reader.at < len(reader.data):
        raise SnapshotError("keyword section has bytes after its postings; push the index again")
    _check(vocabulary, terms_list, lengths, terms, offsets, slots, freqs)
    return _assemble(ids, metadata, vocabulary, lengths, _Segment(terms, offsets, slots, freqs))


def _check(
    vocabulary: dict[str, int],
    terms_list: list[str],
    lengths: np.ndarray,
    terms: np.ndarray,
    offsets: np.ndarray,
    slots: np.ndarray,
    freqs: np.ndarray,
) -> None:
    """Every invariant the index relies on, so a damaged section fails here, not in a query."""
    problems = []
    if len(vocabulary) != len(terms_list):
        problems.append("repeated terms")
    if len(terms) and (terms[0] < 0 or terms[-1] >= len(terms_list) or np.any(np.diff(terms) <= 0)):
        problems.append("term ids out of range or not ascending")
    if offsets[0] != 0 or offsets[-1] != len(slots) or np.any(np.diff(offsets) <= 0):
        problems.append("bad offsets")
    if len(slots) and (slots.min() < 0 or slots.max() >= len(lengths) or freqs.min() < 1):
        problems.append("postings out of range")
    elif not np.array_equal(np.bincount(slots, weights=freqs, minlength=len(lengths)), lengths):
        problems.append("document lengths disagree with the postings")
    if problems:
        raise SnapshotError(f"keyword section is damaged ({', '.join(problems)}); push again")


def _assemble(
    ids: Sequence[str],
    metadata: Sequence[dict[str, Any] | None],
    vocabulary: dict[str, int],
    lengths: np.ndarray,
    segment: _Segment,
) -> KeywordIndex:
    index = KeywordIndex()
    index._term_ids = TermIds(vocabulary)
    index._segments = [segment]
    index._ids = list(ids)
    index._metadata = list(metadata)
    index._lengths = lengths
    index._alive = np.ones(len(ids), dtype=bool)
    index._slot_of = dict(zip(ids, range(len(ids)), strict=True))
    index._total_length = int(lengths.sum())
    return index
