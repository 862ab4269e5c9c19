"""MossPushHandler / AsyncMossPushHandler: checkpoints, skipped no-op pushes, no overlap, failures."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
from langchain_core.runnables import Runnable, RunnableLambda, RunnableSequence
from langchain_moss import AsyncMossPushHandler, MossPushHandler, MossRetriever, MossVectorStore
from langchain_moss._checkpoints import Checkpoint, CheckpointRules
from langgraph.graph import END, START, StateGraph
from lc_moss_helpers import CountingEmbeddings, CountingStore, stored_version

from moss import DocumentInfo, InvalidArgumentError, MossClient, ServiceUnavailableError


@pytest.fixture
def vs(embeddings: CountingEmbeddings, counting_store: CountingStore) -> MossVectorStore:
    return MossVectorStore(
        index_name="notes", embedding=embeddings, client=MossClient(store=counting_store)
    )


def writer(vs: MossVectorStore, doc_id: str) -> RunnableLambda[Any, Any]:
    def write(value: Any) -> Any:
        vs.add_texts([f"text {doc_id}"], ids=[doc_id])
        return value

    return RunnableLambda(write, name=f"write-{doc_id}")


def test_root_end_pushes_once_and_only_when_something_changed(
    vs: MossVectorStore, counting_store: CountingStore
) -> None:
    handler = MossPushHandler(vs)
    chain: Runnable[Any, Any] = RunnableSequence(writer(vs, "a"), writer(vs, "b"))
    chain.invoke(1, config={"callbacks": [handler]})
    assert counting_store.puts == handler.push_count == 1
    assert handler.last_results["notes"].doc_count == 2
    RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [handler]})  # writes nothing
    assert counting_store.puts == 1
    chain.invoke(1, config={"callbacks": [handler]})  # rewrites: a change, pushed again
    assert counting_store.puts == 2 and stored_version(counting_store, "notes") == 2


def test_tagged_runs_push_at_their_end_not_their_childrens(
    vs: MossVectorStore, counting_store: CountingStore
) -> None:
    versions: list[int] = []
    saved: Runnable[Any, Any] = RunnableSequence(writer(vs, "a"), writer(vs, "b")).with_config(
        tags=["save"]
    )
    chain: Runnable[Any, Any] = RunnableSequence(
        writer(vs, "x"),
        saved,
        RunnableLambda(lambda v: versions.append(stored_version(counting_store, "notes"))),
    )
    handler = MossPushHandler(vs, on_root_end=False, tags=["save"])
    chain.invoke(1, config={"callbacks": [handler]})
    # The children of the tagged run inherit its tag; only its own end is a checkpoint.
    assert counting_store.puts == 1 and versions == [1]
    assert vs.session.sync.get_docs(["x", "a", "b"]) and not vs.session.has_unpushed_changes


def test_every_n_chain_ends(vs: MossVectorStore, counting_store: CountingStore) -> None:
    chain: Runnable[Any, Any] = RunnableSequence(writer(vs, "a"), writer(vs, "b"), writer(vs, "c"))
    handler = MossPushHandler(vs, on_root_end=False, every_n_chain_ends=2)
    chain.invoke(1, config={"callbacks": [handler]})
    # Chain ends: a, b (2nd: push a+b), c, the sequence (4th: push c).
    assert counting_store.puts == 2
    assert [r.doc_count for r in [handler.last_results["notes"]]] == [3]


def test_custom_event_is_a_checkpoint(vs: MossVectorStore, counting_store: CountingStore) -> None:
    seen: list[int] = []

    def checkpoint(value: Any) -> Any:
        dispatch_custom_event("moss_checkpoint", {})
        seen.append(stored_version(counting_store, "notes"))
        return value

    chain: Runnable[Any, Any] = RunnableSequence(
        writer(vs, "a"), RunnableLambda(checkpoint), writer(vs, "b")
    )
    chain.invoke(1, config={"callbacks": [MossPushHandler(vs, on_root_end=False)]})
    assert seen == [1] and counting_store.puts == 1 and vs.session.has_unpushed_changes
    quiet = MossPushHandler(vs, on_root_end=False, checkpoint_event=None)
    chain.invoke(1, config={"callbacks": [quiet]})
    assert counting_store.puts == 1


async def test_async_handler_in_an_async_run(
    vs: MossVectorStore, counting_store: CountingStore
) -> None:
    async def checkpoint(value: Any) -> Any:
        await adispatch_custom_event("moss_checkpoint", {})
        return value

    handler = AsyncMossPushHandler(vs, tags=["never-used"])
    chain: Runnable[Any, Any] = RunnableSequence(
        writer(vs, "a"), RunnableLambda(checkpoint), writer(vs, "b")
    )
    await chain.ainvoke(1, config={"callbacks": [handler]})
    assert counting_store.puts == handler.push_count == 2  # the event, then the root end
    assert stored_version(counting_store, "notes") == 2 and not vs.session.has_unpushed_changes


def test_async_handler_in_a_sync_run(vs: MossVectorStore, counting_store: CountingStore) -> None:
    handler = AsyncMossPushHandler(vs)
    writer(vs, "a").invoke(1, config={"callbacks": [handler]})
    assert counting_store.puts == handler.push_count == 1


def test_rules_find_node_and_tag_boundaries() -> None:
    rules = CheckpointRules(
        on_root_end=False,
        tags=["t"],
        nodes=["researcher"],
        every_n_chain_ends=None,
        checkpoint_event=None,
    )
    graph, node, model, sub, subnode = (uuid.uuid4() for _ in range(5))
    rules.started(graph, None, [], {})
    rules.started(node, graph, ["graph:step:1"], {"langgraph_node": "researcher"})
    rules.started(model, node, [], {"langgraph_node": "researcher"})  # inherits the metadata
    rules.started(sub, node, [], {"langgraph_node": "researcher"})  # a subgraph in the node
    rules.started(subnode, sub, ["t"], {"langgraph_node": "inner"})
    assert rules.ended(model, node, [], chain=False) is None
    # introduces tag t: by its node
    assert rules.ended(subnode, sub, ["t"], chain=True) == Checkpoint("inner", "tag:t")
    assert rules.ended(sub, node, [], chain=True) is None
    assert rules.ended(node, graph, [], chain=True) == Checkpoint("researcher", "node:researcher")
    assert rules.ended(graph, None, [], chain=True) is None  # on_root_end=False
    failed = uuid.uuid4()
    rules.started(failed, None, ["t"], {})
    rules.failed(failed)
    assert rules.ended(failed, None, ["t"], chain=True) is None


def test_rules_name_the_author_and_every_checkpoint_of_a_run_end() -> None:
    rules = CheckpointRules(
        on_root_end=True, tags=["t"], nodes=[], every_n_chain_ends=2, checkpoint_event="go"
    )
    root, child = uuid.uuid4(), uuid.uuid4()
    rules.started(root, None, ["t"], {}, "conversation")
    rules.started(child, root, ["t"], {}, "step")
    assert rules.event("go", child, {}) == Checkpoint("step", "event:go")  # no node: run name
    assert rules.event("go", child, {"langgraph_node": "a"}) == Checkpoint("a", "event:go")
    assert rules.event("other", child, {}) is None
    assert rules.ended(child, root, ["t"], chain=True) is None  # 1st chain end, inherited tag
    assert rules.ended(root, None, ["t"], chain=True) == Checkpoint(
        "conversation", "tag:t, every 2 chain ends, root end"
    )


def test_concurrent_checkpoints_never_overlap_and_coalesce(
    vs: MossVectorStore, counting_store: CountingStore
) -> None:
    counting_store.delay = 0.3
    vs.add_texts(["first"], ids=["1"])
    handler = MossPushHandler(vs)
    other = MossPushHandler(vs.session)  # a second handler on the same session shares the gate
    first = threading.Thread(target=handler.push)
    first.start()
    while counting_store.max_in_flight == 0:  # the first push is inside the store
        threading.Event().wait(0.005)
    vs.add_texts(["during"], ids=["2"])  # a change while pushing...
    late = [threading.Thread(target=h.push) for h in (handler, other, handler)]
    for thread in late:
        thread.start()
    for thread in [first, *late]:
        thread.join()
    # ...so exactly one more push follows, after the first, never beside it.
    assert counting_store.puts == 2 and counting_store.max_in_flight == 1
    assert handler.push_count + other.push_count == 2
    assert counting_store.head("default", "notes").doc_count == 2  # type: ignore[union-attr]

    vs.add_texts(["third"], ids=["3"])
    calls = [threading.Thread(target=handler.push) for _ in range(4)]
    for thread in calls:
        thread.start()
    for thread in calls:
        thread.join()
    assert counting_store.puts == 3 and counting_store.max_in_flight == 1  # no change after it


async def test_async_concurrent_checkpoints_never_overlap(
    vs: MossVectorStore, counting_store: CountingStore
) -> None:
    counting_store.delay = 0.2
    vs.add_texts(["first"], ids=["1"])
    handler = AsyncMossPushHandler(vs)

    async def write_during_push() -> list[Any]:
        while counting_store.max_in_flight == 0:
            await asyncio.sleep(0.005)
        await vs.aadd_texts(["during"], ids=["2"])
        return await handler.apush()

    first, second, third = await asyncio.gather(
        handler.apush(), write_during_push(), handler.apush()
    )
    assert counting_store.puts == 2 and counting_store.max_in_flight == 1
    assert sorted(r.version for r in [*first, *second, *third]) == [1, 2]


def test_failed_push_is_logged_and_raised_on_request(
    vs: MossVectorStore, counting_store: CountingStore, caplog: pytest.LogCaptureFixture
) -> None:
    counting_store.fail = True
    chain = writer(vs, "a")
    with caplog.at_level(logging.ERROR, logger="langchain_moss.callbacks"):
        chain.invoke(1, config={"callbacks": [MossPushHandler(vs)]})
    assert any("'notes'" in r.getMessage() and "down" in r.getMessage() for r in caplog.records)
    with pytest.raises(ServiceUnavailableError, match="down"):
        chain.invoke(1, config={"callbacks": [MossPushHandler(vs, raise_error=True)]})
    counting_store.fail = False  # the gate was released: the next checkpoint pushes
    RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [MossPushHandler(vs)]})
    assert counting_store.puts == 1 and not vs.session.has_unpushed_changes


async def test_async_failed_push_raises_on_request(
    vs: MossVectorStore, counting_store: CountingStore
) -> None:
    counting_store.fail = True
    with pytest.raises(ServiceUnavailableError):
        await writer(vs, "a").ainvoke(
            1, config={"callbacks": [AsyncMossPushHandler(vs, raise_error=True)]}
        )
    assert await AsyncMossPushHandler(vs).apush() == []  # logged, not raised


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_shared_index_pushes_merge_by_default(
    is_async: bool, embeddings: CountingEmbeddings, counting_store: CountingStore
) -> None:
    # Issue 16.1: agent B's push used to replace agent A's version, losing A's documents.
    def agent() -> MossVectorStore:
        client = MossClient(store=counting_store)
        return MossVectorStore(index_name="shared", embedding=embeddings, client=client)

    async def push(handler: Any) -> None:
        await handler.apush() if is_async else handler.push()

    kind = AsyncMossPushHandler if is_async else MossPushHandler
    a, b = agent(), agent()
    a.add_texts(["from a"], ids=["a"])
    b.add_texts(["from b"], ids=["b"])
    await push(kind(a))
    await push(kind(b))
    reader = agent()
    assert sorted(d.id or "" for d in reader.get_by_ids(["a", "b"])) == ["a", "b"]

    # merge=False stays available: a plain replace, so the last writer's session wins.
    a.add_texts(["again"], ids=["a2"])
    await push(kind(a, merge=False))
    assert [d.id for d in agent().get_by_ids(["a", "b", "a2"])] == ["a", "a2"]


def test_targets(vs: MossVectorStore, store_dir: Path) -> None:
    other = MossVectorStore(index_name="other", embedding=CountingEmbeddings(), store=store_dir)
    retriever = MossRetriever(vectorstore=vs)
    handler = MossPushHandler([vs, other.session, retriever])
    assert [s.name for s in handler.sessions] == ["notes", "other"]
    assert MossPushHandler(retriever).sessions == (vs.session,)
    blocking = MossClient(store=store_dir).sync.session("blocking")  # a SyncSession
    blocking.add_docs([DocumentInfo(id="b", text="b", embedding=[1.0] * 384)])
    assert MossPushHandler(blocking).push()[0].index_name == "blocking"
    with pytest.raises(InvalidArgumentError, match="at least one"):
        MossPushHandler([])
    with pytest.raises(InvalidArgumentError, match="got str"):
        MossPushHandler(["notes"])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match="every_n_chain_ends"):
        MossPushHandler(vs, every_n_chain_ends=0)
    assert isinstance(handler, BaseCallbackHandler)


class Turns(TypedDict):
    turn: int


def two_agents(vs: MossVectorStore) -> Any:
    """agent_a -> agent_b -> tail: each agent writes one turn; tail writes nothing."""

    def agent(name: str) -> Any:  # a LangGraph node: its typing wants a protocol
        def node(state: Turns) -> dict[str, int]:
            vs.add_texts([f"{name} says turn {state['turn']}"], ids=[f"{name}-{state['turn']}"])
            return {"turn": state["turn"] + 1}

        return node

    graph = StateGraph(Turns)
    graph.add_node("agent_a", agent("agent_a"))
    graph.add_node("agent_b", agent("agent_b"))
    graph.add_node("tail", lambda state: {"turn": state["turn"]})
    graph.add_edge(START, "agent_a")
    graph.add_edge("agent_a", "agent_b")
    graph.add_edge("agent_b", "tail")
    graph.add_edge("tail", END)
    return graph.compile()


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_versions_record_the_node_as_author_and_the_checkpoint_as_message(
    is_async: bool, vs: MossVectorStore, counting_store: CountingStore
) -> None:
    graph = two_agents(vs)
    kind = AsyncMossPushHandler if is_async else MossPushHandler

    async def run(handler: Any, turn: int) -> None:
        config: Any = {"callbacks": [handler], "run_name": "conversation"}
        if is_async:
            await graph.ainvoke({"turn": turn}, config=config)
        else:
            graph.invoke({"turn": turn}, config=config)

    await run(kind(vs, nodes=["agent_a", "agent_b"]), 0)
    vs.add_texts(["written outside any node"], ids=["outside"])
    await run(kind(vs, nodes=["agent_a"]), 1)  # agent_b's and the outside writes: the root end
    await run(kind(vs, nodes=["agent_b"], author="reviewer"), 2)
    versions = MossClient(store=counting_store).sync.versions("notes")
    assert [(v.author, v.message) for v in versions] == [
        ("agent_a", "node:agent_a"),
        ("agent_b", "node:agent_b"),
        ("agent_a", "node:agent_a"),
        ("conversation", "root end"),
        ("reviewer", "node:agent_b"),  # the option wins; agent_a's write went with it
    ]
    diff = MossClient(store=counting_store).sync.diff("notes", 3, 4)
    assert diff.added == ["agent_b-2"]  # agent_a-1 and "outside" went with agent_a's push
    handler: Any = kind(vs)
    vs.add_texts(["by hand"], ids=["hand"])
    pushed = (
        await handler.apush(author="me", message="manual")
        if is_async
        else handler.push(author="me", message="manual")
    )
    assert pushed and MossClient(store=counting_store).sync.versions("notes")[-1].message == (
        "manual"
    )
