"""langchain_core.indexing: index() and aindex() write to MossVectorStore with a record manager."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.indexing import InMemoryRecordManager, aindex, index
from langchain_moss import MossVectorStore
from lc_moss_helpers import CountingEmbeddings

from moss import InvalidArgumentError

DOCS = [
    Document(page_content=f"page {i} of the manual", metadata={"source": f"manual-{i % 2}.md"})
    for i in range(5)
]


def stored_texts(store: MossVectorStore) -> list[str]:
    return sorted(doc.text for doc in store.session.sync.get_docs())


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_index_with_incremental_and_full_cleanup(
    is_async: bool, embeddings: CountingEmbeddings, store_dir: Path
) -> None:
    # Issue 16.3: index() passes batch_size=, which add_documents refused.
    store = MossVectorStore(index_name="manual", embedding=embeddings, store=store_dir)
    manager = InMemoryRecordManager(namespace="moss/manual")
    manager.create_schema()

    async def run(docs: list[Document], cleanup: str) -> dict[str, int]:
        # index() passes batch_size= (default 100) to add_documents on every call.
        args = {"cleanup": cleanup, "source_id_key": "source", "key_encoder": "sha256"}
        if is_async:
            return dict(await aindex(docs, manager, store, **args))  # type: ignore[arg-type]
        return dict(index(docs, manager, store, **args))  # type: ignore[arg-type]

    first = await run(DOCS, "incremental")
    assert first == {"num_added": 5, "num_updated": 0, "num_skipped": 0, "num_deleted": 0}
    assert stored_texts(store) == sorted(doc.page_content for doc in DOCS)
    assert (await run(DOCS, "incremental"))["num_skipped"] == 5

    # One page of manual-0.md changes: incremental cleanup replaces that source's old page.
    changed = [*DOCS[:4], Document(page_content="page 4, revised", metadata=DOCS[4].metadata)]
    second = await run(changed, "incremental")
    assert second["num_added"] == 1 and second["num_deleted"] == 1
    assert "page 4, revised" in stored_texts(store) and "page 4 of the manual" not in stored_texts(
        store
    )

    # Full cleanup keeps only what this run saw.
    third = await run(changed[:2], "full")
    assert third["num_deleted"] == 3
    assert stored_texts(store) == sorted(doc.page_content for doc in changed[:2])


async def test_batch_size_is_checked_and_used(embeddings: CountingEmbeddings) -> None:
    store = MossVectorStore(index_name="batches", embedding=embeddings)
    store.add_documents(DOCS, batch_size=2)
    assert embeddings.document_calls == 3  # 2 + 2 + 1 texts
    await store.aadd_texts(["x", "y", "z"], batch_size=1)
    assert embeddings.async_document_calls == 3
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        store.add_documents(DOCS, batch_size=0)
