"""Agents sharing one index: merging pushes, expected versions, and push handlers taking turns."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from llama_index.core.schema import TextNode
from llama_index.vector_stores.moss import MossPushHandler, MossVectorStore
from test_li_handlers import SlowStore

from moss import ConflictError, MossClient


def _agent(root: Path) -> MossVectorStore:
    """One agent: its own client and session on the shared index "kb"."""
    return MossVectorStore("kb", store=f"file://{root}", model_id="custom")


def _node(node_id: str) -> TextNode:
    return TextNode(id_=node_id, text=node_id, embedding=[1.0, float(len(node_id))])


def _stored_ids(root: Path) -> set[str]:
    reader = _agent(root)
    try:
        return {node.node_id for node in reader.get_nodes()}
    finally:
        reader.close()


def test_two_agents_keep_each_others_nodes_through_handlers(tmp_path: Path) -> None:
    # Before: the handler pushed plain, so B's push dropped A's node without an error.
    seed = _agent(tmp_path)
    seed.add([_node("seed")])
    seed.push()  # the index exists at version 1; both agents open it
    a, b = _agent(tmp_path), _agent(tmp_path)
    a_handler = MossPushHandler(a, attach=False)
    b_handler = MossPushHandler(b, attach=False)
    a.add([_node("from-a")])
    b.add([_node("from-b")])
    a_handler.checkpoint()
    b_handler.checkpoint()
    assert _stored_ids(tmp_path) == {"seed", "from-a", "from-b"}
    # A plain replace stays available: the last writer's content becomes the index.
    c = _agent(tmp_path)
    c.add([_node("from-c")])
    a.add([_node("late-a")])
    MossPushHandler(c, attach=False).checkpoint()
    MossPushHandler(a, attach=False, merge=False).checkpoint()
    assert _stored_ids(tmp_path) == {"seed", "from-a", "late-a"}


def test_persist_merges_and_push_takes_merge_and_expected_version(tmp_path: Path) -> None:
    seed = _agent(tmp_path)
    seed.add([_node("seed")])
    seed.push()
    a, b = _agent(tmp_path), _agent(tmp_path)
    a.add([_node("from-a")])
    b.add([_node("from-b")])
    a.persist()
    b.persist()  # what StorageContext.persist() calls: it merges
    assert _stored_ids(tmp_path) == {"seed", "from-a", "from-b"}
    c = _agent(tmp_path)
    a.add([_node("again-a")])
    c.add([_node("from-c")])
    assert c.push(expected_version=c.session.version) is not None
    with pytest.raises(ConflictError):
        a.push(expected_version=a.session.version)  # C pushed since A's version
    result = a.push(merge=True)
    assert result is not None and result.version == c.session.version + 1
    assert _stored_ids(tmp_path) == {"seed", "from-a", "from-b", "again-a", "from-c"}


def test_two_handlers_on_one_session_push_once_and_never_at_once(tmp_path: Path) -> None:
    # Before: each handler coalesced its own pushes only, so a second handler reaching a
    # checkpoint during the first one's push pushed the same session again.
    slow = SlowStore(tmp_path / "slow", delay=0.3)
    store = MossVectorStore("kb", client=MossClient(store=slow), model_id="custom")
    handlers = [MossPushHandler(store, attach=False) for _ in range(4)]
    store.add([_node("a")])
    start = threading.Barrier(len(handlers))

    def checkpoint(handler: MossPushHandler) -> None:
        start.wait()
        handler.checkpoint()

    threads = [threading.Thread(target=checkpoint, args=(h,)) for h in handlers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert slow.max_active == 1 and slow.puts == 1  # one change, one push
    assert sum(handler.push_count for handler in handlers) == 1
    assert not store.session.has_unpushed_changes
    assert _stored_ids(tmp_path / "slow") == {"a"}
