"""Snapshots written by older moss releases still open: the fixtures in tests/fixtures were
written by format version 1 and are kept byte for byte (see tests/fixtures/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from moss.index.engine import Engine
from moss.snapshot import SnapshotData, decode_snapshot, encode_snapshot, read_header
from moss.snapshot.keywords import decode_keywords

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "v1-expected.json").read_text("utf-8"))


def load(name: str) -> SnapshotData:
    data = decode_snapshot([(FIXTURES / f"{name}.snap").read_bytes()])
    assert isinstance(data, SnapshotData)
    return data


@pytest.mark.parametrize("name", ["v1-float32-keywords", "v1-int8"])
def test_v1_fixtures_open_with_everything_they_held(name: str) -> None:
    expected = EXPECTED[name]
    data = load(name)
    header = data.header
    assert (header.format_version, header.kind, header.author, header.message) == (
        1,
        "full",
        None,
        None,
    )
    for field in ("index_name", "model_id", "model_artifact", "dimension", "created_at"):
        assert getattr(header, field) == expected[field]
    assert np.array_equal(data.vectors, np.array(expected["vectors"], dtype=np.float32))
    assert data.ids == expected["ids"]
    assert list(data.texts) == expected["texts"]
    assert list(data.metadata) == expected["metadata"]
    with (FIXTURES / f"{name}.snap").open("rb") as file:
        assert read_header(file) == header


def test_v1_int8_codes_are_read_as_rows() -> None:
    expected = EXPECTED["v1-int8"]
    data = load("v1-int8")
    assert data.int8 is not None and data.precision == "int8"
    assert data.int8.codes.dtype == np.int8 and data.int8.codes.flags.c_contiguous
    assert data.int8.codes.tolist() == expected["int8_codes"]
    assert data.int8.scales.tolist() == expected["int8_scales"]
    engine = Engine.from_arrays(
        data.vectors, data.ids, list(data.texts), list(data.metadata),
        precision="int8", int8=data.int8,
    )  # fmt: skip
    assert engine.precision == "int8"
    query = data.vectors[3]
    assert engine.search(query, 1)[0][0].id == "d3"


def test_v1_keywords_section_still_decodes() -> None:
    expected = EXPECTED["v1-float32-keywords"]
    data = load("v1-float32-keywords")
    assert data.keywords is not None and data.int8 is None
    index = decode_keywords(data.keywords, data.ids, list(data.metadata))
    for query, scores in expected["keyword_search"].items():
        assert index.scores(query) == pytest.approx(scores)


def test_v1_snapshot_rewritten_as_v2_holds_the_same() -> None:
    data = load("v1-int8")
    assert data.int8 is not None
    header, chunks = encode_snapshot(
        index_name=data.header.index_name,
        model_id=data.header.model_id,
        model_artifact=data.header.model_artifact,
        vectors=data.vectors,
        ids=data.ids,
        texts=list(data.texts),
        metadata=list(data.metadata),
        int8=data.int8,
    )
    again = decode_snapshot(chunks)
    assert isinstance(again, SnapshotData) and again.int8 is not None
    assert header.format_version == again.header.format_version == 2
    assert np.array_equal(again.int8.codes, data.int8.codes)
    assert np.array_equal(again.vectors, data.vectors)
