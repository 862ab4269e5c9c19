"""Where a section of a blob lies: shared by the header parser and the section checkers."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SectionInfo"]


@dataclass(frozen=True)
class SectionInfo:
    """Where a section lies in the blob (absolute offset from byte 0) and its xxh3_64 digest."""

    offset: int
    length: int
    checksum: str
