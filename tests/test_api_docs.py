"""Every public name is documented: in docs/api.md, or for an adapter in its README."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = {
    "moss": [ROOT / "docs" / "api.md"],
    "langchain_moss": [
        ROOT / "docs" / "api.md",
        ROOT / "integrations" / "langchain-moss" / "README.md",
    ],
    "llama_index.vector_stores.moss": [
        ROOT / "docs" / "api.md",
        ROOT / "integrations" / "llama-index-vector-stores-moss" / "README.md",
    ],
}


@pytest.mark.parametrize("module_name", sorted(PAGES))
def test_every_public_name_is_documented(module_name: str) -> None:
    text = "\n".join(page.read_text() for page in PAGES[module_name])
    module = importlib.import_module(module_name)
    missing = [name for name in module.__all__ if f"`{name}" not in text and f" {name}" not in text]
    assert not missing, (
        f"{module_name} names missing from {[p.name for p in PAGES[module_name]]}: {missing}"
    )
