"""``moss db``: manage the tables of a ``postgresql://`` store.

The store creates and migrates its tables by itself on first use; ``moss db upgrade`` does it
on purpose, for deployments that migrate before rolling out new replicas, or whose replicas run
as a database user without the right to create tables.
"""

from __future__ import annotations

import click

from ..stores import default_store_url


@click.group()
def db() -> None:
    """Manage the database of a PostgreSQL store."""


@db.command()
@click.option(
    "--store",
    "store_url",
    default=None,
    help="The store's postgresql:// URL; default: MOSS_STORE.",
)
def upgrade(store_url: str | None) -> None:
    """Create or migrate the moss tables (safe to run again, and from several places at once)."""
    url = store_url or default_store_url()
    if not url.lower().startswith(("postgresql://", "postgres://")):
        raise click.ClickException(
            "moss db works on a PostgreSQL store: pass --store postgresql://user@host/database "
            "(or set MOSS_STORE); file stores need no migration"
        )
    try:
        from ..stores.postgres.store import PostgresStore
    except ImportError as exc:
        raise click.ClickException(
            f"PostgreSQL stores need the postgres extra: pip install 'moss-sessions[postgres]' ({exc})"
        ) from exc
    store = PostgresStore(url, auto_upgrade=False)
    try:
        before, after = store.upgrade()
    finally:
        store.close()
    if before == after:
        click.echo(f"{store.location}: schema {store.schema!r} is up to date (version {after})")
    else:
        click.echo(
            f"{store.location}: schema {store.schema!r} upgraded from version {before} to {after}"
        )
