"""One style of output for every command: human sizes and times, tables, ``--json``, errors."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from ..client import MossClient
from ..types import IndexInfo

F = TypeVar("F", bound=Callable[..., Any])

STORE_HELP = (
    "Store URL (file:///path, http://host:port, postgresql://...); default: MOSS_STORE or ~/.moss"
)
PROJECT_HELP = "Project id (default: MOSS_PROJECT_ID or 'default')."


class CliError(click.ClickException):
    """An error a person can act on: printed as one line, ``error: ...``."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


def store_options(command: F) -> F:
    """Add ``--store`` and ``--project`` to a command."""
    command = click.option("--project", default=None, help=PROJECT_HELP)(command)
    return click.option("--store", default=None, help=STORE_HELP)(command)


def json_option(command: F) -> F:
    """Add ``--json`` (machine-readable output) to a read command."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(
        command
    )


def client_for(store: str | None, project: str | None) -> MossClient:
    return MossClient(project, store=store)


def human_bytes(size: int) -> str:
    """``2147483648`` -> ``2.0 GiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_time(timestamp: float | None) -> str:
    """A local date and time, or ``-``."""
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def human_ago(timestamp: float, now: float | None = None) -> str:
    """``3 min ago``, ``2 h ago``..."""
    seconds = max(0.0, (time.time() if now is None else now) - timestamp)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Columns as wide as their widest cell; numbers right-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    click.echo(line(list(headers)))
    for row in cells:
        click.echo(line(row))


def info_json(info: IndexInfo) -> dict[str, Any]:
    """An IndexInfo as plain JSON (what every ``--json`` read prints for an index)."""
    fields = {f.name: getattr(info, f.name) for f in dataclasses.fields(info) if f.name != "extra"}
    return {**fields, **{k: v for k, v in info.extra.items() if k not in fields}}
