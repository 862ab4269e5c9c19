"""`make dist` builds the three wheels a machine without a package index installs from."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_make_dist_builds_installable_wheels() -> None:
    subprocess.run(["make", "dist"], cwd=ROOT, check=True, capture_output=True, timeout=280)
    wheels = {path.name.split("-")[0]: path for path in (ROOT / "dist").glob("*.whl")}
    assert set(wheels) == {
        "moss_sessions",
        "langchain_moss_sessions",
        "llama_index_vector_stores_moss_sessions",
    }
    core = set(zipfile.ZipFile(wheels["moss_sessions"]).namelist())
    # What the package needs at run time ships inside it: the model's tokenizer, the console.
    for needed in (
        "moss/py.typed",
        "moss/embeddings/data/tokenizer.json",
        "moss/console/static/console.css",
        "moss/console/templates/login.html",
        "moss/cli/main.py",
        "moss/stores/postgres/store.py",
    ):
        assert needed in core, needed
    assert (
        "langchain_moss/vectorstores.py"
        in zipfile.ZipFile(wheels["langchain_moss_sessions"]).namelist()
    )
    assert (
        "llama_index/vector_stores/moss/base.py"
        in zipfile.ZipFile(wheels["llama_index_vector_stores_moss_sessions"]).namelist()
    )
    metadata = (
        zipfile.ZipFile(wheels["moss_sessions"])
        .read("moss_sessions-0.1.0.dist-info/METADATA")
        .decode()
    )
    for extra in ("server", "postgres", "mcp", "console"):
        assert f"Provides-Extra: {extra}" in metadata
