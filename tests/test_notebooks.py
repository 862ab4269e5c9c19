"""Every notebook in notebooks/ runs top to bottom in a fresh kernel, offline, and is committed clean.

Each notebook is executed with nbclient in a new IPython kernel of this interpreter, with the
notebook's folder as working directory, as a reader running it in Jupyter would. A cell that
raises fails the test, except cells tagged ``raises-exception`` (the notebooks show some errors
on purpose): such a cell must start with ``# raises ErrorName`` and raise exactly that. A
traceback printed to a cell's stderr (an exception in a background thread) fails too.

Notebooks start what they need themselves (``04`` starts ``moss serve``), keep their indexes in
a temporary ``MOSS_HOME``, and run without network: the kernel gets a dead HTTP proxy for
everything but 127.0.0.1, and a ``MOSS_HOME`` that must stay untouched.

Committed notebooks carry no outputs and no execution counts, so diffs show only what changed
in the code and prose (the check nbstripout would do). To run one by hand:
``.venv/bin/jupyter execute notebooks/01_quickstart.ipynb``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
#: The longest any one cell may run (the model loads in a few seconds; the service starts in one).
CELL_TIMEOUT = 180
RAISES = re.compile(r"#\s*raises\s+(\w+)")


def read(path: Path) -> Any:
    """The notebook at ``path`` (nbformat is untyped)."""
    return nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]


def ids(paths: list[Path]) -> list[str]:
    return [path.stem for path in paths]


def test_every_issue_notebook_exists() -> None:
    names = {path.stem for path in NOTEBOOKS}
    for expected in (
        "01_quickstart",
        "02_langchain_multi_agent",
        "03_llamaindex_query_engine",
        "04_sharing_across_machines",
        "05_performance",
        "06_mcp_and_langgraph",
    ):
        assert expected in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_committed_without_outputs(path: Path) -> None:
    notebook = read(path)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {index} has outputs: strip them"
            assert cell.execution_count is None, f"{path.name} cell {index} has a count"
        assert "attachments" not in cell, f"{path.name} cell {index} has attachments"
    assert notebook.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Kernels of this interpreter, Jupyter's files in tmp_path, no way out to the network.

    Returns the MOSS_HOME the kernel inherits, which notebooks must not use.
    """
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    # Our own spec, first on JUPYTER_PATH: a user's "python3" kernel may be another Python.
    spec.joinpath("kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "moss tests",
                "language": "python",
            }
        ),
        encoding="utf-8",
    )
    dead_proxy = "http://127.0.0.1:9"  # the discard port: nothing answers
    env = {
        "JUPYTER_PATH": str(tmp_path / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "HTTP_PROXY": dead_proxy,
        "HTTPS_PROXY": dead_proxy,
        "ALL_PROXY": dead_proxy,
        "NO_PROXY": "127.0.0.1,localhost",
        "HF_HUB_OFFLINE": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Path(str(tmp_path / "moss-home-not-to-use"))


def execute(path: Path) -> Any:
    """Run the notebook in a fresh kernel from its own folder; return it with outputs."""
    notebook = read(path)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()
    return notebook


def check_outputs(path: Path, notebook: Any) -> None:
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        where = f"{path.name} cell {index}"
        errors = [out for out in cell.outputs if out.output_type == "error"]
        if "raises-exception" in cell.metadata.get("tags", []):
            expected = RAISES.match(cell.source)
            assert expected, f"{where} is tagged raises-exception: start it with '# raises Name'"
            assert [err.ename for err in errors] == [expected.group(1)], f"{where}: {errors}"
        for out in cell.outputs:
            if out.output_type == "stream" and out.name == "stderr":
                assert "Traceback (most recent call last)" not in out.text, f"{where}:\n{out.text}"


@pytest.mark.model
@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_notebook_runs(path: Path, kernel_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSS_HOME", str(kernel_env))
    notebook = execute(path)
    check_outputs(path, notebook)
    assert not kernel_env.exists(), f"{path.name} wrote to the inherited MOSS_HOME"
