"""The ``moss`` command: indexes from the shell, the hand-off demo, the services."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import click

from ..errors import MossError
from ..stores import default_store_url
from .db import db
from .indexes import get, inspect, list_command, query, rm, versions
from .output import STORE_HELP, CliError, client_for
from .serve import keys, projects, serve
from .transfer import export_command, import_command


@click.group()
@click.version_option(package_name="moss-sessions")
def main() -> None:
    """moss: named, shareable, in-memory retrieval sessions for AI agents."""


@main.command()
@click.option("--store", default=None, help=STORE_HELP)
def demo(store: str | None) -> None:
    """Run the seed's hand-off: agent A pushes, agent B (another process) resumes.

    The index, conv-123, stays in the store afterwards: `moss inspect conv-123` shows it.
    """
    env = dict(os.environ)
    env["MOSS_STORE"] = store or default_store_url()
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
            raise CliError(f"{module} failed with exit code {completed.returncode}")
        click.echo(f"   ({time.perf_counter() - started:.2f} s for the whole process)")
    where = "" if store is None else f" --store {store}"
    click.echo(
        f"\nThe index is kept: try `moss inspect conv-123{where}` or `moss query conv-123 refund{where}`."
    )


@main.command("mcp")
@click.option("--store", default=None, help=STORE_HELP)
@click.option("--project", default=None, help="Project id (default: MOSS_PROJECT_ID or 'default').")
@click.option(
    "--model-id", default=None, help="Embedding model of new indexes (default: moss-minilm)."
)
@click.option("--index", default=None, help="Pin the server to this one index.")
@click.option("--prefix", default=None, help="Only reach indexes whose names start with this.")
@click.option("--http", is_flag=True, help="Serve streamable HTTP at /mcp instead of stdio.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface (with --http).")
@click.option("--port", default=8765, show_default=True, type=int, help="Port (with --http).")
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
        client_for(store, project), scope=Scope(index=index, prefix=prefix), model_id=model_id
    )
    anyio.run(lambda: serve(memory, http=http, host=host, port=port))


def run() -> None:
    """Entry point: every error is one line, ``error: ...``, with exit code 1 (2 for usage)."""
    try:
        main(standalone_mode=False)
    except click.UsageError as exc:
        if exc.ctx is not None:
            click.echo(exc.ctx.get_usage(), err=True)
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(1)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except MossError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


for command in (
    list_command,
    inspect,
    versions,
    query,
    get,
    rm,
    import_command,
    export_command,
    serve,
    projects,
    keys,
    db,
):
    main.add_command(command)
