"""Fixtures of the langchain-moss tests: an isolated MOSS_HOME per test, stores to count pushes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lc_moss_helpers import CountingEmbeddings, CountingStore


@pytest.fixture(autouse=True)
def isolated_moss_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's ~/.moss or inherit their store settings."""
    monkeypatch.setenv("MOSS_HOME", str(tmp_path / "moss-home"))
    for variable in ("MOSS_STORE", "MOSS_PROJECT_ID", "MOSS_PROJECT_KEY"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def embeddings() -> CountingEmbeddings:
    """Deterministic 16-d fake embeddings that count their calls."""
    return CountingEmbeddings()


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """Where a file store keeps its indexes."""
    return tmp_path / "store"


@pytest.fixture
def counting_store(store_dir: Path) -> Iterator[CountingStore]:
    """A file store that counts pushes and how many ran at once."""
    made = CountingStore(store_dir)
    yield made
    made.close()
