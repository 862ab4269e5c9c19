"""Build the HTML API reference of moss and its integrations from their docstrings, with pdoc.

Run: .venv/bin/python docs/build_api.py [OUTPUT_DIR]   (default: build/api; open index.html)

Only the public surface is documented: each package's ``__all__``. tests/test_docs.py builds it
on every test run, so a docstring that breaks the build fails CI.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pdoc
import pdoc.render

#: The import names of the public packages.
MODULES = ("moss", "langchain_moss", "llama_index.vector_stores.moss")
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "build" / "api"


def build(output: Path = DEFAULT_OUTPUT, *, search: bool = True) -> Path:
    """Write the reference into ``output`` (with a search index unless told not to); return its index page."""
    # The docstrings use reStructuredText (``::`` examples, :class: roles).
    pdoc.render.configure(docformat="restructuredtext", search=search, show_source=False)
    pdoc.pdoc(*MODULES, output_directory=output)
    return output / "index.html"


if __name__ == "__main__":
    index = build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT)
    print(f"wrote {index}")
