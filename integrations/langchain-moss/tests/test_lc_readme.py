"""The README's two-agent example runs as written, as two processes, and prints what it shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


def scripts_and_outputs() -> tuple[dict[str, str], dict[str, str]]:
    text = README.read_text(encoding="utf-8")
    scripts = dict(re.findall(r"```python\n# (\S+\.py)\n(.*?)```", text, re.S))
    (console,) = re.findall(r"```console\n(.*?)```", text, re.S)
    outputs = dict(re.findall(r"\$ python (\S+\.py)\n(.*?)(?=^\$ |\Z)", console, re.S | re.M))
    return scripts, outputs


@pytest.mark.model
def test_readme_example_runs_as_shown(tmp_path: Path) -> None:
    scripts, outputs = scripts_and_outputs()
    assert list(scripts) == list(outputs) == ["two_agents.py", "resume.py"]
    env = {**os.environ, "MOSS_HOME": str(tmp_path / "moss-home")}
    for name, code in scripts.items():
        (tmp_path / name).write_text(code, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, name],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == outputs[name]


def test_readme_names_every_public_name() -> None:
    # Issue 16.8: the README is the adapter's manual; a public name missing from it is undocumented.
    import langchain_moss

    text = README.read_text(encoding="utf-8")
    missing = [name for name in langchain_moss.__all__ if f"`{name}" not in text]
    assert not missing, f"add these to the README: {missing}"
