"""Every Python block of README.md runs as written, and prints what the README shows.

The convention (also at the end of README.md):

- Each ```python block is a complete program. They run in README order, each in a fresh
  ``python`` process, all sharing one temporary ``MOSS_HOME`` (so agent B opens what agent A
  pushed) and one temporary working directory.
- An HTML comment on the lines just above a block annotates it:
  ``<!-- not-run: reason -->`` skips it (the reason is required);
  ``<!-- needs: server -->`` runs it against a ``moss serve`` that this test starts, with
  ``MOSS_STORE``, ``MOSS_PROJECT_ID`` and ``MOSS_PROJECT_KEY`` set;
  ``<!-- needs: postgres -->`` runs it with ``MOSS_STORE`` set to a fresh schema of the
  throw-away PostgreSQL cluster of tests/pg.py.
- A ```text block right after a python block is its expected standard output, line by line;
  ``...`` in it matches any text.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")
ANNOTATION = re.compile(r"^<!--\s*([\w-]+):\s*(.*?)\s*-->$")
KNOWN = {"not-run", "needs"}
NEEDS = {"server", "postgres"}
#: Sections whose blocks the issue requires to be run; the test checks none of them is skipped.
REQUIRED_SECTIONS = ("Quickstart", "Sync code", "Models", "Filters")


@dataclass
class Block:
    """One fenced block of the README, with the annotations above it."""

    lang: str
    code: str
    line: int
    section: str
    notes: dict[str, str] = field(default_factory=dict)
    output: str | None = None

    @property
    def where(self) -> str:
        return f"README.md line {self.line} ({self.section})"


def parse(text: str) -> list[Block]:
    """The fenced blocks in order; a text block right after a python block is its output."""
    blocks: list[Block] = []
    lines = text.splitlines()
    section, i, previous_end = "", 0, 0
    while i < len(lines):
        if lines[i].startswith("## "):
            section = lines[i][3:].strip()
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        block = Block(fence.group(1), "\n".join(lines[i + 1 : end]) + "\n", i + 1, section)
        block.notes = notes_above(lines, i)
        previous = blocks[-1] if blocks else None
        between = lines[previous_end:i] if previous else []
        if (
            block.lang == "text"
            and previous
            and previous.lang == "python"
            and not any(line.strip() for line in between)
        ):
            previous.output = block.code
        else:
            blocks.append(block)
        previous_end = end + 1
        i = end + 1
    return blocks


def notes_above(lines: list[str], fence: int) -> dict[str, str]:
    """The ``<!-- key: value -->`` comments on the lines just above a fence (blank lines allowed)."""
    notes: dict[str, str] = {}
    j = fence - 1
    while j >= 0 and (not lines[j].strip() or ANNOTATION.match(lines[j].strip())):
        if found := ANNOTATION.match(lines[j].strip()):
            notes[found.group(1)] = found.group(2)
        j -= 1
    return notes


def python_blocks() -> list[Block]:
    return [block for block in parse(README.read_text(encoding="utf-8")) if block.lang == "python"]


def test_parser_finds_the_blocks_the_issue_names() -> None:
    blocks = python_blocks()
    for section in REQUIRED_SECTIONS:
        runnable = [b for b in blocks if b.section == section and "not-run" not in b.notes]
        assert runnable, f"no runnable python block in section {section!r}"
    assert sum(b.section == "Quickstart" for b in blocks) == 2  # agent A and agent B


def test_annotations_are_known_and_explained() -> None:
    for block in python_blocks():
        assert set(block.notes) <= KNOWN, f"{block.where}: unknown annotation {block.notes}"
        if "not-run" in block.notes:
            assert block.notes["not-run"], f"{block.where}: say why it is not run"
        if "needs" in block.notes:
            assert block.notes["needs"] in NEEDS, f"{block.where}: needs one of {NEEDS}"


def matches(expected: str, actual: str) -> bool:
    """Line by line, ``...`` matching any text within a line."""
    want, got = expected.rstrip("\n").splitlines(), actual.rstrip("\n").splitlines()
    if len(want) != len(got):
        return False
    for pattern, line in zip(want, got, strict=True):
        regex = ".*".join(re.escape(part) for part in pattern.split("..."))
        if not re.fullmatch(regex, line.rstrip()):
            return False
    return True


def test_matches_understands_ellipsis() -> None:
    assert matches("a score=... b\n", "a score=0.123 b\n")
    assert not matches("a score=... b\n", "a score=0.123 c\n")
    assert not matches("one\n", "one\ntwo\n")


class Services:
    """The server and database that annotated blocks need, started on first use."""

    def __init__(self, root: Path, config: pytest.Config) -> None:
        self.root = root
        self.config = config
        self.server: object | None = None
        self.server_env: dict[str, str] = {}

    def env(self, need: str | None) -> dict[str, str]:
        if need == "server":
            return self._server_env()
        if need == "postgres":
            from pg import shared_cluster

            return {"MOSS_STORE": shared_cluster(self.config).fresh_url()}
        return {}

    def _server_env(self) -> dict[str, str]:
        if not self.server_env:
            from service import Server

            server = Server(self.root / "server").start()
            self.server = server
            key = server.create_project("readme")
            self.server_env = {
                "MOSS_STORE": server.url,
                "MOSS_PROJECT_ID": "readme",
                "MOSS_PROJECT_KEY": key,
            }
        return self.server_env

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()  # type: ignore[attr-defined]


@pytest.fixture
def services(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Services]:
    made = Services(tmp_path, request.config)
    yield made
    made.stop()


@pytest.mark.model
@pytest.mark.timeout(600)
def test_readme_blocks_run_as_shown(tmp_path: Path, services: Services) -> None:
    work = tmp_path / "work"
    work.mkdir()
    base = {**os.environ, "MOSS_HOME": str(tmp_path / "moss-home")}
    ran = 0
    for block in python_blocks():
        if "not-run" in block.notes:
            continue
        env = {**base, **services.env(block.notes.get("needs"))}
        script = work / f"readme_line_{block.line}.py"
        script.write_text(block.code, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, script.name],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"{block.where} failed:\n{done.stderr}"
        if block.output is not None:
            assert matches(block.output, done.stdout), (
                f"{block.where} printed:\n{done.stdout}\nbut the README shows:\n{block.output}"
            )
        ran += 1
    assert ran >= len(REQUIRED_SECTIONS) + 1
