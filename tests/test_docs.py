"""The docs build and stay true: the API reference covers the public names, the errors page
covers every error class, and relative links in the README, docs and notebooks resolve."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
from pathlib import Path

import pytest

import moss.errors

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def load_builder() -> object:
    sys.path.insert(0, str(DOCS))
    try:
        return importlib.import_module("build_api")
    finally:
        sys.path.remove(str(DOCS))


@pytest.mark.timeout(120)
def test_api_reference_builds_with_every_public_name(tmp_path: Path) -> None:
    builder = load_builder()
    # The search index is most of the build time and not what this test checks.
    index = builder.build(tmp_path / "api", search=False)  # type: ignore[attr-defined]
    assert index.is_file()
    for module_name in builder.MODULES:  # type: ignore[attr-defined]
        module = importlib.import_module(module_name)
        page = (tmp_path / "api" / (module_name.replace(".", "/") + ".html")).read_text()
        for name in module.__all__:
            assert f'id="{name}"' in page, f"{module_name}.{name} is missing from the reference"


def test_errors_page_covers_every_error() -> None:
    classes = {
        name
        for name, value in inspect.getmembers(moss.errors, inspect.isclass)
        if issubclass(value, moss.errors.MossError)
    }
    headings = set(re.findall(r"^## (\w+)", (DOCS / "errors.md").read_text(), re.M))
    assert classes - {"MossError"} <= headings
    assert "MossError" in (DOCS / "errors.md").read_text()


def markdown_sources() -> list[tuple[Path, str]]:
    """(file, markdown text) of the README, the docs and the notebooks' markdown cells."""
    sources = [(ROOT / "README.md", (ROOT / "README.md").read_text())]
    sources += [(path, path.read_text()) for path in sorted(DOCS.glob("*.md"))]
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        sources.append((path, text))
    return sources


def test_relative_links_resolve() -> None:
    broken = []
    for path, text in markdown_sources():
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor in the same page
            if not (path.parent / target.split("#")[0]).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, broken
