"""The keyword index: BM25 over documents' text, updated in place by upsert and delete.

Why not bm25s: it builds a static index (any add or delete means rebuilding it) and brings
scipy; a session changes one document at a time. This index is numpy only:

- Every indexed document gets a *slot* (a row number that never moves until compaction).
  Deleting a document only clears its ``alive`` flag; an upsert deletes and re-adds.
- Postings (term -> slots and term frequencies) live in compressed-sparse segments, one new
  segment per written batch. Segments merge like a binary counter (log-structured, as Lucene
  does), so there are O(log n) of them and a write costs O(batch log n) amortised. Once half
  the slots are dead, everything merges and live slots are renumbered.
- Corpus statistics are exact at query time: document frequency is counted over the live slots
  of each query term's postings, the average length from a running total. So the scores of an
  index that went through any sequence of writes are *identical* to those of one built from
  scratch over the same documents (the tests check this with hypothesis).

Scoring is Okapi BM25 with Lucene's idf ``log(1 + (N - df + 0.5) / (df + 0.5))`` (never
negative), ``k1 = 1.2``, ``b = 0.75``, each distinct query term counted once.

Thread safety: one lock guards all state; a search sees a write entirely or not at all.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .analyzer import STOP, TermIds
from .filters import Filter

__all__ = ["KeywordIndex"]

K1 = 1.2
B = 0.75
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

# Segments merge like a binary counter: the newest merges into the one before while that one is
# at most this many times bigger, so there are O(log n) segments and each posting is re-sorted
# O(log n) times over its life.
_MERGE_RATIO = 4
# Slots are packed (dead ones dropped and the rest renumbered) once dead slots are at least
# this fraction of all slots.
_DEAD_FRACTION = 0.5
_MIN_PACK = 1_000


@dataclass(frozen=True)
class _Segment:
    """Postings of the terms it holds: ``terms[i]`` owns ``slots[offsets[i]:offsets[i + 1]]``.

    Terms are listed sparsely (sorted ids) rather than as one offset per vocabulary term, so a
    small segment costs its own size, not the vocabulary's.
    """

    terms: Ints
    offsets: Ints
    slots: Ints
    freqs: Ints

    @classmethod
    def build(cls, terms: Ints, slots: Ints, freqs: Ints) -> _Segment:
        """From postings ordered by slot: a stable sort by term keeps each term's slots ascending."""
        order = np.argsort(terms, kind="stable")
        terms = terms[order]
        starts = np.flatnonzero(np.diff(terms, prepend=-1))
        offsets = np.append(starts, len(terms)).astype(np.int64)
        return cls(terms[starts], offsets, slots[order], freqs[order])

    @classmethod
    def empty(cls) -> _Segment:
        none = np.zeros(0, dtype=np.int64)
        return cls(none, np.zeros(1, dtype=np.int64), none, none)

    def __len__(self) -> int:
        return len(self.slots)

    def postings(self, term: int) -> tuple[Ints, Ints]:
        i = int(np.searchsorted(self.terms, term))
        if i == len(self.terms) or self.terms[i] != term:
            return self.slots[:0], self.freqs[:0]
        start, end = self.offsets[i], self.offsets[i + 1]
        return self.slots[start:end], self.freqs[start:end]

    def triples(self) -> tuple[Ints, Ints, Ints]:
        return np.repeat(self.terms, np.diff(self.offsets)), self.slots, self.freqs


