"""MossStore answers as LangGraph's InMemoryStore does, expires items, and pushes to share them.

The parity tests run one sequence of operations against ``InMemoryStore`` and ``MossStore``,
both given the same deterministic fake embedding, and compare every answer: items (namespace,
key, value), order, and scores to float32 precision. Two InMemoryStore quirks are kept out of
the sequence: a ``get`` in an unknown namespace, and deleting a namespace's last item, both
leave that namespace listed there (moss lists namespaces that hold items, as PostgresStore).
Searches without a query list items in the order they were first put; InMemoryStore groups them
by namespace first, so the sequence puts each namespace's items together.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langchain_moss import AsyncMossPushHandler, MossPushHandler, MossStore
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore
from lc_moss_helpers import CountingEmbeddings

from moss import InvalidArgumentError, MossClient

PEOPLE = [
    (("users", "ann", "memories"), "m1", {"text": "Ann likes green tea", "n": 1, "tag": "food"}),
    (("users", "ann", "memories"), "m2", {"text": "Ann runs marathons", "n": 5, "tag": "sport"}),
    (("users", "ann", "prefs"), "p1", {"text": "dark mode", "n": 2, "ui": {"theme": "dark"}}),
    (("users", "bob", "memories"), "m1", {"text": "Bob likes coffee", "n": 3, "tag": "food"}),
    (("users", "bob", "memories"), "m2", {"text": "Bob swims daily", "n": 8, "tag": "sport"}),
    (("teams", "red"), "t1", {"text": "Red team ships on Fridays", "n": 4}),
]

SEARCHES: list[dict[str, Any]] = [
    {"namespace_prefix": ("users",)},
    {"namespace_prefix": ("users", "ann")},
    {"namespace_prefix": ("users",), "query": "tea or coffee"},
    {"namespace_prefix": ("users",), "query": "sport", "limit": 2},
    {"namespace_prefix": ("users",), "query": "sport", "limit": 2, "offset": 2},
    {"namespace_prefix": (), "query": "team"},
    {"namespace_prefix": ("users",), "filter": {"tag": "food"}},
    {"namespace_prefix": ("users",), "filter": {"n": {"$gt": 2}}},
    {"namespace_prefix": ("users",), "filter": {"n": {"$gte": 2, "$lt": 8}}},
    {"namespace_prefix": ("users",), "filter": {"n": {"$lte": 3}, "tag": {"$ne": "food"}}},
    {"namespace_prefix": ("users",), "filter": {"tag": {"$eq": "sport"}}, "query": "water"},
    {"namespace_prefix": ("users",), "filter": {"ui": {"theme": "dark"}}},
    {"namespace_prefix": ("users", "bob"), "limit": 1, "offset": 1},
    {"namespace_prefix": ("nobody",), "query": "tea"},
]

LISTS: list[dict[str, Any]] = [
    {},
    {"prefix": ("users",)},
    {"prefix": ("users", "*", "memories")},
    {"suffix": ("memories",)},
    {"prefix": ("users",), "suffix": ("prefs",)},
    {"max_depth": 2},
    {"max_depth": 1},
    {"limit": 2, "offset": 1},
]


def index_config() -> IndexConfig:
    return {"dims": 16, "embed": CountingEmbeddings(), "fields": ["text"]}


def as_tuple(item: Item | None) -> Any:
    """What must agree: namespace, key, value, and the score of a search hit (float32)."""
    if item is None:
        return None
    score = getattr(item, "score", None)
    return (item.namespace, item.key, item.value, None if score is None else round(score, 4))


def searched(store: BaseStore, search: dict[str, Any]) -> list[Any]:
    options = dict(search)
    return [as_tuple(hit) for hit in store.search(options.pop("namespace_prefix"), **options)]


def answers(store: BaseStore) -> list[Any]:
    """The parity sequence: puts, overwrites, deletes, per-put index choices, and every read."""
    seen: list[Any] = []
    for namespace, key, value in PEOPLE:
        store.put(namespace, key, value)
        if key == "m2" and namespace[1] == "ann":
            store.put(namespace, "m3", {"text": "not embedded", "n": 0}, index=False)
    seen += [as_tuple(store.get(ns, key)) for ns, key, _ in PEOPLE]
    seen.append(as_tuple(store.get(("users", "ann", "memories"), "missing")))
    seen += [searched(store, search) for search in SEARCHES]
    seen += [store.list_namespaces(**listing) for listing in LISTS]
    # Overwrite (another text, another field list), then delete one item of a namespace.
    store.put(("users", "bob", "memories"), "m1", {"text": "Bob now drinks tea", "n": 9})
    store.put(("teams", "red"), "t1", {"text": "Red team", "motto": "go fast"}, index=["motto"])
    store.delete(("users", "bob", "memories"), "m2")
    seen.append(as_tuple(store.get(("users", "bob", "memories"), "m2")))
    seen += [searched(store, search) for search in SEARCHES]
    seen += [store.list_namespaces(**listing) for listing in LISTS]
    return seen


def test_parity_with_in_memory_store(tmp_path: Path) -> None:
    expected = answers(InMemoryStore(index=index_config()))
    moss = MossStore("parity", index=index_config(), store=tmp_path / "store")
    got = answers(moss)
    for number, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert have == want, f"answer {number} differs"
    assert any(
        hit[3] is not None
        for answer in got
        if isinstance(answer, list)
        for hit in answer
        if isinstance(hit, tuple) and len(hit) == 4
    )


def test_parity_of_a_batch_and_its_async_twin(tmp_path: Path) -> None:
    # In one batch reads see the store before the batch's writes, and the last put of a key wins.
    ops: list[Op] = [
        PutOp(("a",), "k", {"text": "first", "n": 1}),
        GetOp(("a",), "k"),
        PutOp(("a",), "k", {"text": "second", "n": 2}),
        PutOp(("a", "b"), "j", {"text": "other", "n": 3}, index=["text", "missing"]),
    ]
    reads: list[Op] = [
        GetOp(("a",), "k"),
        SearchOp(("a",), query="second", limit=5),
        SearchOp(("a",), filter={"n": {"$ne": 2}}),
        ListNamespacesOp(max_depth=None),
    ]

    def run(store: BaseStore) -> list[Any]:
        first = store.batch(ops)
        second = asyncio.run(store.abatch(reads))
        return [
            [as_tuple(hit) if isinstance(hit, Item) else hit for hit in x]
            if isinstance(x, list)
            else as_tuple(x)
            for x in first + second
        ]

    want = run(InMemoryStore(index=index_config()))
    have = run(MossStore("batch", index=index_config(), store=tmp_path / "s"))
    assert have == want


def test_items_with_several_texts_rank_by_their_best_text(tmp_path: Path) -> None:
    config: IndexConfig = {**index_config(), "fields": ["text", "notes[*]"]}
    value = {"text": "alpha", "notes": ["beta", "gamma", "delta"]}
    moss = MossStore("multi", index=config, store=tmp_path)
    stores: list[BaseStore] = [InMemoryStore(index=config), moss]
    for store in stores:
        store.put(("n",), "x", value)
        store.put(("n",), "y", {"text": "gamma ray"})
        store.put(("n",), "z", {"text": "epsilon", "notes": ["beta"]})
    results = [[as_tuple(hit) for hit in s.search(("n",), query="gamma", limit=2)] for s in stores]
    assert results[0] == results[1]
    assert results[1][0][1] == "x"  # its best text is an exact match
    assert len(moss.session.sync.get_docs(filter={"kind": "vector"})) == 4 + 1 + 2


def test_overwrite_keeps_created_at(tmp_path: Path) -> None:
    store = MossStore("times", index=index_config(), store=tmp_path)
    store.put(("t",), "k", {"text": "one"})
    first = store.get(("t",), "k")
    time.sleep(0.01)
    store.put(("t",), "k", {"text": "two"})
    second = store.get(("t",), "k")
    assert first is not None and second is not None
    assert second.created_at == first.created_at < second.updated_at
    assert second.created_at.tzinfo is not None


def test_ttl_expires_items_and_reads_refresh_it(tmp_path: Path) -> None:
    store = MossStore("ttl", index=index_config(), store=tmp_path, ttl={"refresh_on_read": True})
    store.put(("t",), "short", {"text": "soon gone"}, ttl=0.5 / 60)  # half a second
    store.put(("t",), "kept", {"text": "kept"}, ttl=0.5 / 60)
    store.put(("t",), "forever", {"text": "stays"})
    for _ in range(4):  # reading "kept" every 0.2 s keeps it alive past its first expiry
        time.sleep(0.2)
        assert store.get(("t",), "kept") is not None
    assert store.get(("t",), "short") is None
    assert store.get(("t",), "short", refresh_ttl=False) is None
    assert {hit.key for hit in store.search(("t",))} == {"kept", "forever"}
    assert {hit.key for hit in store.search(("t",), query="soon gone")} == {"kept", "forever"}
    pushed = store.push()
    assert pushed is not None
    ids = {doc.metadata["key"] for doc in store.session.sync.get_docs() if doc.metadata}
    assert "short" not in ids and "kept" in ids


def test_bad_filters_and_values_say_what_to_do(tmp_path: Path) -> None:
    store = MossStore("bad", index=index_config(), store=tmp_path)
    store.put(("x",), "k", {"text": "t", "tags": ["a"]})
    with pytest.raises(InvalidArgumentError, match=r"\$in"):
        store.search(("x",), filter={"tags": {"$in": ["a"]}})
    with pytest.raises(InvalidArgumentError, match="scalars"):
        store.search(("x",), filter={"tags": ["a"]})
    with pytest.raises(InvalidArgumentError, match="must be a dict"):
        store.batch([PutOp(("x",), "k", ["not", "a", "dict"])])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="dimensions"):
        MossStore("bad2", index={"dims": 8}, store=tmp_path)


def test_built_in_model_is_the_default(tmp_path: Path) -> None:
    store = MossStore("builtin", store=tmp_path)
    store.put(("docs",), "a", {"text": "How to bake sourdough bread"})
    store.put(("docs",), "b", {"text": "Quarterly tax filing deadlines"})
    hits = store.search(("docs",), query="baking a loaf")
    assert [hit.key for hit in hits] == ["a", "b"] and hits[0].score is not None
    assert store.session.model_id == "moss-minilm"


def test_push_shares_memories_with_another_store(tmp_path: Path) -> None:
    client = MossClient(store=tmp_path / "shared")
    writer = MossStore("shared", index=index_config(), client=client)
    writer.put(("u",), "k", {"text": "hello"})
    assert writer.push() is not None and writer.push() is None  # nothing new the second time
    reader = MossStore("shared", index=index_config(), client=MossClient(store=tmp_path / "shared"))
    item = reader.get(("u",), "k")
    assert item is not None and item.value == {"text": "hello"}


WORKER = Path(__file__).with_name("lc_graph_store_worker.py")


class MemoryState(TypedDict):
    user: str
    facts: list[str]


def remember(state: MemoryState, *, store: BaseStore) -> dict[str, Any]:
    """A graph node that writes one memory per fact into the user's namespace."""
    for number, fact in enumerate(state["facts"]):
        store.put(("memories", state["user"]), f"fact-{number}", {"text": fact, "n": number})
    return {}


