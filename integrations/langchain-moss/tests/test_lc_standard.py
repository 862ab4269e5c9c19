"""langchain-tests' standard suites, unmodified: VectorStoreIntegrationTests and RetrieversIntegrationTests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.vectorstores import VectorStore
from langchain_moss import MossEmbeddings, MossRetriever, MossVectorStore
from langchain_tests.integration_tests import (
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)

SUPPORT_KB = {
    "refund": "Refunds are paid back to the original card within five business days.",
    "shipping": "Orders ship within two days; shipping is free above fifty dollars.",
    "password": "Reset your password from the login page with the forgot-password link.",
    "warranty": "Every device has a two-year warranty against manufacturing defects.",
    "returns": "Unused items can be returned within thirty days for a full refund.",
}


class TestMossVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, tmp_path: Path) -> Iterator[VectorStore]:
        store = MossVectorStore(
            index_name="standard", embedding=self.get_embeddings(), store=tmp_path / "store"
        )
        yield store
        store.close()


@pytest.mark.model
class TestMossRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def pushed_index(self, isolated_moss_env: None) -> None:
        """The named index the retriever opens: pushed to the default store (MOSS_HOME)."""
        store = MossVectorStore(index_name="support-kb", embedding=MossEmbeddings())
        store.add_texts(list(SUPPORT_KB.values()), ids=list(SUPPORT_KB))
        store.push()

    @property
    def retriever_constructor(self) -> type[MossRetriever]:
        return MossRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, object]:
        return {"index_name": "support-kb"}

    @property
    def retriever_query_example(self) -> str:
        return "how long until my refund arrives?"
