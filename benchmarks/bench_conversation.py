"""Incremental sync (issue 18): a 100-turn LangGraph conversation on top of a 100k-document index.

Run: .venv/bin/python benchmarks/bench_conversation.py [--turns 100] [--size 100000] [--dim 384]
     [--out benchmarks/results/conversation.json]

Two agents, ``agent_a`` and ``agent_b``, alternate ``--turns`` turns through one LangGraph graph
(a fake chat model writes each turn). Each agent has its own client and session on one file
store, so each holds its own copy of the index, as two processes would; both run in this one
process so that the timings are of moss alone (no inter-process hand-off in them). At each node
the agent ``refresh()``es to see the other's last turn (asserted), adds its turn as one
document, and a ``MossPushHandler`` (one per agent, ``nodes=[its node]``) pushes at the node's
end. The index starts from ``--size`` documents with random ``--dim`` vectors
(``model_id="custom"``: no embedding model is in the timings).

The conversation runs twice in one run: with deltas (what pushes do now), and with every push a
full snapshot (``refresh_policy.COMPACT_CHAIN_LENGTH = 0`` with ``COMPACT_IN_PLACE_BYTES`` past
any size: what every push did before issue 18).
For each: total push time, total refresh time, bytes written by the pushes (the stored size of
each version) and bytes read by the refreshes, and the ratios full / delta. With deltas, the
push that finds the chain at ``refresh_policy.COMPACT_CHAIN_LENGTH`` (64) deltas also stores a
compaction (a full snapshot of the state it just pushed, counted in ``compactions_pushed`` and
in the bytes written); readers holding the version before it skip it. A one-document push on
the file store is mostly fsyncs, so its time follows the disk's load.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import HumanMessage
from langchain_moss import MossPushHandler
from langgraph.graph import END, START, StateGraph

from moss import DocumentInfo, MossClient, SyncSession, refresh_policy
from moss.stores import open_store
from moss.stores.base import AsyncDownload, Chunks, Download, Store
from moss.types import IndexInfo

AGENTS = ("agent_a", "agent_b")


class Counting:
    """A store that counts the bytes pushes store and refreshes download (the rest passes)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.written = 0
        self.read = 0
        self.kinds: list[str] = []  # of each version put, in order

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def put(self, project: str, name: str, chunks: Chunks, **kwargs: Any) -> IndexInfo:
        info = self._store.put(project, name, chunks, **kwargs)
        self.written += info.size_bytes
        self.kinds.append(info.kind)
        return info

    def get_chain(self, *args: Any, **kwargs: Any) -> Download:
        download = self._store.get_chain(*args, **kwargs)
        download.chunks = self._count(download.chunks)
        return download

    async def aget_chain(self, *args: Any, **kwargs: Any) -> AsyncDownload:
        raise NotImplementedError("the benchmark drives blocking sessions only")

    def _count(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.read += len(chunk)
            yield chunk


class TimedPushHandler(MossPushHandler):
    """The adapter's handler, timing each checkpoint that pushed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.push_ms: list[float] = []

    def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
        before, started = self.push_count, time.perf_counter()
        super().on_chain_end(outputs, **kwargs)
        if self.push_count > before:
            self.push_ms.append((time.perf_counter() - started) * 1000)


class Turns(TypedDict):
    turn: int


class Agent:
    """One agent: its own client (and copy of the index), its node, its push handler."""

    def __init__(self, name: str, url: str, index: str, cache: Path, turns: int, dim: int):
        self.name, self.dim = name, dim
        self.store = Counting(open_store(url))
        self.session: SyncSession = MossClient(store=self.store, cache_dir=cache).sync.session(
            index
        )
        self.handler = TimedPushHandler(self.session, nodes=[name], on_root_end=False)
        replies = [f"{name} answers turn {t}: the refund policy, point {t}" for t in range(turns)]
        self.llm = GenericFakeChatModel(messages=iter(replies))
        self.refresh_ms: list[float] = []

    def node(self, state: Turns) -> dict[str, int]:
        turn = state["turn"]
        started = time.perf_counter()
        self.session.refresh()
        self.refresh_ms.append((time.perf_counter() - started) * 1000)
        if turn > 0:  # the other agent's last turn is visible
            assert self.session.get_docs([f"turn-{turn - 1}"]), f"turn {turn - 1} not seen"
        text = str(self.llm.invoke([HumanMessage(f"turn {turn}")]).content)
        vector = np.random.default_rng(turn).standard_normal(self.dim).astype(np.float32)
        self.session.add_docs(
            [
                DocumentInfo(
                    id=f"turn-{turn}", text=text, metadata={"by": self.name}, embedding=vector
                )
            ]
        )
        return {"turn": turn + 1}


def build_graph(agents: list[Agent], turns: int) -> Any:
    """agent_a -> agent_b -> agent_a ... until ``turns`` turns are written."""
    graph = StateGraph(Turns)
    for agent in agents:
        graph.add_node(agent.name, agent.node)
    graph.add_edge(START, agents[0].name)
    for agent, other in ((agents[0], agents[1]), (agents[1], agents[0])):
        graph.add_conditional_edges(
            agent.name,
            lambda state, other=other.name: other if state["turn"] < turns else END,
            [other.name, END],
        )
    return graph.compile()


def seed(url: str, index: str, cache: Path, size: int, dim: int) -> None:
    """Push the starting index (``size`` documents, random vectors) as one full snapshot."""
    vectors = np.random.default_rng(0).standard_normal((size, dim)).astype(np.float32)
    session = MossClient(store=url, cache_dir=cache).sync.session(index, model_id="custom")
    session.add_docs(
        [
            DocumentInfo(
                id=f"doc-{i}",
                text=f"document {i} about topic {i % 97} with a few more words, like a turn",
                metadata={"topic": i % 97},
                embedding=vectors[i],
            )
            for i in range(size)
        ]
    )
    session.push_index()
    session.close()


def converse(url: str, index: str, temp: Path, turns: int, size: int, dim: int) -> dict[str, Any]:
    """Open both agents, run the conversation, and sum what its pushes and refreshes cost."""
    gc.collect()
    started = time.perf_counter()
    agents = [Agent(name, url, index, temp / name, turns, dim) for name in AGENTS]
    open_s = time.perf_counter() - started
    for agent in agents:  # opening read the whole index: count the conversation only
        agent.store.read = agent.store.written = 0
        agent.store.kinds.clear()
    graph = build_graph(agents, turns)
    started = time.perf_counter()
    final = graph.invoke(
        {"turn": 0},
        config={"callbacks": [a.handler for a in agents], "recursion_limit": turns + 10},
    )
    wall_s = time.perf_counter() - started
    assert final["turn"] == turns
    pushes = [ms for a in agents for ms in a.handler.push_ms]
    refreshes = [ms for a in agents for ms in a.refresh_ms]
    # A push stores one version, or two when it compacts (its delta, then a "compaction").
    kinds = [kind for a in agents for kind in a.store.kinds]
    assert len(pushes) == turns, f"{len(pushes)} pushes for {turns} turns"
    checker = MossClient(store=url, cache_dir=temp / "check").sync
    versions = checker.versions(index)
    last = versions[-1]
    seen = agents[1].session.doc_count + (turns % 2 == 1)
    assert seen == size + turns, (seen, size, turns)  # a delta version counts its own docs
    result = {
        "open_both_s": open_s,
        "conversation_wall_s": wall_s,
        "pushes": len(pushes),
        "push_total_s": sum(pushes) / 1000,
        "push_median_ms": statistics.median(pushes),
        "push_max_ms": max(pushes),
        "full_snapshots_pushed": kinds.count("full"),
        "compactions_pushed": kinds.count("compaction"),
        "deltas_pushed": kinds.count("delta"),
        "push_bytes": sum(a.store.written for a in agents),
        "refreshes": len(refreshes),
        "refresh_total_s": sum(refreshes) / 1000,
        "refresh_median_ms": statistics.median(refreshes),
        "refresh_max_ms": max(refreshes),
        "refresh_bytes": sum(a.store.read for a in agents),
        "kinds": sorted({v.kind for v in versions}),
        "last_version": {"author": last.author, "message": last.message, "kind": last.kind},
    }
    for agent in agents:
        agent.session.close()
        agent.store.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "conversation.json"
    )
    args = parser.parse_args()
    temp = Path(tempfile.mkdtemp(prefix="moss-bench-conversation-"))
    url = (temp / "store").as_uri()
    results: dict[str, Any] = {}
    saved = refresh_policy.COMPACT_CHAIN_LENGTH, refresh_policy.COMPACT_IN_PLACE_BYTES
    for mode in ("delta", "full"):
        index = f"conversation-{mode}"
        seed(url, index, temp / f"seed-{mode}", args.size, args.dim)
        if mode == "full":
            # Every push a whole snapshot in place of its delta: what every push did before deltas.
            refresh_policy.COMPACT_CHAIN_LENGTH = 0
            refresh_policy.COMPACT_IN_PLACE_BYTES = 1 << 62
        try:
            results[mode] = converse(url, index, temp / mode, args.turns, args.size, args.dim)
        finally:
            refresh_policy.COMPACT_CHAIN_LENGTH, refresh_policy.COMPACT_IN_PLACE_BYTES = saved
        print(f"{mode}: {json.dumps(results[mode])}", flush=True)
    delta, full = results["delta"], results["full"]
    ratios = {
        f"{key}_full_over_delta": full[key] / max(delta[key], 1e-9)
        for key in ("push_total_s", "refresh_total_s", "push_bytes", "refresh_bytes")
    }
    report = {
        "benchmark": "bench_conversation.py",
        "turns": args.turns,
        "size": args.size,
        "dim": args.dim,
        "store": "file",
        "agents": "two sessions, each with its own client, in one process",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": results,
        "ratios": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)


def print_table(report: dict[str, Any]) -> None:
    print(f"\n{report['turns']} turns on {report['size']:,} x {report['dim']} (file store)")
    print(
        f"  {'':8} {'push total':>11} {'refresh total':>14} {'push bytes':>15} {'read bytes':>15}"
    )
    for mode, r in report["results"].items():
        print(
            f"  {mode:8} {r['push_total_s']:>9.2f} s {r['refresh_total_s']:>12.2f} s "
            f"{r['push_bytes']:>15,} {r['refresh_bytes']:>15,}  "
            f"({r['full_snapshots_pushed']} full snapshots pushed)"
        )
    ratios = report["ratios"]
    print(
        f"  full / delta: push time {ratios['push_total_s_full_over_delta']:.0f}x, refresh time "
        f"{ratios['refresh_total_s_full_over_delta']:.0f}x, bytes written "
        f"{ratios['push_bytes_full_over_delta']:.0f}x, read {ratios['refresh_bytes_full_over_delta']:.0f}x"
    )


if __name__ == "__main__":
    main()
