"""The `moss` command, run as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from moss import DocumentInfo, MossClient

MOSS = str(Path(sys.executable).with_name("moss"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MOSS, *args], capture_output=True, text=True, timeout=120)


def test_ls_and_inspect(tmp_path: Path) -> None:
    store = (tmp_path / "store").as_uri()
    client = MossClient("team", store=store)
    session = client.sync.session("conv-9", model_id="custom")
    session.sync.add_docs(
        [DocumentInfo(id=f"d{i}", text="t", embedding=np.ones(4) + i) for i in range(3)]
    )
    session.sync.push_index()
    session.sync.delete_docs(["d0"])
    session.sync.push_index()

    listed = run("ls", "--store", store, "--project", "team")
    assert listed.returncode == 0, listed.stderr
    row = listed.stdout.splitlines()[1].split()
    assert row[:5] == ["conv-9", "2", "2", "4", "custom"]

    inspected = run("inspect", "conv-9", "--store", store, "--project", "team")
    assert inspected.returncode == 0, inspected.stderr
    assert "model:      custom" in inspected.stdout
    assert "dimension:  4" in inspected.stdout
    assert "documents:  2" in inspected.stdout
    assert len([line for line in inspected.stdout.splitlines() if " docs " in line]) == 2

    assert run("ls", "--store", store).stdout.strip() == "no indexes"
    missing = run("inspect", "nope", "--store", store)
    assert missing.returncode != 0 and "does not exist" in missing.stderr


def test_bad_names_are_one_line_errors(tmp_path: Path) -> None:
    result = run("inspect", "../etc", "--store", (tmp_path / "s").as_uri())
    assert result.returncode == 1
    assert result.stderr.startswith("error: invalid index name")
    assert "Traceback" not in result.stderr
