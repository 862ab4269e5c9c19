"""int8 scalar quantisation: a compact copy of the vectors, scanned fast, re-ranked in float32.

Each vector component is stored as ``code = round(x * scale[j])`` clipped to [-127, 127], with
one scale per dimension (so the range of every dimension is used). An approximate score is the
integer product of the codes with the query, quantised the same way after dividing it by the
scales; the engine then re-ranks the best candidates by their exact float32 scores.

In memory the codes are kept **dimension-major** in blocks of :data:`BLOCK` documents: each block is a
C-contiguous ``(dimension, width)`` int8 matrix, the right-hand side of one integer matrix
product. numpy has no fast integer product (measured: 19 ms in int8, which overflows, and 50 ms
widened to int32, at 100k x 384), so the product runs in onnxruntime, already a moss dependency for the built-in model: its ``MatMulInteger`` kernel uses
VNNI/AVX2 integer dot products. Measured on 2 shared cores at 100k x 384, one query: 1.5 ms
for the product alone, against 3.5 ms (quiet machine) to 12 ms (busy) for numpy's float32
product; faiss's ``IndexScalarQuantizer`` (QT_8bit_direct_signed) took 1.7-4 ms and would be a
new dependency. The kernel is fast only with unsigned activations (signed ones: 70 ms) and no
zero point (with one: 4.3 ms), so the query is shifted by +128 and the shift is
subtracted exactly afterwards: ``sum((q + 128) * c) - 128 * sum(c)``, with the per-document sums
of codes kept beside the blocks. Blocks of 65536 documents keep the kernel's packing buffers in
cache: one 1M-document block took 37 ms, sixteen blocks 28 ms. Snapshots store the codes
row-major instead (engine-neutral, :class:`Int8Codes`). The transposition costs ~40-60 ms per
100k x 384 each way, so :meth:`Int8Index.from_codes` adopts the row-major codes as they are and
builds the blocks only at the first scan or write (a search that float32 serves faster, see
:func:`moss.index.ranking.rank_measured`, never scans), and :meth:`Int8Index.export` hands them back uncopied while
they are still current: opening costs nothing and re-pushing an unchanged session nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ..errors import InvalidArgumentError
from .int8_kernel import scanner

__all__ = ["BLOCK", "Int8Codes", "Int8Index", "check_codes", "quantize_rows"]

Matrix = npt.NDArray[np.float32]
Codes = npt.NDArray[np.int8]
Scores = npt.NDArray[np.int32]

#: Documents per code block of the int8 kernel.
BLOCK = 65_536
_MIN_WIDTH = 64
# Rows quantised per step, so temporaries stay small for million-row matrices.
_CHUNK = 8192
_LIMIT = 127.0


class Int8Codes(NamedTuple):
    """The int8 codes of ``count`` vectors in the engine-neutral layout a snapshot stores.

    ``codes`` is a C-contiguous (count, dimension) int8 matrix, one row per vector; ``scales``
    (float32, one per dimension) map a component to its code. :class:`Int8Index` converts them
    to and from its kernel layout (dimension-major blocks).
    """

    codes: Codes
    scales: Matrix


def check_codes(int8: tuple[Codes, Matrix], count: int, dimension: int) -> None:
    """Raise :class:`InvalidArgumentError` unless ``(codes, scales)`` fit ``count`` x ``dimension``."""
    codes, scales = int8
    if (
        not isinstance(codes, np.ndarray)
        or not isinstance(scales, np.ndarray)
        or codes.dtype != np.int8
        or codes.shape != (count, dimension)
        or scales.shape != (dimension,)
    ):
        raise InvalidArgumentError(
            f"int8 codes do not fit {count} vectors of dimension {dimension}: codes "
            f"{getattr(codes, 'shape', None)}, scales {getattr(scales, 'shape', None)}; "
            "quantise the vectors again"
        )
    if not np.all(np.isfinite(scales)) or not np.all(scales > 0):
        raise InvalidArgumentError("int8 scales must be finite and positive")


def block_widths(count: int) -> list[int]:
    """The widths of the blocks that hold ``count`` documents."""
    return [min(BLOCK, count - start) for start in range(0, count, BLOCK)]


def calibrate(vectors: Matrix) -> Matrix:
    """Per-dimension scales mapping the largest magnitude seen in each dimension to 127."""
    if len(vectors) == 0:
        return np.ones(vectors.shape[1], dtype=np.float32)
    peak = np.zeros(vectors.shape[1], dtype=np.float32)
    for start in range(0, len(vectors), _CHUNK):
        np.maximum(peak, np.abs(vectors[start : start + _CHUNK]).max(axis=0), out=peak)
    # A dimension that is zero everywhere gets scale 1: its codes are 0 whatever the scale.
    scales: Matrix = np.where(peak > 1e-30, _LIMIT / np.maximum(peak, 1e-30), 1.0).astype(
        np.float32
    )
    return scales


def quantize_rows(vectors: Matrix, scales: Matrix) -> tuple[Codes, bool]:
    """Codes of ``vectors`` (row-major, same shape) and whether any component was clipped."""
    scaled = vectors * scales
    clipped = bool(np.abs(scaled).max(initial=0.0) > _LIMIT + 0.5)
    np.rint(scaled, out=scaled)
    np.clip(scaled, -_LIMIT, _LIMIT, out=scaled)
    return scaled.astype(np.int8), clipped


class Int8Index:
    """int8 codes of the first ``count`` rows of an engine's matrix, kept in step with it.

    Not thread-safe on its own: the engine calls it under its lock.
    """

    def __init__(self, dimension: int) -> None:
        self._dimension = dimension
        self._scales: Matrix = np.ones(dimension, dtype=np.float32)
        self._blocks: list[Codes] = []
        self._sums: Scores = np.zeros(0, dtype=np.int32)  # sum of each document's codes
        self._count = 0
        # Scales are recomputed from all vectors when new ones do not fit them, at most once per
        # doubling of the count (so the cost stays amortised O(1) per vector); in between,
        # outliers are clipped, which only costs the candidate a little rank before re-ranking.
        self._calibrated_at = 0
        # Row-major codes adopted from a snapshot, until the first scan or write needs blocks.
        self._rowmajor: Codes | None = None

    @classmethod
    def from_codes(cls, int8: tuple[Codes, Matrix], count: int, dimension: int) -> Int8Index:
        """Adopt stored row-major ``(codes, scales)`` (checked against ``count`` x ``dimension``),
        transposed once into the kernel's blocks."""
        check_codes(int8, count, dimension)
        codes, scales = int8
        index = cls(dimension)
        index._scales = np.ascontiguousarray(scales, dtype=np.float32)
        index._count = count
        index._calibrated_at = count
        if count:
            # Adopted, never written: handed back by export() until the blocks replace them.
            codes = np.ascontiguousarray(codes)
            codes.flags.writeable = False
            index._rowmajor = codes
        return index

    def _blocked(self) -> None:
        """Turn adopted row-major codes into the kernel's blocks (before a scan or a write)."""
        codes = self._rowmajor
        if codes is None:
            return
        self._blocks = [
            _transposed(codes[start : start + BLOCK]) for start in range(0, self._count, BLOCK)
        ]
        self._sums = codes.sum(axis=1, dtype=np.int32)
        self._rowmajor = None

    @classmethod
    def build(cls, vectors: Matrix) -> Int8Index:
        """Quantise ``vectors`` (count x dimension float32)."""
        index = cls(vectors.shape[1])
        index.rebuild(vectors)
        return index

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Memory held by the codes and their sums."""
        adopted = 0 if self._rowmajor is None else self._rowmajor.nbytes
        return sum(block.nbytes for block in self._blocks) + self._sums.nbytes + adopted

    # --- writes ---------------------------------------------------------------------------

    def rebuild(self, vectors: Matrix) -> None:
        """Recompute the scales from ``vectors`` (all rows) and quantise every row again."""
        self._scales = calibrate(vectors)
        self._rowmajor = None
        self._blocks = []
        self._sums = np.zeros(0, dtype=np.int32)
        self._count = 0
        self._calibrated_at = len(vectors)
        self._store_rows(0, vectors)

    def append(self, vectors: Matrix, everything: Callable[[], Matrix]) -> None:
        """Add ``vectors`` as the next rows; ``everything()`` gives all rows once they are added
        (called only to recalibrate, so a mapped base is not copied by an ordinary append)."""
        self._blocked()
        codes, clipped = quantize_rows(vectors, self._scales)
        if self._needs_calibration(clipped, self._count + len(vectors)):
            self.rebuild(everything())
            return
        self._store_codes(self._count, codes)

    def _needs_calibration(self, clipped: bool, count: int) -> bool:
        # Never calibrated (the scales are placeholders), or outliers and enough new rows.
        return self._calibrated_at == 0 or (clipped and count >= 2 * self._calibrated_at)

    def assign(
        self, rows: Sequence[int], vectors: Matrix, everything: Callable[[], Matrix]
    ) -> None:
        """Overwrite ``rows`` with the codes of ``vectors`` (``everything()``: all rows, updated;
        called only to recalibrate)."""
        self._blocked()
        codes, clipped = quantize_rows(vectors, self._scales)
        if self._needs_calibration(clipped, self._count):
            self.rebuild(everything())
            return
        for row, code in zip(rows, codes, strict=True):
            block, column = divmod(row, BLOCK)
            self._blocks[block][:, column] = code
        self._sums[np.asarray(rows, dtype=np.intp)] = codes.sum(axis=1, dtype=np.int32)

    def move(self, source: int, target: int) -> None:
        """Copy row ``source`` over row ``target`` (the engine's delete fills holes this way)."""
        self._blocked()
        sb, sc = divmod(source, BLOCK)
        tb, tc = divmod(target, BLOCK)
        self._blocks[tb][:, tc] = self._blocks[sb][:, sc]
        self._sums[target] = self._sums[source]

    def truncate(self, count: int) -> None:
        """Forget the rows from ``count`` on, releasing blocks no longer used."""
        self._blocked()
        self._count = min(count, self._count)
        del self._blocks[-(-self._count // BLOCK) :]
        if len(self._sums) > 2 * max(self._count, _MIN_WIDTH):
            self._sums = self._sums[: self._count].copy()

    def _store_rows(self, start: int, vectors: Matrix) -> None:
        for offset in range(0, len(vectors), _CHUNK):
            codes, _ = quantize_rows(vectors[offset : offset + _CHUNK], self._scales)
            self._store_codes(start + offset, codes)

    def _store_codes(self, start: int, codes: Codes) -> None:
        """Write row-major ``codes`` at rows ``start``... (``start`` is the current count)."""
        end = start + len(codes)
        self._reserve(end)
        position = start
        while position < end:
            block, column = divmod(position, BLOCK)
            take = min(end - position, BLOCK - column)
            chunk = codes[position - start : position - start + take]
            self._blocks[block][:, column : column + take] = chunk.T
            self._sums[position : position + take] = chunk.sum(axis=1, dtype=np.int32)
            position += take
        self._count = end

    def _reserve(self, needed: int) -> None:
        """Grow the blocks so they hold ``needed`` rows; the last block grows by doubling."""
        if len(self._sums) < needed:
            sums = np.empty(max(needed, 2 * len(self._sums), _MIN_WIDTH), dtype=np.int32)
            sums[: self._count] = self._sums[: self._count]
            self._sums = sums
        for block, width in enumerate(block_widths(needed)):
            if block == len(self._blocks):
                self._blocks.append(self._new_block(width))
            elif self._blocks[block].shape[1] < width:
                grown = self._new_block(width, old=self._blocks[block])
                self._blocks[block] = grown

    def _new_block(self, width: int, old: Codes | None = None) -> Codes:
        capacity = BLOCK if width > BLOCK // 2 else max(_MIN_WIDTH, 1 << (width - 1).bit_length())
        if old is not None:
            capacity = max(capacity, min(BLOCK, 2 * old.shape[1]))
        block = np.zeros((self._dimension, capacity), dtype=np.int8)
        if old is not None:
            block[:, : old.shape[1]] = old
        return block

    # --- reads ----------------------------------------------------------------------------

    def scores(self, queries: Matrix) -> Scores:
        """Approximate inner products (scaled integers), shape (len(queries), count)."""
        self._blocked()
        count = self._count
        out: Scores = np.empty((len(queries), count), dtype=np.int32)
        if count == 0:
            return out
        shifted = self._quantize_queries(queries)
        run = scanner()
        for start, block in zip(range(0, count, BLOCK), self._blocks, strict=False):
            width = min(BLOCK, count - start)
            # A growing last block has spare columns: the product covers them (the kernel needs
            # a contiguous matrix) and they are dropped here.
            raw = run(shifted, block)
            np.subtract(
                raw[:, :width],
                128 * self._sums[start : start + width],
                out=out[:, start : start + width],
            )
        return out

    def _quantize_queries(self, queries: Matrix) -> npt.NDArray[np.uint8]:
        """Divide by the scales (so codes times query approximate the product), quantise to
        int8 with a per-query scale, and shift by +128 into uint8 for the kernel."""
        folded = queries / self._scales
        peak = np.abs(folded).max(axis=1, keepdims=True)
        folded *= _LIMIT / np.maximum(peak, 1e-30)
        np.rint(folded, out=folded)
        shifted: npt.NDArray[np.uint8] = (folded + 128.0).astype(np.uint8)
        return shifted

    def export(self) -> Int8Codes:
        """The codes in the neutral row-major layout (a copy, or the adopted read-only codes
        while no write has changed them), and a copy of the scales."""
        if self._rowmajor is not None:
            return Int8Codes(self._rowmajor, self._scales.copy())
        codes: Codes = np.empty((self._count, self._dimension), dtype=np.int8)
        for block, width in enumerate(block_widths(self._count)):
            start = block * BLOCK
            _transposed(self._blocks[block][:, :width], codes[start : start + width])
        return Int8Codes(codes, self._scales.copy())


def _transposed(source: Codes, target: Codes | None = None) -> Codes:
    """Copy ``source.T`` into ``target`` (a new C-contiguous array if None), strip by strip.

    numpy copies a transposed int8 view with poor locality; strips of ~1 MB of source rows keep
    both sides in cache. Measured at 65536 x 384 (2 cores at load 10, medians): 160-210 ms to
    rows and 80 ms to blocks, against 520 and 270 ms for a plain transposed copy.
    """
    rows, cols = source.shape
    if target is None:
        target = np.empty((cols, rows), dtype=np.int8)
    strip = max(8, (1 << 20) // max(cols, 1))
    for start in range(0, rows, strip):
        target[:, start : start + strip] = source[start : start + strip].T
    return target
