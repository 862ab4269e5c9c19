"""The model id an index gets for a wrapped embedder when the user names none (one rule for all)."""

from __future__ import annotations

import hashlib
import re

from ..errors import InvalidArgumentError
from .base import EmbeddingModel

__all__ = ["DIMENSION_ATTRIBUTES", "MODEL_NAME_ATTRIBUTES", "model_id_for"]

#: Attributes whose first non-empty string value names the embedder's model.
MODEL_NAME_ATTRIBUTES = ("model", "model_name", "model_id", "deployment")
#: Attributes whose first positive integer value is the embedder's output dimension.
DIMENSION_ATTRIBUTES = ("dimensions", "dimension", "embed_dim", "size")
# LlamaIndex sets model_name to "unknown" when an embedding has none.
_NO_NAME = ("unknown",)
_MAX_ID = 128
_DIGEST = 12
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9._:-]+")


def model_id_for(embedder: object, dimension: int | None = None) -> str:
    """The model id for an index built with ``embedder``, when the user names none.

    The id is ``<module>.<qualname>``, then ``:<model name>`` (the first non-empty string among
    the ``model``, ``model_name``, ``model_id`` and ``deployment`` attributes), then ``:<n>d``
    for the output dimension (``dimension`` when given, else the first positive integer among the
    ``dimensions``, ``dimension``, ``embed_dim`` and ``size`` attributes). So two configurations
    that make incompatible vectors get different ids. Characters an id cannot hold become ``-``;
    an id over 128 characters is cut and ends with a digest of the whole, so it stays distinct.
    A moss ``EmbeddingModel`` keeps its own id.

    >>> class Embedder:
    ...     model = "text-embedding-3-small"
    ...     dimensions = 256
    >>> model_id_for(Embedder())  # doctest: +ELLIPSIS
    '...Embedder:text-embedding-3-small:256d'
    """
    if isinstance(embedder, EmbeddingModel):
        return embedder.model_id
    cls = type(embedder)
    parts = [f"{cls.__module__}.{cls.__qualname__}"]
    name = _model_name(embedder)
    if name:
        parts.append(name)
    size = _dimension(embedder, dimension)
    if size is not None:
        parts.append(f"{size}d")
    return _valid_id(":".join(parts))


def _values(embedder: object, attributes: tuple[str, ...]) -> list[object]:
    values = []
    for attribute in attributes:
        # A property may run code and fail: its value is then simply unknown.
        try:
            values.append(getattr(embedder, attribute, None))
        except Exception:
            continue
    return values


def _model_name(embedder: object) -> str | None:
    for value in _values(embedder, MODEL_NAME_ATTRIBUTES):
        if isinstance(value, str) and value and value not in _NO_NAME:
            return value
    return None


def _stated_dimension(embedder: object) -> int | None:
    for value in _values(embedder, DIMENSION_ATTRIBUTES):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _dimension(embedder: object, dimension: int | None) -> int | None:
    stated = _stated_dimension(embedder)
    if dimension is None:
        return stated
    if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
        raise InvalidArgumentError(f"dimension must be a positive integer, got {dimension!r}")
    if stated is not None and stated != dimension:
        raise InvalidArgumentError(
            f"{type(embedder).__name__} says it makes {stated}-dimensional vectors, but "
            f"dimension={dimension} was given: pass the embedder's own dimension or none"
        )
    return dimension


def _valid_id(raw: str) -> str:
    cleaned = _NOT_ALLOWED.sub("-", raw).lstrip("._:-") or "embedder"
    if len(cleaned) > _MAX_ID:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:_DIGEST]
        cleaned = f"{cleaned[: _MAX_ID - _DIGEST - 1]}-{digest}"
    return cleaned
