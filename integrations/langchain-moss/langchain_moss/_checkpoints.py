"""Which callback events are checkpoints (no I/O here)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from moss import InvalidArgumentError

#: The custom event (``dispatch_custom_event``) that is a checkpoint by default.
CHECKPOINT_EVENT = "moss_checkpoint"
#: LangGraph's tag for its internal runs; they do not count as chain ends.
_HIDDEN_TAG = "langgraph:hidden"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint reached: who reached it (the LangGraph node, else the run's name) and why.

    ``message`` names the rule(s) that fired, e.g. ``"node:researcher"``, ``"tag:save"``,
    ``"every 5 chain ends"``, ``"root end"`` or ``"event:moss_checkpoint"``.
    """

    author: str | None
    message: str


@dataclass(frozen=True)
class _Run:
    node: str | None
    name: str | None
    tags: frozenset[str]
    reasons: tuple[str, ...]

    @property
    def author(self) -> str | None:
        return self.node or self.name


class CheckpointRules:
    """Decide from callback events which run ends are checkpoints. Safe to call from many threads.

    A run ends at a checkpoint when it is the root run (``on_root_end``); when it is the
    outermost run carrying one of ``tags`` (tags are inherited by child runs, whose ends do not
    count); when it is the run of one of the LangGraph ``nodes`` (the outermost run whose
    ``langgraph_node`` metadata names it, read at its start, since end events carry no
    metadata); or when it is the N-th, 2N-th... chain end (``every_n_chain_ends``).
    """

    def __init__(
        self,
        *,
        on_root_end: bool,
        tags: Iterable[str],
        nodes: Iterable[str],
        every_n_chain_ends: int | None,
        checkpoint_event: str | None,
    ) -> None:
        if isinstance(tags, str) or isinstance(nodes, str):
            raise InvalidArgumentError("tags and nodes take a list of names, not a single str")
        if every_n_chain_ends is not None and (
            isinstance(every_n_chain_ends, bool)
            or not isinstance(every_n_chain_ends, int)
            or every_n_chain_ends < 1
        ):
            raise InvalidArgumentError(
                f"every_n_chain_ends must be a positive integer or None, got {every_n_chain_ends!r}"
            )
        self.on_root_end = on_root_end
        self.tags = frozenset(tags)
        self.nodes = frozenset(nodes)
        self.every_n_chain_ends = every_n_chain_ends
        self.checkpoint_event = checkpoint_event
        self._lock = threading.Lock()
        # Runs in flight: their ancestry (tags, node) and, since end events carry neither
        # metadata nor names, who a checkpoint at their end is by.
        self._runs: dict[UUID, _Run] = {}
        self._chain_ends = 0

    def started(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: Iterable[str] | None,
        metadata: Mapping[str, Any] | None,
        name: str | None = None,
    ) -> None:
        """Record a run's start: its node, name and tags, and which checkpoints its end is."""
        node = _node_of(metadata)
        own = frozenset(tags or ())
        with self._lock:
            parent = self._runs.get(parent_run_id) if parent_run_id is not None else None
            parent_node = parent.node if parent else None
            parent_tags = parent.tags if parent else frozenset()
            reasons: list[str] = []
            if node in self.nodes and node != parent_node:
                reasons.append(f"node:{node}")
            reasons.extend(f"tag:{tag}" for tag in sorted((own - parent_tags) & self.tags))
            self._runs[run_id] = _Run(
                node=node, name=name or None, tags=own, reasons=tuple(reasons)
            )

    def ended(
        self, run_id: UUID, parent_run_id: UUID | None, tags: Iterable[str] | None, *, chain: bool
    ) -> Checkpoint | None:
        """Forget a finished run; return the checkpoint its end is, or None."""
        with self._lock:
            run = self._runs.pop(run_id, None)
            reasons = list(run.reasons) if run is not None else []
            if chain and self.every_n_chain_ends and _HIDDEN_TAG not in (tags or ()):
                self._chain_ends += 1
                if self._chain_ends % self.every_n_chain_ends == 0:
                    reasons.append(f"every {self.every_n_chain_ends} chain ends")
            if parent_run_id is None and self.on_root_end:
                reasons.append("root end")
        if not reasons:
            return None
        return Checkpoint(author=run.author if run else None, message=", ".join(reasons))

    def failed(self, run_id: UUID) -> None:
        """Forget a run that raised: a failed run is not a checkpoint."""
        with self._lock:
            self._runs.pop(run_id, None)

    def event(
        self, name: str, run_id: UUID | None, metadata: Mapping[str, Any] | None
    ) -> Checkpoint | None:
        """The checkpoint a custom event of this name is (by the run that sent it), or None."""
        if self.checkpoint_event is None or name != self.checkpoint_event:
            return None
        with self._lock:
            run = self._runs.get(run_id) if run_id is not None else None
        author = _node_of(metadata) or (run.author if run else None)
        return Checkpoint(author=author, message=f"event:{name}")


def _node_of(metadata: Mapping[str, Any] | None) -> str | None:
    node = metadata.get("langgraph_node") if metadata else None
    return node if isinstance(node, str) else None
