"""Read and remove indexes from the shell: ``ls``, ``inspect``, ``versions``, ``query``, ``get``, ``rm``."""

from __future__ import annotations

import json
from typing import Any

import click

from ..client import MossClient
from ..types import DocumentInfo, IndexInfo, QueryOptions
from .output import (
    CliError,
    client_for,
    human_ago,
    human_bytes,
    human_time,
    info_json,
    json_option,
    print_json,
    print_table,
    store_options,
)


def existing_versions(client: MossClient, name: str) -> list[IndexInfo]:
    """The kept versions of ``name``, oldest first; a clear error naming where we looked if none."""
    versions = client.store.versions(client.project_id, name)
    if not versions:
        raise CliError(
            f"index {name!r} does not exist in project {client.project_id!r} of store "
            f"{client.store.location}: `moss ls` lists the indexes there"
        )
    return versions


def open_existing(client: MossClient, name: str) -> Any:
    """A blocking session of an index that must exist."""
    existing_versions(client, name)
    return client.sync.session(name).sync


def parse_filter(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f'--filter must be a JSON object, e.g. \'{{"user": "ana"}}\': {exc}'
        ) from exc
    if not isinstance(value, dict):
        raise CliError('--filter must be a JSON object, e.g. \'{"user": "ana"}\'')
    return value


def doc_json(doc: DocumentInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"id": doc.id, "text": doc.text, "metadata": doc.metadata}
    if doc.embedding is not None:
        out["embedding"] = [float(x) for x in doc.embedding]
    return out


@click.command("ls")
@store_options
@json_option
def list_command(store: str | None, project: str | None, as_json: bool) -> None:
    """List the indexes of a project."""
    with client_for(store, project) as client:
        infos = client.sync.list_indexes()
    if as_json:
        print_json([info_json(info) for info in infos])
        return
    if not infos:
        click.echo("no indexes")
        return
    print_table(
        ("NAME", "VERSION", "DOCS", "DIM", "MODEL", "SIZE", "PUSHED"),
        [
            (
                i.name,
                i.version,
                i.doc_count,
                i.dimension,
                i.model_id,
                human_bytes(i.size_bytes),
                human_ago(i.created_at),
            )
            for i in infos
        ],
    )


@click.command()
@click.argument("name")
@store_options
@json_option
def inspect(name: str, store: str | None, project: str | None, as_json: bool) -> None:
    """Show an index: model, dimension, documents and kept versions."""
    with client_for(store, project) as client:
        versions = existing_versions(client, name)
    latest = versions[-1]
    if as_json:
        print_json({**info_json(latest), "versions": [info_json(v) for v in versions]})
        return
    click.echo(f"index:      {latest.name}")
    click.echo(f"model:      {latest.model_id}")
    click.echo(f"dimension:  {latest.dimension}")
    click.echo(f"documents:  {latest.doc_count}")
    click.echo(f"version:    {latest.version}")
    click.echo(f"size:       {human_bytes(latest.size_bytes)}")
    click.echo(f"pushed:     {human_time(latest.created_at)} ({human_ago(latest.created_at)})")
    click.echo("versions:")
    for v in versions:
        who = _field(v, "author")
        click.echo(
            f"  {v.version:>6}  {v.doc_count:>9} docs  {human_bytes(v.size_bytes):>10}  "
            f"{human_time(v.created_at)}" + ("" if who == "-" else f"  by {who}")
        )


@click.command()
@click.argument("name")
@store_options
@json_option
def versions(name: str, store: str | None, project: str | None, as_json: bool) -> None:
    """List the kept versions of an index, oldest first (with author and message when pushed with them)."""
    with client_for(store, project) as client:
        kept = existing_versions(client, name)
    if as_json:
        print_json([info_json(v) for v in kept])
        return
    _print_versions(kept)


