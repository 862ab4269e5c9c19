"""Checks for everything users hand to moss: names, ids, texts, metadata, vectors, options.

Each refusal is an :class:`InvalidArgumentError` that says what was wrong and what is allowed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import InvalidArgumentError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_ID_BYTES = 512
MAX_TEXT_BYTES = 1 << 20
MAX_BATCH = 1_000_000
MAX_METADATA_DEPTH = 16
MAX_TOP_K = 10_000
_INT64 = 1 << 63


#: How much of a refused value an error message repeats.
MAX_ECHO_CHARS = 80


def echo(value: object) -> str:
    """``repr(value)``, cut to about :data:`MAX_ECHO_CHARS` characters for error messages."""
    text = repr(value)
    if len(text) <= MAX_ECHO_CHARS:
        return text
    return f"{text[:MAX_ECHO_CHARS]}... ({len(text)} characters)"


def validate_name(value: object, *, what: str = "index name") -> str:
    """Return ``value`` if it is a valid index name or project id, else raise."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value) or value in (".", ".."):
        raise InvalidArgumentError(
            f"invalid {what} {echo(value)}: use 1-128 ASCII characters from A-Z a-z 0-9 . _ : -, "
            "starting with a letter or digit"
        )
    return value


def validate_project_id(value: object, *, what: str = "project id") -> str:
    """Return ``value`` if it is a valid project id: a name without ``:``, else raise."""
    if isinstance(value, str) and ":" in value:
        raise InvalidArgumentError(
            f"invalid {what} {echo(value)}: project ids cannot contain ':' (HTTP Basic "
            "authentication splits the id from the key at the first ':'); use - or _ instead"
        )
    return validate_name(value, what=what)


def validate_doc_id(value: object) -> str:
    """Return ``value`` if it is a valid document id (a non-empty string of at most 512 bytes)."""
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"invalid document id {value!r}: ids are non-empty strings")
    if (
        len(value) > MAX_ID_BYTES // 4
        and len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES
    ):
        raise InvalidArgumentError(
            f"document id {value[:40]!r}... is longer than {MAX_ID_BYTES} bytes in UTF-8"
        )
    _check_encodable(value, "document id")
    return value


def validate_text(value: object, doc_id: str) -> str:
    """Return ``value`` if it is a usable document text."""
    if not isinstance(value, str):
        raise InvalidArgumentError(
            f"text of document {doc_id!r} must be a str, got {type(value).__name__}"
        )
    if (
        len(value) > MAX_TEXT_BYTES // 4
        and len(value.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES
    ):
        raise InvalidArgumentError(
            f"text of document {doc_id!r} is longer than {MAX_TEXT_BYTES} bytes"
        )
    _check_encodable(value, f"text of document {doc_id!r}")
    return value


def _check_encodable(value: str, what: str) -> None:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidArgumentError(f"{what} is not valid Unicode (lone surrogate)") from exc


def validate_metadata(value: object, doc_id: str) -> dict[str, Any] | None:
    """Return ``value`` if it is None or a JSON object moss can store with its types."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidArgumentError(
            f"metadata of document {doc_id!r} must be a dict (a JSON object), got {type(value).__name__}"
        )
    # Fast path for the common flat object of ASCII keys and plain scalars; anything else
    # (nesting, lists, non-ASCII, big numbers) takes the full recursive check.
    for key, item in value.items():
        kind = type(item)
        if type(key) is not str or not key.isascii():
            break
        if kind is str:
            if not item.isascii():
                break
        elif kind is int:
            if not -_INT64 <= item < _INT64:
                break
        elif kind is float:
            if not math.isfinite(item):
                break
        elif item is not None and kind is not bool:
            break
    else:
        return value
    _check_json(value, doc_id, "metadata", 0)
    return value


def _check_json(value: object, doc_id: str, path: str, depth: int) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise InvalidArgumentError(
            f"metadata of document {doc_id!r} nests deeper than {MAX_METADATA_DEPTH} levels at {path}"
        )
    if value is None or isinstance(value, (str, bool)):
        if isinstance(value, str):
            _check_encodable(value, f"metadata of document {doc_id!r} at {path}")
        return
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise InvalidArgumentError(
                f"metadata of document {doc_id!r} at {path}: integer {value} does not fit in 64 bits"
            )
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgumentError(
                f"metadata of document {doc_id!r} at {path}: {value} is not a finite number (JSON has no NaN or Infinity)"
            )
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, doc_id, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgumentError(
                    f"metadata of document {doc_id!r} at {path}: key {key!r} is not a string"
                )
            _check_encodable(key, f"metadata key of document {doc_id!r}")
            _check_json(item, doc_id, f"{path}.{key}", depth + 1)
        return
    raise InvalidArgumentError(
        f"metadata of document {doc_id!r} at {path}: {type(value).__name__} is not a JSON type "
        "(use str, int, float, bool, None, list or dict)"
    )


def validate_vector(value: object, dimension: int | None, what: str) -> npt.NDArray[np.float32]:
    """Return ``value`` as a finite float32 vector of ``dimension`` (any length if None)."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is refused below
            array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{what} is not a vector of numbers: {exc}") from exc
    if array.ndim != 1 or array.shape[0] == 0:
        raise InvalidArgumentError(
            f"{what} must be a non-empty 1-d vector, got shape {array.shape}"
        )
    if dimension is not None and array.shape[0] != dimension:
        raise InvalidArgumentError(
            f"{what} has {array.shape[0]} dimensions; this session's model uses {dimension}"
        )
    if not np.isfinite(array).all():
        raise InvalidArgumentError(f"{what} contains NaN or infinite values")
    return array


def validate_top_k(value: object) -> int:
    """Return ``value`` if it is a usable top_k."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
        raise InvalidArgumentError(f"top_k must be an integer from 1 to {MAX_TOP_K}, got {value!r}")
    return value


def validate_batch(docs: object) -> list[Any]:
    """Return ``docs`` as a list if it is a usable batch of documents."""
    if isinstance(docs, (str, bytes)) or not hasattr(docs, "__iter__"):
        raise InvalidArgumentError("pass documents as a list of DocumentInfo")
    batch = list(docs)  # type: ignore[call-overload,unused-ignore]
    if len(batch) > MAX_BATCH:
        raise InvalidArgumentError(
            f"a batch holds at most {MAX_BATCH} documents, got {len(batch)}: split it into smaller batches"
        )
    return batch


def validate_alpha(alpha: object) -> float:
    """Check ``QueryOptions.alpha``: a number from 0.0 (keyword only) to 1.0 (vector only)."""
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float))
        or not 0.0 <= alpha <= 1.0  # also refuses NaN
    ):
        raise InvalidArgumentError(
            f"alpha must be a number from 0.0 (keyword search only) to 1.0 (vector search only), "
            f"got {alpha!r}"
        )
    return float(alpha)
