"""MossPushHandler: pushes at LlamaIndex checkpoints, once per checkpoint after a change, never concurrently."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.llms import MockLLM
from llama_index.core.schema import TextNode
from llama_index.vector_stores.moss import MossPushHandler, MossVectorStore

from moss import DocumentInfo, FileStore, InvalidArgumentError, MossClient, ServiceUnavailableError

DIM = 8
dispatcher = get_dispatcher(__name__)


class HashEmbedding(BaseEmbedding):
    """A deterministic stand-in embedder (no model needed for checkpoint tests)."""

    @classmethod
    def class_name(cls) -> str:
        return "HashEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        digest = hashlib.sha256(query.encode()).digest()
        return [b / 255 + 0.01 for b in digest[:DIM]]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_query_embedding(text)


class SlowStore(FileStore):
    """A file store whose puts take a while and record how many ran at once."""

    def __init__(self, root: Path, delay: float = 0.0) -> None:
        super().__init__(root, keep_versions=5)
        self.delay = delay
        self.active = 0
        self.max_active = 0
        self.puts = 0
        self.fail = False
        self._count_lock = threading.Lock()

    def put(self, project: str, name: str, chunks: Any, **kwargs: Any) -> Any:
        with self._count_lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay)
            if self.fail:
                raise ServiceUnavailableError("the store is down: retry later")
            result = super().put(project, name, chunks, **kwargs)
            self.puts += 1
            return result
        finally:
            with self._count_lock:
                self.active -= 1


class Checkpoint(BaseEvent):
    """A user-defined checkpoint event."""

    @classmethod
    def class_name(cls) -> str:
        return "Checkpoint"


class Agent:
    """Something with a span of its own, as a user's agent step would be."""

    def __init__(self, store: MossVectorStore) -> None:
        self.store = store

    @dispatcher.span
    def step(self, text: str, fail: bool = False) -> None:
        self.store.add(
            [TextNode(id_=text, text=text, embedding=HashEmbedding().get_text_embedding(text))]
        )
        if fail:
            raise RuntimeError("the step failed")


class SubAgent(Agent):
    @dispatcher.span
    def step(self, text: str, fail: bool = False) -> None:
        super().step(text, fail)


@pytest.fixture
def slow_store(tmp_path: Path) -> SlowStore:
    return SlowStore(tmp_path / "slow")


@pytest.fixture
def vector_store(slow_store: SlowStore) -> MossVectorStore:
    return MossVectorStore("kb", client=MossClient(store=slow_store), embed_model=HashEmbedding())


def _node(text: str) -> TextNode:
    return TextNode(id_=text, text=text)


def test_query_and_retrieval_ends_push_once_after_a_change(
    vector_store: MossVectorStore, slow_store: SlowStore
) -> None:
    index = VectorStoreIndex.from_vector_store(vector_store, embed_model=HashEmbedding())
    retriever = index.as_retriever(similarity_top_k=2)
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=2)
    with MossPushHandler(vector_store) as handler:
        retriever.retrieve("nothing changed yet")
        assert slow_store.puts == 0
        vector_store.add([_node("first")])
        retriever.retrieve("after one change")
        assert slow_store.puts == 1 and vector_store.session.version == 1
        retriever.retrieve("no change since")
        assert slow_store.puts == 1
        vector_store.add([_node("second")])
        engine.query("retrieval end, then query end")  # two checkpoints, one change
        assert slow_store.puts == 2 and handler.push_count == 2
    vector_store.add([_node("third")])
    retriever.retrieve("detached")
    assert slow_store.puts == 2


def test_ingestion_pipeline_run_pushes_when_it_ends(
    vector_store: MossVectorStore, slow_store: SlowStore
) -> None:
    pipeline = IngestionPipeline(transformations=[HashEmbedding()], vector_store=vector_store)
    with MossPushHandler(vector_store):
        pipeline.run(documents=[Document(text="one", id_="d1"), Document(text="two", id_="d2")])
        assert slow_store.puts == 1
        assert vector_store.session.version == 1 and not vector_store.session.has_unpushed_changes
        pipeline.run(documents=[])
        assert slow_store.puts == 1


async def test_async_ingestion_pipeline_run_pushes_when_it_ends(
    vector_store: MossVectorStore, slow_store: SlowStore
) -> None:
    pipeline = IngestionPipeline(transformations=[HashEmbedding()], vector_store=vector_store)
    with MossPushHandler(vector_store):
        await pipeline.arun(documents=[Document(text="one", id_="d1")])
    assert slow_store.puts == 1 and vector_store.session.doc_count == 1


def test_user_chosen_events_and_spans(vector_store: MossVectorStore, slow_store: SlowStore) -> None:
    with MossPushHandler(vector_store, events=[Checkpoint], spans=["Agent.step"]):
        vector_store.add([_node("a")])
        dispatcher.event(Checkpoint())
        assert slow_store.puts == 1
        Agent(vector_store).step("b")
        assert slow_store.puts == 2
        SubAgent(vector_store).step("c")  # a span of a subclass matches its base's name
        assert slow_store.puts == 3
        with pytest.raises(RuntimeError):
            Agent(vector_store).step("d", fail=True)  # a failed span is no checkpoint
        assert slow_store.puts == 3
        VectorStoreIndex.from_vector_store(
            vector_store, embed_model=HashEmbedding()
        ).as_retriever().retrieve("q")
        assert slow_store.puts == 3  # retrieval end is not among the chosen events
        dispatcher.event(Checkpoint())
        assert slow_store.puts == 4


