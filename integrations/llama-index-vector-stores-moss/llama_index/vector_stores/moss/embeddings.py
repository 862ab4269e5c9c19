"""MossEmbedding: moss's embedding models as a LlamaIndex embedding, and model ids for other embedders."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from moss import EmbedderModel, EmbeddingModel, InvalidArgumentError
from moss.embeddings import DEFAULT_MODEL_ID, resolve_model
from moss.embeddings.model_ids import model_id_for

__all__ = ["MossEmbedding", "default_model_id", "moss_model_for"]


class MossEmbedding(BaseEmbedding):
    """A moss embedding model as a LlamaIndex embedding; by default the built-in ``moss-minilm``.

    It runs offline (384 dimensions, vectors of norm 1) and shares the model id ``moss-minilm``
    with the LangChain adapter, so agents on both frameworks use one index::

        from llama_index.core import Settings
        from llama_index.vector_stores.moss import MossEmbedding

        Settings.embed_model = MossEmbedding()
        vector = Settings.embed_model.get_query_embedding("status of the refund")

    ``MossEmbedding(model)`` exposes any other moss model (``session.model``, an
    ``EmbedderModel``) the same way; ``model_name`` is its model id.
    """

    model_name: str = Field(default=DEFAULT_MODEL_ID, description="The moss model id.")
    # moss batches by token count itself, so LlamaIndex's default of 10 texts per call only
    # adds overhead.
    embed_batch_size: int = Field(default=128, gt=0, le=2048)
    _model: EmbeddingModel = PrivateAttr()

    def __init__(self, model: EmbeddingModel | str | None = None, **kwargs: Any) -> None:
        resolved = resolve_model(model)
        if resolved.requires_vectors:
            raise InvalidArgumentError(
                f"model {resolved.model_id!r} does not embed text, so it cannot serve as a "
                "LlamaIndex embedding; use moss-minilm or wrap your own embedder"
            )
        kwargs.setdefault("model_name", resolved.model_id)
        super().__init__(**kwargs)
        self._model = resolved

    @classmethod
    def class_name(cls) -> str:
        return "MossEmbedding"

    @property
    def moss_model(self) -> EmbeddingModel:
        """The moss model behind this embedding."""
        return self._model

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._model.embed_query(query).tolist()  # type: ignore[no-any-return]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return (await self._model.aembed_query(query)).tolist()  # type: ignore[no-any-return]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._model.embed_documents([text])[0].tolist()  # type: ignore[no-any-return]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await self._model.aembed_documents([text]))[0].tolist()  # type: ignore[no-any-return]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._model.embed_documents(texts).tolist()  # type: ignore[no-any-return]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return (await self._model.aembed_documents(texts)).tolist()  # type: ignore[no-any-return]


def default_model_id(embed_model: BaseEmbedding) -> str:
    """The model id an index built with ``embed_model`` gets when the user names none.

    ``MossEmbedding`` keeps its moss id (``moss-minilm``). Any other embedding gets moss's one
    rule for both adapters (``moss.embeddings.model_ids.model_id_for``): its qualified class
    name, its model name where it has one, and its dimension where it states one, for example
    ``llama_index.embeddings.openai.base.OpenAIEmbedding:text-embedding-3-small:256d``. So two
    home-made classes, or one model at two sizes, never share an id.
    """
    if isinstance(embed_model, MossEmbedding):
        return embed_model.model_name
    return model_id_for(embed_model)


def moss_model_for(embed_model: BaseEmbedding, model_id: str | None = None) -> EmbeddingModel:
    """The moss model that embeds with ``embed_model`` under ``model_id`` (default: the rule above)."""
    if isinstance(embed_model, MossEmbedding):
        model = embed_model.moss_model
        if model_id is not None and model_id != model.model_id:
            raise InvalidArgumentError(
                f"MossEmbedding serves model {model.model_id!r}, not {model_id!r}: "
                "leave model_id out, or pass an embed model that is the other one"
            )
        return model
    if not isinstance(embed_model, BaseEmbedding):
        raise InvalidArgumentError(
            f"embed_model must be a LlamaIndex BaseEmbedding, got {type(embed_model).__name__}"
        )
    return EmbedderModel(embed_model, model_id=model_id or default_model_id(embed_model))