def memory_graph(store: BaseStore) -> Any:
    builder = StateGraph(MemoryState)
    builder.add_node("remember", remember)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", END)
    return builder.compile(store=store)


def read_in_other_process(store_dir: Path, user: str, query: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(WORKER), str(store_dir), "memory", user, query],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.mark.parametrize("is_async", [False, True])
def test_graph_memories_reach_a_graph_in_another_process(tmp_path: Path, is_async: bool) -> None:
    store_dir = tmp_path / "shared"
    store = MossStore("memory", index=index_config(), client=MossClient(store=store_dir))
    graph = memory_graph(store)
    facts = ["Ann is allergic to peanuts", "Ann prefers window seats", "Ann lives in Lyon"]
    inputs = {"user": "ann", "facts": facts}
    # The handler pushes at the end of the run, as MossPushHandler does for a vector store.
    handler: MossPushHandler | AsyncMossPushHandler
    if is_async:
        handler = AsyncMossPushHandler(store.session)
        asyncio.run(graph.ainvoke(inputs, config={"callbacks": [handler]}))
    else:
        handler = store.push_handler()
        graph.invoke(inputs, config={"callbacks": [handler]})
    assert handler.push_count == 1
    report = read_in_other_process(store_dir, "ann", "Ann lives in Lyon")
    assert report["version"] == 1
    found = report["found"]
    assert sorted(hit["key"] for hit in found) == ["fact-0", "fact-1", "fact-2"]
    assert found[0] == {
        "key": "fact-2",
        "value": {"text": facts[2], "n": 2},
        "score": pytest.approx(1.0, abs=1e-5),
    }
    assert read_in_other_process(store_dir, "bob", "anything")["found"] == []
