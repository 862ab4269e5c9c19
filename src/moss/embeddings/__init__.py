"""Embedding models: the built-in offline ``moss-minilm``, ``custom`` vectors, wrapped embedders."""

from .base import EmbeddingModel, normalize_rows
from .custom import CustomModel
from .minilm import MiniLMModel
from .registry import DEFAULT_MODEL_ID, resolve_model
from .wrapper import EmbedderModel

__all__ = [
    "DEFAULT_MODEL_ID",
    "CustomModel",
    "EmbedderModel",
    "EmbeddingModel",
    "MiniLMModel",
    "normalize_rows",
    "resolve_model",
]
