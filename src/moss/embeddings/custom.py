"""``custom``: the model id of indexes whose vectors the caller computes and passes in."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidArgumentError
from .base import CUSTOM_MODEL_ID, EmbeddingModel, FloatArray

_HOW = (
    "the index uses the custom model, which does not embed text: pass DocumentInfo(embedding=...) "
    "for documents and QueryOptions(embedding=...) for queries"
)


class CustomModel(EmbeddingModel):
    """Vectors come from the caller; moss only checks and normalises them.

    The dimension is learned from the first vector unless given::

        model = CustomModel(dimension=1536)
        model.bind_dimension(1536)  # fine; any other size raises InvalidArgumentError
    """

    model_id = CUSTOM_MODEL_ID
    artifact_id = ""
    requires_vectors = True

    def __init__(self, *, dimension: int | None = None) -> None:
        self.dimension = None
        if dimension is not None:
            self.bind_dimension(dimension)

    def embed_documents(self, texts: Sequence[str]) -> FloatArray:
        """Refuse: documents of a custom index carry their own vectors."""
        raise InvalidArgumentError(f"cannot embed {len(texts)} document text(s): {_HOW}")

    def embed_query(self, text: str) -> FloatArray:
        """Refuse: queries on a custom index carry their own vector."""
        raise InvalidArgumentError(f"cannot embed the query text: {_HOW}")

    async def aembed_documents(self, texts: Sequence[str]) -> FloatArray:
        """Refuse, like :meth:`embed_documents`."""
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> FloatArray:
        """Refuse, like :meth:`embed_query`."""
        return self.embed_query(text)
