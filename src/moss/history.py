"""What changed between two versions of an index: the ids added, changed and deleted.

Read from the chain between them: across deltas an id upserted that existed at the older
version is changed, a new one added; across a full snapshot the id sets and the texts and
metadata are compared.
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidArgumentError
from .flow import Flow
from .hydrator import Hydrator
from .loading import Frame
from .snapshot.codec import DeltaData
from .stores.base import check_version
from .types import IndexDiff

#: What is compared across a full snapshot: each id's text and metadata.
_Docs = dict[str, tuple[str, Any]]


def diff_flow(hydrator: Hydrator, name: str, a: int, b: int) -> Flow[IndexDiff]:
    """The ids that differ between versions ``a`` (0: before the first) and ``b`` (a <= b)."""
    check_version(a, "a (the older version; 0: before the first)", lowest=0)
    check_version(b, "b (the newer version)")
    if a > b:
        raise InvalidArgumentError(
            f"diff(name, a, b) compares an older version a with a newer b, got a={a} > b={b}: "
            "swap them"
        )
    if a == b:
        return IndexDiff(a, b, [], [], [])
    older: _Docs = {}
    if a:
        got = yield from hydrator.fetch_frames(name, version=a)
        assert got is not None
        older, _ = _replay({}, got[1])
    got = yield from hydrator.fetch_frames(name, after=a or None, version=b)
    newer, touched = _replay(older, got[1]) if got is not None else (older, set())
    added = [i for i in newer if i not in older]
    deleted = [i for i in older if i not in newer]
    changed = [i for i in newer if i in older and (i in touched or newer[i] != older[i])]
    return IndexDiff(a, b, sorted(added), sorted(changed), sorted(deleted))


def _replay(start: _Docs, frames: list[Frame]) -> tuple[_Docs, set[str]]:
    """The documents after these frames, and the ids upserted by deltas after the last full."""
    docs = dict(start)
    touched: set[str] = set()
    for _, data in frames:
        if isinstance(data, DeltaData):
            docs.update(zip(data.ids, zip(data.texts, data.metadata, strict=True), strict=True))
            touched.update(data.ids)
            for doc_id in data.deleted:
                docs.pop(doc_id, None)
        else:
            # A full snapshot replaces the state: from here only a text or metadata
            # difference says an id changed.
            docs = dict(zip(data.ids, zip(data.texts, data.metadata, strict=True), strict=True))
            touched.clear()
    return docs, touched
