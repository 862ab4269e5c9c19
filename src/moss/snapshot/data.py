"""What reading a version yields: a full snapshot (:class:`SnapshotData`) or a delta
(:class:`DeltaData`), with int8 codes as plain arrays in the format's neutral layout.

Internal to :mod:`moss.snapshot` (which re-exports the public names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ..errors import InvalidArgumentError
from ..index.columns import LazyColumn
from ..index.hnsw import GraphParts, HnswParams
from .documents import Metadata
from .header import SnapshotHeader

#: Documents per block of a format-1 ``vectors_int8`` section (dimension-major blocks).
V1_INT8_BLOCK = 65_536


class Int8Vectors(NamedTuple):
    """int8 codes of a snapshot's vectors, as the format stores them (format version 2).

    ``codes`` is a C-contiguous (count, dimension) int8 matrix, row ``i`` the codes of vector
    ``i``; ``scales`` holds one positive float32 per dimension, ``code = round(x * scale)``.
    Any index layout (such as the int8 kernel's blocks) is derived from these at load.
    """

    codes: npt.NDArray[np.int8]
    scales: npt.NDArray[np.float32]


@dataclass
class SnapshotData:
    """A decoded full snapshot: its header, a (count, dimension) float32 array (owned and
    writeable, or a read-only view of a mapped file from :func:`map_snapshot`), the documents as
    three parallel columns, the int8 codes and the HNSW graph if the index stores them.

    Texts and metadata are lists, or :class:`LazyColumn` views decoded as they are read when
    the snapshot has a ``documents_index`` section; so are the ids with an ``ids_index`` section
    (an ``IdColumn``, which carries the table that finds a row by id).
    """

    header: SnapshotHeader
    vectors: npt.NDArray[np.float32]
    ids: list[str] | LazyColumn[str]
    texts: list[str] | LazyColumn[str]
    metadata: list[Metadata] | LazyColumn[Metadata]
    int8: Int8Vectors | None = None
    keywords: bytes | None = None
    #: The deserialised HNSW graph of an hnsw index, if the snapshot carries it.
    graph: GraphParts | None = None

    @property
    def index_kind(self) -> str:
        """``"hnsw"`` or ``"flat"``, from the header (old snapshots are flat)."""
        return self.header.index_kind

    @property
    def hnsw(self) -> HnswParams | None:
        """The hnsw parameters from the header (None for flat)."""
        return self.header.hnsw

    @property
    def precision(self) -> str:
        """``"int8"`` if the snapshot holds int8 codes, else ``"float32"``."""
        return "float32" if self.int8 is None else "int8"


@dataclass
class DeltaData:
    """A decoded delta: the documents upserted since its base version (ids, texts, metadata and
    a (count, dimension) float32 array, row ``i`` the vector of ``ids[i]``) and the ids deleted.
    """

    header: SnapshotHeader
    ids: list[str]
    texts: list[str]
    metadata: list[Metadata]
    vectors: npt.NDArray[np.float32]
    deleted: list[str]


def int8_arrays(
    int8: tuple[npt.ArrayLike, npt.ArrayLike], count: int, dimension: int
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """Writer-side check of ``(codes, scales)``; return them as little-endian C arrays."""
    codes, scales = (np.asarray(part) for part in int8)
    if (
        codes.dtype != np.int8
        or codes.shape != (count, dimension)
        or scales.shape != (dimension,)
        or not np.issubdtype(scales.dtype, np.floating)
    ):
        raise InvalidArgumentError(
            f"int8 codes do not fit {count} vectors of dimension {dimension}: codes "
            f"{codes.dtype} {codes.shape}, scales {scales.shape}; quantise the vectors again"
        )
    little = np.ascontiguousarray(scales, dtype="<f4")
    if not np.all(np.isfinite(little)) or not np.all(little > 0):
        raise InvalidArgumentError("int8 scales must be finite and positive")
    return np.ascontiguousarray(codes), little


def rows_from_v1_blocks(
    flat: npt.NDArray[np.int8], count: int, dimension: int
) -> npt.NDArray[np.int8]:
    """Convert a format-1 ``vectors_int8`` section (dimension-major blocks) to row-major codes."""
    rows = np.empty((count, dimension), dtype=np.int8)
    for start in range(0, count, V1_INT8_BLOCK):
        width = min(V1_INT8_BLOCK, count - start)
        block = flat[start * dimension : (start + width) * dimension].reshape(dimension, width)
        rows[start : start + width] = block.T
    return rows
