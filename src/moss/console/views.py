"""What the templates show: sizes, times and JSON for people, and the parsing of form fields."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from ..errors import InvalidArgumentError
from ..types import IndexInfo

#: Documents per page of the document browser.
PAGE_SIZE = 20
MAX_TOP_K = 100


def human_bytes(size: int) -> str:
    """``2147483648`` -> ``2.0 GiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def human_time(timestamp: float | None) -> str:
    """A UTC date and time (the server's clock; people may be anywhere), or ``-``."""
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def pretty_json(value: Any) -> str:
    """Metadata as one line of JSON (escaped by the template, like every other value)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def history_columns(versions: list[IndexInfo]) -> list[str]:
    """The optional columns of the version history: ``kind`` when any version is not a full
    snapshot, ``author`` and ``message`` when any version records them."""
    return [
        key
        for key in ("kind", "author", "message")
        if any(getattr(info, key) not in (None, "", "full") for info in versions)
    ]


def parse_filter(text: str) -> dict[str, Any] | None:
    """A metadata filter typed as JSON (empty: none)."""
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(
            f"the filter is not valid JSON ({exc.msg} at character {exc.pos}): write it as "
            'in the API, e.g. {"topic": "billing"} or {"year": {"$gte": 2020}}'
        ) from None
    if not isinstance(value, dict):
        raise InvalidArgumentError('the filter must be a JSON object, e.g. {"topic": "billing"}')
    return value


def parse_int(text: str, what: str, low: int, high: int, default: int) -> int:
    """A whole number from a form field, within [low, high]."""
    if not text.strip():
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgumentError(f"{what} must be a whole number, got {text!r}") from None
    if not low <= value <= high:
        raise InvalidArgumentError(f"{what} must be between {low} and {high}, got {value}")
    return value


def parse_alpha(text: str, default: float) -> float:
    """The keyword/vector blend, from 0 (keywords only) to 1 (vectors only)."""
    if not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgumentError(f"alpha must be a number from 0 to 1, got {text!r}") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InvalidArgumentError(f"alpha must be from 0 (keywords) to 1 (vectors), got {value}")
    return value


def page_count(total: int) -> int:
    """Pages of :data:`PAGE_SIZE` documents (at least one, even when empty)."""
    return max(1, -(-total // PAGE_SIZE))
