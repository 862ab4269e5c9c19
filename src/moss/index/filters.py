"""Metadata filters: compile a filter dict once, then match one document or a whole column.

Two forms are accepted, and may be mixed inside ``$and`` / ``$or`` / ``$not``::

    {"field": "category", "condition": {"$eq": "shipping"}}          # moss form
    {"$and": [{"field": "price", "condition": {"$lt": 100}}, ...]}
    {"category": "shipping", "price": {"$lt": 100}}                   # plain form (LangChain)
    {"$or": [{"category": "a"}, {"category": "b"}], "year": {"$gte": 2020}}

A dict whose keys are exactly ``field`` and ``condition`` is the moss form; any other dict is the
plain form: each key is a metadata field (implicit ``$eq`` for a scalar, an operator dict
otherwise) or a logical operator, and all keys must hold (implicit AND). ``$not`` takes one
filter (or a list, meaning the AND of its items).

Semantics, for the top-level metadata key named by the field:

- ``$eq $ne``: scalar equality; numbers compare as numbers (``1 == 1.0``) but a bool is not a
  number (``True != 1``).
- ``$gt $gte $lt $lte``: numbers against numbers, strings against strings; any other pairing
  (a string against a number, a bool, a list, null) is simply false.
- ``$in $nin``: the value equals one of the listed scalars (``$nin``: none of them).
- ``$contains``: a list value holds the scalar, or a string value has it as a substring.
- ``$all $any``: a list value holds all (any) of the listed scalars.
- ``$exists``: the key is present (``true``) or absent (``false``).
- ``$empty``: the key is absent, null, ``""`` or ``[]`` (``true``), or anything else (``false``).
- ``$text_match``: a string value has the operand string as a substring;
  ``$text_match_insensitive`` the same after ``str.lower()`` of both. Lists never match.
- A missing key, or metadata that is None, matches ``$ne`` and ``$nin`` (and ``$exists: false``,
  ``$empty: true``) and nothing else, as LlamaIndex's SimpleVectorStore does. ``$ne`` and ``$nin`` are the exact
  negations of ``$eq`` and ``$in``.

A malformed filter raises :class:`~moss.errors.InvalidArgumentError` when compiled; matching
never raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .filter_operators import BUILDERS, MISSING, SCALARS, Columns, FastMask, Mask, Meta, Test, error

__all__ = ["OPERATORS", "Filter", "compile_filter"]


class Filter:
    """A compiled filter: ``flt(metadata)`` for one document, ``flt.mask(list)`` for many.

    >>> flt = compile_filter({"category": "shipping", "price": {"$lt": 100}})
    >>> flt({"category": "shipping", "price": 12.5}), flt(None)
    (True, False)
    >>> flt.mask([{"category": "shipping", "price": 5}, {"category": "billing"}]).tolist()
    [True, False]
    """

    __slots__ = ("_root",)

    def __init__(self, root: _Node) -> None:
        self._root = root

    def __call__(self, metadata: Meta) -> bool:
        return self._root.match(metadata)

    def mask(self, metadata: Sequence[Meta]) -> Mask:
        """Whether each metadata entry matches, as a boolean array (column-wise, fast)."""
        return self._root.mask(Columns(metadata))


def compile_filter(filter: Mapping[str, Any] | None) -> Filter | None:
    """Compile ``filter`` into a :class:`Filter`; None (match all) for None or ``{}``."""
    if filter is None:
        return None
    if not isinstance(filter, Mapping):
        raise error(f"a filter must be a dict, got {type(filter).__name__}")
    if not filter:
        return None
    return Filter(_compile_node(filter, "filter"))


# --- evaluation -----------------------------------------------------------------------------


class _Node:
    def match(self, meta: Meta) -> bool:
        raise NotImplementedError

    def mask(self, columns: Columns) -> Mask:
        raise NotImplementedError


class _And(_Node):
    def __init__(self, parts: list[_Node]) -> None:
        self.parts = parts

    def match(self, meta: Meta) -> bool:
        return all(part.match(meta) for part in self.parts)

    def mask(self, columns: Columns) -> Mask:
        result = np.ones(columns.count, dtype=bool)
        for part in self.parts:
            result &= part.mask(columns)
        return result


class _Or(_Node):
    def __init__(self, parts: list[_Node]) -> None:
        self.parts = parts

    def match(self, meta: Meta) -> bool:
        return any(part.match(meta) for part in self.parts)

    def mask(self, columns: Columns) -> Mask:
        result = np.zeros(columns.count, dtype=bool)
        for part in self.parts:
            result |= part.mask(columns)
        return result


class _Not(_Node):
    def __init__(self, inner: _Node) -> None:
        self.inner = inner

    def match(self, meta: Meta) -> bool:
        return not self.inner.match(meta)

    def mask(self, columns: Columns) -> Mask:
        return ~self.inner.mask(columns)


class _Condition(_Node):
    """One operator applied to one field."""

    def __init__(self, field: str, test: Test, fast: FastMask | None) -> None:
        self.field = field
        self.test = test
        self.fast = fast

    def match(self, meta: Meta) -> bool:
        return self.test(MISSING if meta is None else meta.get(self.field, MISSING))

    def mask(self, columns: Columns) -> Mask:
        if self.fast is not None:
            return self.fast(columns, self.field)
        values = columns.values(self.field)
        return np.fromiter(map(self.test, values), dtype=bool, count=columns.count)


# --- structure ------------------------------------------------------------------------------


def _compile_node(node: object, path: str) -> _Node:
    if not isinstance(node, Mapping):
        raise error(f"{path} must be a dict, got {type(node).__name__}")
    if "field" in node and "condition" in node:
        # The moss form; a plain filter on metadata keys named so can go through $and.
        field = node["field"]
        if len(node) != 2 or not isinstance(field, str):
            raise error(f"{path} must hold a string field and a condition, nothing else")
        return _compile_field(field, node["condition"], f"{path}.condition", implicit=False)
    parts: list[_Node] = []
    for key, value in node.items():
        if not isinstance(key, str):
            raise error(f"{path} has a non-string key {key!r}")
        if key.startswith("$"):
            parts.append(_compile_logical(key, value, f"{path}.{key}"))
        else:
            parts.append(_compile_field(key, value, f"{path}.{key}", implicit=True))
    return parts[0] if len(parts) == 1 else _And(parts)


def _compile_logical(op: str, operand: object, path: str) -> _Node:
    if op == "$not":
        if _is_list(operand):
            return _Not(_And(_compile_list(operand, path)))
        return _Not(_compile_node(operand, path))
    if op not in ("$and", "$or"):
        raise error(f"unknown logical operator {op!r} at {path} (use $and, $or or $not)")
    if not _is_list(operand):
        raise error(f"{path} takes a list of filters, got {type(operand).__name__}")
    parts = _compile_list(operand, path)
    return _And(parts) if op == "$and" else _Or(parts)


def _compile_list(operand: Any, path: str) -> list[_Node]:
    return [_compile_node(item, f"{path}[{i}]") for i, item in enumerate(operand)]


def _compile_field(field: str, condition: object, path: str, *, implicit: bool) -> _Node:
    if isinstance(condition, Mapping):
        if not condition:
            raise error(f"{path} is an empty condition")
        if not all(isinstance(k, str) and k.startswith("$") for k in condition):
            raise error(
                f"{path} mixes field names into a condition (filters apply to top-level keys "
                "only; a condition is a dict of $operators)"
            )
        ops = list(condition.items())
    elif implicit and isinstance(condition, SCALARS):
        ops = [("$eq", condition)]
    elif implicit:
        raise error(
            f"{path} compares with a {type(condition).__name__}; equality takes a scalar "
            "(use $in for one of several values, $contains / $all / $any for list values)"
        )
    else:
        raise error(f"{path} must be a dict of $operators, got {type(condition).__name__}")
    parts: list[_Node] = [_compile_op(field, op, operand, f"{path}.{op}") for op, operand in ops]
    return parts[0] if len(parts) == 1 else _And(parts)


def _compile_op(field: str, op: str, operand: object, path: str) -> _Condition:
    builder = BUILDERS.get(op)
    if builder is None:
        raise error(f"unknown operator {op!r} at {path}")
    test, fast = builder(operand, path)
    return _Condition(field, test, fast)


def _is_list(value: object) -> bool:
    return isinstance(value, (list, tuple))


#: The comparison operators a condition may use.
OPERATORS: tuple[str, ...] = tuple(BUILDERS)
