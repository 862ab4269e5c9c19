"""Keep the server's memory returning to its idle size after bursts of large buffers.

glibc serves large allocations with ``mmap`` and unmaps them when freed, but it raises that
threshold each time such a block is freed (up to 32 MiB), after which multi-MiB buffers (store
chunks, upload batches) come from heap arenas that are rarely given back: 30 downloads left a
server 40 MiB above idle for good. Pinning the threshold keeps every buffer of 1 MiB or more in
its own mapping, returned to the system the moment it is freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: Allocations of at least this many bytes get their own mapping.
MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (glibc malloc.h)


def pin_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold (which also stops its dynamic growth); False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    path = ctypes.util.find_library("c")
    if path is None:
        return False
    try:
        mallopt = ctypes.CDLL(path).mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
