"""Shared fixtures: stores for the contract suite, an isolated MOSS_HOME per test."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from moss.stores import FileStore, Store

#: Every store the contract suite runs over; later stores add themselves here.
STORE_KINDS = ["file", "http", "postgres"]


@pytest.fixture(autouse=True)
def isolated_moss_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's ~/.moss or inherit their store settings."""
    monkeypatch.setenv("MOSS_HOME", str(tmp_path / "moss-home"))
    for variable in ("MOSS_STORE", "MOSS_PROJECT_ID", "MOSS_PROJECT_KEY"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each kind."""
    kind = request.param
    if kind == "file":
        made: Store = FileStore(tmp_path / "store", keep_versions=5)
    elif kind == "http":  # a real `moss serve` subprocess over a file store (tests/service.py)
        from service import contract_http_store

        made = contract_http_store(request.config)
    elif kind == "postgres":  # a fresh schema of a throw-away PostgreSQL cluster (tests/pg.py)
        from pg import contract_postgres_store

        made = contract_postgres_store(request.config)
    else:  # pragma: no cover - a kind listed without a factory is a bug in this file
        raise AssertionError(f"no factory for store kind {kind}")
    yield made
    made.close()
