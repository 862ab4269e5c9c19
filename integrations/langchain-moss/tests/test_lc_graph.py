"""Two LangGraph agents share a session; the handler pushes at researcher-node ends; another process reads.

The researcher (a fake chat model) writes a finding in rounds 1 and 3 and nothing in round 2; the
answerer retrieves. The handler must push exactly once per researcher end that wrote (twice),
never two pushes at once, before the answerer runs; a second process then opens the index by
name and sees both findings without embedding any document again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import HumanMessage
from langchain_moss import AsyncMossPushHandler, MossPushHandler, MossRetriever, MossVectorStore
from langgraph.graph import END, START, StateGraph
from lc_moss_helpers import CountingEmbeddings, CountingStore, stored_version

from moss import MossClient

FINDINGS = [
    "Refunds reach the card within five business days.",
    "NOTHING NEW",
    "Refunds above 500 dollars need a manager's approval.",
]
READER = Path(__file__).with_name("lc_moss_reader.py")


class State(TypedDict):
    question: str
    round: int
    answers: list[str]


def build_graph(
    vs: MossVectorStore, heads: list[int], head_version: Callable[[], int], *, is_async: bool
) -> Any:
    """researcher -> answerer -> researcher ... for three rounds."""
    researcher_llm = GenericFakeChatModel(messages=iter(FINDINGS))
    answerer_llm = GenericFakeChatModel(messages=iter(["answer 1", "answer 2", "answer 3"]))
    retriever = MossRetriever(vectorstore=vs, k=1)

    def prompt(state: State) -> list[HumanMessage]:
        return [HumanMessage(f"Research {state['question']!r}, round {state['round'] + 1}")]

    def note(state: State, finding: str) -> tuple[int, list[str], list[dict[str, Any]], list[str]]:
        number = state["round"] + 1
        return number, [finding], [{"round": number}], [f"note-{number}"]

    def researcher(state: State) -> dict[str, Any]:
        finding = str(researcher_llm.invoke(prompt(state)).content)
        number, texts, metadatas, ids = note(state, finding)
        if finding != "NOTHING NEW":
            vs.add_texts(texts, metadatas, ids=ids)
        return {"round": number}

    async def aresearcher(state: State) -> dict[str, Any]:
        finding = str((await researcher_llm.ainvoke(prompt(state))).content)
        number, texts, metadatas, ids = note(state, finding)
        if finding != "NOTHING NEW":
            await vs.aadd_texts(texts, metadatas, ids=ids)
        return {"round": number}

    def answerer(state: State) -> dict[str, Any]:
        heads.append(head_version())  # what other processes can see by now
        docs = retriever.invoke(state["question"])
        answer = answerer_llm.invoke([HumanMessage(docs[0].page_content if docs else "")])
        return {"answers": [*state["answers"], str(answer.content)]}

    async def aanswerer(state: State) -> dict[str, Any]:
        heads.append(head_version())
        docs = await retriever.ainvoke(state["question"])
        answer = await answerer_llm.ainvoke([HumanMessage(docs[0].page_content if docs else "")])
        return {"answers": [*state["answers"], str(answer.content)]}

    graph = StateGraph(State)
    graph.add_node("researcher", aresearcher if is_async else researcher)
    graph.add_node("answerer", aanswerer if is_async else answerer)
    graph.add_edge(START, "researcher")
    graph.add_edge("researcher", "answerer")
    graph.add_conditional_edges("answerer", lambda s: "researcher" if s["round"] < 3 else END)
    return graph.compile()


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_researcher_pushes_and_another_process_resumes(
    is_async: bool, counting_store: CountingStore, store_dir: Path
) -> None:
    counting_store.delay = 0.05  # widens the window in which pushes could overlap
    embeddings = CountingEmbeddings()
    vs = MossVectorStore(
        index_name="research", embedding=embeddings, client=MossClient(store=counting_store)
    )
    heads: list[int] = []
    app = build_graph(
        vs, heads, lambda: stored_version(counting_store, "research"), is_async=is_async
    )
    inputs: State = {"question": "How do refunds work?", "round": 0, "answers": []}
    if is_async:
        handler: Any = AsyncMossPushHandler(vs, nodes=["researcher"])
        final = await app.ainvoke(inputs, config={"callbacks": [handler]})
    else:
        handler = MossPushHandler(vs, nodes=["researcher"])
        final = app.invoke(inputs, config={"callbacks": [handler]})

    assert final["answers"] == ["answer 1", "answer 2", "answer 3"]
    # Pushed at the end of researcher rounds 1 and 3 (which wrote), before the answerer ran;
    # round 2 wrote nothing and the root end found nothing new: no push.
    assert heads == [1, 1, 2]
    assert counting_store.puts == handler.push_count == 2
    assert counting_store.max_in_flight == 1

    written_embeddings = embeddings.document_calls + embeddings.async_document_calls
    assert written_embeddings == 2
    report = read_in_another_process(store_dir.as_uri(), "research", FINDINGS[2])
    assert report["version"] == 2
    assert report["docs"] == {"note-1": FINDINGS[0], "note-3": FINDINGS[2]}
    assert report["top"] == ["note-3"]
    assert report["document_calls_after_open"] == report["document_calls_after_query"] == 0
    assert report["query_calls"] == 1


def read_in_another_process(store: str, index_name: str, query: str) -> dict[str, Any]:
    # The script's own directory (this one) is first on its sys.path, so it finds the helpers.
    done = subprocess.run(
        [sys.executable, str(READER), store, index_name, query],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report
