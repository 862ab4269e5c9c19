"""A mark on a snapshot file saying its section checksums were verified, so a later memory-mapped
open of the unchanged file skips the hash pass (git's stat cache does the same for its index).

The mark is an extended attribute of the file (``user.moss.verified``) naming the file's
identity when it was verified: its header checksum, size, modification time, inode and device.
Any change that moss or a program writing the file makes (a rename onto it, a rewrite in place)
changes that identity, and the next open hashes every section again. What the mark cannot see is
a change that keeps size and time, such as a failing disk's bit flips under a verified file: the
mapped reader's structural checks (documents bounds, the id table, the graph's links) still keep
such bytes from crashing it, but they may return wrong scores, as with any memory-mapped format
without checksums. Where extended attributes are not supported the mark is never set, and every
open verifies.

Marked by the store that verified an upload while writing it, and by the first mapped open that
verified the file.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .header import PREFIX, parse_prefix

__all__ = ["is_marked", "mark_file_verified", "mark_verified"]

_ATTRIBUTE = "user.moss.verified"


def is_marked(fileno: int, header_digest: int) -> bool:
    """Whether the open file ``fileno`` (whose header checksum is ``header_digest``) carries a
    mark naming its present identity."""
    try:
        return os.getxattr(fileno, _ATTRIBUTE) == _identity(fileno, header_digest)
    except (OSError, AttributeError):  # unsupported here, or never marked
        return False


def mark_verified(fileno: int, header_digest: int) -> None:
    """Mark the open file ``fileno`` as verified (the caller verified every section's checksum
    of these very bytes); nothing happens where the file system (or platform) has no extended
    attributes."""
    with contextlib.suppress(OSError, AttributeError):
        os.setxattr(fileno, _ATTRIBUTE, _identity(fileno, header_digest))


def mark_file_verified(path: str | os.PathLike[str]) -> None:
    """:func:`mark_verified` for the file at ``path`` (which no one replaces meanwhile); a file
    already gone (an index deleted meanwhile) is left alone."""
    with contextlib.suppress(OSError), open(Path(path), "rb") as file:
        _, _, digest = parse_prefix(file.read(PREFIX.size))
        mark_verified(file.fileno(), digest)


def _identity(fileno: int, header_digest: int) -> bytes:
    stat = os.fstat(fileno)
    fields = (header_digest, stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev)
    return ("1 " + " ".join(map(str, fields))).encode()
