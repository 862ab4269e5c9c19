"""Adds embed only what changed: stored vectors are reused, repeated texts embedded once."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery
from llama_index.vector_stores.moss import MossVectorStore
from test_li_open import RecordingEmbedding
from test_li_vector_store import ASYNC_NAMES

from moss import MossClient


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Any:
    """Call a store method by its sync name or its async twin: one test covers both."""

    async def invoke(store: MossVectorStore, name: str, *args: Any, **kwargs: Any) -> Any:
        if request.param == "sync":
            return getattr(store, name)(*args, **kwargs)
        return await getattr(store, ASYNC_NAMES[name])(*args, **kwargs)

    return invoke


def nodes(version: int, **shown: Any) -> list[TextNode]:
    """Three nodes; ``v`` is hidden from the embedding as LlamaIndex allows, ``shown`` is not."""
    return [
        TextNode(
            id_=f"n{i}",
            text=f"note {i} about {topic}",
            metadata={"v": version, **shown},
            excluded_embed_metadata_keys=["v"],
        )
        for i, topic in enumerate(["rivers", "mountains", "deserts"])
    ]


def answer(store: MossVectorStore) -> list[tuple[str, float]]:
    result = store.query(VectorStoreQuery(query_str="mountains", similarity_top_k=3))
    assert result.ids is not None and result.similarities is not None
    return [(i, round(s, 6)) for i, s in zip(result.ids, result.similarities, strict=True)]


async def test_readding_with_new_metadata_embeds_nothing(client: MossClient, call: Any) -> None:
    embedder = RecordingEmbedding()
    store = MossVectorStore("kb", client=client, embed_model=embedder)
    await call(store, "add", nodes(1))
    assert len(embedder.texts) == 3
    before = answer(store)
    embedder.texts.clear()
    # Before: every re-add embedded all nodes again, even when only hidden metadata changed.
    await call(store, "add", nodes(2))
    assert embedder.texts == []
    assert answer(store) == before
    assert {n.metadata["v"] for n in store.get_nodes()} == {2}


async def test_changed_embedded_text_and_repeats(client: MossClient, call: Any) -> None:
    embedder = RecordingEmbedding()
    store = MossVectorStore("kb", client=client, embed_model=embedder)
    await call(store, "add", nodes(1))
    embedder.texts.clear()
    # Metadata LlamaIndex embeds changes the embedded text, so it is embedded again.
    changed = nodes(1, team="blue")
    await call(store, "add", changed)
    assert embedder.texts == [n.get_content(metadata_mode="embed") for n in changed]  # type: ignore[arg-type]
    embedder.texts.clear()
    twins = [TextNode(id_=f"t{i}", text="the same words") for i in range(4)]
    await call(store, "add", twins)
    assert embedder.texts == ["the same words"]
    got = store.get_nodes([f"t{i}" for i in range(4)], include_embeddings=True)
    assert len({tuple(n.embedding or []) for n in got}) == 1


async def test_progress_is_reported(client: MossClient, call: Any) -> None:
    seen: list[tuple[int, int]] = []
    store = MossVectorStore("kb", client=client, embed_model=RecordingEmbedding())
    await call(store, "add", nodes(1), progress=lambda done, total: seen.append((done, total)))
    assert seen == [(3, 3)]
