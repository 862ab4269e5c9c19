"""Check an uploaded snapshot as completely as a client opening it would, before it is published.

The store checks the layout and the checksums; a snapshot can pass those and still be one no
client can open (documents that disagree with the header, duplicate ids, NaN vectors). This
checker sees every byte of the upload as it streams and decodes every section it can check:

- the header (name, dimension, count, layout) and every checksum, as the store does;
- ``vectors``: every value finite, checked piece by piece and never kept;
- ``documents`` (with ``documents_index``): JSON, counts, ids unique, texts and metadata typed;
- ``ids_index``: its id hashes and rows describe the ids (readers trust it for lookups);
- ``vectors_int8_scales``: finite and positive; ``keywords``: decodes against the ids.

Only the documents-side sections are kept until :meth:`UploadChecker.finish`; the vectors (the
bulk of a large index) pass through. It knows nothing of HTTP, so any upload path (a full
snapshot today, a delta later) can run its bytes through it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import orjson

from ..errors import ConflictError, SnapshotError
from ..index.id_table import IdColumn
from ..snapshot import DELETED_SECTION, KEYWORDS_SECTION, SnapshotHeader, SnapshotReader
from ..snapshot.documents import (
    INDEX_SECTION,
    Metadata,
    check_ids,
    parse_documents,
    parse_indexed_documents,
)
from ..snapshot.ids_index import ID_SECTION
from ..snapshot.keywords import decode_keywords
from ..stores.base import Store

#: Sections whose bytes are kept until the end (everything but the vectors, which are large).
_KEPT = (
    "documents",
    INDEX_SECTION,
    ID_SECTION,
    "vectors_int8_scales",
    KEYWORDS_SECTION,
    DELETED_SECTION,
)
#: Texts and metadata are decoded this many at a time, so checking them stays bounded.
_BATCH = 4096


class UploadChecker:
    """Feed the upload's bytes in order; :meth:`finish` raises :class:`SnapshotError` if a
    client could not open the snapshot, and returns its header otherwise."""

    def __init__(self, *, expected_name: str) -> None:
        # No size limit here: the caller checks header.total_size and answers with its own error.
        self._reader = SnapshotReader(keep_data=False, expected_name=expected_name)
        self._position = 0
        self._sections: list[tuple[str, int, int]] = []  # (name, start, end), for routing
        self._kept: dict[str, bytearray] = {}
        self._vector_tail = b""  # bytes of a float32 split across two pieces

    @property
    def header(self) -> SnapshotHeader | None:
        """The header once received and checked."""
        return self._reader.header

    def feed(self, piece: bytes | memoryview) -> None:
        """Check the next piece of the upload."""
        self._reader.feed(piece)  # layout and checksums; raises at the first bad byte
        header = self._reader.header
        start = self._position
        self._position += len(piece)
        if header is None:
            return
        if not self._sections:
            self._sections = [
                (name, info.offset, info.offset + info.length)
                for name, info in header.sections.items()
                if name == "vectors" or name in _KEPT
            ]
        view = memoryview(piece)
        for name, begin, end in self._sections:
            lo, hi = max(begin, start), min(end, self._position)
            if lo < hi:
                self._section_bytes(name, view[lo - start : hi - start])

    def _section_bytes(self, name: str, part: memoryview) -> None:
        if name != "vectors":
            self._kept.setdefault(name, bytearray()).extend(part)
            return
        data = self._vector_tail + bytes(part) if self._vector_tail else part
        usable = len(data) - len(data) % 4
        self._vector_tail = bytes(data[usable:])
        if not np.isfinite(np.frombuffer(data[:usable], dtype="<f4")).all():
            raise SnapshotError(
                "snapshot vectors contain NaN or infinite values: no client could search them; "
                "push vectors of finite numbers"
            )

    def finish(self) -> SnapshotHeader:
        """Check the upload was complete and every kept section decodes; return the header."""
        header = self._reader.finish()
        assert isinstance(header, SnapshotHeader)  # keep_data=False
        documents = bytes(self._kept.pop("documents", b""))
        index = bytes(self._kept.pop(INDEX_SECTION, b""))
        ids_index = self._kept.pop(ID_SECTION, None)
        if ids_index is not None and not (index and header.count):
            raise SnapshotError(
                f"snapshot has an {ID_SECTION} section without documents and their index: "
                "write the snapshot with moss's own encoder"
            )
        metadata: Sequence[Metadata]
        ids: Sequence[str]
        if index and header.count:
            ids, texts, metadata = parse_indexed_documents(
                documents, index, header.count, None if ids_index is None else bytes(ids_index)
            )
            if isinstance(ids, IdColumn):
                ids.table.verify()  # readers find rows through it: refuse a lying table now
            for start in range(0, header.count, _BATCH):  # decode and check every value
                texts[start : start + _BATCH]  # reading a value checks it
                metadata[start : start + _BATCH]
        else:
            ids, _, metadata = parse_documents(documents, header.count)
        scales = self._kept.pop("vectors_int8_scales", None)
        if scales is not None:
            values = np.frombuffer(bytes(scales), dtype="<f4")
            if not (np.isfinite(values).all() and (values > 0).all()):
                raise SnapshotError("snapshot int8 scales must be finite and positive")
        deleted = self._kept.pop(DELETED_SECTION, None)
        if deleted is not None:
            _check_deleted(bytes(deleted), header.deleted_count, ids)
        keywords = self._kept.pop(KEYWORDS_SECTION, None)
        if keywords is not None:
            decode_keywords(bytes(keywords), ids, metadata)
        return header


def _check_deleted(raw: bytes, count: int, upserted: Sequence[str]) -> None:
    """A delta's deleted ids: a JSON list of ``count`` unique ids, none of them upserted."""
    try:
        deleted = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"snapshot deleted ids are not valid JSON: {exc}") from None
    if not isinstance(deleted, list) or len(deleted) != count:
        raise SnapshotError(f"snapshot deleted ids must be a list of {count} entries")
    check_ids(deleted)
    both = set(deleted).intersection(upserted)
    if both:
        raise SnapshotError(f"snapshot id {min(both)!r} is both upserted and deleted")


async def check_current(store: Store, project: str, name: str, expected: int) -> None:
    """Refuse a conditional push that already lost before its body is read (the store checks
    again when it commits: this only spares the loser's upload from being written)."""
    info = await store.ahead(project, name)
    current = info.version if info is not None else 0
    if current != expected:
        raise ConflictError(
            f"index {name!r} is at version {current}, not the expected {expected}: "
            "reload it (client.session or session.refresh) and push again",
            expected=expected,
            actual=current,
        )