def test_checkpoints_during_a_push_never_overlap_and_lose_nothing(tmp_path: Path) -> None:
    slow = SlowStore(tmp_path / "slow", delay=0.05)
    vector_store = MossVectorStore("kb", client=MossClient(store=slow), model_id="custom")
    handler = MossPushHandler(vector_store, events=[Checkpoint])
    start = threading.Barrier(8)

    def worker(i: int) -> None:
        start.wait()
        for j in range(3):
            vector_store.add(
                [TextNode(id_=f"{i}-{j}", text="x", embedding=[1.0, float(i), float(j)])]
            )
            dispatcher.event(Checkpoint())

    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        handler.detach()
    assert slow.max_active == 1
    assert 1 <= slow.puts <= 24 and handler.push_count == slow.puts
    assert not vector_store.session.has_unpushed_changes
    reader = MossClient(store=tmp_path / "slow").sync.session("kb")
    assert reader.doc_count == 24 and reader.version == slow.puts


def test_failed_pushes_are_logged_kept_and_raised_on_request(
    vector_store: MossVectorStore, slow_store: SlowStore, caplog: pytest.LogCaptureFixture
) -> None:
    slow_store.fail = True
    with MossPushHandler(vector_store, events=[Checkpoint]) as handler:
        vector_store.add([_node("a")])
        with caplog.at_level(logging.ERROR):
            dispatcher.event(Checkpoint())  # the dispatcher would swallow anything raised
        assert "'kb'" in caplog.text and "the store is down" in caplog.text
        assert len(handler.errors) == 1
        with pytest.raises(ServiceUnavailableError):
            handler.raise_for_errors()
        handler.raise_for_errors()  # forgotten once raised
    strict = MossPushHandler(vector_store, raise_error=True, attach=False)
    with pytest.raises(ServiceUnavailableError):
        strict.checkpoint()
    slow_store.fail = False
    assert [result.version for result in strict.checkpoint()] == [1]  # the change was kept
    assert strict.checkpoint() == []


def test_one_handler_pushes_several_sessions(client: MossClient) -> None:
    first = MossVectorStore("one", client=client, model_id="custom")
    second = client.sync.session("two", "custom")
    handler = MossPushHandler(first, second, attach=False)
    first.add([TextNode(id_="a", text="a", embedding=[1.0, 0.0])])
    assert [r.index_name for r in handler.checkpoint()] == ["one"]
    first.add([TextNode(id_="b", text="b", embedding=[0.0, 1.0])])
    second.sync.add_docs([DocumentInfo(id="x", text="x", embedding=[1.0, 1.0])])
    assert sorted(r.index_name for r in handler.checkpoint()) == ["one", "two"]
    assert handler.checkpoint() == []


class NamedAgent(Agent):
    """An agent with a name, as LlamaIndex agents have."""

    def __init__(self, store: MossVectorStore, name: str) -> None:
        super().__init__(store)
        self.name = name


def test_versions_record_the_component_as_author_and_the_checkpoint_as_message(
    vector_store: MossVectorStore, slow_store: SlowStore
) -> None:
    retriever = VectorStoreIndex.from_vector_store(
        vector_store, embed_model=HashEmbedding()
    ).as_retriever()
    with MossPushHandler(vector_store, spans=["Agent.step"]):
        NamedAgent(vector_store, "agent_a").step("a1")
        NamedAgent(vector_store, "agent_b").step("b1")
        Agent(vector_store).step("x")  # no name: its class
        vector_store.add([_node("r")])
        retriever.retrieve("q")
    with MossPushHandler(vector_store, events=[], spans=["Agent.step"], author="reviewer"):
        NamedAgent(vector_store, "agent_a").step("a2")
    versions = MossClient(store=slow_store).sync.versions("kb")
    assert [(v.author, v.message) for v in versions] == [
        ("agent_a", "span:NamedAgent.step"),  # the span names the instance's class
        ("agent_b", "span:NamedAgent.step"),
        ("Agent", "span:Agent.step"),
        ("VectorIndexRetriever", "event:RetrievalEndEvent"),
        ("reviewer", "span:NamedAgent.step"),  # the option wins over the agent's name
    ]
    assert MossClient(store=slow_store).sync.diff("kb", 1, 2).added == ["b1"]
    vector_store.add([_node("by hand")])
    handler = MossPushHandler(vector_store, attach=False)
    assert handler.checkpoint(author="me", message="manual")
    last = MossClient(store=slow_store).sync.versions("kb")[-1]
    assert (last.author, last.message) == ("me", "manual")
    with pytest.raises(InvalidArgumentError, match="author"):
        MossPushHandler(vector_store, attach=False, author="")
