"""The seed's example, as written, across separate processes with the real moss-minilm model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_module(module: str, store: Path) -> str:
    env = {**os.environ, "MOSS_STORE": store.as_uri()}
    env.pop("MOSS_PROJECT_ID", None)
    env.pop("MOSS_PROJECT_KEY", None)
    completed = subprocess.run(
        [sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.mark.model
def test_seed_handoff_between_processes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    out_a = run_module("moss.demo.agent_a", store)
    assert "agent A pushed 2 documents as version 1" in out_a

    out_b = run_module("moss.demo.agent_b", store).splitlines()
    assert out_b[0] == "2 documents loaded"
    assert out_b[1].startswith("turn-2 score=")
    assert out_b[2].startswith("turn-1 score=")
    first, second = (float(line.split("score=")[1].split()[0]) for line in out_b[1:3])
    assert 0 < second < first <= 1
    assert out_b[-1] == "agent B pushed 3 documents as version 2"

    out_c = run_module("moss.demo.reader", store)
    assert out_c.strip() == "reader sees version 2 with 3 documents: turn-1, turn-2, turn-3"


@pytest.mark.model
def test_moss_demo_command(tmp_path: Path) -> None:
    moss = Path(sys.executable).with_name("moss")
    completed = subprocess.run(
        [str(moss), "demo", "--store", (tmp_path / "s").as_uri()],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "2 documents loaded" in completed.stdout
    assert "reader sees version 2 with 3 documents" in completed.stdout
