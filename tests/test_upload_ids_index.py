"""The server's upload check refuses an ``ids_index`` section that does not describe its ids:
readers trust it to find rows, so a lying table must never be published."""

from __future__ import annotations

import pytest

from moss.errors import SnapshotError
from moss.server.upload_check import UploadChecker
from test_mapped_ids import LOOKUP_DAMAGE, blob_of, damaged_table, rebuild

IDS = [f"d{i}" for i in range(30)]


def check(blob: bytes) -> None:
    checker = UploadChecker(expected_name="notes")
    for start in range(0, len(blob), 1000):  # streamed in pieces, as an upload arrives
        checker.feed(blob[start : start + 1000])
    checker.finish()


def test_a_sound_table_passes() -> None:
    check(blob_of(IDS))


@pytest.mark.parametrize("damage", list(LOOKUP_DAMAGE))
def test_a_table_that_does_not_match_its_ids_is_refused(damage: str) -> None:
    edit, match = LOOKUP_DAMAGE[damage]
    with pytest.raises(SnapshotError, match=match):
        check(damaged_table(blob_of(IDS), len(IDS), edit))


def test_a_table_without_a_documents_index_is_refused() -> None:
    with pytest.raises(SnapshotError, match="without documents and their index"):
        check(rebuild(blob_of(IDS), documents_index=None))