def _print_versions(kept: list[IndexInfo]) -> None:
    print_table(
        ("VERSION", "KIND", "DOCS", "SIZE", "PUSHED", "AUTHOR", "MESSAGE"),
        [
            (
                v.version,
                _field(v, "kind", "full"),
                v.doc_count,
                human_bytes(v.size_bytes),
                human_time(v.created_at),
                _field(v, "author"),
                _field(v, "message"),
            )
            for v in kept
        ],
    )


def _field(info: IndexInfo, name: str, default: str = "-") -> str:
    """A version field that stores may not record (kind, author, message)."""
    return str(getattr(info, name, None) or info.extra.get(name) or default)


@click.command()
@click.argument("name")
@click.argument("text")
@click.option("--top-k", "-k", default=5, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--filter",
    "filter_json",
    default=None,
    help='Metadata filter as JSON, e.g. \'{"user": "ana"}\'.',
)
@click.option(
    "--alpha",
    default=None,
    type=click.FloatRange(0.0, 1.0),
    help="1 vector only, 0 keyword only (default: the library's, 0.4).",
)
@store_options
@json_option
def query(
    name: str,
    text: str,
    top_k: int,
    filter_json: str | None,
    alpha: float | None,
    store: str | None,
    project: str | None,
    as_json: bool,
) -> None:
    """Search an index for TEXT and print the best documents."""
    settings: dict[str, Any] = {"top_k": top_k, "filter": parse_filter(filter_json)}
    if alpha is not None:
        settings["alpha"] = alpha
    options = QueryOptions(**settings)
    with client_for(store, project) as client:
        result = open_existing(client, name).query(text, options)
    if as_json:
        print_json(
            {
                "index": name,
                "query": text,
                "time_ms": round(result.time_taken_ms, 3),
                "docs": [
                    {
                        "id": d.id,
                        "text": d.text,
                        "metadata": d.metadata,
                        "score": d.score,
                        "fused_score": d.fused_score,
                    }
                    for d in result.docs
                ],
            }
        )
        return
    if not result.docs:
        click.echo("no results")
    for rank, doc in enumerate(result.docs, 1):
        fused = "" if doc.fused_score is None else f"  fused {doc.fused_score:.4f}"
        click.echo(f"{rank}. {doc.id}  cosine {doc.score:.3f}{fused}")
        click.echo(f"   {_snippet(doc.text)}")
        if doc.metadata:
            click.echo(f"   {json.dumps(doc.metadata, ensure_ascii=False)}")
    click.echo(f"({len(result.docs)} results in {result.time_taken_ms:.1f} ms)", err=True)


def _snippet(text: str, width: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@click.command()
@click.argument("name")
@click.argument("ids", nargs=-1, required=True)
@click.option("--with-embeddings", is_flag=True, help="Include each document's vector.")
@store_options
@json_option
def get(
    name: str,
    ids: tuple[str, ...],
    with_embeddings: bool,
    store: str | None,
    project: str | None,
    as_json: bool,
) -> None:
    """Print documents of an index by id."""
    with client_for(store, project) as client:
        docs = open_existing(client, name).get_docs(list(ids), include_embeddings=with_embeddings)
    found = {doc.id for doc in docs}
    missing = [i for i in ids if i not in found]
    if as_json:
        print_json({"docs": [doc_json(d) for d in docs], "missing": missing})
    else:
        for doc in docs:
            click.echo(f"{doc.id}: {doc.text}")
            if doc.metadata:
                click.echo(f"  metadata: {json.dumps(doc.metadata, ensure_ascii=False)}")
    if missing:
        raise CliError(f"not in index {name!r}: {', '.join(missing)}")


@click.command()
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@store_options
def rm(name: str, yes: bool, store: str | None, project: str | None) -> None:
    """Delete an index and every kept version of it."""
    with client_for(store, project) as client:
        latest = existing_versions(client, name)[-1]
        if not yes:
            click.confirm(
                f"delete index {name!r} ({latest.doc_count} documents, version "
                f"{latest.version}) from project {client.project_id!r}?",
                abort=True,
            )
        client.sync.delete_index(name)
    click.echo(f"deleted {name}")
