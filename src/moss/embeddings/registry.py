"""Resolve a model id (or a model object) to the embedding model that serves it."""

from __future__ import annotations

import threading

from ..errors import InvalidArgumentError
from .base import CUSTOM_MODEL_ID, MINILM_MODEL_ID, EmbeddingModel
from .custom import CustomModel
from .minilm import MiniLMModel

DEFAULT_MODEL_ID = MINILM_MODEL_ID
#: The ids :func:`resolve_model` knows by name.
BUILTIN_MODEL_IDS = (MINILM_MODEL_ID, CUSTOM_MODEL_ID)

_lock = threading.Lock()
_minilm: MiniLMModel | None = None


def resolve_model(model_id: str | EmbeddingModel | None = None) -> EmbeddingModel:
    """Return the model for ``model_id``: ``moss-minilm`` (the default) or a new ``custom``.

    A model object passes through unchanged, so callers may accept either. Any other id is
    refused: a wrapped embedder cannot be rebuilt from its name alone.
    """
    if isinstance(model_id, EmbeddingModel):
        return model_id
    if model_id is None or model_id == MINILM_MODEL_ID:
        return _default_model()
    if model_id == CUSTOM_MODEL_ID:
        return CustomModel()
    known = ", ".join(repr(name) for name in BUILTIN_MODEL_IDS)
    raise InvalidArgumentError(
        f"unknown embedding model {model_id!r}: the built-in models are {known}; "
        "to use your own embedder, pass model=EmbedderModel(obj, model_id=...)"
    )


def _default_model() -> MiniLMModel:
    global _minilm
    with _lock:
        if _minilm is None:
            _minilm = MiniLMModel()
        return _minilm
