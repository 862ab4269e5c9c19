"""Fixtures for the LlamaIndex adapter: an isolated moss home, no network, a client per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_socket

from moss import MossClient


@pytest.fixture(autouse=True)
def isolated_moss_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's ~/.moss or inherit their store settings."""
    monkeypatch.setenv("MOSS_HOME", str(tmp_path / "moss-home"))
    for variable in ("MOSS_STORE", "MOSS_PROJECT_ID", "MOSS_PROJECT_KEY"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture(autouse=True)
def no_network() -> Iterator[None]:
    """LlamaIndex must not download anything (nltk data, tiktoken files): sockets fail here.

    Unix sockets stay allowed: asyncio's event loop needs a socketpair.
    """
    pytest_socket.disable_socket(allow_unix_socket=True)
    try:
        yield
    finally:
        pytest_socket.enable_socket()


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A directory for a file store that a second process can open too."""
    return tmp_path / "store"


@pytest.fixture
def client(store_dir: Path) -> Iterator[MossClient]:
    """A client on an empty file store."""
    with MossClient(store=store_dir) as made:
        yield made
