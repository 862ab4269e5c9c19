"""LangChain embeddings and moss model ids: the built-in model, and how others are named."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from moss import EmbedderModel, EmbeddingModel, InvalidArgumentError
from moss.embeddings import DEFAULT_MODEL_ID, resolve_model
from moss.embeddings.model_ids import model_id_for as core_model_id_for


class MossEmbeddings(Embeddings):
    """The built-in offline model ``moss-minilm`` (384 dimensions) as LangChain ``Embeddings``.

    A vector store given ``MossEmbeddings`` stores its index under the model id ``moss-minilm``,
    the same id moss and its LlamaIndex adapter use, so agents on either framework share an
    index. Nothing is downloaded: the model ships with moss.

    Example::

        from langchain_moss import MossEmbeddings, MossVectorStore

        embeddings = MossEmbeddings()
        vector = embeddings.embed_query("refund status")  # 384 floats, norm 1
        store = MossVectorStore(index_name="support-kb", embedding=embeddings)
    """

    model_id: str = DEFAULT_MODEL_ID

    def __init__(self) -> None:
        self._model = resolve_model(DEFAULT_MODEL_ID)

    def __repr__(self) -> str:
        return f"MossEmbeddings(model_id={self.model_id!r})"

    @property
    def model(self) -> EmbeddingModel:
        """The moss model object behind these embeddings."""
        return self._model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed ``texts``: one 384-float vector of norm 1 per text."""
        rows: list[list[float]] = self._model.embed_documents(texts).tolist()
        return rows

    def embed_query(self, text: str) -> list[float]:
        """Embed one query text: 384 floats, norm 1."""
        vector: list[float] = self._model.embed_query(text).tolist()
        return vector

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed ``texts`` in a worker thread, so the event loop keeps running."""
        rows: list[list[float]] = (await self._model.aembed_documents(texts)).tolist()
        return rows

    async def aembed_query(self, text: str) -> list[float]:
        """Embed one query text in a worker thread."""
        vector: list[float] = (await self._model.aembed_query(text)).tolist()
        return vector


def model_id_for(embedding: Embeddings) -> str:
    """The model id moss stores an index under when the user names none.

    :class:`MossEmbeddings` is ``moss-minilm``; any other embedder follows moss's one rule
    (:func:`moss.embeddings.model_ids.model_id_for`, shared with the LlamaIndex adapter): the
    class's module and qualified name, its model name (``model``, ``model_name``, ``model_id``
    or ``deployment``) and its dimension where it states one (``dimensions``, ``size``...), so
    ``OpenAIEmbeddings(dimensions=256)`` and the full size get different ids. Pass
    ``model_id=`` to choose one yourself.

    >>> from langchain_core.embeddings import DeterministicFakeEmbedding
    >>> model_id_for(DeterministicFakeEmbedding(size=8))
    'langchain_core.embeddings.fake.DeterministicFakeEmbedding:8d'
    """
    if isinstance(embedding, MossEmbeddings):
        return embedding.model_id
    return core_model_id_for(embedding)


def moss_model_for(embedding: Embeddings, model_id: str | None = None) -> EmbeddingModel:
    """The moss model that embeds with ``embedding`` under ``model_id`` (derived when None)."""
    if isinstance(embedding, MossEmbeddings):
        if model_id is not None and model_id != embedding.model_id:
            raise InvalidArgumentError(
                f"MossEmbeddings is the built-in model {embedding.model_id!r}, but model_id "
                f"{model_id!r} was given: leave model_id out, or use your own embedder"
            )
        return embedding.model
    return EmbedderModel(embedding, model_id=model_id or model_id_for(embedding))


def embeddings_for(model: EmbeddingModel) -> Embeddings | None:
    """The LangChain embeddings behind a session's model, if it has any."""
    if model.model_id == DEFAULT_MODEL_ID:
        return MossEmbeddings()
    if isinstance(model, EmbedderModel) and isinstance(model.embedder, Embeddings):
        return model.embedder
    return None
