"""``moss serve``, ``moss projects`` and ``moss keys``: run the index service, manage who may use it.

Projects and keys live in the store itself (so every replica over one store shares them): these
commands talk to the store (``file://`` or ``postgresql://``), never through a server.
"""

from __future__ import annotations

import os
import time

import click

from ..stores import default_store_url, open_store
from ..stores.auth import KeyRecord, ProjectKeys, auth_records, parse_env_keys
from .output import human_bytes

_STORE_HELP = "Store URL (file:///path or postgresql://...); default: MOSS_STORE or ~/.moss"


def _keys(store_url: str | None) -> ProjectKeys:
    url = store_url or default_store_url()
    if url.lower().startswith(("http://", "https://")):
        raise click.ClickException(
            "projects and keys are kept in the store the server uses: pass its file:// or "
            "postgresql:// URL, not the server's http:// one"
        )
    return ProjectKeys(auth_records(open_store(url)))


def _when(timestamp: float | None) -> str:
    return (
        "-" if timestamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
    )


def _print_new_key(project: str, record: KeyRecord, secret: str) -> None:
    click.echo(f"project: {project}")
    click.echo(f"key id:  {record.id}")
    click.echo(f"key:     {secret}")
    click.echo("The key is shown once and stored only as a hash: keep it now.", err=True)


@click.command()
@click.option("--store", "store_url", default=None, help=_STORE_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--max-upload-bytes",
    default=2 << 30,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest snapshot accepted.",
)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--upload-idle-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Drop an upload that sends nothing this long (default 30; MOSS_SERVE_UPLOAD_IDLE_SECONDS).",
)
@click.option(
    "--download-stall-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Drop a download that accepts nothing this long (default 30; MOSS_SERVE_DOWNLOAD_STALL_SECONDS).",
)
@click.option(
    "--max-uploads-per-project",
    type=click.IntRange(min=1),
    default=None,
    help="Uploads streaming at once per project, then 429 (default 32; MOSS_SERVE_MAX_UPLOADS_PER_PROJECT).",
)
@click.option(
    "--max-uploads",
    type=click.IntRange(min=1),
    default=None,
    help="Uploads streaming at once in total, then 503 (default 128; MOSS_SERVE_MAX_UPLOADS).",
)
@click.option(
    "--console/--no-console",
    default=True,
    show_default=True,
    help="Serve the web console at /console (log in with a project id and key).",
)
def serve(
    store_url: str | None,
    host: str,
    port: int,
    max_upload_bytes: int,
    workers: int,
    log_level: str,
    upload_idle_seconds: float | None,
    download_stall_seconds: float | None,
    max_uploads_per_project: int | None,
    max_uploads: int | None,
    console: bool,
) -> None:
    """Serve the store's indexes over HTTP (API under /v1, docs at /docs, web console at
    /console).

    Clients authenticate with a project id and key: keys made by `moss projects create` /
    `moss keys create`, or given as MOSS_SERVER_KEYS="project:key,project:key" (for
    containers; held in memory, never written to the store).
    """
    try:
        import uvicorn

        from ..server import create_app
        from ..server.limits import ENV as LIMIT_ENV
    except ImportError as exc:
        raise click.ClickException(
            f"the server needs the server extra: pip install 'moss-sessions[server]' ({exc})"
        ) from exc
    # Flags win over the MOSS_SERVE_* variables; through the environment, every worker sees them.
    for variable, value in (
        (LIMIT_ENV["upload_idle_seconds"], upload_idle_seconds),
        (LIMIT_ENV["download_stall_seconds"], download_stall_seconds),
        (LIMIT_ENV["max_uploads_per_project"], max_uploads_per_project),
        (LIMIT_ENV["max_uploads"], max_uploads),
    ):
        if value is not None:
            os.environ[variable] = str(value)
    url = store_url or default_store_url()
    env_keys = parse_env_keys(os.environ.get("MOSS_SERVER_KEYS", ""))
    store = open_store(url)
    stored = ProjectKeys(auth_records(store)).projects()
    click.echo(  # the store's location, never the URL: it may carry a database password
        f"moss serve: store {store.location}, http://{host}:{port}, uploads up to "
        f"{human_bytes(max_upload_bytes)}; projects with keys: {len(stored)} in the store, "
        f"{len(env_keys)} from MOSS_SERVER_KEYS",
        err=True,
    )
    common = {"host": host, "port": port, "log_level": log_level, "timeout_graceful_shutdown": 5}
    if workers == 1:
        app = create_app(
            store, max_upload_bytes=max_upload_bytes, env_keys=env_keys, console=console
        )
        uvicorn.run(app, **common)  # type: ignore[arg-type]
        return
    # Several workers each build their app from the environment (uvicorn imports the factory).
    store.close()
    os.environ["MOSS_SERVE_STORE"] = url
    os.environ["MOSS_SERVE_MAX_UPLOAD_BYTES"] = str(max_upload_bytes)
    os.environ["MOSS_SERVE_CONSOLE"] = "1" if console else "0"
    uvicorn.run(
        "moss.server.app:create_app_from_env",
        factory=True,
        workers=workers,
        **common,  # type: ignore[arg-type]
    )


@click.group()
def projects() -> None:
    """Create and list projects (kept in the store)."""


@projects.command("create")
@click.argument("name")
@click.option("--store", "store_url", default=None, help=_STORE_HELP)
@click.option("--label", default="", help="A note on the first key (who or what uses it).")
def create_project(name: str, store_url: str | None, label: str) -> None:
    """Create project NAME with one key, printed once."""
    record, secret = _keys(store_url).create_project(name, label=label)
    _print_new_key(name, record, secret)


@projects.command("list")
@click.option("--store", "store_url", default=None, help=_STORE_HELP)
def list_projects(store_url: str | None) -> None:
    """List projects and how many live keys each has."""
    records = _keys(store_url).projects()
    if not records:
        click.echo("no projects")
        return
    click.echo(f"{'PROJECT':32} {'KEYS':>5} CREATED")
    for record in records:
        live = sum(not key.revoked for key in record.keys)
        click.echo(f"{record.name:32} {live:>5} {_when(record.created_at)}")


@click.group()
def keys() -> None:
    """List, create and revoke the keys of a project."""


_PROJECT = click.option("--project", required=True, help="Project id.")


@keys.command("list")
@_PROJECT
@click.option("--store", "store_url", default=None, help=_STORE_HELP)
def list_keys(project: str, store_url: str | None) -> None:
    """List a project's keys (ids and dates; keys themselves are never stored)."""
    click.echo(f"{'KEY ID':14} {'CREATED':19} {'REVOKED':19} LABEL")
    for key in _keys(store_url).list_keys(project):
        click.echo(f"{key.id:14} {_when(key.created_at):19} {_when(key.revoked_at):19} {key.label}")


@keys.command("create")
@_PROJECT
@click.option("--store", "store_url", default=None, help=_STORE_HELP)
@click.option("--label", default="", help="A note on the key (who or what uses it).")
def create_key(project: str, store_url: str | None, label: str) -> None:
    """Add a key to a project, printed once."""
    record, secret = _keys(store_url).create_key(project, label=label)
    _print_new_key(project, record, secret)


@keys.command("revoke")
@click.argument("key_id")
@_PROJECT
@click.option("--store", "store_url", default=None, help=_STORE_HELP)
def revoke_key(key_id: str, project: str, store_url: str | None) -> None:
    """Revoke KEY_ID: it stops working at once on every server over this store."""
    record = _keys(store_url).revoke_key(project, key_id)
    click.echo(f"revoked {record.id} of project {project} at {_when(record.revoked_at)}")
