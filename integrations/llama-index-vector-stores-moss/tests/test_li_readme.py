"""The README names every public name of the package, and no stale claim about query modes."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import llama_index.vector_stores.moss as package

README = (Path(__file__).parents[1] / "README.md").read_text()
MODULES = ["base", "embeddings", "handlers"]


def public_names() -> set[str]:
    """Names in the package's and its public modules' __all__, and the exported classes' own
    public attributes (methods, properties, fields)."""
    names = set(package.__all__)
    for module in MODULES:
        names |= set(importlib.import_module(f"{package.__name__}.{module}").__all__)
    for name in package.__all__:
        exported = getattr(package, name)
        if isinstance(exported, type):
            own = set(vars(exported)) | set(getattr(exported, "__annotations__", {}))
            names |= {attr for attr in own if not attr.startswith("_")}
    # Pydantic's and LlamaIndex's machinery, not this package's API.
    return names - {"model_config", "model_post_init", "class_name"}


def test_every_public_name_appears_in_the_readme() -> None:
    missing = sorted(n for n in public_names() if not re.search(rf"\b{re.escape(n)}\b", README))
    assert missing == []


def test_readme_does_not_say_keyword_modes_raise() -> None:
    # Before: "HYBRID and TEXT_SEARCH raise InvalidArgumentError until moss has keyword search".
    assert "until moss has keyword search" not in README
    assert "TEXT_SEARCH" in README and "HYBRID" in README