class KeywordIndex:
    """BM25 keyword search over documents' text, kept current by upsert and delete.

    Metadata dicts are held (not copied) so filters can be applied before ranking.

    >>> index = KeywordIndex()
    >>> index.upsert(["a", "b"], ["refund for order ORD-1234", "shipping delay"], [None, None])
    >>> [doc_id for doc_id, _ in index.search("ORD-1234", 5)]
    ['a']
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._term_ids = TermIds()
        # Oldest first; a segment's slots are all smaller than the next one's.
        self._segments: list[_Segment] = []
        # Per slot: id, metadata, length in terms, alive flag (the arrays grow by doubling).
        self._ids: list[str | None] = []
        self._metadata: list[dict[str, Any] | None] = []
        self._lengths = np.zeros(0, dtype=np.int64)
        self._alive = np.zeros(0, dtype=bool)
        self._slot_of: dict[str, int] = {}
        self._total_length = 0

    @classmethod
    def build(
        cls, ids: Sequence[str], texts: Sequence[str], metadata: Sequence[dict[str, Any] | None]
    ) -> KeywordIndex:
        """An index over these documents."""
        index = cls()
        index.upsert(ids, texts, metadata)
        return index

    def __len__(self) -> int:
        return len(self._slot_of)

    # --- writes ---------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadata: Sequence[dict[str, Any] | None],
    ) -> None:
        """Index documents, replacing those with the same ids (the last of a repeated id wins)."""
        last = {doc_id: i for i, doc_id in enumerate(ids)}
        batch = list(last.values()) if len(last) < len(ids) else range(len(ids))
        if not batch:
            return
        with self._lock:
            self._kill([doc_id for doc_id in last if doc_id in self._slot_of])
            terms, owners, lengths = self._analyze([texts[i] for i in batch])
            first = self._grow(len(batch))
            for slot, i in enumerate(batch, start=first):
                self._ids[slot] = ids[i]
                self._metadata[slot] = metadata[i]
                self._slot_of[ids[i]] = slot
            self._lengths[first : first + len(batch)] = lengths
            self._alive[first : first + len(batch)] = True
            self._total_length += int(lengths.sum())
            self._add_segment(terms, owners + first)
            self._maybe_pack()

    def delete(self, ids: Sequence[str]) -> None:
        """Remove documents by id; unknown ids are ignored."""
        with self._lock:
            self._kill([doc_id for doc_id in set(ids) if doc_id in self._slot_of])
            self._maybe_pack()

    def _maybe_pack(self) -> None:
        used = len(self._ids)
        if used >= _MIN_PACK and used - len(self._slot_of) >= _DEAD_FRACTION * used:
            self._pack()

    def _kill(self, ids: list[str]) -> None:
        if not ids:
            return
        slots = np.fromiter((self._slot_of.pop(doc_id) for doc_id in ids), np.int64, len(ids))
        self._alive[slots] = False
        self._total_length -= int(self._lengths[slots].sum())
        for slot in slots.tolist():
            self._ids[slot] = None
            self._metadata[slot] = None

    def _analyze(self, texts: list[str]) -> tuple[Ints, Ints, Ints]:
        """Term ids of all texts, the text position owning each, and each text's length."""
        of_text = self._term_ids.of_text
        per_doc = [of_text(text) for text in texts]
        counts = np.fromiter(map(len, per_doc), np.int64, len(per_doc))
        flat = np.fromiter(itertools.chain.from_iterable(per_doc), np.int64, int(counts.sum()))
        owners = np.repeat(np.arange(len(texts), dtype=np.int64), counts)
        keep = flat != STOP
        flat, owners = flat[keep], owners[keep]
        lengths = np.bincount(owners, minlength=len(texts))
        return flat, owners, lengths

    def _grow(self, count: int) -> int:
        """Reserve ``count`` new slots; return the first."""
        first = len(self._ids)
        needed = first + count
        if needed > len(self._alive):
            capacity = max(needed, 2 * len(self._alive), 64)
            alive = np.zeros(capacity, dtype=bool)
            alive[:first] = self._alive[:first]
            lengths = np.zeros(capacity, dtype=np.int64)
            lengths[:first] = self._lengths[:first]
            self._alive, self._lengths = alive, lengths
        self._ids.extend([None] * count)
        self._metadata.extend([None] * count)
        return first

    def _add_segment(self, terms: Ints, slots: Ints) -> None:
        # One posting per distinct (slot, term) with its count: unique over a combined key,
        # which also sorts by slot, so the stable sort by term keeps slots ascending.
        vocabulary = len(self._term_ids.terms)
        keys, freqs = np.unique(slots * vocabulary + terms, return_counts=True)
        segments = self._segments
        segments.append(
            _Segment.build(keys % vocabulary, keys // vocabulary, freqs.astype(np.int64))
        )
        while len(segments) > 1 and len(segments[-2]) <= _MERGE_RATIO * len(segments[-1]):
            newer = segments.pop()
            segments[-1] = self._merged([segments[-1], newer])

    def _merged(self, segments: list[_Segment]) -> _Segment:
        """One segment holding the live postings of ``segments`` (oldest first)."""
        parts = [segment.triples() for segment in segments]
        terms, slots, freqs = (np.concatenate(column) for column in zip(*parts, strict=True))
        live = self._alive[slots]
        return _Segment.build(terms[live], slots[live], freqs[live])

    def _pack(self) -> None:
        """Drop dead slots: merge every segment and renumber the live slots from 0, in order."""
        used = len(self._ids)
        alive = self._alive[:used]
        merged = self._merged(self._segments) if self._segments else _Segment.empty()
        renumber = np.cumsum(alive) - 1  # old slot -> new slot, for live slots
        self._segments = [
            _Segment(merged.terms, merged.offsets, renumber[merged.slots], merged.freqs)
        ]
        kept = np.flatnonzero(alive).tolist()
        self._ids = [self._ids[slot] for slot in kept]
        self._metadata = [self._metadata[slot] for slot in kept]
        self._lengths = self._lengths[:used][alive].copy()
        self._alive = np.ones(len(kept), dtype=bool)
        self._slot_of = {str(doc_id): slot for slot, doc_id in enumerate(self._ids)}

    # --- reads ----------------------------------------------------------------------------

    def search(
        self, text: str, top_k: int, predicate: Filter | None = None
    ) -> list[tuple[str, float]]:
        """The ``top_k`` best (id, BM25 score) pairs for ``text``, best first, ties by id.

        ``predicate`` restricts the candidates before ranking. Documents sharing no term with
        the query are never returned.
        """
        with self._lock:
            slots, scores = self._score(text)
            if predicate is not None and len(slots):
                keep = predicate.mask(self._metadata)[slots]
                slots, scores = slots[keep], scores[keep]
            if len(scores) > top_k:
                # Keep every score tied with the k-th, so ties at the cut are decided by id.
                kth = np.partition(scores, len(scores) - top_k)[len(scores) - top_k]
                best = np.flatnonzero(scores >= kth)
                slots, scores = slots[best], scores[best]
            ids = self._ids
            ranked = sorted(
                zip(scores.tolist(), slots.tolist(), strict=True),
                key=lambda pair: (-pair[0], ids[pair[1]]),
            )
            return [(str(ids[slot]), score) for score, slot in ranked[:top_k]]

    def scores(self, text: str) -> dict[str, float]:
        """The BM25 score of every document sharing a term with ``text``."""
        with self._lock:
            slots, scores = self._score(text)
            return {
                str(self._ids[s]): v for s, v in zip(slots.tolist(), scores.tolist(), strict=True)
            }

    def _score(self, text: str) -> tuple[Ints, Floats]:
        """Slots with a positive score, ascending, and their scores."""
        count = len(self._slot_of)
        terms = self._term_ids.known(text)
        if not count or not terms:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        average = self._total_length / count
        hit_slots, hit_scores = [], []
        for term in terms:
            slots, freqs = self._postings(term)
            live = self._alive[slots]
            slots, freqs = slots[live], freqs[live]
            if not len(slots):
                continue
            df = len(slots)
            idf = np.log(1.0 + (count - df + 0.5) / (df + 0.5))
            norm = K1 * (1.0 - B + B * self._lengths[slots] / average)
            hit_slots.append(slots)
            hit_scores.append(idf * freqs * (K1 + 1.0) / (freqs + norm))
        if not hit_slots:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        slots = np.concatenate(hit_slots)
        # Sum per slot; bincount adds in array order, i.e. term by term, like a fresh index.
        totals = np.bincount(slots, weights=np.concatenate(hit_scores))
        hit: Ints = np.flatnonzero(totals).astype(np.int64, copy=False)
        scores: Floats = np.asarray(totals[hit], dtype=np.float64)
        return hit, scores

    def _postings(self, term: int) -> tuple[Ints, Ints]:
        pairs = [segment.postings(term) for segment in self._segments]
        if len(pairs) == 1:
            return pairs[0]
        return (
            np.concatenate([slots for slots, _ in pairs]),
            np.concatenate([freqs for _, freqs in pairs]),
        )
