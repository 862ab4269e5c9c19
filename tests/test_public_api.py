"""The public surface: one sorted, complete __all__."""

from __future__ import annotations

import inspect

import moss


def test_all_is_sorted_and_complete() -> None:
    assert moss.__all__ == sorted(moss.__all__)
    public = {
        name
        for name, value in vars(moss).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
    }
    assert public == set(moss.__all__)


def test_errors_share_one_root() -> None:
    errors = [getattr(moss, name) for name in moss.__all__ if name.endswith("Error")]
    assert len(errors) >= 8
    assert all(issubclass(error, moss.MossError) for error in errors)


def test_public_classes_have_docstrings() -> None:
    for name in moss.__all__:
        assert inspect.getdoc(getattr(moss, name)), name
