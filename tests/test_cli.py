"""The `moss` command, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from moss import DocumentInfo, MossClient

MOSS = str(Path(sys.executable).with_name("moss"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MOSS, *args], capture_output=True, text=True, timeout=120)


def test_ls_and_inspect(tmp_path: Path) -> None:
    store = (tmp_path / "store").as_uri()
    client = MossClient("team", store=store)
    session = client.sync.session("conv-9", model_id="custom")
    session.sync.add_docs(
        [DocumentInfo(id=f"d{i}", text="t", embedding=np.ones(4) + i) for i in range(3)]
    )
    session.sync.push_index()
    session.sync.delete_docs(["d0"])
    session.sync.push_index()

    listed = run("ls", "--store", store, "--project", "team")
    assert listed.returncode == 0, listed.stderr
    row = listed.stdout.splitlines()[1].split()
    assert row[:5] == ["conv-9", "2", "2", "4", "custom"]

    inspected = run("inspect", "conv-9", "--store", store, "--project", "team")
    assert inspected.returncode == 0, inspected.stderr
    assert "model:      custom" in inspected.stdout
    assert "dimension:  4" in inspected.stdout
    assert "documents:  2" in inspected.stdout
    assert len([line for line in inspected.stdout.splitlines() if " docs " in line]) == 2

    assert run("ls", "--store", store).stdout.strip() == "no indexes"
    missing = run("inspect", "nope", "--store", store)
    assert missing.returncode != 0 and "does not exist" in missing.stderr


def test_bad_names_are_one_line_errors(tmp_path: Path) -> None:
    result = run("inspect", "../etc", "--store", (tmp_path / "s").as_uri())
    assert result.returncode == 1
    assert result.stderr.startswith("error: invalid index name")
    assert "Traceback" not in result.stderr


def make_index(store: str, name: str = "notes") -> None:
    with MossClient(store=store) as client:
        session = client.sync.session(name).sync
        session.add_docs(
            [
                DocumentInfo(
                    id="r1", text="The refund for order 1234 was issued.", metadata={"user": "ana"}
                ),
                DocumentInfo(
                    id="s1", text="Shipping to Lisbon takes three days.", metadata={"user": "bo"}
                ),
                DocumentInfo(
                    id="p1",
                    text="Passwords are reset from the account page.",
                    metadata={"user": "ana"},
                ),
            ]
        )
        session.push_index()


def test_query_get_versions_and_json(tmp_path: Path) -> None:
    store = (tmp_path / "store").as_uri()
    make_index(store)
    found = run("query", "notes", "when is my refund coming", "--top-k", "2", "--store", store)
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines()[0].startswith("1. r1  cosine ")
    as_json = run(
        "query", "notes", "refund", "--json", "--filter", '{"user": "bo"}', "--store", store
    )
    payload = json.loads(as_json.stdout)
    assert [d["id"] for d in payload["docs"]] == ["s1"]
    assert set(payload["docs"][0]) == {"id", "text", "metadata", "score", "fused_score"}
    vector_only = json.loads(
        run("query", "notes", "refund", "--alpha", "1", "--json", "--store", store).stdout
    )
    assert all(d["fused_score"] is None for d in vector_only["docs"])

    got = run("get", "notes", "p1", "r1", "--json", "--store", store)
    assert [d["id"] for d in json.loads(got.stdout)["docs"]] == ["p1", "r1"]
    missing = run("get", "notes", "r1", "zz", "--store", store)
    assert missing.returncode == 1 and missing.stderr.strip() == "error: not in index 'notes': zz"

    listed = json.loads(run("ls", "--json", "--store", store).stdout)
    assert [(i["name"], i["doc_count"], i["version"]) for i in listed] == [("notes", 3, 1)]
    versions = run("versions", "notes", "--json", "--store", store)
    assert [v["version"] for v in json.loads(versions.stdout)] == [1]
    assert run("versions", "notes", "--store", store).stdout.split()[:7] == [
        "VERSION",
        "KIND",
        "DOCS",
        "SIZE",
        "PUSHED",
        "AUTHOR",
        "MESSAGE",
    ]


def test_errors_have_one_style(tmp_path: Path) -> None:
    store = (tmp_path / "store").as_uri()
    for args in (
        ("query", "nope", "x", "--store", store),
        ("get", "nope", "a", "--store", store),
        ("rm", "nope", "--yes", "--store", store),
        ("export", "nope", str(tmp_path / "o.jsonl"), "--store", store),
        ("query", "nope", "x", "--filter", "{not json", "--store", store),
    ):
        result = run(*args)
        assert result.returncode == 1, args
        assert result.stderr.startswith("error: "), result.stderr
        assert "Traceback" not in result.stderr and "Error:" not in result.stderr
    usage = run("query", "--top-k", "0", "notes", "x")
    assert usage.returncode == 2 and "error: " in usage.stderr and "Error:" not in usage.stderr
    missing = run("query", "nope", "x", "--store", store)
    assert "does not exist in project 'default'" in missing.stderr and "moss ls" in missing.stderr


def test_rm_asks_unless_yes(tmp_path: Path) -> None:
    store = (tmp_path / "store").as_uri()
    make_index(store)
    refused = subprocess.run(
        [MOSS, "rm", "notes", "--store", store],
        input="n\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "aborted" in refused.stderr
    assert "notes" in run("ls", "--store", store).stdout
    assert run("rm", "notes", "--yes", "--store", store).stdout.strip() == "deleted notes"
    assert run("ls", "--store", store).stdout.strip() == "no indexes"


def test_export_reimports_without_reembedding(tmp_path: Path) -> None:
    store = (tmp_path / "store").as_uri()
    make_index(store)
    out = tmp_path / "notes.jsonl"
    exported = run("export", "notes", str(out), "--with-embeddings", "--store", store)
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 3 and len(lines[0]["embedding"]) == 384
    other = (tmp_path / "other").as_uri()
    # A custom-model index accepts only given vectors: the import must not embed anything.
    imported = run("import", "copy", str(out), "--model-id", "custom", "--store", other)
    assert imported.returncode == 0, imported.stderr
    with MossClient(store=store) as a, MossClient(store=other) as b:
        before = a.sync.session("notes").sync.get_docs(include_embeddings=True)
        after = b.sync.session("copy").sync.get_docs(include_embeddings=True)
    key = lambda d: d.id  # noqa: E731
    for x, y in zip(sorted(before, key=key), sorted(after, key=key), strict=True):
        assert (x.id, x.text, x.metadata) == (y.id, y.text, y.metadata)
        assert np.allclose(np.asarray(x.embedding), np.asarray(y.embedding), atol=1e-6)


def test_import_csv_with_fields(tmp_path: Path) -> None:
    store = (tmp_path / "store").as_uri()
    data = tmp_path / "faq.csv"
    data.write_text(
        "key,body,topic,lang\nq1,How do I reset my password?,account,en\nq2,Où est ma commande ?,orders,fr\n"
    )
    result = run(
        "import",
        "faq",
        str(data),
        "--id-field",
        "key",
        "--text-field",
        "body",
        "--metadata-fields",
        "topic",
        "--store",
        store,
    )
    assert result.returncode == 0, result.stderr
    assert "imported 2 documents into faq (version 1)" in result.stdout
    got = json.loads(run("get", "faq", "q2", "--json", "--store", store).stdout)["docs"][0]
    assert got == {"id": "q2", "text": "Où est ma commande ?", "metadata": {"topic": "orders"}}
    bad = run("import", "faq", str(data), "--store", store)
    assert bad.returncode == 1 and "--id-field" in bad.stderr


def test_demo_leaves_its_index(tmp_path: Path) -> None:
    store = (tmp_path / "demo").as_uri()
    demo = run("demo", "--store", store)
    assert demo.returncode == 0, demo.stderr
    assert "moss inspect conv-123" in demo.stdout
    inspected = run("inspect", "conv-123", "--store", store)
    assert inspected.returncode == 0 and "documents:  3" in inspected.stdout
