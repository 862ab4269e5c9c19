"""moss.embeddings.model_ids: one model-id rule that tells incompatible embedders apart."""

from __future__ import annotations

import doctest

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

import moss.embeddings.model_ids
from moss import EmbedderModel, InvalidArgumentError
from moss.embeddings import resolve_model
from moss.embeddings.model_ids import model_id_for
from moss.validation import validate_name


class Named:
    def __init__(self, **attributes: object) -> None:
        self.__dict__.update(attributes)


def test_docstring_example_holds() -> None:
    assert doctest.testmod(moss.embeddings.model_ids).failed == 0


def test_sizes_get_different_ids() -> None:
    small = model_id_for(DeterministicFakeEmbedding(size=8))
    large = model_id_for(DeterministicFakeEmbedding(size=16))
    assert small == "langchain_core.embeddings.fake.DeterministicFakeEmbedding:8d"
    assert small != large


def test_model_name_and_dimensions_like_openai() -> None:
    full = model_id_for(Named(model="text-embedding-3-small", dimensions=None))
    short = model_id_for(Named(model="text-embedding-3-small", dimensions=256))
    assert full == f"{__name__}.Named:text-embedding-3-small"
    assert short == f"{__name__}.Named:text-embedding-3-small:256d"


@pytest.mark.parametrize("attribute", ["model", "model_name", "model_id", "deployment"])
def test_each_model_name_attribute_counts(attribute: str) -> None:
    assert model_id_for(Named(**{attribute: "m1"})).endswith(".Named:m1")


def test_unknown_model_name_is_left_out_and_qualname_is_cleaned() -> None:
    class Local:
        model_name = "unknown"

    model_id = model_id_for(Local())
    assert (
        model_id
        == f"{__name__}.test_unknown_model_name_is_left_out_and_qualname_is_cleaned.-locals-.Local"
    )
    validate_name(model_id, what="model id")


def test_passed_dimension_is_used_and_a_conflict_refused() -> None:
    assert model_id_for(Named(model="m"), dimension=384).endswith(":m:384d")
    assert model_id_for(Named(embed_dim=384), dimension=384).endswith(":384d")
    with pytest.raises(InvalidArgumentError, match="dimension=128"):
        model_id_for(Named(size=384), dimension=128)
    with pytest.raises(InvalidArgumentError):
        model_id_for(Named(), dimension=0)


def test_long_ids_stay_valid_and_distinct() -> None:
    first = model_id_for(Named(model="x" * 200 + "a"))
    second = model_id_for(Named(model="x" * 200 + "b"))
    assert first != second
    for model_id in (first, second):
        assert len(model_id) == 128
        validate_name(model_id, what="model id")
    # Characters outside the allowed set become "-".
    assert model_id_for(Named(model="org/model name")).endswith(":org-model-name")


def test_ids_are_accepted_by_embedder_model() -> None:
    embedder = DeterministicFakeEmbedding(size=8)
    assert EmbedderModel(embedder, model_id=model_id_for(embedder)).model_id.endswith(":8d")


def test_a_moss_model_keeps_its_id() -> None:
    assert model_id_for(resolve_model("moss-minilm")) == "moss-minilm"
