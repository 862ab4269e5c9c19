"""Move documents in and out of an index: ``moss import`` and ``moss export``.

Files are JSON Lines (``.jsonl``/``.ndjson``), CSV (``.csv``) or Parquet (``.parquet``, with
pyarrow installed). A record's ``embedding`` field, when present, is used as its vector, so an
export made ``--with-embeddings`` imports again without re-embedding.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..types import DocumentInfo
from .indexes import doc_json, existing_versions
from .output import CliError, client_for, store_options

BATCH = 1000
EMBEDDING_FIELD = "embedding"


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSON Lines, CSV or Parquet file, as dicts."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            yield from csv.DictReader(handle)
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise CliError("reading Parquet needs pyarrow: pip install pyarrow") from exc
        for batch in pq.ParquetFile(path).iter_batches():
            yield from batch.to_pylist()
    else:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CliError(f"{path}:{number}: not valid JSON ({exc})") from exc
                if not isinstance(record, dict):
                    raise CliError(f"{path}:{number}: each line must be a JSON object")
                yield record


def to_document(
    record: dict[str, Any],
    number: int,
    id_field: str,
    text_field: str,
    metadata_fields: list[str] | None,
) -> DocumentInfo:
    """One record as a document; CSV cells holding JSON objects or lists are decoded."""
    if id_field not in record or text_field not in record:
        raise CliError(
            f"record {number} has no {id_field!r} or {text_field!r} field: name the fields "
            f"with --id-field and --text-field (it has {sorted(record)})"
        )
    skip = {id_field, text_field, EMBEDDING_FIELD}
    names = metadata_fields if metadata_fields is not None else [k for k in record if k not in skip]
    metadata: dict[str, Any] = {}
    for key in names:
        if key in record and record[key] is not None:
            metadata[key] = _cell(record[key])
    if "metadata" in metadata and isinstance(metadata["metadata"], dict) and len(names) == 1:
        metadata = metadata["metadata"]  # an export's metadata column, imported again
    embedding = record.get(EMBEDDING_FIELD)
    if isinstance(embedding, str):
        embedding = _cell(embedding)
    return DocumentInfo(
        id=str(record[id_field]),
        text=str(record[text_field]),
        metadata=metadata or None,
        embedding=embedding,
    )


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


@click.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--id-field", default="id", show_default=True)
@click.option("--text-field", default="text", show_default=True)
@click.option(
    "--metadata-fields",
    default=None,
    help="Comma-separated fields kept as metadata (default: every other field).",
)
@click.option("--merge", is_flag=True, help="Merge with concurrent pushes instead of replacing.")
@click.option("--model-id", default=None, help="Embedding model of a new index.")
@store_options
def import_command(
    name: str,
    file: Path,
    id_field: str,
    text_field: str,
    metadata_fields: str | None,
    merge: bool,
    model_id: str | None,
    store: str | None,
    project: str | None,
) -> None:
    """Add the records of FILE to index NAME (created if absent), then push."""
    fields = None if metadata_fields is None else [f for f in metadata_fields.split(",") if f]
    docs = [
        to_document(record, number, id_field, text_field, fields)
        for number, record in enumerate(read_records(file), 1)
    ]
    if not docs:
        raise CliError(f"{file} holds no records")
    with client_for(store, project) as client:
        session = client.sync.session(name, model_id).sync
        with click.progressbar(length=len(docs), label=f"adding to {name}", file=None) as bar:
            for start in range(0, len(docs), BATCH):
                batch = docs[start : start + BATCH]
                session.add_docs(batch)
                bar.update(len(batch))
        pushed = session.push_index(merge=merge)
    click.echo(f"imported {len(docs)} documents into {name} (version {pushed.version})")


@click.command("export")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--with-embeddings", is_flag=True, help="Include vectors (re-import without re-embedding)."
)
@store_options
def export_command(
    name: str, file: Path, with_embeddings: bool, store: str | None, project: str | None
) -> None:
    """Write every document of index NAME to FILE (.jsonl or .csv)."""
    with client_for(store, project) as client:
        existing_versions(client, name)
        session = client.sync.session(name).sync
        docs = session.get_docs(include_embeddings=with_embeddings)
    if file.suffix.lower() == ".csv":
        columns = ["id", "text", "metadata"] + ([EMBEDDING_FIELD] if with_embeddings else [])
        with file.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            for doc in docs:
                row = doc_json(doc)
                row["metadata"] = json.dumps(row["metadata"]) if row["metadata"] else ""
                if with_embeddings:
                    row[EMBEDDING_FIELD] = json.dumps(row[EMBEDDING_FIELD])
                writer.writerow(row)
    else:
        with file.open("w", encoding="utf-8") as handle:
            for doc in docs:
                handle.write(json.dumps(doc_json(doc), ensure_ascii=False) + "\n")
    click.echo(f"exported {len(docs)} documents of {name} to {file}")
