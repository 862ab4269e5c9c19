"""Open stored versions: check the model against the snapshot header, decode into an engine."""

from __future__ import annotations

from collections.abc import Iterable

from .embeddings import DEFAULT_MODEL_ID, CustomModel, EmbeddingModel, resolve_model
from .engine import Engine
from .errors import InvalidArgumentError, ModelMismatchError
from .snapshot import SnapshotData, SnapshotHeader, SnapshotReader
from .stores.base import AsyncDownload, Download


def requested_model(model_id: str | None, model: EmbeddingModel | None) -> EmbeddingModel | None:
    """Check what the caller asked for; return the model object if it is already known."""
    if model is not None:
        if not isinstance(model, EmbeddingModel):
            raise InvalidArgumentError(
                f"model must be an EmbeddingModel (e.g. EmbedderModel(embedder, model_id=...)), "
                f"got {type(model).__name__}"
            )
        if model_id is not None and model_id != model.model_id:
            raise InvalidArgumentError(
                f"model_id {model_id!r} and model.model_id {model.model_id!r} differ: pass one of them"
            )
        return model
    if model_id is not None and not isinstance(model_id, str):
        raise InvalidArgumentError(f"model_id must be a string, got {type(model_id).__name__}")
    return None


def model_for_new_index(model_id: str | None, model: EmbeddingModel | None) -> EmbeddingModel:
    """The model of a session that starts empty (no stored version yet)."""
    return model if model is not None else resolve_model(model_id or DEFAULT_MODEL_ID)


def model_for_header(
    header: SnapshotHeader, model_id: str | None, model: EmbeddingModel | None
) -> EmbeddingModel:
    """The model to use on a stored index; raise ModelMismatchError if the caller's differs."""
    stored = header.model_id
    asked = model.model_id if model is not None else model_id
    if asked is not None and asked != stored:
        raise ModelMismatchError(
            f"index {header.index_name!r} was built with embedding model {stored!r}, but "
            f"{asked!r} was requested: open it with model_id={stored!r} (or leave model_id out), "
            "or use another index name for the other model"
        )
    if model is None:
        if stored == "custom":
            model = CustomModel(dimension=header.dimension)
        else:
            try:
                model = resolve_model(stored)
            except InvalidArgumentError:
                raise InvalidArgumentError(
                    f"index {header.index_name!r} was built with your own embedding model {stored!r}: "
                    f"open it with model=EmbedderModel(your_embedder, model_id={stored!r})"
                ) from None
    if model.artifact_id and header.model_artifact and model.artifact_id != header.model_artifact:
        raise ModelMismatchError(
            f"index {header.index_name!r} was built with {stored!r} artifact {header.model_artifact}, "
            f"but this process has artifact {model.artifact_id}: install the same model version "
            "on every participant"
        )
    if model.dimension is not None and model.dimension != header.dimension:
        raise ModelMismatchError(
            f"index {header.index_name!r} holds {header.dimension}-dimensional vectors, but model "
            f"{stored!r} here produces {model.dimension}: use the same model on every participant"
        )
    return model


class _Decoder:
    """Feed a download into a snapshot reader, checking the model as soon as the header is known."""

    def __init__(self, name: str, model_id: str | None, model: EmbeddingModel | None) -> None:
        self._reader = SnapshotReader(keep_data=True, expected_name=name)
        self._model_id = model_id
        self._model = model
        self.bound: EmbeddingModel | None = None

    def feed(self, chunk: bytes | memoryview) -> None:
        self._reader.feed(chunk)
        if self.bound is None and self._reader.header is not None:
            self.bound = model_for_header(self._reader.header, self._model_id, self._model)

    def finish(self) -> tuple[EmbeddingModel, Engine, SnapshotData]:
        data = self._reader.finish()
        assert isinstance(data, SnapshotData)
        if self.bound is None:
            self.bound = model_for_header(data.header, self._model_id, self._model)
        engine = Engine.from_arrays(data.vectors, data.ids, data.texts, data.metadata)
        return self.bound, engine, data


def load(
    download: Download, name: str, model_id: str | None, model: EmbeddingModel | None
) -> tuple[EmbeddingModel, Engine, SnapshotData]:
    """Decode a download into (model, engine, data); closes the download."""
    decoder = _Decoder(name, model_id, model)
    try:
        _feed_all(decoder, download)
    finally:
        download.close()
    return decoder.finish()


def _feed_all(decoder: _Decoder, chunks: Iterable[bytes]) -> None:
    for chunk in chunks:
        decoder.feed(chunk)


async def aload(
    download: AsyncDownload, name: str, model_id: str | None, model: EmbeddingModel | None
) -> tuple[EmbeddingModel, Engine, SnapshotData]:
    """Async twin of :func:`load`."""
    decoder = _Decoder(name, model_id, model)
    try:
        async for chunk in download:
            decoder.feed(chunk)
    finally:
        await download.aclose()
    return decoder.finish()
