"""Version chains, written once for every store: which versions bring a reader to a target,
the chain stream that carries them, which versions retention keeps, and the rules of delta puts.

A stored version is a full snapshot, a delta on top of the version before it, or a compaction (a
full snapshot equal to the version before it) (``docs/snapshot-format.md``). A reader holding
version A reaches version T with the deltas A+1..T, skipping compactions, when they are all kept
and none is an ordinary full snapshot; otherwise with the newest full snapshot or compaction
F <= T and the deltas F+1..T. Stores list their kept versions as :class:`Entry` (number, kind, size);
:func:`plan_chain` decides the frames, :func:`chain_flow` opens them through the store's own
``get`` (a flow, so sync and async share it), and :func:`chain_chunks` / :func:`achain_chunks`
frame them (:func:`moss.snapshot.encode_frame_prefix`). A store that reads several blobs in one
stream (PostgreSQL, in one transaction) frames them with :func:`framed` / :func:`aframed`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

from ..errors import IndexNotFoundError, InvalidArgumentError, ModelMismatchError, SnapshotError
from ..flow import Flow, Io, Step
from ..snapshot.chain import encode_frame_prefix
from ..snapshot.header import SnapshotHeader
from ..types import IndexInfo
from .base import AsyncDownload, Download, check_version

__all__ = [
    "BASE_KINDS",
    "ChainPlan",
    "Entry",
    "achain_chunks",
    "aframed",
    "chain_chunks",
    "chain_flow",
    "check_model",
    "check_put_mode",
    "check_put_kind",
    "doc_count",
    "framed",
    "plan_chain",
    "openable",
    "pruned",
    "with_chain_stats",
]


@dataclass(frozen=True, slots=True)
class Entry:
    """A kept version as a chain plan needs it: its number, kind and size in bytes."""

    version: int
    kind: str
    size: int


#: The kinds a cold open can start from (a compaction is a full snapshot too).
BASE_KINDS = ("full", "compaction")


@dataclass(frozen=True, slots=True)
class ChainPlan:
    """The frames that bring a reader to ``target``, oldest first. No frames: the reader is
    current (``not_modified``), or only compactions lie between (it adopts ``target``)."""

    target: int
    frames: tuple[Entry, ...]
    not_modified: bool = False


def doc_count(header: SnapshotHeader) -> int:
    """The document count a version's description reports.

    A delta's header says how many documents it upserts (``count``); a ``total_count`` field
    (the pusher's count after the change), when the header carries one, is the index's count.
    """
    return header.total_count if header.total_count is not None else header.count


def plan_chain(
    project: str,
    name: str,
    entries: Sequence[Entry],
    *,
    after: int | None = None,
    version: int | None = None,
) -> ChainPlan:
    """Decide the frames of a chain from the kept versions (ascending); raise
    ``IndexNotFoundError`` when the index or the target version is not kept."""
    if not entries:
        raise IndexNotFoundError(
            f"index {name!r} does not exist in project {project!r}: push it first, or check the name"
        )
    kept = {entry.version: entry for entry in entries}
    target = entries[-1].version if version is None else version
    if target not in kept:
        raise IndexNotFoundError(
            f"index {name!r} has no version {target} (kept versions: {sorted(kept)})"
        )
    if after == target:
        return ChainPlan(target, (), not_modified=True)
    bases = [e.version for e in entries if e.kind in BASE_KINDS and e.version <= target]
    frames = [kept.get(number) for number in range(bases[-1] if bases else 1, target + 1)]
    if after is not None and after < target:
        wanted = [kept.get(number) for number in range(after + 1, target + 1)]
        if all(entry is not None and entry.kind != "full" for entry in wanted):
            # A compaction equals the version before it: a reader past that one skips it.
            deltas = tuple(e for e in wanted if e is not None and e.kind == "delta")
            # ... unless they outweigh the cold chain (a reader far behind).
            cold = sum(e.size for e in frames if e is not None)
            if not bases or None in frames or sum(e.size for e in deltas) <= cold:
                return ChainPlan(target, deltas)
    if not bases or None in frames:
        # Retention keeps every version back to a full snapshot: only a race (a prune between
        # listing and reading) or damage by hand gets here.
        raise IndexNotFoundError(
            f"version {target} of index {name!r} cannot be opened: a version it builds on is "
            f"no longer kept (kept versions: {sorted(kept)}); retry"
        )
    return ChainPlan(target, tuple(entry for entry in frames if entry is not None))


class _Kinded(Protocol):
    @property
    def version(self) -> int: ...
    @property
    def kind(self) -> str: ...


_Described = TypeVar("_Described", bound=_Kinded)


def with_chain_stats(infos: Sequence[IndexInfo]) -> list[IndexInfo]:
    """Fill in ``chain_length``, ``chain_bytes`` and ``base_bytes`` of kept versions (ascending)."""
    out = []
    length = chain_bytes = base_bytes = 0
    for info in infos:
        if info.kind in BASE_KINDS:
            length, chain_bytes, base_bytes = 0, 0, info.size_bytes
        else:
            length, chain_bytes = length + 1, chain_bytes + info.size_bytes
        out.append(
            dataclasses.replace(
                info, chain_length=length, chain_bytes=chain_bytes, base_bytes=base_bytes
            )
        )
    return out


def pruned(entries: Sequence[Entry], keep: int) -> list[int]:
    """The versions retention drops, newest first: all but the newest ``keep`` and every
    version from the newest full snapshot at or before the oldest of those. Removed in this
    order, every version left opens at every instant (a killed prune leaves the oldest)."""
    if len(entries) <= keep:
        return []
    oldest = entries[-keep].version
    bases = [e.version for e in entries if e.kind in BASE_KINDS and e.version <= oldest]
    floor = bases[-1] if bases else entries[0].version
    return [entry.version for entry in reversed(entries) if entry.version < floor]


def openable(entries: Sequence[_Described]) -> list[_Described]:
    """The kept versions (ascending) that can be opened: each has a full snapshot (or
    compaction) at or before it with every version between kept. Listings show only these (a
    store damaged by hand, or by a prune killed before versions were pruned newest first, may
    hold others)."""
    out: list[_Described] = []
    based = False
    previous: int | None = None
    for entry in entries:
        if entry.kind in BASE_KINDS:
            based = True
        elif previous is None or entry.version != previous + 1:
            based = False
        previous = entry.version
        if based:
            out.append(entry)
    return out


# -- the rules of puts -------------------------------------------------------------------------


def check_put_mode(expected_version: int | None, append: bool) -> None:
    """Refuse argument combinations no put accepts (before anything is uploaded)."""
    if not isinstance(append, bool):
        raise InvalidArgumentError(f"append must be True or False, got {append!r}")
    if append and expected_version is not None:
        raise InvalidArgumentError(
            "append=True stores a delta after whatever version is latest: "
            "pass no expected_version with it"
        )


def check_put_kind(name: str, kind: str, expected_version: int | None, append: bool) -> None:
    """Refuse a full snapshot with ``append``, a delta without a base version and a
    compaction without the version it equals."""
    if kind == "compaction" and (append or not expected_version):
        raise InvalidArgumentError(
            f"a compaction of index {name!r} equals the version before it: push it with "
            "expected_version=N (that version), without append"
        )
    if kind == "full" and append:
        raise InvalidArgumentError(
            f"append=True takes a delta, but the upload for index {name!r} is a full snapshot: "
            "push it without append (optionally with expected_version)"
        )
    if kind == "delta" and not append and not expected_version:
        raise InvalidArgumentError(
            f"a delta needs a base version: push the delta for index {name!r} with "
            "expected_version=N (the version it was made on) or append=True, or push a full "
            "snapshot"
        )


def check_model(
    name: str,
    header: SnapshotHeader,
    model_id: str,
    model_artifact: str | None,
    dimension: int,
) -> None:
    """Refuse a delta made with another model or dimension than the index's latest version
    (``model_artifact`` None: not recorded, not compared)."""
    if header.dimension != dimension or header.model_id != model_id:
        raise ModelMismatchError(
            f"the delta for index {name!r} has model {header.model_id!r} and dimension "
            f"{header.dimension}, but the index has model {model_id!r} and dimension "
            f"{dimension}: embed with the index's model, or push a full snapshot to replace it"
        )
    if model_artifact is not None and header.model_artifact != model_artifact:
        raise ModelMismatchError(
            f"the delta for index {name!r} was embedded by model artifact "
            f"{header.model_artifact!r}, but the index's is {model_artifact!r}: embed with the "
            "index's model file, or push a full snapshot to replace it"
        )


# -- the chain stream ----------------------------------------------------------------------------


class _Lister(Protocol):
    def versions(self, project: str, name: str) -> list[IndexInfo]: ...
    async def aversions(self, project: str, name: str) -> list[IndexInfo]: ...
    def get(self, project: str, name: str, version: int | None = None) -> Download: ...
    async def aget(self, project: str, name: str, version: int | None = None) -> AsyncDownload: ...


Opened = list[Any]  # Download or AsyncDownload, as the flow was run


def chain_flow(
    store: _Lister,
    project: str,
    name: str,
    after: int | None,
    version: int | None,
    listing: Step[list[Entry]] | None = None,
    chunk_size: int | None = None,
) -> Flow[tuple[ChainPlan, Opened]]:
    """Plan a chain from ``store.versions()`` (or from ``listing``, a store's cheaper step
    listing the same entries) and open each frame with ``store.get(version=v)`` (passing
    ``chunk_size`` when given: a store that takes it reads in chunks of that size).

    Every frame is opened before the first byte is sent, so a version pruned meanwhile is
    noticed while the plan can still change: then it lists and plans once more.
    """
    if after is not None:
        check_version(after, "after", lowest=0)
    if version is not None:
        check_version(version)
    for attempt in range(2):
        if listing is None:
            infos = yield Io(
                partial(store.versions, project, name), partial(store.aversions, project, name)
            )
            entries = [Entry(i.version, i.kind, i.size_bytes) for i in infos]
        else:
            entries = yield listing
        plan = plan_chain(project, name, entries, after=after, version=version)
        opened: Opened = []
        sized = {} if chunk_size is None else {"chunk_size": chunk_size}
        try:
            for entry in plan.frames:
                opened.append(
                    (
                        yield Io(
                            partial(store.get, project, name, entry.version, **sized),
                            partial(store.aget, project, name, entry.version, **sized),
                        )
                    )
                )
        except GeneratorExit:
            _close_all(opened)  # closed in place: a flow being closed must not yield
            raise
        except BaseException as exc:
            yield Io(partial(_close_all, opened), partial(_aclose_all, opened))
            if attempt or not isinstance(exc, IndexNotFoundError):
                raise
            continue
        return plan, opened
    raise AssertionError("unreachable")  # pragma: no cover


def _close_all(opened: Opened) -> None:
    for download in opened:
        with contextlib.suppress(Exception):
            if isinstance(download, Download):
                download.close()


async def _aclose_all(opened: Opened) -> None:
    for download in opened:
        with contextlib.suppress(Exception):
            await download.aclose()


def chain_chunks(plan: ChainPlan, downloads: Sequence[Download]) -> Iterator[bytes]:
    """The chain stream of opened frames; closing it early closes them all."""
    try:
        for entry, download in zip(plan.frames, downloads, strict=True):
            yield encode_frame_prefix(entry.version, entry.size)
            yield from download
    finally:
        _close_all(list(downloads))


async def achain_chunks(
    plan: ChainPlan, downloads: Sequence[AsyncDownload]
) -> AsyncIterator[bytes]:
    """Async twin of :func:`chain_chunks`."""
    try:
        for entry, download in zip(plan.frames, downloads, strict=True):
            yield encode_frame_prefix(entry.version, entry.size)
            async for chunk in download:
                yield chunk
    finally:
        await _aclose_all(list(downloads))


def framed(plan: ChainPlan, blobs: Iterator[bytes]) -> Iterator[bytes]:
    """The chain stream of the frames' blobs read back to back as one stream of chunks."""
    cutter = _Cutter(plan)
    try:
        for chunk in blobs:
            yield from cutter.cut(chunk)
        cutter.finish()
    finally:
        close = getattr(blobs, "close", None)
        if close is not None:
            close()


async def aframed(plan: ChainPlan, blobs: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Async twin of :func:`framed`."""
    cutter = _Cutter(plan)
    try:
        async for chunk in blobs:
            for piece in cutter.cut(chunk):
                yield piece
        cutter.finish()
    finally:
        aclose = getattr(blobs, "aclose", None)
        if aclose is not None:
            await aclose()


class _Cutter:
    """Insert each frame's prefix where its blob starts in a stream of back-to-back blobs."""

    def __init__(self, plan: ChainPlan) -> None:
        self._frames = list(plan.frames)
        self._index = 0
        self._left = 0  # bytes of the current blob still to come

    def cut(self, chunk: bytes) -> Iterator[bytes]:
        view = memoryview(chunk)
        while view:
            if self._left == 0:
                if self._index == len(self._frames):
                    raise SnapshotError("a stored version is longer than its recorded size")
                entry = self._frames[self._index]
                self._index += 1
                self._left = entry.size
                yield encode_frame_prefix(entry.version, entry.size)
            take = min(self._left, len(view))
            yield chunk if take == len(chunk) else bytes(view[:take])
            self._left -= take
            view = view[take:]

    def finish(self) -> None:
        if self._left or self._index != len(self._frames):
            raise SnapshotError("a stored version is shorter than its recorded size")
