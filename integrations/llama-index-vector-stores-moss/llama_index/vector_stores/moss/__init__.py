"""A Moss session as a LlamaIndex vector store, moss's embedding model, and push-at-checkpoint handlers."""

from .base import MossVectorStore
from .embeddings import MossEmbedding, default_model_id
from .handlers import MossPushHandler

__all__ = ["MossEmbedding", "MossPushHandler", "MossVectorStore", "default_model_id"]
