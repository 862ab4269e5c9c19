"""The package surface: one sorted, complete __all__; typed; depends on moss and langchain-core only."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import langchain_moss

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = None

PACKAGE = Path(langchain_moss.__file__).parent


def test_all_is_sorted_and_complete() -> None:
    assert langchain_moss.__all__ == sorted(langchain_moss.__all__)
    public = {
        name
        for name, value in vars(langchain_moss).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(langchain_moss.__all__)
    for module in ("vectorstores", "retrievers", "callbacks", "embeddings", "graph_store"):
        defined = {
            name
            for name, value in vars(getattr(langchain_moss, module)).items()
            if inspect.isclass(value)
            and value.__module__ == f"langchain_moss.{module}"
            and not name.startswith("_")
        }
        assert defined <= set(langchain_moss.__all__), module


def test_typed_and_light() -> None:
    assert (PACKAGE / "py.typed").exists()
    if tomllib is None:
        return
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    assert project["name"] == "langchain-moss-sessions"
    names = sorted(dep.split(">")[0].split("<")[0].split("=")[0] for dep in project["dependencies"])
    assert names == ["langchain-core", "moss-sessions"]
