"""The index kind of a snapshot (header field ``index``) and its optional HNSW graph sections.

Internal to :mod:`moss.snapshot`. Spec in ``docs/snapshot-format.md``: ``hnsw_graph`` holds
FAISS's own serialisation of the graph, ``hnsw_slots`` the row of each graph slot (int64 LE,
-1 for a tombstone). FAISS's reader trusts its input (bad bytes can abort the process), so it
only ever sees bytes whose checksum has been verified, and what it returns is checked against
the header before use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..errors import InvalidArgumentError, SnapshotError
from ..index.hnsw import GraphParts, HnswParams, load_graph, parse_params

if TYPE_CHECKING:
    from .sections import SectionInfo

#: The optional sections of an hnsw index: FAISS's serialisation, then the slot-to-row map.
HNSW_SECTIONS = ("hnsw_graph", "hnsw_slots")


def index_field(index: str, hnsw: HnswParams | None) -> dict[str, Any] | None:
    """The header's ``index`` object (None for flat: old readers and old files agree)."""
    if index == "flat" or hnsw is None:
        return None
    return {"kind": "hnsw", **hnsw.to_json()}


def parse_index_field(value: object) -> tuple[str, HnswParams | None]:
    """Check the header's ``index`` field; return the kind and its parameters."""
    if value is None:
        return "flat", None
    if not isinstance(value, dict):
        raise SnapshotError("snapshot header field 'index' must be a JSON object")
    fields = dict(value)
    kind = fields.pop("kind", None)
    if kind == "flat" and not fields:
        return "flat", None
    if kind != "hnsw":
        raise SnapshotError(
            f"snapshot index kind {kind!r} is unknown: 'flat' or 'hnsw' (upgrade moss-sessions "
            "if a newer version wrote it)"
        )
    try:
        return "hnsw", parse_params(fields)
    except (InvalidArgumentError, TypeError) as exc:
        raise SnapshotError(f"snapshot header field 'index' is invalid: {exc}") from exc


def check_graph_sections(sections: dict[str, SectionInfo], kind: str, count: int) -> None:
    """The graph sections come as a pair, only in an hnsw index, with a whole slot map."""
    graph, slots = (sections.get(name) for name in HNSW_SECTIONS)
    if graph is None and slots is None:
        return
    if graph is None or slots is None:
        raise SnapshotError(
            "snapshot has only one of the sections 'hnsw_graph' and 'hnsw_slots': "
            "the header is inconsistent"
        )
    if kind != "hnsw":
        raise SnapshotError("snapshot has hnsw sections but its index kind is not 'hnsw'")
    if slots.length % 8 or slots.length < count * 8 or not graph.length:
        raise SnapshotError(
            f"hnsw sections are {graph.length} and {slots.length} bytes; the slot map needs "
            f"8 bytes per slot and at least {count} slots: the header is inconsistent"
        )


def decode_graph(
    graph: npt.NDArray[np.uint8], slots: npt.NDArray[np.uint8], count: int, dimension: int
) -> GraphParts:
    """The graph of checksummed sections, checked against the index; a bad one is a
    :class:`SnapshotError`."""
    # A view of the section (of a mapped file's pages, too) on little-endian machines.
    row_of_slot = np.frombuffer(slots, dtype="<i8").astype(np.int64, copy=False)
    try:
        return load_graph(graph, row_of_slot, count, dimension)
    except InvalidArgumentError as exc:
        raise SnapshotError(f"snapshot section 'hnsw_graph' is invalid: {exc}") from exc


def graph_sections(
    graph: tuple[npt.ArrayLike, npt.ArrayLike], count: int
) -> list[tuple[str, npt.NDArray[np.uint8]]]:
    """Writer side: the two sections of an exported graph (``Engine.export_all().graph``)."""
    serialized, row_of_slot = (np.asarray(part) for part in graph)
    rows = np.ascontiguousarray(row_of_slot, dtype="<i8")
    if (
        serialized.dtype != np.uint8
        or serialized.ndim != 1
        or not len(serialized)
        or rows.ndim != 1
        or int((rows >= 0).sum()) != count
    ):
        raise InvalidArgumentError(
            f"the hnsw graph does not fit {count} vectors: pass Engine.export_all().graph"
        )
    return [
        (HNSW_SECTIONS[0], np.ascontiguousarray(serialized)),
        (HNSW_SECTIONS[1], rows.view(np.uint8)),
    ]
