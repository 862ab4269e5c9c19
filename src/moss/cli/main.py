"""The ``moss`` command: list and inspect indexes, run the hand-off demo."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from ..client import MossClient
from ..errors import MossError
from .db import db
from .serve import keys, projects, serve

_STORE_HELP = (
    "Store URL (file:///path, http://host:port, postgresql://...); default: MOSS_STORE or ~/.moss"
)


def _client(store: str | None, project: str | None) -> MossClient:
    return MossClient(project, store=store)


@click.group()
@click.version_option(package_name="moss-sessions")
def main() -> None:
    """moss: named, shareable, in-memory retrieval sessions for AI agents."""


@main.command("ls")
@click.option("--store", default=None, help=_STORE_HELP)
@click.option("--project", default=None, help="Project id (default: MOSS_PROJECT_ID or 'default').")
def list_command(store: str | None, project: str | None) -> None:
    """List the indexes of a project."""
    with _client(store, project) as client:
        infos = client.sync.list_indexes()
    if not infos:
        click.echo("no indexes")
        return
    click.echo(f"{'NAME':32} {'VERSION':>7} {'DOCS':>9} {'DIM':>5} {'MODEL':16} UPDATED")
    for info in infos:
        updated = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.created_at))
        click.echo(
            f"{info.name:32} {info.version:>7} {info.doc_count:>9} {info.dimension:>5} "
            f"{info.model_id:16} {updated}"
        )


@main.command()
@click.argument("name")
@click.option("--store", default=None, help=_STORE_HELP)
@click.option("--project", default=None, help="Project id (default: MOSS_PROJECT_ID or 'default').")
def inspect(name: str, store: str | None, project: str | None) -> None:
    """Show an index: model, dimension, documents and kept versions."""
    with _client(store, project) as client:
        versions = client.store.versions(client.project_id, name)
    if not versions:
        raise click.ClickException(f"index {name!r} does not exist")
    latest = versions[-1]
    click.echo(f"index:      {latest.name}")
    click.echo(f"model:      {latest.model_id}")
    click.echo(f"dimension:  {latest.dimension}")
    click.echo(f"documents:  {latest.doc_count}")
    click.echo(f"version:    {latest.version}")
    click.echo("versions:")
    for info in versions:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.created_at))
        click.echo(
            f"  {info.version:>6}  {info.doc_count:>9} docs  {info.size_bytes:>12} bytes  {created}"
        )


@main.command()
@click.option("--store", default=None, help="Store URL; default: a new temporary file store.")
def demo(store: str | None) -> None:
    """Run the seed's hand-off: agent A pushes, agent B (another process) resumes."""
    with tempfile.TemporaryDirectory(prefix="moss-demo-") as temp:
        env = dict(os.environ)
        env["MOSS_STORE"] = store or Path(temp).as_uri()
        click.echo(f"store: {env['MOSS_STORE']}")
        for title, module in (
            ("agent A (process 1) adds two turns and pushes", "moss.demo.agent_a"),
            (
                "agent B (process 2) opens conv-123, queries, adds a turn, pushes",
                "moss.demo.agent_b",
            ),
            ("a reader (process 3) opens conv-123", "moss.demo.reader"),
        ):
            click.echo(f"\n== {title}")
            started = time.perf_counter()
            completed = subprocess.run([sys.executable, "-m", module], env=env, check=False)
            if completed.returncode != 0:
                raise click.ClickException(f"{module} failed with exit code {completed.returncode}")
            click.echo(f"   ({time.perf_counter() - started:.2f} s for the whole process)")


@main.command("mcp")
@click.option("--store", default=None, help=_STORE_HELP)
@click.option("--project", default=None, help="Project id (default: MOSS_PROJECT_ID or 'default').")
@click.option(
    "--model-id", default=None, help="Embedding model of new indexes (default: moss-minilm)."
)
@click.option("--index", default=None, help="Pin the server to this one index.")
@click.option("--prefix", default=None, help="Only reach indexes whose names start with this.")
@click.option("--http", is_flag=True, help="Serve streamable HTTP at /mcp instead of stdio.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface (with --http).")
@click.option("--port", default=8000, show_default=True, type=int, help="Port (with --http).")
def mcp_command(
    store: str | None,
    project: str | None,
    model_id: str | None,
    index: str | None,
    prefix: str | None,
    http: bool,
    host: str,
    port: int,
) -> None:
    """Serve indexes to agents over the Model Context Protocol (stdio, or --http)."""
    try:
        import anyio

        from ..mcp import Memory, Scope, serve
    except ImportError as exc:
        raise click.ClickException(
            f"moss mcp needs the mcp extra: pip install 'moss-sessions[mcp]' ({exc})"
        ) from exc
    memory = Memory(
        _client(store, project), scope=Scope(index=index, prefix=prefix), model_id=model_id
    )
    anyio.run(lambda: serve(memory, http=http, host=host, port=port))


def run() -> None:
    """Entry point that turns moss errors into one-line messages."""
    try:
        main(standalone_mode=True)
    except MossError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


main.add_command(serve)
main.add_command(projects)
main.add_command(keys)
main.add_command(db)
