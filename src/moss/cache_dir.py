"""Where moss keeps what it can make again (cached snapshots, derived model graphs)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_dir"]


def default_cache_dir() -> Path:
    """``MOSS_CACHE_DIR``, else ``$MOSS_HOME/cache``, else ``~/.cache/moss``."""
    if explicit := os.environ.get("MOSS_CACHE_DIR"):
        return Path(explicit).expanduser()
    if home := os.environ.get("MOSS_HOME"):
        return Path(home).expanduser() / "cache"
    return Path.home() / ".cache" / "moss"
