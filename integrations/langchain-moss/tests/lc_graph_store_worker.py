"""A second process: a LangGraph graph compiled with a MossStore reads what another process wrote.

Usage: python lc_graph_store_worker.py STORE_DIR INDEX_NAME USER QUERY
Prints JSON: the memories the graph's node found for USER, best first, with their scores.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TypedDict

from langchain_moss import MossStore
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore, IndexConfig
from lc_moss_helpers import CountingEmbeddings

from moss import MossClient


class State(TypedDict):
    user: str
    query: str
    found: list[dict[str, Any]]


def recall(state: State, *, store: BaseStore) -> dict[str, Any]:
    """The node: search the user's memories for the query."""
    hits = store.search(("memories", state["user"]), query=state["query"], limit=5)
    return {"found": [{"key": hit.key, "value": hit.value, "score": hit.score} for hit in hits]}


def main(store_dir: str, index_name: str, user: str, query: str) -> None:
    index: IndexConfig = {"dims": 16, "embed": CountingEmbeddings(), "fields": ["text"]}
    store = MossStore(index_name, index=index, client=MossClient(store=store_dir))
    builder = StateGraph(State)
    builder.add_node("recall", recall)
    builder.add_edge(START, "recall")
    builder.add_edge("recall", END)
    graph = builder.compile(store=store)
    out = graph.invoke({"user": user, "query": query, "found": []})
    print(json.dumps({"found": out["found"], "version": store.session.version}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
